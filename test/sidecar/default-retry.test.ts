// Every outbound route retries a request that never reached an app, with no
// `retries` in its rule: a stream the upstream refused (an HTTP/2 server's
// GOAWAY or REFUSED_STREAM, as a gRPC server's max_connection_age does) and a
// connection that could not be made, up to twice, on another host where there
// is one. `retries: {attempts: 0}` turns it off. Without it a gRPC server
// closing its connections failed about 1% of calls through a sidecar, where
// called directly none failed (grpc-js retries those itself).

import assert from 'node:assert/strict';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { after, test } from 'node:test';
import { TestMesh, freePort, get, instance, load, metric, route, service, startApp } from './harness.ts';

const closers: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of closers.reverse()) await c();
});

/** An h2c app that refuses its first `refuse` streams (RST_STREAM REFUSED_STREAM) and answers the rest. */
async function refusingH2(refuse: number): Promise<{ port: number; streams: () => number }> {
  let streams = 0;
  const server = http2.createServer();
  server.on('stream', (stream) => {
    streams++;
    stream.on('error', () => undefined); // closing it with an error code emits that code here too
    if (streams <= refuse) return stream.close(http2.constants.NGHTTP2_REFUSED_STREAM);
    stream.respond({ ':status': 200 });
    stream.end('ok');
  });
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on('session', (s) => { sessions.add(s); s.on('close', () => sessions.delete(s)); });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  closers.push(() => new Promise((r) => { server.close(() => r()); for (const s of sessions) s.destroy(); }));
  return { port: (server.address() as AddressInfo).port, streams: () => streams };
}

test('a stream the upstream refuses is retried by default, and not with retries.attempts 0', { timeout: 30_000 }, async () => {
  const app = await refusingH2(1);
  const mesh = await TestMesh.start();
  closers.push(() => mesh.close());
  mesh.model.update({
    services: [service('caller', 8000), { name: 'refuser', namespace: 'default', ports: [{ port: 7400, protocol: 'http2' }] }],
    instances: [instance('refuser', app.port)],
    routes: [],
  });
  const caller = await mesh.sidecar('caller', 8000);
  const cluster = { envoy_cluster_name: 'outbound|7400||refuser.default' };
  const first = await get(caller.outboundPort, 'refuser');
  assert.equal(first.status, 200, first.body);
  assert.equal(app.streams(), 2, 'refused once, answered on the retry');
  assert.equal(await metric(caller.adminPort, 'envoy_cluster_upstream_rq_retry', cluster), 1);

  const off = await refusingH2(1);
  mesh.model.update({
    services: [service('caller', 8000), { name: 'refuser', namespace: 'default', ports: [{ port: 7400, protocol: 'http2' }] }],
    instances: [instance('refuser', off.port)],
    routes: [route('refuser', [{ destinations: [{ service: 'refuser', port: 7400, weight: 1 }], retries: { attempts: 0, retryOn: ['refused-stream'] } }])],
  });
  // The update is applied once a request reaches the new instance.
  let refused: Awaited<ReturnType<typeof get>> | undefined;
  for (let i = 0; i < 100 && off.streams() === 0; i++) {
    const r = await get(caller.outboundPort, 'refuser');
    if (off.streams() > 0) refused = r;
    else await new Promise((res) => setTimeout(res, 50));
  }
  assert.ok(refused, 'the new instance was reached');
  assert.equal(refused.status, 503);
  assert.match(refused.body, /refused stream/);
  assert.equal(off.streams(), 1, 'no retry');
});

test('a host whose connection fails is retried on another by default: no request fails while it is still in the load balancer', { timeout: 30_000 }, async () => {
  const app = await startApp('live');
  closers.push(() => app.close());
  const dead = await freePort();
  const mesh = await TestMesh.start();
  closers.push(() => mesh.close());
  mesh.model.update({
    services: [service('caller2', 8000), service('pair', 7401)],
    instances: [instance('pair', app.port), instance('pair', dead)],
    routes: [],
  });
  const caller = await mesh.sidecar('caller2', 8000);
  const responses = await load(20, 1, () => get(caller.outboundPort, 'pair'));
  assert.deepEqual(responses.map((r) => r.status), Array(20).fill(200));
  assert.ok(await metric(caller.adminPort, 'envoy_cluster_upstream_rq_retry', { envoy_cluster_name: 'outbound|7401||pair.default' }) >= 1, 'the dead host was tried and the request retried');
});
