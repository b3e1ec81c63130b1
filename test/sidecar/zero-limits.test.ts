// The zeros Envoy gives a meaning to, from a manifest to the wire: a route
// timeoutMs of 0 is Envoy's `0s` (no timeout: the upstream is told of none),
// and a DestinationPolicy maxRetries of 0 lets no retry through (each is a
// retry overflow), Envoy's usual way to turn retries off for a service. Both
// were refused by the API until 2026-11-29.
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { validateDestinationPolicy } from '../../control/model/destination-policy.ts';
import { validateRoute } from '../../control/model/route.ts';
import { TestMesh, admin, eventually, get, instance, metric, service, startApp } from './harness.ts';

const closers: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of closers.reverse()) await c();
});

test('timeoutMs 0 means no route timeout and maxRetries 0 means no retry, as Envoy reads them', { timeout: 60_000 }, async () => {
  const app = await startApp('flaky0', (req, res) => {
    if (req.url === '/ready') return void res.end('ok');
    if (req.url === '/fail') {
      res.statusCode = 503;
      return void res.end('down');
    }
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ timeoutHeader: req.headers['x-envoy-expected-rq-timeout-ms'] ?? null }));
  });
  const mesh = await TestMesh.start();
  closers.push(async () => {
    await mesh.close();
    await app.close();
  });
  const route = validateRoute({ name: 'flaky0', service: 'flaky0', rules: [{ destinations: [{ service: 'flaky0' }], timeoutMs: 0, retries: { attempts: 3, perTryTimeoutMs: 1000, retryOn: ['5xx'] } }] });
  assert.ok(route.ok, JSON.stringify(route));
  const policy = validateDestinationPolicy({ name: 'flaky0', service: 'flaky0', circuitBreakers: { maxRetries: 0 } });
  assert.ok(policy.ok, JSON.stringify(policy));
  mesh.model.update({
    services: [service('flaky0', 7995), service('caller0', 7996)],
    instances: [instance('flaky0', app.port)],
    routes: [route.value],
    destinationPolicies: [policy.value],
  });
  const sc = await mesh.sidecar('caller0', 8002);
  await eventually(async () => (await get(sc.outboundPort, 'flaky0', '/ready')).status === 200, 10_000, 'the route in place');

  const dump = JSON.parse((await admin(sc.adminPort, '/config_dump?resource=dynamic_route_configs')).body) as { configs: { route_config: { virtual_hosts: { routes: { route: { timeout?: string } }[] }[] } }[] };
  const timeouts = dump.configs.flatMap((c) => c.route_config.virtual_hosts.flatMap((vh) => vh.routes.map((r) => r.route?.timeout)));
  assert.ok(timeouts.includes('0s'), `a route with timeout 0s: ${JSON.stringify(timeouts)}`);
  // No route timeout: the upstream hears only of the per-try one (Envoy's x-envoy-expected-rq-timeout-ms).
  const ok = await get(sc.outboundPort, 'flaky0', '/');
  assert.equal(ok.status, 200);
  assert.equal(JSON.parse(ok.body).timeoutHeader, '1000');

  const before = app.hits;
  const failed = await get(sc.outboundPort, 'flaky0', '/fail');
  assert.equal(failed.status, 503);
  assert.equal(app.hits - before, 1, 'one try: max_retries 0 let no retry through');
  assert.equal(await metric(sc.adminPort, 'envoy_cluster_upstream_rq_retry_overflow', { envoy_cluster_name: 'outbound|7995||flaky0.default' }), 1);
  assert.equal(await metric(sc.adminPort, 'envoy_cluster_upstream_rq_retry', { envoy_cluster_name: 'outbound|7995||flaky0.default' }), 0);
});
