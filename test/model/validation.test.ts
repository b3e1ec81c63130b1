// Valid input: accepted, normalised, defaults filled; schemas usable by the API.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ServiceSchema, validateService } from '../../control/model/service.ts';
import { validateRoute } from '../../control/model/route.ts';
import { validateDestinationPolicy } from '../../control/model/destination-policy.ts';
import { validateFilterBinding } from '../../control/model/filter-binding.ts';
import { validateInstanceRegistration } from '../../control/model/instance.ts';
import { isAddress } from '../../control/model/fields.ts';

function valueOf<T>(result: { ok: true; value: T } | { ok: false; errors: unknown }): T {
  assert.ok(result.ok, `expected ok, got ${JSON.stringify(result)}`);
  return (result as { value: T }).value;
}

test('a service gets namespace "default" and health-check defaults', () => {
  const service = valueOf(validateService({ name: 'orders', ports: [{ name: 'web', port: 8080, protocol: 'http' }, { port: 9090, protocol: 'grpc' }], healthCheck: { path: '/healthz' } }));
  assert.deepEqual(service, {
    name: 'orders',
    namespace: 'default',
    ports: [{ name: 'web', port: 8080, protocol: 'http' }, { port: 9090, protocol: 'grpc' }],
    healthCheck: { path: '/healthz', intervalMs: 10000, timeoutMs: 1000, healthyThreshold: 2, unhealthyThreshold: 3 },
  });
  assert.equal(valueOf(validateService({ name: 'a', namespace: 'shop', ports: [{ port: 1, protocol: 'tcp' }] })).namespace, 'shop');
});

test('a route with every feature keeps them all, lower-cases header names and fills retry defaults', () => {
  const route = valueOf(
    validateRoute({
      name: 'reviews',
      service: 'reviews',
      rules: [
        {
          name: 'canary',
          match: [{ path: { prefix: '/api' }, method: 'GET', headers: [{ name: 'X-User', match: { regex: '^jason$' } }], queryParams: [{ name: 'debug', match: { present: true } }] }],
          destinations: [{ service: 'reviews', subset: 'v1', weight: 90 }, { service: 'reviews.shop', subset: 'v2', weight: 10, port: 9080 }],
          timeoutMs: 3000,
          retries: { attempts: 3, perTryTimeoutMs: 1000 },
          prefixRewrite: '/v2/api',
          requestHeaders: { add: [{ name: 'X-Canary', value: 'yes' }], remove: ['X-Debug'] },
          mirror: { service: 'shadow' },
          fault: { delay: { fixedDelayMs: 200, percentage: 5 }, responseRateLimit: { limitKbps: 64, percentage: 5 } },
        },
        { destinations: [{ service: 'reviews' }] },
      ],
    }),
  );
  const [canary, fallback] = route.rules;
  assert.equal(route.namespace, 'default');
  assert.deepEqual(canary!.match![0]!.headers, [{ name: 'x-user', match: { regex: '^jason$' } }]);
  assert.deepEqual(canary!.retries, { attempts: 3, perTryTimeoutMs: 1000, retryOn: ['connect-failure', 'refused-stream', '5xx'] });
  assert.deepEqual(canary!.requestHeaders, { add: [{ name: 'x-canary', value: 'yes' }], remove: ['x-debug'] });
  assert.deepEqual(canary!.mirror, { service: 'shadow', percentage: 100 });
  assert.deepEqual(canary!.fault, { delay: { fixedDelayMs: 200, percentage: 5 }, responseRateLimit: { limitKbps: 64, percentage: 5 } });
  assert.deepEqual(fallback!.destinations, [{ service: 'reviews', weight: 100 }]);
});

test('a destination policy fills outlier-detection defaults and shapes ring hash', () => {
  const policy = valueOf(
    validateDestinationPolicy({
      name: 'reviews',
      service: 'reviews',
      subsets: [{ name: 'v1', labels: { version: 'v1' } }],
      loadBalancer: { policy: 'ring_hash', hashOn: { cookie: 'session', ttlSeconds: 60 } },
      outlierDetection: { consecutive5xx: 3 },
      circuitBreakers: { maxConnections: 100 },
    }),
  );
  assert.deepEqual(policy.outlierDetection, { consecutive5xx: 3, intervalMs: 10000, baseEjectionTimeMs: 30000, maxEjectionPercent: 10 });
  assert.deepEqual(policy.loadBalancer, { policy: 'ring_hash', hashOn: { cookie: 'session', ttlSeconds: 60 } });
  assert.deepEqual(valueOf(validateDestinationPolicy({ name: 'p', service: 's', loadBalancer: { policy: 'least_request' } })).loadBalancer, { policy: 'least_request' });
});

test('a filter binding defaults to order 0, empty config and fail_closed', () => {
  assert.deepEqual(valueOf(validateFilterBinding({ name: 'auth', service: 'orders', direction: 'inbound', filter: 'auth' })), {
    name: 'auth', namespace: 'default', service: 'orders', direction: 'inbound', filter: 'auth', order: 0, config: {}, failurePolicy: 'fail_closed',
  });
});

test('an instance registration defaults to healthy, no TTL, no labels', () => {
  assert.deepEqual(valueOf(validateInstanceRegistration({ address: '10.0.0.7', port: 15006 })), { address: '10.0.0.7', port: 15006, labels: {}, ttlSeconds: 0, health: 'healthy' });
  assert.equal(valueOf(validateInstanceRegistration({ address: '::1', port: 1, zone: 'eu-west-1a', labels: { 'app.kubernetes.io/name': 'x', version: '' } })).zone, 'eu-west-1a');
});

test('addresses: IP literals and hostnames, not near-IPs', () => {
  for (const good of ['127.0.0.1', '::1', 'fe80::1', 'orders.default.svc', 'localhost', 'host-1.example.com.']) assert.ok(isAddress(good), good);
  for (const bad of ['', '10.0.0.256', '1.2.3', '-host', 'a..b', 'host_name', '[::1]', 'a'.repeat(64) + '.com']) assert.ok(!isAddress(bad), bad);
});

test('the exported schemas are plain JSON Schema that reject unknown fields (usable by fastify and OpenAPI)', () => {
  const json = JSON.parse(JSON.stringify(ServiceSchema)) as { type: string; additionalProperties: boolean; required: string[]; properties: Record<string, unknown> };
  assert.equal(json.type, 'object');
  assert.equal(json.additionalProperties, false);
  assert.deepEqual(json.required.sort(), ['name', 'ports']);
  assert.ok('healthCheck' in json.properties);
});
