// Envoy's stream timeouts beyond the route's time-to-headers: the route
// timeout keeps running over the response body, an HTTP connection manager's
// stream_idle_timeout ends a stream with no bytes either way, and its
// request_timeout bounds how long the whole request may take to arrive.

import assert from 'node:assert/strict';
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { after, test } from 'node:test';
import { grpcTimeoutMs } from '../../sidecar/proxy.ts';
import { TestMesh, eventually, get, instance, metric, route, service, startApp, withFields, withTimeout } from './harness.ts';

const closers: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of closers.reverse()) await c();
});

/** A raw request: status, the body bytes that arrived, and whether the stream ended cleanly or was reset. */
function rawRequest(port: number, host: string, path: string, init: { method?: string; headers?: Record<string, string>; partialBody?: string } = {}): Promise<{ status: number; body: string; ended: boolean; ms: number }> {
  const t0 = Date.now();
  return new Promise((resolve) => {
    const req = http.request({ host: '127.0.0.1', port, path, method: init.method ?? 'GET', headers: { host, ...init.headers }, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, ended: res.complete, ms: Date.now() - t0 }));
      res.on('error', () => resolve({ status: res.statusCode ?? 0, body, ended: false, ms: Date.now() - t0 }));
      res.on('aborted', () => resolve({ status: res.statusCode ?? 0, body, ended: false, ms: Date.now() - t0 }));
    });
    req.on('error', () => resolve({ status: 0, body: '', ended: false, ms: Date.now() - t0 }));
    if (init.partialBody !== undefined) req.write(init.partialBody);
    else req.end();
  });
}

/** An app that sends its headers and a first chunk at once, and the rest after `ms`. */
async function slowBodyApp(ms: number) {
  const app = await startApp('slow-body', (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.write('first;');
    const t = setTimeout(() => res.end('rest'), ms);
    res.on('close', () => clearTimeout(t));
  });
  closers.push(() => app.close());
  return app;
}

test('the route timeout covers the response body: a body still streaming when it fires is reset and counted', { timeout: 30_000 }, async () => {
  const mesh = await TestMesh.start();
  closers.push(() => mesh.close());
  const app = await slowBodyApp(3000);
  mesh.model.update({
    services: [service('caller', 8000), service('slowbody', 7000)],
    instances: [instance('slowbody', app.port)],
    routes: [route('slowbody', [{ destinations: [{ service: 'slowbody', weight: 1 }], timeoutMs: 400 }])],
  });
  const caller = await mesh.sidecar('caller', 8000);
  const r = await rawRequest(caller.outboundPort, 'slowbody', '/');
  assert.equal(r.status, 200, 'headers were already on their way');
  assert.equal(r.body, 'first;');
  assert.equal(r.ended, false, 'the stream was reset, not ended as if complete');
  assert.ok(r.ms < 2500, `reset at the route timeout, not when the app finished (${r.ms} ms)`);
  assert.equal(await metric(caller.adminPort, 'envoy_cluster_upstream_rq_timeout', { envoy_cluster_name: 'outbound|7000||slowbody.default' }), 1);
  // The sidecar reset the client's stream: a sent reset, counted among the resets as Envoy's onResetStream counts them.
  const hcm = { envoy_http_conn_manager_prefix: 'outbound' };
  assert.deepEqual([await metric(caller.adminPort, 'envoy_http_downstream_rq_tx_reset', hcm), await metric(caller.adminPort, 'envoy_http_downstream_rq_rx_reset', hcm), await metric(caller.adminPort, 'envoy_http_downstream_rq_completed', hcm)], [1, 1, 0]);
  // A body that completes within the timeout is untouched.
  const quick = await slowBodyApp(50);
  mesh.model.update({ instances: [instance('slowbody', quick.port)] });
  await new Promise((r) => setTimeout(r, 300));
  const ok = await get(caller.outboundPort, 'slowbody');
  assert.equal(ok.status, 200);
  assert.equal(ok.body, 'first;rest');
  assert.equal(await metric(caller.adminPort, 'envoy_http_downstream_rq_completed', hcm), 1);
  // A client that leaves mid-body: a received reset only.
  const slow = await slowBodyApp(3000);
  mesh.model.update({ instances: [instance('slowbody', slow.port)], routes: [route('slowbody', [{ destinations: [{ service: 'slowbody', weight: 1 }], timeoutMs: 0 }])] });
  await new Promise((r) => setTimeout(r, 300));
  await new Promise<void>((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port: caller.outboundPort, path: '/', headers: { host: 'slowbody' }, agent: false }, (res) => {
      res.once('data', () => {
        req.destroy();
        resolve();
      });
    });
    req.on('error', () => undefined);
    setTimeout(() => reject(new Error('no body')), 5000);
  });
  await eventually(async () => (await metric(caller.adminPort, 'envoy_http_downstream_rq_rx_reset', hcm)) === 2, 5000, 'the client\'s reset counted');
  assert.equal(await metric(caller.adminPort, 'envoy_http_downstream_rq_tx_reset', hcm), 1, 'the client left: not a reset the sidecar sent');
});

test('stream_idle_timeout: a stream with no bytes either way for that long gets 504 stream timeout (the request arrived whole: Envoy\'s maybeRequestTimeoutCode)', { timeout: 30_000 }, async () => {
  const mesh = await TestMesh.start({ translator: withFields({ stream_idle_timeout: '0.3s' }) });
  closers.push(() => mesh.close());
  const silent = await startApp('silent', (_req, res) => {
    const t = setTimeout(() => res.end('late'), 3000);
    res.on('close', () => clearTimeout(t));
  });
  closers.push(() => silent.close());
  // No route timeout: only the idle timeout can end the wait.
  mesh.model.update({
    services: [service('caller', 8000), service('silent', 7000)],
    instances: [instance('silent', silent.port)],
    routes: [route('silent', [{ destinations: [{ service: 'silent', weight: 1 }], timeoutMs: 0 }])],
  });
  const caller = await mesh.sidecar('caller', 8000);
  const r = await rawRequest(caller.outboundPort, 'silent', '/');
  assert.equal(r.status, 504);
  assert.equal(r.body, 'stream timeout');
  assert.ok(r.ms < 2500, `ended by the idle timeout (${r.ms} ms)`);
  const counted = (name: string) => metric(caller.adminPort, `envoy_http_${name}`, { envoy_http_conn_manager_prefix: 'outbound' });
  assert.equal(await counted('downstream_rq_idle_timeout'), 1, 'counted as Envoy counts an idle timeout');
  assert.equal(await counted('downstream_rq_timeout'), 0);
  // Bytes keep a stream alive: a body trickling in every 100 ms outlives 300 ms of idle timeout.
  const trickle = await startApp('trickle', (_req, res) => {
    res.writeHead(200);
    let n = 0;
    const t = setInterval(() => (++n === 8 ? (clearInterval(t), res.end('.')) : res.write('.')), 100);
    res.on('close', () => clearInterval(t));
  });
  closers.push(() => trickle.close());
  mesh.model.update({ instances: [instance('silent', trickle.port)] });
  await new Promise((r) => setTimeout(r, 300));
  const alive = await rawRequest(caller.outboundPort, 'silent', '/');
  assert.equal(alive.status, 200);
  assert.equal(alive.body, '........');
  assert.equal(alive.ended, true);
});

test('request_timeout: a request body that does not arrive in time gets 408 request timeout and never reaches the app', { timeout: 30_000 }, async () => {
  const mesh = await TestMesh.start({ translator: withFields({ request_timeout: '0.3s' }) });
  closers.push(() => mesh.close());
  const echo = await startApp('echo');
  closers.push(() => echo.close());
  mesh.model.update({
    services: [service('caller', 8000), service('echo', 7000)],
    instances: [instance('echo', echo.port)],
    routes: [],
  });
  const caller = await mesh.sidecar('caller', 8000);
  const r = await rawRequest(caller.outboundPort, 'echo', '/upload', { method: 'POST', headers: { 'content-length': '100' }, partialBody: 'only ten b' });
  assert.equal(r.status, 408);
  assert.equal(r.body, 'request timeout');
  assert.ok(r.ms < 2500, `answered at the request timeout (${r.ms} ms)`);
  assert.equal(echo.hits, 0);
  const counted = (name: string) => metric(caller.adminPort, `envoy_http_${name}`, { envoy_http_conn_manager_prefix: 'outbound' });
  assert.deepEqual([await counted('downstream_rq_timeout'), await counted('downstream_rq_idle_timeout')], [1, 0], 'a request timeout, not an idle one');
  // A complete request is unaffected.
  const ok = await get(caller.outboundPort, 'echo', '/upload', { method: 'POST', body: 'x'.repeat(100) });
  assert.equal(ok.status, 200);
  assert.equal(echo.hits, 1);
  // Both 408 and 200 went out whole: completed responses (downstream_rq_completed).
  assert.equal(await counted('downstream_rq_completed'), 2);
});

test("common_http_protocol_options.idle_timeout: a downstream connection idle that long is closed, HTTP/1.1 and h2; one with a request in flight is not", { timeout: 30_000 }, async () => {
  const mesh = await TestMesh.start({ translator: withFields({ common_http_protocol_options: { idle_timeout: '0.3s' } }) });
  closers.push(() => mesh.close());
  const app = await startApp('lazy', (req, res) => {
    // /slow answers after twice the idle timeout: the connection must not close under it.
    const t = setTimeout(() => res.end('done'), req.url === '/slow' ? 700 : 0);
    res.on('close', () => clearTimeout(t));
  });
  closers.push(() => app.close());
  mesh.model.update({ services: [service('caller', 8000), service('lazy', 7000)], instances: [instance('lazy', app.port)], routes: [] });
  const caller = await mesh.sidecar('caller', 8000);

  // HTTP/1.1 keep-alive: two requests on one socket, then silence until the sidecar closes it.
  const h1 = await new Promise<{ responses: number; closedAfterMs: number }>((resolve, reject) => {
    const socket = net.connect(caller.outboundPort, '127.0.0.1');
    let data = '';
    let lastResponseAt = 0;
    let sent = 0;
    const send = (path: string) => socket.write(`GET ${path} HTTP/1.1\r\nHost: lazy\r\n\r\n`);
    socket.on('data', (d) => {
      data += d.toString('latin1');
      const responses = data.split('HTTP/1.1 200').length - 1;
      if (responses > sent - 1 && data.endsWith('done')) {
        lastResponseAt = Date.now();
        if (sent === 1) {
          sent++;
          send('/');
        }
      }
    });
    socket.on('close', () => resolve({ responses: data.split('HTTP/1.1 200').length - 1, closedAfterMs: Date.now() - lastResponseAt }));
    socket.on('error', reject);
    sent = 1;
    send('/slow');
  });
  assert.equal(h1.responses, 2, 'the slow request outlived the idle timeout, and the connection served another');
  assert.ok(h1.closedAfterMs >= 250 && h1.closedAfterMs < 2500, `closed ${h1.closedAfterMs} ms after its last response`);

  // h2: a stream open longer than the idle timeout keeps the connection; once it ends, the session goes away.
  const session = http2.connect(`http://127.0.0.1:${caller.outboundPort}`);
  const goneAt = new Promise<number>((resolve) => session.on('close', () => resolve(Date.now())));
  session.on('error', () => undefined);
  const status = await new Promise<number>((resolve, reject) => {
    const req = session.request({ ':path': '/slow', ':authority': 'lazy' });
    req.on('response', (h) => resolve(Number(h[':status'])));
    req.on('error', reject);
    req.resume();
    req.end();
  });
  assert.equal(status, 200);
  const answeredAt = Date.now();
  const closedAfterMs = (await withTimeout(goneAt, 5000, 'the idle h2 session to close')) - answeredAt;
  assert.ok(closedAfterMs < 2500, `the idle session closed ${closedAfterMs} ms after its stream`);
});

test("a route's idle_timeout replaces the connection manager's stream_idle_timeout; 0s turns it off for that route", { timeout: 30_000 }, async () => {
  const slow = await startApp('dawdler', (req, res) => {
    const t = setTimeout(() => res.end('late'), req.url === '/long' ? 3000 : 700);
    res.on('close', () => clearTimeout(t));
  });
  closers.push(() => slow.close());
  const setup = async (hcm: Record<string, unknown>, routeAction: Record<string, unknown>) => {
    const mesh = await TestMesh.start({ translator: withFields(hcm, routeAction) });
    closers.push(() => mesh.close());
    mesh.model.update({
      services: [service('caller', 8000), service('dawdler', 7000)],
      instances: [instance('dawdler', slow.port)],
      routes: [route('dawdler', [{ destinations: [{ service: 'dawdler', weight: 1 }], timeoutMs: 0 }])],
    });
    return mesh.sidecar('caller', 8000);
  };
  // Route 0.3 s under the HCM's default 5 min: the route's wins.
  const tight = await setup({}, { idle_timeout: '0.3s' });
  const r = await rawRequest(tight.outboundPort, 'dawdler', '/long');
  assert.equal(r.status, 504);
  assert.equal(r.body, 'stream timeout');
  assert.ok(r.ms < 2500, `ended by the route's idle timeout (${r.ms} ms)`);
  // HCM 0.3 s, route 0s: the route has no idle timeout at all.
  const loose = await setup({ stream_idle_timeout: '0.3s' }, { idle_timeout: '0s' });
  const ok = await rawRequest(loose.outboundPort, 'dawdler', '/');
  assert.equal(ok.status, 200);
  assert.equal(ok.body, 'late');
});

test("max_stream_duration.grpc_timeout_header_max: a gRPC call's grpc-timeout bounds it (capped by the max): DEADLINE_EXCEEDED, downstream_rq_max_duration_reached", { timeout: 30_000 }, async () => {
  const server = http2.createServer();
  server.on('stream', (stream) => {
    stream.on('data', () => undefined);
    stream.on('error', () => undefined);
    const t = setTimeout(() => {
      if (stream.closed) return;
      stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': '0' }, { endStream: true });
    }, 2000);
    stream.on('close', () => clearTimeout(t));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  closers.push(() => new Promise((r) => server.close(() => r())));
  const grpcCall = (port: number, timeout: string | undefined) =>
    new Promise<{ grpcStatus: string | undefined; message: string | undefined; ms: number }>((resolve, reject) => {
      const t0 = Date.now();
      const session = http2.connect(`http://127.0.0.1:${port}`);
      session.on('error', () => undefined);
      const req = session.request({ ':method': 'POST', ':path': '/slow.Slow/Wait', ':authority': 'sluggish:50060', 'content-type': 'application/grpc', te: 'trailers', ...(timeout ? { 'grpc-timeout': timeout } : {}) });
      let grpcStatus: string | undefined;
      let message: string | undefined;
      req.on('response', (h) => {
        grpcStatus ??= h['grpc-status'] as string | undefined;
        message ??= h['grpc-message'] as string | undefined;
      });
      req.on('trailers', (h) => (grpcStatus ??= h['grpc-status'] as string | undefined));
      req.on('data', () => undefined);
      req.on('close', () => {
        session.close();
        resolve({ grpcStatus, message, ms: Date.now() - t0 });
      });
      req.on('error', reject);
      req.end(Buffer.from('\0\0\0\0\x00'));
    });
  const setup = async (max: string) => {
    const mesh = await TestMesh.start({ translator: withFields({}, { max_stream_duration: { grpc_timeout_header_max: max } }) });
    closers.push(() => mesh.close());
    mesh.model.update({
      services: [service('caller', 8000), { name: 'sluggish', namespace: 'default', ports: [{ port: 50060, protocol: 'grpc' }] }],
      instances: [instance('sluggish', (server.address() as AddressInfo).port)],
      routes: [],
    });
    return mesh.sidecar('caller', 8000);
  };
  const uncapped = await setup('0s');
  const deadline = await grpcCall(uncapped.outboundPort, '300m');
  assert.equal(deadline.grpcStatus, '4', 'DEADLINE_EXCEEDED');
  assert.equal(decodeURIComponent(deadline.message ?? ''), 'downstream duration timeout');
  assert.ok(deadline.ms < 1500, `ended at the caller's deadline (${deadline.ms} ms)`);
  assert.equal(await metric(uncapped.adminPort, 'envoy_http_downstream_rq_max_duration_reached'), 1);
  // No grpc-timeout: nothing bounds the call (max_stream_duration also lifts the route timeout), so it completes.
  const patient = await grpcCall(uncapped.outboundPort, undefined);
  assert.equal(patient.grpcStatus, '0');
  // A generous deadline is capped at grpc_timeout_header_max.
  const capped = await setup('0.3s');
  const cut = await grpcCall(capped.outboundPort, '10S');
  assert.equal(cut.grpcStatus, '4');
  assert.ok(cut.ms < 1500, `capped at 300 ms (${cut.ms} ms)`);
});

test('grpc-timeout values as gRPC over HTTP/2 writes them: every unit, and malformed ones ignored', () => {
  assert.deepEqual(['1H', '2M', '3S', '250m', '1500u', '2500000n'].map(grpcTimeoutMs), [3_600_000, 120_000, 3000, 250, 1, 2]);
  assert.deepEqual(['', '10', '5s', '123456789S', '-1S', ' 1S'].map(grpcTimeoutMs), [undefined, undefined, undefined, undefined, undefined, undefined]);
  assert.equal(grpcTimeoutMs(['1S', '2S']), undefined);
});
