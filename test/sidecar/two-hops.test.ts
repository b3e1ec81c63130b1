// A request from app A through A's sidecar (outbound) and B's sidecar
// (inbound) to app B, configured only by the real ADS server.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { TestMesh, eventually, freePort, get, instance, metric, policy, service, startApp } from './harness.ts';

let mesh: TestMesh;
before(async () => {
  mesh = await TestMesh.start();
});
after(async () => {
  await mesh.close();
});

test('a request goes through two sidecars to the app, with Envoy headers on the way', { timeout: 30_000 }, async () => {
  const appB = await startApp('b');
  mesh.track(() => appB.close());
  const inboundB = await freePort();
  mesh.model.update({ services: [service('a', 8000), service('b', 9000)], instances: [instance('b', inboundB)] });
  const scB = await mesh.sidecar('b', appB.port, { inboundPort: inboundB });
  const scA = await mesh.sidecar('a', 8000);

  for (const host of ['b', 'b:9000', 'b.default', 'b.default.svc.cluster.local:9000']) {
    const res = await get(scA.outboundPort, host, '/hello?x=1');
    assert.equal(res.status, 200, `Host: ${host}`);
    const echoed = JSON.parse(res.body);
    assert.equal(echoed.url, '/hello?x=1');
    assert.equal(echoed.headers.host, host);
    assert.ok(echoed.headers['x-request-id'], 'x-request-id added');
    // One value, this hop's: as Envoy's router sets it, replacing the one B's sidecar put on the response.
    assert.match(String(res.headers['x-envoy-upstream-service-time']), /^\d+$/);
  }
  assert.equal(appB.hits, 4);

  const unknown = await get(scA.outboundPort, 'nope');
  assert.equal(unknown.status, 404, 'no route for an unknown host');

  const viaProxy = await get(scA.outboundPort, 'ignored', 'http://b:9000/abs');
  assert.equal(viaProxy.status, 200);
  assert.equal(JSON.parse(viaProxy.body).url, '/abs');
  void scB;
});

test("health checks reach the app through the callee's sidecar: their Host is the service's (the cluster's name is no valid authority, and the inbound sidecar would answer 400)", { timeout: 30_000 }, async () => {
  const checks: (string | undefined)[] = [];
  const appC = await startApp('c', (req, res) => {
    if (req.url === '/healthz') checks.push(req.headers.host);
    res.end('c');
  });
  mesh.track(() => appC.close());
  const inboundC = await freePort();
  mesh.model.update({
    services: [service('a', 8000), service('c', 9100)],
    instances: [instance('c', inboundC)],
    destinationPolicies: [policy('c', { healthCheck: { path: '/healthz', intervalMs: 100, timeoutMs: 500, healthyThreshold: 1, unhealthyThreshold: 1 } })],
  });
  await mesh.sidecar('c', appC.port, { inboundPort: inboundC });
  const scA = await mesh.sidecar('a', 8000);
  await eventually(() => checks.length >= 2, 5000, 'checks at the app');
  assert.equal(checks[0], 'c.default');
  const labels = { envoy_cluster_name: 'outbound|9100||c.default' };
  // The checks seen may be the callee's own sidecar's (it has the cluster too): a's host is in once a's first check passes.
  await eventually(async () => (await metric(scA.adminPort, 'envoy_cluster_membership_healthy', labels)) === 1, 5000, "a's checks pass");
});
