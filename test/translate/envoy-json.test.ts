// The proto3 JSON encoders every feature relies on: a wrong duration or
// percentage would silently change timeouts and traffic splits.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { duration, fractionalPercent } from '../../control/translate/envoy-json.ts';
import { domainsFor } from '../../control/translate/route-config.ts';

test('durations: whole seconds stay short, milliseconds keep three digits', () => {
  assert.equal(duration(0), '0s');
  assert.equal(duration(1000), '1s');
  assert.equal(duration(250), '0.250s');
  assert.equal(duration(1500), '1.500s');
  assert.equal(duration(60_005), '60.005s');
  assert.equal(duration(3_600_000), '3600s');
  assert.equal(duration(999.6), '1s');
});

test('percentages: whole ones per hundred, fractions per million without rounding to zero', () => {
  assert.deepEqual(fractionalPercent(10), { numerator: 10, denominator: 'HUNDRED' });
  assert.deepEqual(fractionalPercent(100), { numerator: 100, denominator: 'HUNDRED' });
  assert.deepEqual(fractionalPercent(0.5), { numerator: 5000, denominator: 'MILLION' });
  assert.deepEqual(fractionalPercent(0.0001), { numerator: 1, denominator: 'MILLION' });
  assert.deepEqual(fractionalPercent(33.3333), { numerator: 333_333, denominator: 'MILLION' });
});

test('domains: the bare name only in the caller\'s namespace, port-less forms only on the first port', () => {
  const orders = { name: 'orders', namespace: 'shop', ports: [{ port: 80, protocol: 'http' as const }, { port: 9090, protocol: 'http' as const }] };
  assert.deepEqual(domainsFor(orders, orders.ports[0]!, true, 'shop'), [
    'orders', 'orders:80', 'orders.shop', 'orders.shop:80', 'orders.shop.svc', 'orders.shop.svc:80',
    'orders.shop.svc.cluster.local', 'orders.shop.svc.cluster.local:80',
  ]);
  assert.deepEqual(domainsFor(orders, orders.ports[1]!, false, 'other'), [
    'orders.shop:9090', 'orders.shop.svc:9090', 'orders.shop.svc.cluster.local:9090',
  ]);
});
