// A request from app A through A's sidecar (outbound) and B's sidecar
// (inbound) to app B, configured only by the real ADS server.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { TestMesh, freePort, get, instance, service, startApp } from './harness.ts';

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
    // One value, the caller's sidecar's, replacing the one B's sidecar set (as Envoy's router sets it), not "3, 5".
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
