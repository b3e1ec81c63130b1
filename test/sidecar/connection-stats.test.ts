// The connection counters an Envoy operator reads before any request
// counter: how downstream connections end (http.<stat_prefix>.downstream_cx_
// destroy, _local / _remote, with a request in progress or not), why the
// sidecar closed them (idle timeout, max_requests_per_connection, a request
// it could not read, a drain), how long they lasted and how many bytes they
// moved, and the listener's own (listener.<address>.downstream_cx_*).

import assert from 'node:assert/strict';
import http2 from 'node:http2';
import net from 'node:net';
import { after, test } from 'node:test';
import { TestMesh, admin, connect, eventually, exchange, instance, metric, service, startApp, withFields, withTimeout } from './harness.ts';

const closers: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of closers.reverse()) await c();
});

const HCM = { envoy_http_conn_manager_prefix: 'outbound' };

/** A caller's sidecar in front of `slow` (answers after 5 s) and `origin`, its connection managers carrying `hcm`. */
async function callerWith(hcm: Record<string, unknown>) {
  const mesh = await TestMesh.start({ translator: withFields(hcm) });
  closers.push(() => mesh.close());
  const app = await startApp('origin', (req, res) => {
    if (req.headers.host === 'slow') {
      const t = setTimeout(() => res.end('late'), 5000);
      res.on('close', () => clearTimeout(t));
    } else res.end('ok');
  });
  closers.push(() => app.close());
  mesh.model.update({ services: [service('caller', 8000), service('origin', 7000), service('slow', 7001)], instances: [instance('origin', app.port), instance('slow', app.port)], routes: [] });
  const sc = await mesh.sidecar('caller', 8000);
  const stat = (name: string) => metric(sc.adminPort, name, HCM);
  return { sc, stat };
}

function closed(socket: net.Socket): Promise<void> {
  return new Promise((resolve) => (socket.destroyed ? resolve() : socket.once('close', () => resolve())));
}

test('HTTP/1: who closed each connection, with a request in progress or not, and why the sidecar did', { timeout: 60_000 }, async () => {
  const { sc, stat } = await callerWith({ common_http_protocol_options: { idle_timeout: '0.5s', max_requests_per_connection: 2 } });
  const port = sc.outboundPort;

  // The client answered, then closes: remote, nothing in progress.
  const a = await connect(port);
  assert.equal((await exchange(a, 'origin')).status, 200);
  a.end();
  await eventually(async () => (await stat('envoy_http_downstream_cx_destroy')) === 1, 5000, 'the first close counted');
  assert.deepEqual([await stat('envoy_http_downstream_cx_destroy_remote'), await stat('envoy_http_downstream_cx_destroy_local'), await stat('envoy_http_downstream_cx_destroy_active_rq')], [1, 0, 0]);

  // Its second request is the last max_requests_per_connection allows: the sidecar closes it after that response.
  const b = await connect(port);
  await exchange(b, 'origin');
  const last = await exchange(b, 'origin');
  assert.match(last.head, /connection: close/);
  await withTimeout(closed(b), 5000, 'closed after its last request');
  await eventually(async () => (await stat('envoy_http_downstream_cx_destroy')) === 2, 5000, 'the second close counted');
  assert.deepEqual([await stat('envoy_http_downstream_cx_destroy_local'), await stat('envoy_http_downstream_cx_max_requests_reached')], [1, 1]);

  // Kept alive and then quiet past the idle timeout: the sidecar closes it.
  const c = await connect(port);
  await exchange(c, 'origin');
  await withTimeout(closed(c), 5000, 'closed by the idle timeout');
  await eventually(async () => (await stat('envoy_http_downstream_cx_idle_timeout')) === 1, 5000, 'the idle timeout counted');
  assert.equal(await stat('envoy_http_downstream_cx_destroy_local'), 2);

  // A client that leaves while its request waits on a slow app: remote, with a request in progress.
  const d = await connect(port);
  d.write('GET / HTTP/1.1\r\nhost: slow\r\n\r\n');
  await eventually(async () => (await metric(sc.adminPort, 'envoy_http_downstream_rq_active', HCM)) === 1, 5000, 'the request in progress');
  d.destroy();
  await eventually(async () => (await stat('envoy_http_downstream_cx_destroy_remote_active_rq')) === 1, 5000, 'the client leaving mid-request counted');
  assert.deepEqual([await stat('envoy_http_downstream_cx_destroy_active_rq'), await stat('envoy_http_downstream_cx_destroy_local_active_rq'), await stat('envoy_http_downstream_cx_destroy_remote')], [1, 0, 2]);

  // A request the codec cannot read: 400, and the connection closes as a protocol error.
  const e = await connect(port);
  e.resume();
  e.write('GET / HTTP/1.1\r\nhost: origin\r\nbad header\r\n\r\n');
  await withTimeout(closed(e), 5000, 'closed after the 400');
  await eventually(async () => (await stat('envoy_http_downstream_cx_protocol_error')) === 1, 5000, 'the protocol error counted');

  // Every close is in the length histogram, and the listener counts the same connections.
  const destroyed = await stat('envoy_http_downstream_cx_destroy');
  assert.equal(destroyed, 5);
  assert.equal(await stat('envoy_http_downstream_cx_length_ms_count'), destroyed);
  const listener = { envoy_listener_address: `127.0.0.1_${port}` };
  assert.deepEqual(
    [await metric(sc.adminPort, 'envoy_listener_downstream_cx_total', listener), await metric(sc.adminPort, 'envoy_listener_downstream_cx_destroy', listener), await metric(sc.adminPort, 'envoy_listener_downstream_cx_active', listener), await metric(sc.adminPort, 'envoy_listener_downstream_cx_length_ms_count', listener)],
    [5, 5, 0, 5],
  );
  assert.equal(await stat('envoy_http_downstream_cx_active'), 0);
  // Envoy's names in /stats.
  const text = (await admin(sc.adminPort, '/stats?filter=downstream_cx_destroy_remote_active_rq|listener\\..*downstream_cx_total')).body;
  assert.match(text, /^http\.outbound\.downstream_cx_destroy_remote_active_rq: 1$/m);
  assert.match(text, new RegExp(`^listener\\.127\\.0\\.0\\.1_${port}\\.downstream_cx_total: 5$`, 'm'));
});

test('bytes read and written are counted for open connections whenever stats are read, and once more as they close', { timeout: 30_000 }, async () => {
  const { sc, stat } = await callerWith({});
  const s = await connect(sc.outboundPort);
  let received = 0;
  s.on('data', (c: Buffer) => (received += c.length));
  const request = 'GET / HTTP/1.1\r\nhost: origin\r\n\r\n';
  assert.equal((await exchange(s, 'origin')).status, 200);
  const rx = await stat('envoy_http_downstream_cx_rx_bytes_total');
  assert.equal(rx, Buffer.byteLength(request), 'the request, byte for byte, while the connection is open');
  assert.equal(await stat('envoy_http_downstream_cx_tx_bytes_total'), received, 'the response, head and body, as the client got it');
  await exchange(s, 'origin');
  s.end();
  await eventually(async () => (await stat('envoy_http_downstream_cx_destroy')) === 1, 5000, 'closed');
  assert.equal(await stat('envoy_http_downstream_cx_rx_bytes_total'), 2 * rx, 'not counted twice');
  assert.equal(await stat('envoy_http_downstream_cx_tx_bytes_total'), received);
});

test('HTTP/2: the client\'s GOAWAY is a remote close; a drain\'s GOAWAY a local one, counted as drain_close; a stream open when the client vanishes is a request in progress', { timeout: 60_000 }, async () => {
  const { sc, stat } = await callerWith({});
  const url = `http://127.0.0.1:${sc.outboundPort}`;
  const one = async (session: http2.ClientHttp2Session) =>
    new Promise<void>((resolve, reject) => {
      const req = session.request({ ':path': '/', ':authority': 'origin' });
      req.on('response', () => undefined);
      req.resume();
      req.on('end', () => resolve());
      req.on('error', reject);
    });
  const a = http2.connect(url);
  await one(a);
  a.close();
  await eventually(async () => (await stat('envoy_http_downstream_cx_destroy')) === 1, 5000, 'the client\'s close counted');
  assert.deepEqual([await stat('envoy_http_downstream_cx_destroy_remote'), await stat('envoy_http_downstream_cx_destroy_local')], [1, 0]);

  // A stream to the slow app, and the client's socket torn down under it.
  const b = http2.connect(url);
  b.on('error', () => undefined);
  const pending = b.request({ ':path': '/', ':authority': 'slow' });
  pending.on('error', () => undefined);
  await eventually(async () => (await metric(sc.adminPort, 'envoy_http_downstream_rq_active', HCM)) === 1, 5000, 'the stream in progress');
  b.destroy();
  await eventually(async () => (await stat('envoy_http_downstream_cx_destroy_remote_active_rq')) === 1, 5000, 'the vanished client counted');

  // /healthcheck/fail: every connection is told to go (GOAWAY), the sidecar closing it.
  const c = http2.connect(url);
  await one(c);
  const goaway = new Promise<void>((resolve) => c.once('goaway', () => resolve()));
  assert.equal((await admin(sc.adminPort, '/healthcheck/fail', 'POST')).status, 200);
  await withTimeout(goaway, 5000, 'GOAWAY');
  await eventually(async () => (await stat('envoy_http_downstream_cx_destroy')) === 3, 5000, 'the drained connection closed');
  assert.deepEqual([await stat('envoy_http_downstream_cx_destroy_local'), await stat('envoy_http_downstream_cx_drain_close')], [1, 1]);
  await admin(sc.adminPort, '/healthcheck/ok', 'POST');
  assert.equal(await stat('envoy_http_downstream_cx_http2_active'), 0);
});

test('upstream connections: connect time, length, bytes while open, and closes with a request on them, HTTP/1.1 and HTTP/2', { timeout: 60_000 }, async () => {
  const mesh = await TestMesh.start();
  closers.push(() => mesh.close());
  // An HTTP/1.1 app that drops the connection under a request to /die.
  const app = await startApp('origin', (req, res) => {
    if (req.url === '/die') req.socket.destroy();
    else res.end('ok');
  });
  closers.push(() => app.close());
  // An HTTP/2 app whose process "dies" under an open stream: its sessions are destroyed.
  const h2 = http2.createServer();
  h2.on('stream', (stream, headers) => {
    stream.on('error', () => undefined);
    if (headers[':path'] === '/die') stream.session?.destroy();
    else {
      stream.respond({ ':status': 200 });
      stream.end('ok');
    }
  });
  await new Promise<void>((r) => h2.listen(0, '127.0.0.1', () => r()));
  closers.push(() => new Promise((r) => h2.close(() => r())));
  mesh.model.update({
    services: [service('caller', 8000), service('origin', 7000), service('grpcish', 7002, { ports: [{ port: 7002, protocol: 'grpc' }] })],
    instances: [instance('origin', app.port), instance('grpcish', (h2.address() as net.AddressInfo).port)],
    routes: [],
  });
  const sc = await mesh.sidecar('caller', 8000);
  const clusters = { h1: { envoy_cluster_name: 'outbound|7000||origin.default' }, h2: { envoy_cluster_name: 'outbound|7002||grpcish.default' } };
  const m = (name: string, which: keyof typeof clusters) => metric(sc.adminPort, `envoy_cluster_${name}`, clusters[which]);

  const s = await connect(sc.outboundPort);
  assert.equal((await exchange(s, 'origin')).status, 200);
  // The pool's connection stays open: its bytes are there already, and its connect time.
  assert.equal(await m('upstream_cx_connect_ms_count', 'h1'), 1);
  assert.ok((await m('upstream_cx_tx_bytes_total', 'h1')) > 30, 'the request went out');
  assert.ok((await m('upstream_cx_rx_bytes_total', 'h1')) > 30, 'the response came in');
  assert.equal(await m('upstream_cx_destroy', 'h1'), 0);
  const died = await exchange(s, 'origin', '/die');
  assert.equal(died.status, 503);
  await eventually(async () => (await m('upstream_cx_destroy_remote_with_active_rq', 'h1')) === 1, 5000, 'the connection dropped under a request');
  assert.deepEqual([await m('upstream_cx_destroy_with_active_rq', 'h1'), await m('upstream_cx_destroy_local_with_active_rq', 'h1'), await m('upstream_cx_length_ms_count', 'h1')], [1, 0, 1]);

  const client = http2.connect(`http://127.0.0.1:${sc.outboundPort}`);
  closers.push(async () => void client.close());
  const call = (path: string) =>
    new Promise<http2.IncomingHttpHeaders>((resolve, reject) => {
      const req = client.request({ ':path': path, ':authority': 'grpcish', 'content-type': 'application/grpc' });
      let head: http2.IncomingHttpHeaders = {};
      req.on('response', (h) => (head = h));
      req.on('error', reject);
      req.resume();
      req.end();
      req.on('end', () => resolve(head));
    });
  assert.equal((await call('/ok'))[':status'], 200);
  assert.ok((await m('upstream_cx_rx_bytes_total', 'h2')) > 0, 'HTTP/2 bytes while the session is open');
  // The upstream's socket goes without GOAWAY under the stream: answered, as Envoy answers it (UNAVAILABLE,
  // connection termination); until 2026-11-29 the call hung.
  const died2 = await withTimeout(call('/die'), 5000, 'an answer to the stream whose upstream died');
  assert.equal(died2['grpc-status'], '14');
  assert.match(String(died2['grpc-message']), /reset reason: connection termination$/);
  await eventually(async () => (await m('upstream_cx_destroy_remote_with_active_rq', 'h2')) === 1, 5000, 'the session torn down under a stream');
  assert.equal(await m('upstream_cx_length_ms_count', 'h2'), 1);
  s.destroy();
});
