// The HTTP/2 upstream pool grows as Envoy's does: a connection carries up to
// min(http2_protocol_options.max_concurrent_streams, the peer's
// SETTINGS_MAX_CONCURRENT_STREAMS) streams at once; past that another
// connection opens while the circuit breaker's max_connections allows, and a
// request that finds no room waits among max_pending_requests (past those it
// overflows: 503 x-envoy-overloaded).

import assert from 'node:assert/strict';
import http from 'node:http';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { after, test } from 'node:test';
import { TestMesh, get, instance, metric, policy, route, service, slowH2, withFields } from './harness.ts';
import { Http2Pool } from '../../sidecar/h2-client.ts';
import type { UpstreamRequest } from '../../sidecar/upstream.ts';

const closers: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of closers.reverse()) await c();
});

const HTTP_PROTOCOL_OPTIONS = 'envoy.extensions.upstreams.http.v3.HttpProtocolOptions';

/** The cluster's explicit HTTP/2 options with max_concurrent_streams set (for the h2 clusters). */
const concurrentStreams = (n: number) => (c: Record<string, any>): Record<string, unknown> => {
  const tepo = c.typed_extension_protocol_options ?? {};
  const options = tepo[HTTP_PROTOCOL_OPTIONS];
  if (!options?.explicit_http_config?.http2_protocol_options) return c;
  return { ...c, typed_extension_protocol_options: { ...tepo, [HTTP_PROTOCOL_OPTIONS]: { ...options, explicit_http_config: { http2_protocol_options: { max_concurrent_streams: n } } } } };
};

test("the upstream's SETTINGS_MAX_CONCURRENT_STREAMS 1: four concurrent slow requests go out together over four connections, each with one stream at a time", { timeout: 30_000 }, async () => {
  const app = await slowH2(closers, 400, 1);
  const mesh = await TestMesh.start();
  closers.push(() => mesh.close());
  mesh.model.update({
    services: [service('caller', 8000), { name: 'single', namespace: 'default', ports: [{ port: 7300, protocol: 'http2' }] }],
    instances: [instance('single', app.port)],
    routes: [],
  });
  const caller = await mesh.sidecar('caller', 8000);
  // A first call: the connection is up and its SETTINGS known.
  assert.equal((await get(caller.outboundPort, 'single')).status, 200);
  const started = Date.now();
  const responses = await Promise.all(Array.from({ length: 4 }, () => get(caller.outboundPort, 'single')));
  const elapsed = Date.now() - started;
  assert.deepEqual(responses.map((r) => [r.status, r.body]), Array(4).fill([200, 'ok']));
  assert.equal(app.seen.mostAtOnce, 1, 'never more streams at once than the upstream allows');
  assert.equal(app.seen.sessions, 4, 'one connection per concurrent stream (the first one reused)');
  // Queued on one connection they took 4 x 400 ms; together about 400.
  assert.ok(elapsed < 1400, `served together, not one after another (${elapsed} ms)`);
  assert.equal(await metric(caller.adminPort, 'envoy_cluster_upstream_cx_active', { envoy_cluster_name: 'outbound|7300||single.default' }), 4);
});

test('http2_protocol_options.max_concurrent_streams 2: six concurrent requests over three connections of two streams each (it was ignored: one connection)', { timeout: 30_000 }, async () => {
  const app = await slowH2(closers, 300);
  const mesh = await TestMesh.start({ translator: withFields({}, {}, concurrentStreams(2)) });
  closers.push(() => mesh.close());
  mesh.model.update({
    services: [service('caller2', 8000), { name: 'paired', namespace: 'default', ports: [{ port: 7301, protocol: 'grpc' }] }],
    instances: [instance('paired', app.port)],
    routes: [],
  });
  const caller = await mesh.sidecar('caller2', 8000);
  assert.equal((await get(caller.outboundPort, 'paired')).status, 200);
  const responses = await Promise.all(Array.from({ length: 6 }, () => get(caller.outboundPort, 'paired')));
  assert.deepEqual(responses.map((r) => r.status), Array(6).fill(200));
  assert.equal(app.seen.mostAtOnce, 2);
  assert.equal(app.seen.sessions, 3);
});

test('circuit breaker with a growing pool: max_connections 2, max_pending_requests 1, an upstream of one stream per connection: two run, one waits, the fourth overflows (503 x-envoy-overloaded, counted)', { timeout: 30_000 }, async () => {
  const app = await slowH2(closers, 400, 1);
  const mesh = await TestMesh.start();
  closers.push(() => mesh.close());
  mesh.model.update({
    services: [service('caller3', 8000), { name: 'limited', namespace: 'default', ports: [{ port: 7302, protocol: 'http2' }] }],
    instances: [instance('limited', app.port)],
    destinationPolicies: [policy('limited', { circuitBreakers: { maxConnections: 2, maxPendingRequests: 1, maxRequests: 100 } })],
    routes: [],
  });
  const caller = await mesh.sidecar('caller3', 8000);
  assert.equal((await get(caller.outboundPort, 'limited')).status, 200);
  const responses = await Promise.all(Array.from({ length: 4 }, () => get(caller.outboundPort, 'limited')));
  const ok = responses.filter((r) => r.status === 200);
  const shed = responses.filter((r) => r.status === 503);
  assert.equal(ok.length, 3, 'two at once, then the pending one');
  assert.equal(shed.length, 1);
  assert.equal(shed[0]!.headers['x-envoy-overloaded'], 'true');
  assert.equal(app.seen.sessions, 2, 'no more connections than max_connections');
  assert.equal(app.seen.mostAtOnce, 1);
  const cluster = { envoy_cluster_name: 'outbound|7302||limited.default' };
  assert.equal(await metric(caller.adminPort, 'envoy_cluster_upstream_rq_pending_overflow', cluster), 1);
  assert.equal(await metric(caller.adminPort, 'envoy_cluster_upstream_rq_pending_active', cluster), 0);
  assert.ok((await metric(caller.adminPort, 'envoy_cluster_upstream_cx_overflow', cluster)) >= 1, 'the waiting request found max_connections reached');
});

test("an upstream's GOAWAY: the stream it names completes, the one above its last stream id is refused and retried (retry_on refused-stream) on a new connection, as Envoy's", { timeout: 30_000 }, async () => {
  let sessions = 0;
  const server = http2.createServer();
  server.on('session', (session) => {
    const first = sessions++ === 0;
    session.on('stream', (stream, headers) => {
      stream.on('error', () => undefined);
      // The first connection goes away when the second call arrives: its GOAWAY names only the first call's stream.
      if (first && headers[':path'] === '/second') return void session.goaway(http2.constants.NGHTTP2_NO_ERROR, stream.id! - 2);
      setTimeout(() => {
        if (stream.destroyed) return;
        stream.respond({ ':status': 200 });
        stream.end(`${headers[':path']} on connection ${first ? 1 : 2}`);
      }, headers[':path'] === '/first' ? 300 : 0);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  closers.push(() => new Promise((r) => server.close(() => r())));
  const mesh = await TestMesh.start();
  closers.push(() => mesh.close());
  mesh.model.update({
    services: [service('caller4', 8000), { name: 'leaving', namespace: 'default', ports: [{ port: 7303, protocol: 'http2' }] }],
    instances: [instance('leaving', (server.address() as AddressInfo).port)],
    routes: [{ name: 'leaving', namespace: 'default', service: 'leaving', rules: [{ name: 'r', destinations: [{ service: 'leaving', weight: 1 }], retries: { attempts: 1, retryOn: ['refused-stream'] } }] }],
  });
  const caller = await mesh.sidecar('caller4', 8000);
  const first = get(caller.outboundPort, 'leaving', '/first');
  await new Promise((r) => setTimeout(r, 100));
  const second = await get(caller.outboundPort, 'leaving', '/second');
  assert.deepEqual([(await first).status, (await first).body], [200, '/first on connection 1']);
  assert.deepEqual([second.status, second.body], [200, '/second on connection 2']);
  assert.equal(sessions, 2);
});

test('a pending request whose caller leaves gives its place among max_pending_requests back: the next one waits instead of overflowing', { timeout: 30_000 }, async () => {
  const app = await slowH2(closers, 400, 1);
  const mesh = await TestMesh.start();
  closers.push(() => mesh.close());
  mesh.model.update({
    services: [service('caller5', 8000), { name: 'narrow', namespace: 'default', ports: [{ port: 7304, protocol: 'http2' }] }],
    instances: [instance('narrow', app.port)],
    destinationPolicies: [policy('narrow', { circuitBreakers: { maxConnections: 1, maxPendingRequests: 1, maxRequests: 100 } })],
    routes: [],
  });
  const caller = await mesh.sidecar('caller5', 8000);
  assert.equal((await get(caller.outboundPort, 'narrow')).status, 200);
  const running = get(caller.outboundPort, 'narrow');
  await new Promise((r) => setTimeout(r, 50));
  // The pending one's caller gives up.
  const leaving = http.request({ host: '127.0.0.1', port: caller.outboundPort, path: '/', headers: { host: 'narrow' } });
  leaving.on('error', () => undefined);
  leaving.end();
  await new Promise((r) => setTimeout(r, 100));
  leaving.destroy();
  await new Promise((r) => setTimeout(r, 50));
  const next = get(caller.outboundPort, 'narrow');
  assert.equal((await running).status, 200);
  assert.equal((await next).status, 200, 'it waited in the place the first one left');
  const cluster = { envoy_cluster_name: 'outbound|7304||narrow.default' };
  assert.equal(await metric(caller.adminPort, 'envoy_cluster_upstream_rq_pending_overflow', cluster), 0);
  assert.equal(await metric(caller.adminPort, 'envoy_cluster_upstream_rq_pending_active', cluster), 0);
  assert.equal(app.seen.sessions, 1);
});

test('an upstream that advertises SETTINGS_MAX_CONCURRENT_STREAMS 0 gets one more connection per waiting request, not a storm of them up to max_connections', { timeout: 30_000 }, async () => {
  const app = await slowH2(closers, 0, 0);
  const mesh = await TestMesh.start({ translator: withFields({}, { timeout: '0.5s' }) });
  closers.push(() => mesh.close());
  mesh.model.update({
    services: [service('caller6', 8000), { name: 'closed', namespace: 'default', ports: [{ port: 7305, protocol: 'http2' }] }],
    instances: [instance('closed', app.port)],
    // No retry of the refused streams (every route has one by default): the connections counted are the requests'.
    routes: [route('closed', [{ destinations: [{ service: 'closed', weight: 1 }], retries: { attempts: 0, retryOn: ['refused-stream'] } }])],
  });
  const caller = await mesh.sidecar('caller6', 8000);
  // Sent before the upstream's SETTINGS were known: refused by it.
  assert.equal((await get(caller.outboundPort, 'closed')).status, 503);
  const second = await get(caller.outboundPort, 'closed');
  assert.ok([503, 504].includes(second.status), `${second.status} ${second.body}`);
  await new Promise((r) => setTimeout(r, 200));
  assert.ok(app.seen.sessions <= 3, `${app.seen.sessions} connections`);
});

test("HTTP/2: at most three connections per event, as Envoy's tryCreateNewConnections: an upstream of one stream per connection, a backlog of seven that finds room gets three connections at once, then more as each comes up, until every request has a stream", { timeout: 20_000 }, async () => {
  const held: http2.Http2ServerResponse[] = [];
  let sessions = 0;
  const server = http2.createServer({ settings: { maxConcurrentStreams: 1 } }, (_req, res) => void held.push(res));
  server.on('session', () => sessions++);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  closers.push(async () => {
    for (const r of held.splice(0)) r.end();
    await new Promise<void>((r) => server.close(() => r()));
  });
  const port = (server.address() as AddressInfo).port;
  // The cluster's connections as max_connections counts them.
  const open = { value: 0, changed: () => undefined };
  const pool = new Http2Pool({ address: '127.0.0.1', port, connections: 10, connectionsOpen: open, connectTimeoutMs: 1000, idleTimeoutMs: 60_000 });
  closers.push(() => pool.close());
  const req = (path: string): UpstreamRequest => ({ method: 'GET', path, authority: 'svc', headers: [], body: null });
  const calls = [pool.start(req('/0')).response];
  const deadline = Date.now() + 5000;
  while (held.length < 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  assert.equal(held.length, 1, 'the first request on the first connection (its SETTINGS of one stream known from then on)');
  open.value += 9; // other hosts' connections fill max_connections
  for (let i = 1; i < 7; i++) calls.push(pool.start(req(`/${i}`)).response);
  assert.equal(open.value, 10, 'the rest wait: max_connections reached');
  open.value -= 9; // those close: room for nine more
  calls.push(pool.start(req('/7')).response);
  assert.equal(open.value, 1 + 3, 'three connections made in the event that found room, not seven');
  while (held.length < 8 && Date.now() < deadline + 5000) await new Promise((r) => setTimeout(r, 5));
  assert.equal(held.length, 8, 'every request reached the server');
  assert.equal(sessions, 8, 'one connection each');
  for (const r of held.splice(0)) r.end('ok');
  assert.deepEqual((await Promise.all(calls)).map((r) => r.status), [200, 200, 200, 200, 200, 200, 200, 200]);
});
