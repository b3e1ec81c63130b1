// Draining and the gauges an Envoy operator watches while doing it: POST
// /drain_listeners (?graceful, ?inboundonly) on the admin port, the DRAINING
// state /ready then reports, and http.<prefix>.downstream_cx_total,
// downstream_cx_active and downstream_rq_active. With those gauges, clients
// that leave at each stage of a request (queued behind the circuit breaker,
// in a fault delay, waiting for the upstream, in a retry's backoff, while the
// response streams): each must end its stream as Envoy's DC, cancel what it
// started upstream, and count as neither a timeout nor a 5xx.

import assert from 'node:assert/strict';
import type http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import { after, before, test } from 'node:test';
import type { ListenerConfig } from '../../sidecar/config.ts';
import { ListenerManager } from '../../sidecar/listeners.ts';
import { SidecarStats } from '../../sidecar/stats.ts';
import type { ProxyEnv } from '../../sidecar/proxy.ts';
import { admin, connect, eventually, exchange, freePort, get, instance, metric, policy, route, service, spawnWeft, startApp, startEndlessApp, TestMesh, type RawResponse, withFields } from './harness.ts';

let mesh: TestMesh;
before(async () => {
  mesh = await TestMesh.start();
});
after(async () => {
  await mesh.close();
});

/** A request on a connection that is being drained: answered 200 with `connection: close`, and the connection then closed. */
async function servedThenClosed(socket: net.Socket, host: string, path = '/'): Promise<RawResponse> {
  const r = await exchange(socket, host, path);
  assert.equal(r.status, 200);
  assert.match(r.head, /\r\nconnection: close/);
  await closed(socket);
  return r;
}

function closed(socket: net.Socket): Promise<void> {
  return new Promise((r) => (socket.destroyed ? r() : socket.once('close', () => r())));
}

function refused(port: number): Promise<boolean> {
  return connect(port).then(
    (s) => {
      s.destroy();
      return false;
    },
    (e: NodeJS.ErrnoException) => e.code === 'ECONNREFUSED',
  );
}

test('downstream_cx_total, downstream_cx_active and downstream_rq_active follow connections and requests in flight, a client that leaves mid-request included', { timeout: 60_000 }, async () => {
  const held: http.ServerResponse[] = [];
  const app = await startApp('gauges', (_req, res) => void held.push(res));
  mesh.track(() => app.close());
  const inbound = await freePort();
  mesh.model.update({ services: [service('gauges', 9000), service('caller', 8000)], instances: [instance('gauges', inbound)] });
  const server = await mesh.sidecar('gauges', app.port, { inboundPort: inbound });
  const client = await mesh.sidecar('caller', 8000);
  const out = { envoy_http_conn_manager_prefix: 'outbound' };
  const inb = { envoy_http_conn_manager_prefix: 'inbound' };

  const sockets = await Promise.all([0, 1, 2].map(() => connect(client.outboundPort)));
  const answers = sockets.map((s) => exchange(s, 'gauges'));
  await eventually(() => held.length === 3, 10_000, 'three requests held by the app');
  assert.equal(await metric(client.adminPort, 'envoy_http_downstream_rq_active', out), 3);
  assert.equal(await metric(server.adminPort, 'envoy_http_downstream_rq_active', inb), 3);
  assert.equal(await metric(client.adminPort, 'envoy_http_downstream_cx_active', out), 3);
  assert.equal(await metric(client.adminPort, 'envoy_http_downstream_cx_total', out), 3);

  // A client gone mid-request: its stream ends (DC) on the client's sidecar, and the reset reaches the server's.
  sockets[0]!.destroy();
  answers[0]!.catch(() => undefined);
  await eventually(async () => (await metric(client.adminPort, 'envoy_http_downstream_rq_active', out)) === 2, 10_000, 'the abandoned request no longer active on the client sidecar');
  await eventually(async () => (await metric(client.adminPort, 'envoy_http_downstream_cx_active', out)) === 2, 10_000, 'its connection no longer active');
  await eventually(async () => (await metric(server.adminPort, 'envoy_http_downstream_rq_active', inb)) === 2, 10_000, 'the abandoned request no longer active on the server sidecar');
  // Envoy's DC: no response code, and neither a 5xx nor an upstream timeout on either sidecar.
  for (const [port, prefix] of [[client.adminPort, out], [server.adminPort, inb]] as const) {
    assert.equal(await metric(port, 'envoy_http_downstream_rq_xx', { ...prefix, envoy_response_code_class: '5' }), 0);
    assert.equal(await metric(port, 'envoy_cluster_upstream_rq_timeout'), 0);
  }

  for (const res of held) if (!res.destroyed) res.end('done');
  for (const a of answers.slice(1)) assert.equal((await a).status, 200);
  await eventually(async () => (await metric(client.adminPort, 'envoy_http_downstream_rq_active', out)) === 0, 10_000, 'no request active on the client sidecar');
  await eventually(async () => (await metric(server.adminPort, 'envoy_http_downstream_rq_active', inb)) === 0, 10_000, 'no request active on the server sidecar');
  // Kept alive: the two connections stay open until their clients close them.
  assert.equal(await metric(client.adminPort, 'envoy_http_downstream_cx_active', out), 2);
  for (const s of sockets) s.destroy();
  await eventually(async () => (await metric(client.adminPort, 'envoy_http_downstream_cx_active', out)) === 0, 10_000, 'no connection active');
  assert.equal(await metric(client.adminPort, 'envoy_http_downstream_cx_total', out), 3);
});

test('downstream_rq_active comes back to 0 when an HTTP/2 client resets its stream mid-request, and the upstream request is cancelled', { timeout: 60_000 }, async () => {
  const held: http.ServerResponse[] = [];
  let cancelled = 0;
  const app = await startApp('h2gauge', (_req, res) => {
    held.push(res);
    res.once('close', () => res.writableEnded || cancelled++);
  });
  mesh.track(() => app.close());
  const inbound = await freePort();
  mesh.model.update({ services: [service('h2gauge', 9000), service('h2gaugecaller', 8000)], instances: [instance('h2gauge', inbound)] });
  await mesh.sidecar('h2gauge', app.port, { inboundPort: inbound });
  const sc = await mesh.sidecar('h2gaugecaller', 8000);
  const out = { envoy_http_conn_manager_prefix: 'outbound' };
  const session = http2.connect(`http://127.0.0.1:${sc.outboundPort}`);
  mesh.track(async () => void session.destroy());
  const streams = [0, 1].map(() => session.request({ ':path': '/', ':authority': 'h2gauge' }));
  for (const st of streams) st.on('error', () => undefined);
  await eventually(() => held.length === 2, 10_000, 'two streams held by the app');
  assert.equal(await metric(sc.adminPort, 'envoy_http_downstream_rq_active', out), 2);
  streams[0]!.close(http2.constants.NGHTTP2_CANCEL);
  await eventually(async () => (await metric(sc.adminPort, 'envoy_http_downstream_rq_active', out)) === 1, 10_000, 'the reset stream no longer active');
  assert.equal(await metric(sc.adminPort, 'envoy_http_downstream_rq_xx', { ...out, envoy_response_code_class: '5' }), 0, 'a reset is not a 5xx');
  assert.equal(await metric(sc.adminPort, 'envoy_cluster_upstream_rq_timeout'), 0);
  await eventually(() => cancelled === 1, 10_000, 'the app to see the reset request cancelled through both sidecars');
  for (const res of held) if (!res.destroyed) res.end('done');
  await eventually(async () => (await metric(sc.adminPort, 'envoy_http_downstream_rq_active', out)) === 0, 10_000, 'no stream active');
  assert.equal(await metric(sc.adminPort, 'envoy_http_downstream_cx_active', out), 1, 'one HTTP/2 connection carried both');
});

test('a client that resets an HTTP/2 stream while its response streams: the upstream response is abandoned, and the stream ends as DC', { timeout: 60_000 }, async () => {
  const app = await startEndlessApp('h2stream', 'chunk\n');
  mesh.track(() => app.close());
  const inbound = await freePort();
  mesh.model.update({ services: [service('h2stream', 9000), service('h2streamcaller', 8000)], instances: [instance('h2stream', inbound)] });
  const server = await mesh.sidecar('h2stream', app.port, { inboundPort: inbound });
  const sc = await mesh.sidecar('h2streamcaller', 8000);
  const out = { envoy_http_conn_manager_prefix: 'outbound' };
  const session = http2.connect(`http://127.0.0.1:${sc.outboundPort}`);
  mesh.track(async () => void session.destroy());
  const st = session.request({ ':path': '/', ':authority': 'h2stream' });
  st.on('error', () => undefined);
  await new Promise<void>((r) => st.once('data', () => r()));
  assert.equal(await metric(sc.adminPort, 'envoy_http_downstream_rq_active', out), 1);
  st.close(http2.constants.NGHTTP2_CANCEL);
  await eventually(() => app.abandoned === 1, 10_000, 'the app to see its streaming response abandoned through both sidecars');
  await eventually(async () => (await metric(sc.adminPort, 'envoy_http_downstream_rq_active', out)) === 0, 10_000, 'the stream no longer active on the client sidecar');
  await eventually(async () => (await metric(server.adminPort, 'envoy_http_downstream_rq_active', { envoy_http_conn_manager_prefix: 'inbound' })) === 0, 10_000, 'nor on the server sidecar');
  // The response had started: a 2xx for the counters, as Envoy counts the code it sent.
  assert.equal(await metric(sc.adminPort, 'envoy_http_downstream_rq_xx', { ...out, envoy_response_code_class: '5' }), 0);
});

test('a request queued behind the circuit breaker whose client leaves gives its place up: DC, not a timeout, and the app never sees it', { timeout: 60_000 }, async () => {
  const held: http.ServerResponse[] = [];
  const app = await startApp('queued', (_req, res) => void held.push(res));
  mesh.track(() => app.close());
  mesh.model.update({
    services: [service('queued', 7700), service('queuecaller', 8000)],
    instances: [instance('queued', app.port)],
    destinationPolicies: [policy('queued', { circuitBreakers: { maxConnections: 1, maxPendingRequests: 1, maxRequests: 1 } })],
  });
  const sc = await mesh.sidecar('queuecaller', 8000);
  const cluster = { envoy_cluster_name: 'outbound|7700||queued.default' };
  const out = { envoy_http_conn_manager_prefix: 'outbound' };
  const first = await connect(sc.outboundPort);
  const answered = exchange(first, 'queued');
  await eventually(() => held.length === 1, 10_000, 'the first request at the app');
  const second = await connect(sc.outboundPort);
  void exchange(second, 'queued').catch(() => undefined);
  await eventually(async () => (await metric(sc.adminPort, 'envoy_cluster_upstream_rq_pending_active', cluster)) === 1, 10_000, 'the second request queued');
  second.destroy();
  await eventually(async () => (await metric(sc.adminPort, 'envoy_cluster_upstream_rq_pending_active', cluster)) === 0, 10_000, 'the queued request gone');
  await eventually(async () => (await metric(sc.adminPort, 'envoy_http_downstream_rq_active', out)) === 1, 10_000, 'only the first request active');
  assert.equal(await metric(sc.adminPort, 'envoy_cluster_upstream_rq_timeout', cluster), 0);
  assert.equal(await metric(sc.adminPort, 'envoy_http_downstream_rq_xx', { ...out, envoy_response_code_class: '5' }), 0);
  held[0]!.end('first');
  assert.equal((await answered).status, 200);
  const third = get(sc.outboundPort, 'queued');
  await eventually(() => held.length === 2, 10_000, 'the next request at the app');
  held[1]!.end('third');
  assert.equal((await third).status, 200);
  assert.equal(app.hits, 2, 'the first and the third reached the app, not the one whose client left');
  first.destroy();
});

test('a client that leaves during a retry\'s backoff: no further attempt, and the stream ends as DC rather than with the 503 being retried', { timeout: 60_000 }, async () => {
  const app = await startApp('flaky', (_req, res) => {
    res.statusCode = 503;
    res.end('try again');
  });
  mesh.track(() => app.close());
  const own = await TestMesh.start({ translator: withFields({}, { retry_policy: { retry_on: '5xx', num_retries: 3, retry_back_off: { base_interval: '2s', max_interval: '2s' } } }) });
  mesh.track(() => own.close());
  own.model.update({ services: [service('flakycaller', 8000), service('flaky', 7800)], instances: [instance('flaky', app.port)] });
  const sc = await own.sidecar('flakycaller', 8000);
  const out = { envoy_http_conn_manager_prefix: 'outbound' };
  const client = await connect(sc.outboundPort);
  void exchange(client, 'flaky').catch(() => undefined);
  await eventually(async () => (await metric(sc.adminPort, 'envoy_cluster_upstream_rq_retry')) >= 1, 10_000, 'the first retry in its backoff');
  client.destroy();
  await eventually(async () => (await metric(sc.adminPort, 'envoy_http_downstream_rq_active', out)) === 0, 10_000, 'the stream over');
  // Counted once the sidecar has ended the stream: the backoff is jittered (Envoy's, uniform below the interval), so a
  // retry may legitimately go out in the moment between the first retry being counted and the client leaving.
  const hits = app.hits;
  assert.equal(await metric(sc.adminPort, 'envoy_http_downstream_rq_xx', { ...out, envoy_response_code_class: '5' }), 0, 'not the 503 it was retrying');
  await new Promise((r) => setTimeout(r, 2_500));
  assert.equal(app.hits, hits, 'no attempt after the client left');
});

test('a client that leaves during a fault delay: nothing goes upstream, and the stream ends as DC', { timeout: 60_000 }, async () => {
  const app = await startApp('delayed');
  mesh.track(() => app.close());
  mesh.model.update({
    services: [service('delayed', 7900), service('delaycaller', 8000)],
    instances: [instance('delayed', app.port)],
    routes: [route('delayed', [{ destinations: [{ service: 'delayed', weight: 1 }], fault: { delay: { fixedDelayMs: 800, percentage: 100 } } }])],
  });
  const sc = await mesh.sidecar('delaycaller', 8000);
  const out = { envoy_http_conn_manager_prefix: 'outbound' };
  const client = await connect(sc.outboundPort);
  void exchange(client, 'delayed').catch(() => undefined);
  await eventually(async () => (await metric(sc.adminPort, 'envoy_http_downstream_rq_active', out)) === 1, 10_000, 'the request in its delay');
  client.destroy();
  await eventually(async () => (await metric(sc.adminPort, 'envoy_http_downstream_rq_active', out)) === 0, 10_000, 'the stream over');
  await new Promise((r) => setTimeout(r, 1_000));
  assert.equal(app.hits, 0, 'nothing reached the app for a client that had left');
  assert.equal(await metric(sc.adminPort, 'envoy_http_downstream_rq_xx', { ...out, envoy_response_code_class: '2' }), 0);
});

test('/drain_listeners?graceful&inboundonly: DRAINING at once, kept-alive HTTP/1 connections close after their next response, new ones are served until the drain time ends, then the inbound listener stops and stays stopped', { timeout: 60_000 }, async () => {
  const app = await startApp('drained');
  mesh.track(() => app.close());
  const inbound = await freePort();
  mesh.model.update({ services: [service('drained', 9000)], instances: [instance('drained', inbound)] });
  const sc = await mesh.sidecar('drained', app.port, { inboundPort: inbound, drainTimeS: 1.5 });

  assert.equal((await admin(sc.adminPort, '/ready')).body, 'LIVE\n');
  assert.equal(await metric(sc.adminPort, 'envoy_server_live'), 1);
  const before = await connect(inbound);
  const first = await exchange(before, 'drained');
  assert.equal(first.status, 200);
  assert.doesNotMatch(first.head, /connection: close/, 'kept alive before the drain');

  assert.deepEqual(await admin(sc.adminPort, '/drain_listeners?graceful&inboundonly', 'POST'), { status: 200, body: 'OK\n' });
  assert.deepEqual(await admin(sc.adminPort, '/ready'), { status: 503, body: 'DRAINING\n' });
  assert.equal(JSON.parse((await admin(sc.adminPort, '/server_info')).body).state, 'DRAINING');
  assert.equal(await metric(sc.adminPort, 'envoy_server_state'), 1);
  assert.equal(await metric(sc.adminPort, 'envoy_server_live'), 0);
  assert.equal(await metric(sc.adminPort, 'envoy_listener_manager_total_listeners_draining'), 1, 'only the inbound listener drains');

  // The connection open before the drain: its next response says connection: close, then it is closed.
  await servedThenClosed(before, 'drained');
  // A new connection during the drain is still served, told to close.
  await servedThenClosed(await connect(inbound), 'drained');
  // The outbound listener is not INBOUND: untouched.
  assert.match((await admin(sc.adminPort, '/listeners')).body, /^outbound::127\.0\.0\.1:/m);

  await eventually(() => refused(inbound), 10_000, 'the inbound listener stopped after the drain time');
  const listeners = (await admin(sc.adminPort, '/listeners')).body;
  assert.doesNotMatch(listeners, /^inbound::/m);
  assert.match(listeners, /^outbound::/m);
  assert.equal(await metric(sc.adminPort, 'envoy_listener_manager_total_listeners_active'), 1);
  assert.equal(await metric(sc.adminPort, 'envoy_listener_manager_total_listeners_draining'), 0);
  assert.equal((await admin(sc.adminPort, '/ready')).status, 503, 'still DRAINING: a drained sidecar does not come back to ready');
  assert.equal(app.hits, 3);
});

test('/drain_listeners without graceful stops every listener at once; an HTTP/2 connection gets GOAWAY and its open stream completes; bad parameters change nothing', { timeout: 60_000 }, async () => {
  let release: () => void = () => undefined;
  const app = await startApp('h2drain', (req, res) => {
    if (req.url === '/slow') release = () => res.end('slow done');
    else res.end('ok');
  });
  mesh.track(() => app.close());
  const inbound = await freePort();
  mesh.model.update({ services: [service('h2drain', 9000), service('h2caller', 8000)], instances: [instance('h2drain', inbound)] });
  await mesh.sidecar('h2drain', app.port, { inboundPort: inbound });
  const sc = await mesh.sidecar('h2caller', 8000);

  const bad = await admin(sc.adminPort, '/drain_listeners?gracefull', 'POST');
  assert.deepEqual(bad, { status: 400, body: 'gracefull: unknown parameter (drain_listeners takes inboundonly, graceful, skip_exit)\n' });
  assert.equal((await admin(sc.adminPort, '/drain_listeners', 'GET')).status, 405);
  assert.equal((await admin(sc.adminPort, '/ready')).body, 'LIVE\n', 'neither drained anything');

  const session = http2.connect(`http://127.0.0.1:${sc.outboundPort}`);
  mesh.track(async () => void session.destroy());
  const goaway = new Promise<void>((r) => session.once('goaway', () => r()));
  const stream = session.request({ ':path': '/slow', ':authority': 'h2drain' });
  const body = new Promise<{ status: number; text: string }>((resolve, reject) => {
    let status = 0;
    let text = '';
    stream.on('response', (h) => (status = Number(h[':status'])));
    stream.on('data', (c: Buffer) => (text += c));
    stream.on('end', () => resolve({ status, text }));
    stream.on('error', reject);
  });
  await eventually(async () => (await metric(sc.adminPort, 'envoy_http_downstream_rq_active', { envoy_http_conn_manager_prefix: 'outbound' })) === 1, 10_000, 'the slow stream in flight');

  assert.deepEqual(await admin(sc.adminPort, '/drain_listeners', 'POST'), { status: 200, body: 'OK\n' });
  await goaway;
  assert.ok(await refused(sc.outboundPort), 'no new connection once drained');
  assert.equal((await admin(sc.adminPort, '/listeners')).body, '');
  release();
  assert.deepEqual(await body, { status: 200, text: 'slow done' });
  assert.deepEqual(await admin(sc.adminPort, '/ready'), { status: 503, body: 'DRAINING\n' });
});

test('a listener stopped by a drain is not bound again by a later LDS update; an unstopped one still is', { timeout: 30_000 }, async () => {
  const stats = new SidecarStats();
  // tcp_proxy chains to no cluster: a connection is accepted, then closed.
  const manager = new ListenerManager({ stats, clusters: { get: () => undefined } } as unknown as ProxyEnv);
  const hcm = (statPrefix: string) => ({ kind: 'tcp', statPrefix, cluster: 'none' }) as const;
  const [pIn, pOut] = [await freePort(), await freePort()];
  const configs = (v: string) =>
    new Map<string, ListenerConfig>([
      ['inbound', { name: 'inbound', address: { address: '127.0.0.1', port: pIn }, chain: hcm(`in${v}`), direction: 'INBOUND' }],
      ['outbound', { name: 'outbound', address: { address: '127.0.0.1', port: pOut }, chain: hcm(`out${v}`), direction: 'OUTBOUND' }],
    ]);
  try {
    assert.deepEqual([...(await manager.apply(configs('1')))], []);
    assert.deepEqual(manager.names().sort(), ['inbound', 'outbound']);
    manager.drain('inbound', false, 0);
    assert.deepEqual(manager.names(), ['outbound']);
    await eventually(() => refused(pIn), 5_000, 'inbound stopped');
    assert.deepEqual([...(await manager.apply(configs('2')))], [], 'the update is taken without an error');
    assert.deepEqual(manager.names(), ['outbound']);
    assert.ok(await refused(pIn), 'still stopped after the update');
    assert.equal(await refused(pOut), false);
    assert.equal(manager.drainStarted, true);
  } finally {
    await manager.close();
  }
});

test('/healthcheck/fail: DRAINING and /ready 503, every connection (HTTP/1 and HTTP/2) is asked to close after its next request while new ones are still served; /healthcheck/ok brings back LIVE and keep-alive', { timeout: 60_000 }, async () => {
  const app = await startApp('hcfail');
  mesh.track(() => app.close());
  const inbound = await freePort();
  mesh.model.update({ services: [service('hcfail', 9000)], instances: [instance('hcfail', inbound)] });
  const sc = await mesh.sidecar('hcfail', app.port, { inboundPort: inbound });

  assert.equal((await admin(sc.adminPort, '/healthcheck/fail', 'GET')).status, 405, 'a GET changes nothing');
  assert.deepEqual(await admin(sc.adminPort, '/ready'), { status: 200, body: 'LIVE\n' });
  const before = await connect(inbound);
  assert.doesNotMatch((await exchange(before, 'hcfail')).head, /connection: close/);
  const session = http2.connect(`http://127.0.0.1:${inbound}`);
  mesh.track(async () => void session.destroy());
  const h2get = () =>
    new Promise<number>((resolve, reject) => {
      const s = session.request({ ':path': '/', ':authority': 'hcfail' });
      let status = 0;
      s.on('response', (h) => (status = Number(h[':status'])));
      s.resume();
      s.on('end', () => resolve(status));
      s.on('error', reject);
    });
  assert.equal(await h2get(), 200);
  const goaway = new Promise<void>((r) => session.once('goaway', () => r()));

  assert.deepEqual(await admin(sc.adminPort, '/healthcheck/fail', 'POST'), { status: 200, body: 'OK\n' });
  assert.deepEqual(await admin(sc.adminPort, '/ready'), { status: 503, body: 'DRAINING\n' });
  assert.equal(JSON.parse((await admin(sc.adminPort, '/server_info')).body).state, 'DRAINING');
  assert.equal(await metric(sc.adminPort, 'envoy_server_state'), 1);
  assert.equal(await metric(sc.adminPort, 'envoy_server_live'), 0);
  await goaway;
  // The kept-alive HTTP/1 connection: served once more, told to close, closed.
  await servedThenClosed(before, 'hcfail');
  // Not a drain: the listener still accepts, and serves each new connection once.
  await servedThenClosed(await connect(inbound), 'hcfail');
  // ... also when the first request is answered at once, by the sidecar itself (no such service: 404)
  const unrouted = await connect(sc.outboundPort);
  const noRoute = await exchange(unrouted, 'nowhere');
  assert.equal(noRoute.status, 404);
  assert.match(noRoute.head, /\r\nconnection: close/);
  await closed(unrouted);
  assert.equal(await metric(sc.adminPort, 'envoy_listener_manager_total_listeners_draining'), 0, 'no listener is draining');

  assert.deepEqual(await admin(sc.adminPort, '/healthcheck/ok', 'POST'), { status: 200, body: 'OK\n' });
  assert.deepEqual(await admin(sc.adminPort, '/ready'), { status: 200, body: 'LIVE\n' });
  assert.equal(await metric(sc.adminPort, 'envoy_server_live'), 1);
  const after = await connect(inbound);
  mesh.track(async () => void after.destroy());
  for (let i = 0; i < 2; i++) assert.doesNotMatch((await exchange(after, 'hcfail')).head, /connection: close/, 'kept alive again');
  assert.equal(app.hits, 6);
});

test('weft sidecar --termination-drain-s: on SIGTERM the inbound listener drains (/ready 503, the request in flight completes, a new connection is served once and told to close), and the sidecar exits 0 once quiet, long before the limit', { timeout: 60_000 }, async () => {
  let release: (() => void) | undefined;
  const app = await startApp('term', (req, res) => {
    if (req.url === '/slow') release = () => res.end('slow done');
    else res.end('ok');
  });
  mesh.track(() => app.close());
  const [inbound, adminPort] = [await freePort(), await freePort()];
  mesh.model.update({ services: [service('term', 9000)], instances: [instance('term', inbound)] });
  const sidecar = spawnWeft(['sidecar', '--service', 'term', '--xds', `127.0.0.1:${mesh.xdsPort}`, '--app-port', String(app.port), '--inbound-port', String(inbound), '--admin-port', String(adminPort), '--termination-drain-s', '120'], { WEFT_ACCESS_LOG: 'off' });
  const { child, exited } = sidecar;
  try {
    await eventually(async () => (await fetch(`http://127.0.0.1:${adminPort}/ready`).catch(() => undefined))?.status === 200, 30_000, `the sidecar ready\n${sidecar.output()}`);
    const slowSocket = await connect(inbound);
    const slow = exchange(slowSocket, 'term', '/slow');
    await eventually(() => release !== undefined, 10_000, 'the slow request at the app');

    child.kill('SIGTERM');
    await eventually(async () => (await admin(adminPort, '/ready')).status === 503, 10_000, 'DRAINING after SIGTERM');
    await servedThenClosed(await connect(inbound), 'term');
    assert.equal(child.exitCode, null, 'still running while a request is in flight');

    release!();
    const last = await slow;
    assert.deepEqual([last.status, last.body], [200, 'slow done']);
    assert.match(last.head, /\r\nconnection: close/);
    const code = await Promise.race([exited, new Promise<string>((r) => setTimeout(() => r('still running'), 20_000))]);
    assert.equal(code, 0, sidecar.output());
    assert.match(sidecar.output(), /"msg":"draining inbound listeners before exit","max_s":120/);
    assert.match(sidecar.output(), /"msg":"drained","reason":"quiet"/);
  } finally {
    sidecar.kill();
  }
});
