// A cluster's max_requests_per_connection (HttpProtocolOptions'
// common_http_protocol_options, or the deprecated cluster-level field): an
// upstream connection carries that many requests (HTTP/2: streams), then
// closes, and the next request opens a new one. 1 turns keep-alive off.

import assert from 'node:assert/strict';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { after, test } from 'node:test';
import { TestMesh, get, instance, service, startApp, withFields } from './harness.ts';

const closers: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of closers.reverse()) await c();
});

const HTTP_PROTOCOL_OPTIONS = 'envoy.extensions.upstreams.http.v3.HttpProtocolOptions';

/** The cluster with these common_http_protocol_options set in its HttpProtocolOptions (made if absent). */
function commonOptions(set: Record<string, unknown>) {
  return (c: Record<string, any>): Record<string, unknown> => {
    const tepo = c.typed_extension_protocol_options ?? {};
    const existing = tepo[HTTP_PROTOCOL_OPTIONS] ?? { '@type': `type.googleapis.com/${HTTP_PROTOCOL_OPTIONS}`, explicit_http_config: { http_protocol_options: {} } };
    const options = { ...existing, common_http_protocol_options: { ...existing.common_http_protocol_options, ...set } };
    return { ...c, typed_extension_protocol_options: { ...tepo, [HTTP_PROTOCOL_OPTIONS]: options } };
  };
}

const maxRequests = (n: number) => commonOptions({ max_requests_per_connection: n });

test('HTTP/1.1 upstream: six requests in a row over connections of two requests each', { timeout: 30_000 }, async () => {
  const ports: number[] = [];
  const app = await startApp('origin', (req, res) => {
    ports.push(req.socket.remotePort!);
    res.end('ok');
  });
  closers.push(() => app.close());
  for (const [limit, connections] of [[2, 3], [1, 6], [0, 1]] as const) {
    ports.length = 0;
    const mesh = await TestMesh.start({ translator: withFields({}, {}, limit ? maxRequests(limit) : undefined) });
    closers.push(() => mesh.close());
    mesh.model.update({ services: [service('caller', 8000), service('origin', 7000)], instances: [instance('origin', app.port)], routes: [] });
    const caller = await mesh.sidecar('caller', 8000);
    for (let i = 0; i < 6; i++) assert.equal((await get(caller.outboundPort, 'origin')).status, 200);
    assert.equal(new Set(ports).size, connections, `limit ${limit}: connections seen by the app (${ports.join(', ')})`);
  }
});

test('HTTP/2 upstream: four requests in a row over two sessions of two streams each', { timeout: 30_000 }, async () => {
  let sessions = 0;
  const server = http2.createServer();
  server.on('session', () => sessions++);
  server.on('stream', (stream) => {
    stream.on('error', () => undefined);
    stream.respond({ ':status': 200 });
    stream.end('ok');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  closers.push(() => new Promise((r) => server.close(() => r())));
  const mesh = await TestMesh.start({ translator: withFields({}, {}, maxRequests(2)) });
  closers.push(() => mesh.close());
  mesh.model.update({
    services: [service('caller', 8000), { name: 'h2origin', namespace: 'default', ports: [{ port: 7100, protocol: 'http2' }] }],
    instances: [instance('h2origin', (server.address() as AddressInfo).port)],
    routes: [],
  });
  const caller = await mesh.sidecar('caller', 8000);
  for (let i = 0; i < 4; i++) {
    const r = await get(caller.outboundPort, 'h2origin');
    assert.equal(r.status, 200);
    assert.equal(r.body, 'ok');
  }
  assert.equal(sessions, 2);
});

test('HTTP/2 upstream: a burst of calls to a cold host shares one connection (each used to open its own); with max_requests_per_connection the burst is split by it', { timeout: 30_000 }, async () => {
  let sessions = 0;
  const streamsPerSession: number[] = [];
  const server = http2.createServer();
  server.on('session', (session) => {
    const i = sessions++;
    streamsPerSession[i] = 0;
    session.on('stream', () => streamsPerSession[i]!++);
  });
  server.on('stream', (stream) => {
    stream.on('error', () => undefined);
    stream.respond({ ':status': 200 });
    stream.end('ok');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  closers.push(() => new Promise((r) => server.close(() => r())));
  const burst = async (mesh: TestMesh, svc: string, port: number) => {
    mesh.model.update({
      services: [service(svc, 8000), { name: 'fanout', namespace: 'default', ports: [{ port, protocol: 'grpc' }] }],
      instances: [instance('fanout', (server.address() as AddressInfo).port)],
      routes: [],
    });
    const caller = await mesh.sidecar(svc, 8000);
    // Twenty calls in one burst on one client connection: they reach the sidecar before any upstream connection is up.
    const client = http2.connect(`http://127.0.0.1:${caller.outboundPort}`);
    await new Promise((r) => client.once('connect', r));
    const call = () =>
      new Promise<number>((resolve, reject) => {
        const req = client.request({ ':method': 'POST', ':path': '/fan.Out/Call', ':authority': `fanout:${port}`, 'content-type': 'application/grpc' });
        req.on('response', (h) => resolve(Number(h[':status'])));
        req.on('error', reject);
        req.resume();
        req.end();
      });
    const statuses = await Promise.all(Array.from({ length: 20 }, call));
    client.destroy();
    assert.deepEqual(new Set(statuses), new Set([200]));
  };
  const plain = await TestMesh.start();
  closers.push(() => plain.close());
  await burst(plain, 'burst-caller', 7101);
  assert.deepEqual(streamsPerSession, [20], 'one connection for the whole burst');
  sessions = 0;
  streamsPerSession.length = 0;
  const capped = await TestMesh.start({ translator: withFields({}, {}, maxRequests(8)) });
  closers.push(() => capped.close());
  await burst(capped, 'capped-caller', 7102);
  assert.deepEqual(streamsPerSession, [8, 8, 4], 'connections of eight streams each');
});

test("HTTP/2 upstream: a long, quiet stream keeps its connection past the idle timeout, which counts only time with no stream open (Envoy's idle_timeout)", { timeout: 30_000 }, async () => {
  let sessions = 0;
  const server = http2.createServer();
  server.on('session', () => sessions++);
  server.on('stream', (stream, headers) => {
    stream.on('error', () => undefined);
    stream.respond({ ':status': 200 });
    // A watch: nothing for 1.2 s (four idle timeouts), then its answer.
    if (headers[':path'] === '/watch') setTimeout(() => stream.end('changed'), 1200);
    else stream.end('ok');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  closers.push(() => new Promise((r) => server.close(() => r())));
  const mesh = await TestMesh.start({ translator: withFields({}, {}, commonOptions({ idle_timeout: '0.3s' })) });
  closers.push(() => mesh.close());
  mesh.model.update({
    services: [service('caller', 8000), { name: 'watched', namespace: 'default', ports: [{ port: 7200, protocol: 'http2' }] }],
    instances: [instance('watched', (server.address() as AddressInfo).port)],
    routes: [],
  });
  const caller = await mesh.sidecar('caller', 8000);
  const watch = await get(caller.outboundPort, 'watched', '/watch');
  assert.equal(watch.body, 'changed');
  assert.equal((await get(caller.outboundPort, 'watched', '/quick')).body, 'ok');
  assert.equal(sessions, 1, 'the call after the watch went over the same connection');
  // And with no stream open, the idle timeout does close it: the next call opens a new one.
  await new Promise((r) => setTimeout(r, 900));
  assert.equal((await get(caller.outboundPort, 'watched', '/quick')).body, 'ok');
  assert.equal(sessions, 2);
});
