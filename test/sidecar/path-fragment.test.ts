// A request path with a #fragment, which no client may send (RFC 9110 4.1,
// RFC 9113 8.3.1): Envoy's connection manager rejects it with 400 before any
// filter or route sees it (envoy.reloadable_features.http_reject_path_with_fragment,
// on by default), so an AuthorizationPolicy on an exact path or a *suffix
// cannot be stepped around with "/admin#x", which the app reads as /admin.

import assert from 'node:assert/strict';
import http2 from 'node:http2';
import { after, test } from 'node:test';
import { TestMesh, connect, exchange, freePort, get, instance, metric, service, startApp } from './harness.ts';

const closers: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of closers.reverse()) await c();
});

test('a path with a #fragment gets 400 before RBAC and routing, over HTTP/1.1 and HTTP/2; the app never sees it', { timeout: 30_000 }, async () => {
  const app = await startApp('orders');
  closers.push(() => app.close());
  const mesh = await TestMesh.start();
  closers.push(() => mesh.close());
  const inboundPort = await freePort();
  mesh.model.update({
    services: [service('orders', 7000)],
    instances: [instance('orders', inboundPort)],
    routes: [],
    authorizationPolicies: [{ name: 'no-admin', namespace: 'default', service: 'orders', action: 'DENY', rules: [{ paths: ['/admin', '*.key'] }] }],
  });
  const sc = await mesh.sidecar('orders', app.port, { inboundPort, adminPort: await freePort() });

  assert.equal((await get(inboundPort, 'orders', '/admin')).status, 403, 'the policy denies /admin');
  assert.equal((await get(inboundPort, 'orders', '/ok')).status, 200);
  const hitsBefore = app.hits;

  const socket = await connect(inboundPort);
  closers.push(async () => void socket.destroy());
  for (const path of ['/admin#x', '/tls.key#', '/ok#top']) {
    const r = await exchange(socket, 'orders', path);
    assert.equal(r.status, 400, path);
    assert.equal(r.body, '');
  }

  const session = http2.connect(`http://127.0.0.1:${inboundPort}`);
  closers.push(async () => void session.close());
  const status = await new Promise<number>((resolve, reject) => {
    const s = session.request({ ':path': '/admin#x', ':authority': 'orders' });
    s.on('response', (h) => resolve(Number(h[':status'])));
    s.on('error', reject);
    s.resume();
    s.end();
  });
  assert.equal(status, 400);

  assert.equal(app.hits, hitsBefore, 'no request with a fragment reached the app');
  assert.equal(await metric(sc.adminPort, 'envoy_http_downstream_rq_failed_path_normalization'), 4);
});
