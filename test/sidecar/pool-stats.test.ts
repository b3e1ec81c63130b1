// The connection pool counters an operator reads, counted where Envoy's pools
// count them: upstream_rq_pending_total for every request that waited for a
// connection (a cold host's first request too), upstream_cx_connect_fail per
// connection (not per request it failed), upstream_cx_destroy with _local
// and _remote, upstream_cx_idle_timeout, upstream_cx_http1_total/_http2_total,
// and how a request that did not finish ended (upstream_rq_rx_reset, _tx_reset,
// _pending_failure_eject).

import assert from 'node:assert/strict';
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { after, test } from 'node:test';
import { TestMesh, eventually, get, instance, load, metric, policy, route, service, startApp } from './harness.ts';

const closers: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of closers.reverse()) await c();
});

/** A loopback port nothing listens on. */
async function refusedPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

test('upstream_rq_pending_total: a cold host\'s first request waits for its connection, two more wait behind max_connections 1: three pending, all served', { timeout: 30_000 }, async () => {
  const app = await startApp('ps-slow', (_req, res) => setTimeout(() => res.end('ok'), 300));
  closers.push(() => app.close());
  const mesh = await TestMesh.start();
  closers.push(() => mesh.close());
  mesh.model.update({
    services: [service('ps-caller', 8000), service('ps-slow', 7430)],
    instances: [instance('ps-slow', app.port)],
    destinationPolicies: [policy('ps-slow', { circuitBreakers: { maxConnections: 1 } })],
    routes: [],
  });
  const caller = await mesh.sidecar('ps-caller', 8000);
  const cluster = { envoy_cluster_name: 'outbound|7430||ps-slow.default' };
  assert.equal(await metric(caller.adminPort, 'envoy_cluster_upstream_rq_pending_total', cluster), 0, 'there at 0 with the cluster');
  const first = get(caller.outboundPort, 'ps-slow');
  await eventually(() => app.hits === 1, 5000, 'the first request at the app');
  const more = [get(caller.outboundPort, 'ps-slow'), get(caller.outboundPort, 'ps-slow')];
  const statuses = (await Promise.all([first, ...more])).map((r) => r.status);
  assert.deepEqual(statuses, [200, 200, 200]);
  assert.equal(await metric(caller.adminPort, 'envoy_cluster_upstream_rq_pending_total', cluster), 3);
  assert.equal(await metric(caller.adminPort, 'envoy_cluster_upstream_rq_pending_active', cluster), 0);
  assert.equal(await metric(caller.adminPort, 'envoy_cluster_upstream_cx_http1_total', cluster), 1);
});

test('upstream_cx_connect_fail counts connections: calls waiting for an HTTP/2 connection that is refused count one failure per connection, not one per call, each a remote destroy', { timeout: 30_000 }, async () => {
  const port = await refusedPort();
  const mesh = await TestMesh.start();
  closers.push(() => mesh.close());
  mesh.model.update({
    services: [service('ps-caller2', 8000), { name: 'ps-gone', namespace: 'default', ports: [{ port: 7431, protocol: 'http2' }] }],
    instances: [instance('ps-gone', port)],
    // No retry of the failed connections (every route has one by default): the connections counted are the calls'.
    routes: [route('ps-gone', [{ destinations: [{ service: 'ps-gone', weight: 1 }], retries: { attempts: 0, retryOn: ['connect-failure'] } }])],
  });
  const caller = await mesh.sidecar('ps-caller2', 8000);
  const responses = await Promise.all(Array.from({ length: 6 }, () => get(caller.outboundPort, 'ps-gone')));
  assert.deepEqual(responses.map((r) => r.status), Array(6).fill(503));
  const cluster = { envoy_cluster_name: 'outbound|7431||ps-gone.default' };
  const connections = await metric(caller.adminPort, 'envoy_cluster_upstream_cx_total', cluster);
  assert.ok(connections >= 1 && connections < 6, `calls arriving together share a connection (${connections})`);
  assert.equal(await metric(caller.adminPort, 'envoy_cluster_upstream_cx_http2_total', cluster), connections);
  assert.equal(await metric(caller.adminPort, 'envoy_cluster_upstream_cx_connect_fail', cluster), connections, 'one failure per connection (it counted one per call)');
  assert.equal(await metric(caller.adminPort, 'envoy_cluster_upstream_cx_destroy', cluster), connections);
  assert.equal(await metric(caller.adminPort, 'envoy_cluster_upstream_cx_destroy_remote', cluster), connections);
  assert.equal(await metric(caller.adminPort, 'envoy_cluster_upstream_rq_pending_total', cluster), 6, 'each waited for a connection');
  assert.equal(await metric(caller.adminPort, 'envoy_cluster_upstream_rq_pending_failure_eject', cluster), 6, 'each failed by the connection it waited for');
  const clusters = await get(caller.adminPort, 'admin', '/clusters');
  assert.match(clusters.body, new RegExp(`outbound\\|7431\\|\\|ps-gone\\.default::127\\.0\\.0\\.1:\\d+::cx_connect_fail::${connections}\n`), "the host's own count, per connection too");
});

test('upstream_cx_destroy_local with upstream_cx_idle_timeout when the idle timeout closes a connection; _remote when the upstream closes one', { timeout: 30_000 }, async () => {
  const app = await startApp('ps-idle', (req, res) => {
    res.end('ok');
    // The upstream closes the connection of a request that asks it to, a moment after answering.
    if (req.url === '/close') setTimeout(() => req.socket.destroy(), 100);
  });
  closers.push(() => app.close());
  const mesh = await TestMesh.start();
  closers.push(() => mesh.close());
  mesh.model.update({
    services: [service('ps-caller3', 8000), service('ps-idle', 7432)],
    instances: [instance('ps-idle', app.port)],
    destinationPolicies: [policy('ps-idle', { idleTimeoutMs: 300 })],
    routes: [],
  });
  const caller = await mesh.sidecar('ps-caller3', 8000);
  const cluster = { envoy_cluster_name: 'outbound|7432||ps-idle.default' };
  assert.equal((await get(caller.outboundPort, 'ps-idle', '/close')).status, 200);
  await eventually(async () => (await metric(caller.adminPort, 'envoy_cluster_upstream_cx_destroy_remote', cluster)) === 1, 5000, 'a remote destroy');
  assert.equal(await metric(caller.adminPort, 'envoy_cluster_upstream_cx_destroy_local', cluster), 0);
  assert.equal((await get(caller.outboundPort, 'ps-idle', '/stay')).status, 200);
  await eventually(async () => (await metric(caller.adminPort, 'envoy_cluster_upstream_cx_idle_timeout', cluster)) === 1, 5000, 'the idle timeout');
  assert.equal(await metric(caller.adminPort, 'envoy_cluster_upstream_cx_destroy_local', cluster), 1);
  assert.equal(await metric(caller.adminPort, 'envoy_cluster_upstream_cx_destroy', cluster), 2);
  assert.equal(await metric(caller.adminPort, 'envoy_cluster_upstream_cx_active', cluster), 0);
});

test('circuit_breakers.default.cx_open, rq_pending_open, rq_open: 1 while that limit is reached (cx_open while the connections, idle ones too, fill max_connections), 0 once it is not', { timeout: 30_000 }, async () => {
  const app = await startApp('ps-cb', (_req, res) => setTimeout(() => res.end('ok'), 400));
  closers.push(() => app.close());
  const mesh = await TestMesh.start();
  closers.push(() => mesh.close());
  mesh.model.update({
    services: [service('ps-caller4', 8000), service('ps-cb', 7433)],
    instances: [instance('ps-cb', app.port)],
    destinationPolicies: [policy('ps-cb', { circuitBreakers: { maxConnections: 1, maxPendingRequests: 1, maxRequests: 5 } })],
    routes: [],
  });
  const caller = await mesh.sidecar('ps-caller4', 8000);
  const cluster = { envoy_cluster_name: 'outbound|7433||ps-cb.default' };
  const open = async () =>
    Promise.all(['cx_open', 'rq_pending_open', 'rq_open', 'rq_retry_open'].map((g) => metric(caller.adminPort, `envoy_cluster_circuit_breakers_default_${g}`, cluster)));
  assert.deepEqual(await open(), [0, 0, 0, 0], 'there at 0 with the cluster');
  assert.equal((await get(caller.outboundPort, 'ps-cb')).status, 200);
  const first = get(caller.outboundPort, 'ps-cb');
  await eventually(() => app.hits === 2, 5000, 'the first at the app');
  const second = get(caller.outboundPort, 'ps-cb');
  await eventually(async () => (await metric(caller.adminPort, 'envoy_cluster_upstream_rq_pending_active', cluster)) === 1, 5000, 'the second pending');
  assert.deepEqual(await open(), [1, 1, 0, 0], 'the one connection busy, the one pending place taken');
  assert.deepEqual([(await first).status, (await second).status], [200, 200]);
  // As Envoy's resource manager: max_connections counts connections, so the idle keep-alive one still fills it.
  assert.deepEqual(await open(), [1, 0, 0, 0], 'the idle connection still holds the one connection place; nothing pending');
  const text = await get(caller.adminPort, 'admin', '/stats?filter=circuit_breakers');
  assert.match(text.body, /^cluster\.outbound\|7433\|\|ps-cb\.default\.circuit_breakers\.default\.rq_pending_open: 0$/m, "Envoy's stat name");
});

test('upstream_rq_cancelled: a request whose client leaves while it waits for a connection (HTTP/1.1 behind max_connections, HTTP/2 in its pool)', { timeout: 30_000 }, async () => {
  const h1 = await startApp('ps-cancel1', (_req, res) => setTimeout(() => res.end('ok'), 500));
  closers.push(() => h1.close());
  const h2server = http2.createServer({ settings: { maxConcurrentStreams: 1 } });
  h2server.on('stream', (stream) => {
    stream.on('error', () => undefined);
    setTimeout(() => {
      if (stream.destroyed) return;
      stream.respond({ ':status': 200 });
      stream.end('ok');
    }, 500);
  });
  await new Promise<void>((r) => h2server.listen(0, '127.0.0.1', () => r()));
  closers.push(() => new Promise((r) => h2server.close(() => r())));
  const mesh = await TestMesh.start();
  closers.push(() => mesh.close());
  mesh.model.update({
    services: [service('ps-caller5', 8000), service('ps-cancel1', 7434), { name: 'ps-cancel2', namespace: 'default', ports: [{ port: 7435, protocol: 'http2' }] }],
    instances: [instance('ps-cancel1', h1.port), instance('ps-cancel2', (h2server.address() as AddressInfo).port)],
    destinationPolicies: [policy('ps-cancel1', { circuitBreakers: { maxConnections: 1 } }), policy('ps-cancel2', { circuitBreakers: { maxConnections: 1 } })],
    routes: [],
  });
  const caller = await mesh.sidecar('ps-caller5', 8000);
  for (const [svc, port] of [['ps-cancel1', 7434], ['ps-cancel2', 7435]] as const) {
    assert.equal((await get(caller.outboundPort, svc)).status, 200);
    const cluster = { envoy_cluster_name: `outbound|${port}||${svc}.default` };
    const running = get(caller.outboundPort, svc);
    await new Promise((r) => setTimeout(r, 100));
    const leaving = http.request({ host: '127.0.0.1', port: caller.outboundPort, path: '/', headers: { host: svc } });
    leaving.on('error', () => undefined);
    leaving.end();
    await eventually(async () => (await metric(caller.adminPort, 'envoy_cluster_upstream_rq_pending_active', cluster)) === 1, 5000, `${svc}: the second pending`);
    leaving.destroy();
    await eventually(async () => (await metric(caller.adminPort, 'envoy_cluster_upstream_rq_cancelled', cluster)) === 1, 5000, `${svc}: the pending one cancelled`);
    assert.equal((await running).status, 200);
    assert.equal(await metric(caller.adminPort, 'envoy_cluster_upstream_rq_pending_active', cluster), 0);
  }
});

/** The sum of a cluster's upstream_rq_<code> counters, from /stats/prometheus. */
async function byCodeTotal(adminPort: number, clusterName: string): Promise<number> {
  const text = (await get(adminPort, 'admin', '/stats/prometheus')).body;
  let sum = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith(`envoy_cluster_upstream_rq{envoy_cluster_name="${clusterName}",`)) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

test('how an upstream request that did not finish ended, as Envoy\'s HTTP/2 pool counts it: the upstream\'s RST_STREAM (upstream_rq_rx_reset, not for REFUSED_STREAM), the sidecar\'s reset at the route timeout (_tx_reset), the connection closed under the stream (_pending_failure_eject); HTTP/1.1 counts none of them; upstream_rq_completed with every response counted by code', { timeout: 30_000 }, async () => {
  const h2server = http2.createServer();
  const sockets = new Set<net.Socket>();
  h2server.on('connection', (socket: net.Socket) => sockets.add(socket));
  h2server.on('stream', (stream, headers) => {
    stream.on('error', () => undefined);
    const path = headers[':path'];
    if (path === '/rst') return void stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
    if (path === '/refuse') return void stream.close(http2.constants.NGHTTP2_REFUSED_STREAM);
    // The connection vanishes under the stream (no GOAWAY, no RST_STREAM).
    if (path === '/kill') return void sockets.forEach((socket) => socket.destroy());
    if (path === '/slow') return;
    stream.respond({ ':status': 200 });
    stream.end('ok');
  });
  await new Promise<void>((r) => h2server.listen(0, '127.0.0.1', () => r()));
  closers.push(() => new Promise((r) => h2server.close(() => r())));
  const h1 = await startApp('ps-resets1', (req, res) => {
    if (req.url === '/kill') return void req.socket.destroy();
    if (req.url === '/slow') return;
    res.end('ok');
  });
  closers.push(() => h1.close());
  const mesh = await TestMesh.start();
  closers.push(() => mesh.close());
  const rules = (svc: string) => [
    { name: 'slow', match: [{ path: { prefix: '/slow' } }], destinations: [{ service: svc, weight: 1 }], timeoutMs: 300 },
    { name: 'rest', destinations: [{ service: svc, weight: 1 }] },
  ];
  mesh.model.update({
    services: [service('ps-caller6', 8000), service('ps-resets1', 7436), { name: 'ps-resets2', namespace: 'default', ports: [{ port: 7437, protocol: 'http2' }] }],
    instances: [instance('ps-resets1', h1.port), instance('ps-resets2', (h2server.address() as AddressInfo).port)],
    routes: [route('ps-resets1', rules('ps-resets1')), route('ps-resets2', rules('ps-resets2'))],
  });
  const caller = await mesh.sidecar('ps-caller6', 8000);
  const counts = (cluster: Record<string, string>) =>
    Promise.all(['rx_reset', 'tx_reset', 'pending_failure_eject'].map((c) => metric(caller.adminPort, `envoy_cluster_upstream_rq_${c}`, cluster)));
  const h2cluster = { envoy_cluster_name: 'outbound|7437||ps-resets2.default' };
  const h1cluster = { envoy_cluster_name: 'outbound|7436||ps-resets1.default' };
  await eventually(async () => (await get(caller.outboundPort, 'ps-resets2', '/ok')).status === 200, 5000, 'the routes in place');
  assert.deepEqual(await counts(h2cluster), [0, 0, 0], 'there at 0 with the cluster');

  const statuses = [];
  for (const path of ['/rst', '/refuse', '/slow', '/kill', '/ok']) statuses.push((await get(caller.outboundPort, 'ps-resets2', path)).status);
  assert.deepEqual(statuses, [503, 503, 504, 503, 200]);
  assert.deepEqual(await counts(h2cluster), [1, 1, 1], 'one of each: /rst received, /slow reset here, /kill cut by its connection (/refuse none)');

  for (const path of ['/kill', '/slow', '/ok']) await get(caller.outboundPort, 'ps-resets1', path);
  assert.deepEqual(await counts(h1cluster), [0, 0, 0], "HTTP/1.1: Envoy's HTTP/1 client counts no stream resets");

  for (const [name, cluster] of [['ps-resets2', h2cluster], ['ps-resets1', h1cluster]] as const) {
    const completed = await metric(caller.adminPort, 'envoy_cluster_upstream_rq_completed', cluster);
    assert.ok(completed >= 2, `${name}: responses counted (${completed})`);
    assert.equal(completed, await byCodeTotal(caller.adminPort, cluster.envoy_cluster_name), `${name}: upstream_rq_completed is the sum of upstream_rq_<code>`);
  }
});

test('two endpoints at one address (two instances behind one port) stay two hosts across EDS updates, and no pool is left behind: upstream_cx_active stays within one connection per concurrent request per host', { timeout: 60_000 }, async () => {
  const app = await startApp('ps-dup', (_req, res) => setTimeout(() => res.end('ok'), 5));
  closers.push(() => app.close());
  const other = await startApp('ps-dup-other');
  closers.push(() => other.close());
  const mesh = await TestMesh.start();
  closers.push(() => mesh.close());
  const base = { services: [service('ps-caller7', 8000), service('ps-dup', 7438)], routes: [] };
  const two = [instance('ps-dup', app.port, { version: 'v1' }), instance('ps-dup', app.port, { version: 'v2' })];
  mesh.model.update({ ...base, instances: two });
  const caller = await mesh.sidecar('ps-caller7', 8000);
  const cluster = { envoy_cluster_name: 'outbound|7438||ps-dup.default' };
  const concurrency = 8;
  for (let round = 0; round < 12; round++) {
    // A third instance comes and goes: an EDS update each round that keeps the two at one address.
    mesh.model.update({ ...base, instances: round % 2 ? two : [...two, instance('ps-dup', other.port)] });
    await eventually(async () => (await get(caller.adminPort, 'admin', '/clusters')).body.includes(`ps-dup.default::127.0.0.1:${other.port}::`) === (round % 2 === 0), 5000, `round ${round}'s hosts`);
    const statuses = await load(100, concurrency, () => get(caller.outboundPort, 'ps-dup', '/'));
    assert.ok(statuses.every((r) => r.status === 200));
  }
  const hosts = (await get(caller.adminPort, 'admin', '/clusters')).body.match(new RegExp(`^outbound\\|7438\\|\\|ps-dup\\.default::127\\.0\\.0\\.1:${app.port}::weight::`, 'gm'));
  assert.equal(hosts?.length, 2, 'two hosts at the one address');
  const open = await metric(caller.adminPort, 'envoy_cluster_upstream_cx_active', cluster);
  // Each update made the second host anew and left the old one's pool open: ~3 more connections a round.
  assert.ok(open <= 3 * concurrency, `${open} connections open after 12 updates (at most ${3 * concurrency})`);
});
