// What the model accepts must run on both data planes: every value an
// enumerated field of a manifest offers, once validated and translated,
// passes Envoy's codec and the weft sidecar's fidelity contract. A value
// either data plane refuses would be a 201 from the API followed by a NACK
// of the whole route configuration on every caller.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { validateRoute } from '../../control/model/route.ts';
import { RETRY_ON } from '../../control/model/route-actions.ts';
import { translateProxy } from '../../control/translate/index.ts';
import { validateResource } from '../../control/envoy/index.ts';
import { accept } from '../../sidecar/fidelity.ts';
import { buildCase } from '../golden/load-case.ts';

const ROUTE_TYPE = 'type.googleapis.com/envoy.config.route.v3.RouteConfiguration';

function routeConfigFor(rule: Record<string, unknown>): Record<string, unknown> {
  const validated = validateRoute({ name: 'orders', service: 'orders', rules: [{ destinations: [{ service: 'orders' }], ...rule }] });
  assert.ok(validated.ok, JSON.stringify(validated));
  const c = buildCase({
    model: { services: [{ name: 'web', ports: [{ port: 8080, protocol: 'http' }] }, { name: 'orders', ports: [{ port: 9080, protocol: 'http' }] }] },
    proxy: { service: 'web' },
  });
  c.model.routes = [validated.value];
  const out = translateProxy(c.model, c.proxy, c.options);
  assert.deepEqual(out.errors, []);
  return out.routes.find((r) => r.name === 'outbound')!.value;
}

test('every retryOn condition the model accepts passes the Envoy codec and the weft sidecar', () => {
  for (const condition of RETRY_ON) {
    const config = routeConfigFor({
      retries: { attempts: 2, retryOn: [condition], ...(condition === 'retriable-status-codes' ? { retriableStatusCodes: [503] } : {}) },
    });
    assert.deepEqual(validateResource(ROUTE_TYPE, config), [], `${condition}: Envoy codec`);
    const verdict = accept('route', config);
    assert.deepEqual(verdict.ok ? [] : verdict.errors, [], `${condition}: NACKed by the weft sidecar`);
  }
});

test('regexes the model accepts compile on both data planes; what either refuses, the model refuses', () => {
  const accepted = ['/api/v[0-9]+/.*', '/items/\\{id\\}', '[\\w\\-.]+', '\\d{3}-\\d{4}', '/[a-z]{1,1000}', '(foo|bar)\\.json'];
  for (const regex of accepted) {
    const config = routeConfigFor({ match: [{ path: { regex }, headers: [{ name: 'x-v', match: { regex } }] }] });
    assert.deepEqual(validateResource(ROUTE_TYPE, config), [], `${regex}: Envoy codec`);
    const verdict = accept('route', config);
    assert.deepEqual(verdict.ok ? [] : verdict.errors, [], `${regex}: NACKed by the weft sidecar`);
  }
  // RE2 refuses these (invalid escape, repeat count); JavaScript without the
  // unicode flag read them as letters, so they used to pass.
  for (const regex of ['/a\\Z', '/\\y', '\\u0041', '\\cA', 'a{1001}', '/(?i)api']) {
    const result = validateRoute({ name: 'orders', service: 'orders', rules: [{ destinations: [{ service: 'orders' }], match: [{ path: { regex } }] }] });
    assert.ok(!result.ok, `${regex} accepted`);
    assert.deepEqual(result.errors.map((e) => e.path), ['rules[0].match[0].path.regex'], regex);
  }
});

test('every config source an Envoy is given waits for weft without a deadline (initial_fetch_timeout 0s), so /ready stays 503 until the whole configuration is in', () => {
  const c = buildCase({
    model: {
      services: [{ name: 'web', ports: [{ port: 8080, protocol: 'http' }] }, { name: 'orders', ports: [{ port: 9080, protocol: 'http' }] }],
      filterModules: [{ name: 'tagger', sha256: 'a'.repeat(64), size: 10, abiVersion: '0.2.1' }],
      filterBindings: [{ name: 'web-tag', service: 'web', direction: 'inbound', filter: 'tagger', config: {} }],
    },
    proxy: { service: 'web' },
  });
  const out = translateProxy(c.model, c.proxy, c.options);
  assert.deepEqual(out.errors, []);
  const sources: unknown[] = [];
  const walk = (v: unknown): void => {
    if (Array.isArray(v)) return v.forEach(walk);
    if (v === null || typeof v !== 'object') return;
    const o = v as Record<string, unknown>;
    if ('ads' in o && 'resource_api_version' in o) sources.push(o);
    Object.values(o).forEach(walk);
  };
  for (const r of [...out.listeners, ...out.clusters, ...out.routes]) walk(r.value);
  assert.ok(sources.length >= 3, `RDS, EDS and ECDS sources found (${sources.length})`);
  for (const s of sources) assert.equal((s as { initial_fetch_timeout?: string }).initial_fetch_timeout, '0s', JSON.stringify(s));
});
