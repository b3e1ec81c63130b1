// HTTP/2 on both sides: a gRPC-style call (h2c prior knowledge, streamed
// body, trailers) through the outbound listener to an http2 upstream, and
// fault injection / mirroring on HTTP/1.1 routes.

import assert from 'node:assert/strict';
import http from 'node:http';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import { shadowAuthority } from '../../sidecar/proxy.ts';
import { TestMesh, eventually, get, instance, load, metric, policy, route, startApp, tap, withTimeout } from './harness.ts';

let mesh: TestMesh;
before(async () => {
  mesh = await TestMesh.start();
});
after(async () => {
  await mesh.close();
});

/** An h2c (gRPC) server on 127.0.0.1 answering each stream with `onStream`, closed with the mesh; resolves with its port. */
async function h2Server(onStream: (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => void): Promise<number> {
  const server = http2.createServer();
  server.on('stream', onStream);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  mesh.track(() => new Promise((r) => server.close(() => r())));
  return (server.address() as AddressInfo).port;
}

test('a gRPC call passes through the sidecar over h2c with its trailers', { timeout: 30_000 }, async () => {
  const port = await h2Server((stream, headers) => {
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => {
      stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
      stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0', 'grpc-message': 'ok' }));
      stream.end(Buffer.concat([Buffer.from(`${headers[':path']}|`), ...chunks]));
    });
  });
  mesh.model.update({
    services: [{ name: 'g-caller', namespace: 'default', ports: [{ port: 8000, protocol: 'http' }] }, { name: 'greeter', namespace: 'default', ports: [{ port: 50051, protocol: 'grpc' }] }],
    instances: [instance('greeter', port)],
    routes: [],
    destinationPolicies: [],
  });
  const caller = await mesh.sidecar('g-caller', 8000);
  const client = http2.connect(`http://127.0.0.1:${caller.outboundPort}`);
  const watching = await tap(caller.adminPort);
  try {
    const result = await new Promise<{ status: number; body: string; trailers: http2.IncomingHttpHeaders }>((resolve, reject) => {
      const req = client.request({ ':method': 'POST', ':path': '/helloworld.Greeter/SayHello', ':authority': 'greeter:50051', 'content-type': 'application/grpc', te: 'trailers' });
      let status = 0;
      const chunks: Buffer[] = [];
      req.on('response', (h) => (status = Number(h[':status'])));
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('trailers', (trailers) => req.on('end', () => resolve({ status, body: Buffer.concat(chunks).toString(), trailers })));
      req.on('error', reject);
      req.end(Buffer.from('\0\0\0\0\x05hello'));
    });
    assert.equal(result.status, 200);
    assert.equal(result.body, '/helloworld.Greeter/SayHello|\0\0\0\0\x05hello');
    assert.equal(result.trailers['grpc-status'], '0');
    assert.equal(result.trailers['grpc-message'], 'ok');
    // The access log's (and the span's) sizes: the streamed request body counts as any other (it used to be 0).
    await eventually(() => watching.lines.length === 1, 5000, 'the tap line');
    assert.deepEqual([watching.lines[0]!.bytes_received, watching.lines[0]!.bytes_sent], [10, result.body.length]);
  } finally {
    watching.close();
    client.close();
  }
});

test('a client that drops a gRPC stream mid-call: the upstream sees the stream reset, never a finished request', { timeout: 30_000 }, async () => {
  const outcomes: string[] = [];
  const port = await h2Server((stream) => {
    let bytes = 0;
    let aborted = false;
    stream.on('data', (c: Buffer) => (bytes += c.length));
    // node emits 'end' even for a reset stream, and 'aborted' just after: an end counts once a turn passed without a reset.
    stream.on('end', () => setImmediate(() => aborted || outcomes.push(`end after ${bytes} bytes`)));
    stream.on('aborted', () => {
      aborted = true;
      outcomes.push('aborted');
    });
    stream.on('error', () => undefined);
  });
  mesh.model.update({
    services: [{ name: 'uploader', namespace: 'default', ports: [{ port: 8000, protocol: 'http' }] }, { name: 'ingest', namespace: 'default', ports: [{ port: 50052, protocol: 'grpc' }] }],
    instances: [instance('ingest', port)],
    routes: [],
    destinationPolicies: [],
  });
  const caller = await mesh.sidecar('uploader', 8000);
  const client = http2.connect(`http://127.0.0.1:${caller.outboundPort}`);
  try {
    const req = client.request({ ':method': 'POST', ':path': '/ingest.Ingest/Upload', ':authority': 'ingest:50052', 'content-type': 'application/grpc', te: 'trailers' });
    req.on('error', () => undefined);
    req.write(Buffer.from('\0\0\0\0\x05part1'));
    await new Promise((r) => setTimeout(r, 100));
    // The connection drops mid-stream (no END_STREAM; node's stream.close() would send one before its RST_STREAM).
    client.destroy();
    await eventually(() => outcomes.length > 0, 5000, 'the upstream to see the cancel');
    await new Promise((r) => setTimeout(r, 100));
    // A partial client stream that looked finished would be committed by a server as a whole upload.
    assert.deepEqual(outcomes, ['aborted']);
  } finally {
    client.close();
  }
});

/** One call on `client`: its body, then (unless `keepOpen`) END_STREAM; resolves with grpc-status and the response body. */
function call(client: http2.ClientHttp2Session, path: string, authority: string, body: Buffer, keepOpen = false): Promise<{ grpcStatus: string | undefined; body: string }> {
  return new Promise((resolve, reject) => {
    const req = client.request({ ':method': 'POST', ':path': path, ':authority': authority, 'content-type': 'application/grpc', te: 'trailers' });
    let grpcStatus: string | undefined;
    const chunks: Buffer[] = [];
    req.on('response', (h) => (grpcStatus ??= h['grpc-status'] as string | undefined));
    req.on('trailers', (t) => (grpcStatus ??= t['grpc-status'] as string | undefined));
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      // A call still open on our side is cancelled once answered, so nothing outlives the test.
      if (keepOpen) req.close(http2.constants.NGHTTP2_CANCEL);
      resolve({ grpcStatus, body: Buffer.concat(chunks).toString('latin1') });
    });
    req.on('error', reject);
    if (keepOpen) req.write(body);
    else req.end(body);
  });
}

test('retry_on unavailable retries a gRPC call answered UNAVAILABLE, resending its body; a call still streaming is retried with what it sent so far and the rest; one past the buffer limit is not', { timeout: 30_000 }, async () => {
  const seen: string[] = [];
  const calls = new Map<string, number>();
  const port = await h2Server((stream, headers) => {
    const path = String(headers[':path']);
    const n = (calls.get(path) ?? 0) + 1;
    calls.set(path, n);
    stream.on('error', () => undefined);
    // Trailers-only UNAVAILABLE, at once: what a gRPC server that is shutting down answers.
    const unavailable = () => stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': '14', 'grpc-message': 'shutting down' }, { endStream: true });
    if (path === '/pay.Pay/Big') {
      // Answers once more than the buffer limit (1 MiB) has arrived: the copy for a retry has outgrown it.
      let bytes = 0;
      stream.on('data', (c: Buffer) => {
        bytes += c.length;
        if (bytes > 1.2 * 1024 * 1024 && !stream.headersSent) unavailable();
      });
      return;
    }
    if (n === 1) return unavailable();
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => {
      seen.push(Buffer.concat(chunks).toString('latin1'));
      stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
      stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
      stream.end(Buffer.concat(chunks));
    });
  });
  mesh.model.update({
    services: [{ name: 'shop', namespace: 'default', ports: [{ port: 8000, protocol: 'http' }] }, { name: 'pay', namespace: 'default', ports: [{ port: 50053, protocol: 'grpc' }] }],
    instances: [instance('pay', port)],
    routes: [route('pay', [{ destinations: [{ service: 'pay', weight: 1 }], retries: { attempts: 2, retryOn: ['unavailable'] } }])],
    destinationPolicies: [],
  });
  const caller = await mesh.sidecar('shop', 8000);
  const client = http2.connect(`http://127.0.0.1:${caller.outboundPort}`);
  try {
    const message = Buffer.from('\0\0\0\0\x07charge!');
    const r = await call(client, '/pay.Pay/Charge', 'pay:50053', message);
    assert.equal(r.grpcStatus, '0', 'the retry succeeded');
    assert.equal(r.body, message.toString('latin1'));
    assert.equal(calls.get('/pay.Pay/Charge'), 2);
    assert.deepEqual(seen, [message.toString('latin1')], 'the retry carried the whole body');
    assert.equal(await metric(caller.adminPort, 'envoy_cluster_upstream_rq_retry'), 1);

    // UNAVAILABLE comes while the client is still streaming: the retry gets the message sent so far, then the one after.
    const first = Buffer.from('\0\0\0\0\x05first');
    const second = Buffer.from('\0\0\0\0\x06second');
    const req = client.request({ ':method': 'POST', ':path': '/pay.Pay/Stream', ':authority': 'pay:50053', 'content-type': 'application/grpc', te: 'trailers' });
    let status: string | undefined;
    const body: Buffer[] = [];
    req.on('response', (h) => (status ??= h['grpc-status'] as string | undefined));
    req.on('trailers', (t) => (status ??= t['grpc-status'] as string | undefined));
    req.on('data', (c: Buffer) => body.push(c));
    const ended = new Promise((resolve, reject) => {
      req.on('end', resolve);
      req.on('error', reject);
    });
    req.write(first);
    await eventually(() => calls.get('/pay.Pay/Stream') === 2, 5000, 'the retry to reach the app');
    req.end(second);
    await withTimeout(ended, 5000, 'the streamed call to finish');
    assert.equal(status, '0', 'the retry answered the call');
    assert.equal(Buffer.concat(body).toString('latin1'), Buffer.concat([first, second]).toString('latin1'));
    assert.equal(seen.at(-1), Buffer.concat([first, second]).toString('latin1'), 'the retry carried both messages, in order');
    assert.equal(await metric(caller.adminPort, 'envoy_cluster_upstream_rq_retry'), 2);

    // Past the buffer limit before the answer: nothing complete to resend, so the caller gets the UNAVAILABLE.
    const big = client.request({ ':method': 'POST', ':path': '/pay.Pay/Big', ':authority': 'pay:50053', 'content-type': 'application/grpc', te: 'trailers' });
    let bigStatus: string | undefined;
    big.on('response', (h) => (bigStatus = h['grpc-status'] as string | undefined));
    big.on('error', () => undefined);
    // Read to its end: node keeps a reset stream (and the session's close) open until its response is consumed.
    big.resume();
    const chunk = Buffer.alloc(64 * 1024, 1);
    for (let i = 0; i < 24; i++) big.write(chunk);
    await eventually(() => bigStatus !== undefined, 5000, 'the big call to be answered');
    big.close(http2.constants.NGHTTP2_CANCEL);
    assert.equal(bigStatus, '14');
    assert.equal(calls.get('/pay.Pay/Big'), 1);
    assert.equal(await metric(caller.adminPort, 'envoy_cluster_retry_or_shadow_abandoned'), 1);
  } finally {
    await new Promise<void>((r) => client.close(() => r()));
  }
});

test('fault injection aborts and delays by percentage; mirroring copies requests to the shadow', { timeout: 30_000 }, async () => {
  const main = await startApp('main');
  const shadowHosts: string[] = [];
  const shadow = await startApp('shadow', (req, res) => {
    shadowHosts.push(req.headers.host ?? '');
    res.end('shadow');
  });
  mesh.track(() => main.close());
  mesh.track(() => shadow.close());
  mesh.model.update({
    services: [{ name: 'f-caller', namespace: 'default', ports: [{ port: 8000, protocol: 'http' }] }, { name: 'shop', namespace: 'default', ports: [{ port: 7800, protocol: 'http' }] }, { name: 'shop-next', namespace: 'default', ports: [{ port: 7801, protocol: 'http' }] }],
    instances: [instance('shop', main.port), instance('shop-next', shadow.port)],
    destinationPolicies: [],
    routes: [
      route('shop', [
        { name: 'broken', match: [{ path: { prefix: '/broken' } }], destinations: [{ service: 'shop', weight: 1 }], fault: { abort: { httpStatus: 418, percentage: 100 } } },
        { name: 'slow', match: [{ path: { prefix: '/slow' } }], destinations: [{ service: 'shop', weight: 1 }], fault: { delay: { fixedDelayMs: 300, percentage: 100 } } },
        { name: 'mirrored', destinations: [{ service: 'shop', weight: 1 }], mirror: { service: 'shop-next', percentage: 100 } },
      ]),
    ],
  });
  const caller = await mesh.sidecar('f-caller', 8000);
  const aborted = await get(caller.outboundPort, 'shop', '/broken');
  assert.equal(aborted.status, 418);
  assert.equal(aborted.body, 'fault filter abort');
  const t0 = Date.now();
  assert.equal((await get(caller.outboundPort, 'shop', '/slow')).status, 200);
  assert.ok(Date.now() - t0 >= 290, 'delayed by the fault filter');
  const before = main.hits;
  const res = await load(5, 1, () => get(caller.outboundPort, 'shop', '/'));
  assert.ok(res.every((r) => r.status === 200 && r.headers['x-app'] === 'main'), 'the caller sees the main response only');
  assert.equal(main.hits - before, 5);
  await eventually(() => shadowHosts.length === 5, 5000, 'five mirrored requests');
  assert.ok(shadowHosts.every((h) => h === 'shop-shadow'), `shadow authority: ${shadowHosts[0]}`);
});

test('a request the fault filter delayed is logged with flag DI (DI,FI when it was aborted too), as Envoy logs it', { timeout: 30_000 }, async () => {
  const app = await startApp('delayed');
  mesh.track(() => app.close());
  mesh.model.update({
    services: [{ name: 'di-caller', namespace: 'default', ports: [{ port: 8000, protocol: 'http' }] }, { name: 'lag', namespace: 'default', ports: [{ port: 7804, protocol: 'http' }] }],
    instances: [instance('lag', app.port)],
    destinationPolicies: [],
    routes: [
      route('lag', [
        { name: 'both', match: [{ path: { prefix: '/both' } }], destinations: [{ service: 'lag', weight: 1 }], fault: { delay: { fixedDelayMs: 50, percentage: 100 }, abort: { httpStatus: 503, percentage: 100 } } },
        { name: 'slow', destinations: [{ service: 'lag', weight: 1 }], fault: { delay: { fixedDelayMs: 50, percentage: 100 } } },
      ]),
    ],
  });
  const caller = await mesh.sidecar('di-caller', 8000);
  const watching = await tap(caller.adminPort, '?authority=lag&max=2');
  assert.equal((await get(caller.outboundPort, 'lag', '/')).status, 200);
  assert.equal((await get(caller.outboundPort, 'lag', '/both')).status, 503);
  await watching.ended;
  assert.deepEqual(watching.lines.map((l) => l.response_flags), ['DI', 'DI,FI']);
});

test("a shadow has the route's timeout, as Envoy's: a stalled mirror is given up at it, not 15 s later", { timeout: 30_000 }, async () => {
  const main = await startApp('main');
  let shadowCut = 0;
  const shadow = await startApp('stalled-shadow', (_req, res) => {
    res.on('close', () => res.writableEnded || shadowCut++);
  });
  mesh.track(() => main.close());
  mesh.track(() => shadow.close());
  mesh.model.update({
    services: [{ name: 'm-caller', namespace: 'default', ports: [{ port: 8000, protocol: 'http' }] }, { name: 'cart', namespace: 'default', ports: [{ port: 7802, protocol: 'http' }] }, { name: 'cart-next', namespace: 'default', ports: [{ port: 7803, protocol: 'http' }] }],
    instances: [instance('cart', main.port), instance('cart-next', shadow.port)],
    destinationPolicies: [],
    routes: [route('cart', [{ destinations: [{ service: 'cart', weight: 1 }], mirror: { service: 'cart-next', percentage: 100 }, timeoutMs: 300 }])],
  });
  const caller = await mesh.sidecar('m-caller', 8000);
  assert.equal((await get(caller.outboundPort, 'cart', '/')).status, 200);
  await eventually(() => shadow.hits === 1, 5000, 'the mirrored request');
  await eventually(() => shadowCut === 1, 5000, 'the shadow given up at the route timeout');
  // Envoy's shadowAppendedHost: before the port, and an IPv6 literal's colons are not one.
  assert.equal(shadowAuthority('cart:7802'), 'cart-shadow:7802');
  assert.equal(shadowAuthority('[::1]:8080'), '[::1]-shadow:8080');
  assert.equal(shadowAuthority('[::1]'), '[::1]-shadow');
});

test('a gRPC call is mirrored as it streams: the shadow has the first message while the client still holds the call open, then the rest; the caller gets the primary answer', { timeout: 30_000 }, async () => {
  /** A gRPC server that echoes the body; records what it got and under which authority. */
  const echo = (got: { authority: string; body: string }[], progress?: (bytes: number) => void) => {
    return h2Server((stream, headers) => {
      const chunks: Buffer[] = [];
      let bytes = 0;
      stream.on('data', (c: Buffer) => {
        chunks.push(c);
        progress?.((bytes += c.length));
      });
      stream.on('end', () => {
        got.push({ authority: String(headers[':authority']), body: Buffer.concat(chunks).toString('latin1') });
        stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
        stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
        stream.end(Buffer.concat(chunks));
      });
    });
  };
  const primary: { authority: string; body: string }[] = [];
  const shadow: { authority: string; body: string }[] = [];
  const primaryPort = await echo(primary);
  let shadowBytes = 0;
  const shadowPort = await echo(shadow, (n) => (shadowBytes = n));
  mesh.model.update({
    services: [
      { name: 'teller', namespace: 'default', ports: [{ port: 8000, protocol: 'http' }] },
      { name: 'ledger', namespace: 'default', ports: [{ port: 50054, protocol: 'grpc' }] },
      { name: 'ledger-next', namespace: 'default', ports: [{ port: 50055, protocol: 'grpc' }] },
    ],
    instances: [instance('ledger', primaryPort), instance('ledger-next', shadowPort)],
    routes: [route('ledger', [{ destinations: [{ service: 'ledger', weight: 1 }], mirror: { service: 'ledger-next', percentage: 100 } }])],
    destinationPolicies: [],
  });
  const caller = await mesh.sidecar('teller', 8000);
  const client = http2.connect(`http://127.0.0.1:${caller.outboundPort}`);
  try {
    const message = Buffer.from('\0\0\0\0\x06credit');
    const r = await call(client, '/ledger.Ledger/Post', 'ledger:50054', message);
    assert.equal(r.grpcStatus, '0');
    assert.equal(r.body, message.toString('latin1'));
    await eventually(() => shadow.length === 1, 5000, 'the mirrored call');
    assert.deepEqual(shadow, [{ authority: 'ledger-shadow:50054', body: message.toString('latin1') }]);
    assert.equal(primary.length, 1);

    // A call still streaming: the shadow gets its first message before the client has ended it.
    const first = Buffer.from('\0\0\0\0\x05first');
    const second = Buffer.from('\0\0\0\0\x06second');
    shadowBytes = 0;
    const req = client.request({ ':method': 'POST', ':path': '/ledger.Ledger/Stream', ':authority': 'ledger:50054', 'content-type': 'application/grpc', te: 'trailers' });
    req.on('error', () => undefined);
    const ended = new Promise((resolve) => {
      req.on('end', resolve);
      req.resume();
    });
    req.write(first);
    await eventually(() => shadowBytes >= first.length, 5000, 'the shadow to have the first message while the call is open');
    req.end(second);
    await withTimeout(ended, 5000, 'the streamed call to finish');
    await eventually(() => shadow.length === 2, 5000, 'the streamed shadow to end');
    assert.deepEqual(shadow[1], { authority: 'ledger-shadow:50054', body: Buffer.concat([first, second]).toString('latin1') });
  } finally {
    await new Promise<void>((r) => client.close(() => r()));
  }
});

test('a shadow that cannot keep up is dropped, never slowing the call: the primary gets all 4 MiB, the stalled shadow is reset and counted', { timeout: 30_000 }, async () => {
  let primaryBytes = 0;
  let shadowReset = false;
  const primaryPort = await h2Server((stream) => {
    stream.on('data', (c: Buffer) => (primaryBytes += c.length));
    stream.on('end', () => {
      stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
      stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
      stream.end();
    });
  });
  // Never reads: HTTP/2 flow control stops the shadow's bytes at its window, so they pile up in the sidecar.
  const shadowPort = await h2Server((stream) => {
    stream.pause();
    stream.on('error', () => undefined);
    stream.on('aborted', () => (shadowReset = true));
    stream.on('close', () => (shadowReset ||= stream.rstCode !== http2.constants.NGHTTP2_NO_ERROR));
  });
  mesh.model.update({
    services: [
      { name: 'importer', namespace: 'default', ports: [{ port: 8000, protocol: 'http' }] },
      { name: 'bulk', namespace: 'default', ports: [{ port: 50056, protocol: 'grpc' }] },
      { name: 'bulk-next', namespace: 'default', ports: [{ port: 50057, protocol: 'grpc' }] },
    ],
    instances: [instance('bulk', primaryPort), instance('bulk-next', shadowPort)],
    routes: [route('bulk', [{ destinations: [{ service: 'bulk', weight: 1 }], mirror: { service: 'bulk-next', percentage: 100 } }])],
    destinationPolicies: [],
  });
  const caller = await mesh.sidecar('importer', 8000);
  const client = http2.connect(`http://127.0.0.1:${caller.outboundPort}`);
  try {
    const req = client.request({ ':method': 'POST', ':path': '/bulk.Bulk/Load', ':authority': 'bulk:50056', 'content-type': 'application/grpc', te: 'trailers' });
    let status: string | undefined;
    req.on('trailers', (t) => (status = t['grpc-status'] as string | undefined));
    req.on('response', (h) => (status ??= h['grpc-status'] as string | undefined));
    const ended = new Promise((resolve, reject) => {
      req.on('end', resolve);
      req.on('error', reject);
      req.resume();
    });
    const chunk = Buffer.alloc(64 * 1024, 7);
    for (let i = 0; i < 64; i++) if (!req.write(chunk)) await new Promise((r) => req.once('drain', r));
    req.end();
    await withTimeout(ended, 15_000, 'the call to finish');
    assert.equal(status, '0');
    assert.equal(primaryBytes, 4 * 1024 * 1024, 'every byte reached the primary');
    assert.equal(await metric(caller.adminPort, 'envoy_cluster_retry_or_shadow_abandoned', { envoy_cluster_name: 'outbound|50056||bulk.default' }), 1);
    await eventually(() => shadowReset, 5000, 'the shadow stream reset');
  } finally {
    await new Promise<void>((r) => client.close(() => r()));
  }
});

test("retry_on refused-stream retries a stream the h2 upstream refused (RST_STREAM REFUSED_STREAM), as Envoy's; without it the reset reason says so", { timeout: 30_000 }, async () => {
  let streams = 0;
  const port = await h2Server((stream) => {
    streams++;
    // Every odd stream is refused before the server did anything with it, as a server at its stream limit or going away does.
    if (streams % 2 === 1) {
      stream.on('error', () => undefined);
      return stream.close(http2.constants.NGHTTP2_REFUSED_STREAM);
    }
    stream.respond({ ':status': 200 });
    stream.end('ok');
  });
  mesh.model.update({
    services: [{ name: 'r-caller', namespace: 'default', ports: [{ port: 8000, protocol: 'http' }] }, { name: 'refuser', namespace: 'default', ports: [{ port: 50056, protocol: 'grpc' }] }],
    instances: [instance('refuser', port)],
    routes: [route('refuser', [{ name: 'safe-retries', destinations: [{ service: 'refuser', weight: 1 }], retries: { attempts: 2, retryOn: ['connect-failure', 'refused-stream'] } }])],
    destinationPolicies: [],
  });
  const caller = await mesh.sidecar('r-caller', 8000);
  const retried = await get(caller.outboundPort, 'refuser:50056');
  assert.equal(retried.status, 200, retried.body);
  assert.equal(retried.body, 'ok');
  assert.equal(streams, 2);

  mesh.model.update({ routes: [route('refuser', [{ name: 'no-retries', destinations: [{ service: 'refuser', weight: 1 }], retries: { attempts: 2, retryOn: ['connect-failure'] } }])] });
  let refused: { status: number; body: string } | undefined;
  await eventually(async () => (refused = await get(caller.outboundPort, 'refuser:50056')).status === 503, 5000, 'a refused stream not retried');
  assert.equal(refused!.body, 'upstream connect error or disconnect/reset before headers. reset reason: remote refused stream reset');
});

test('health checks of an http2 (gRPC) service go over h2c, as the translator asks (codec_client_type HTTP2): the cluster is accepted and its hosts checked', { timeout: 30_000 }, async () => {
  const checks: string[] = [];
  let healthy = true;
  const port = await h2Server((stream, headers) => {
    if (headers[':path'] === '/healthz') {
      checks.push(String(headers[':authority']));
      stream.respond({ ':status': healthy ? 200 : 503 });
      return stream.end();
    }
    stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': '0' });
    stream.end();
  });
  mesh.model.update({
    services: [{ name: 'hc2-caller', namespace: 'default', ports: [{ port: 8000, protocol: 'http' }] }, { name: 'checked', namespace: 'default', ports: [{ port: 50057, protocol: 'grpc' }] }],
    instances: [instance('checked', port)],
    routes: [],
    destinationPolicies: [policy('checked', { healthCheck: { path: '/healthz', intervalMs: 100, timeoutMs: 500, healthyThreshold: 1, unhealthyThreshold: 1 } })],
  });
  const caller = await mesh.sidecar('hc2-caller', 8000);
  await eventually(() => checks.length >= 2, 5000, 'checks over h2c');
  assert.equal(checks[0], 'checked.default', "the service's host as :authority (http_health_check.host)");
  const labels = { envoy_cluster_name: 'outbound|50057||checked.default' };
  assert.equal(await metric(caller.adminPort, 'envoy_cluster_membership_healthy', labels), 1);
  healthy = false;
  await eventually(async () => (await metric(caller.adminPort, 'envoy_cluster_membership_healthy', labels)) === 0, 5000, 'the host failed its check');
});

test('a gRPC call answered while its client still streams: the answer arrives whole, then the sidecar resets the stream with NO_ERROR (as Envoy), the upstream stream is reset (CANCEL)', { timeout: 30_000 }, async () => {
  const upstream: string[] = [];
  const port = await h2Server((stream, headers) => {
    stream.on('error', () => undefined);
    stream.on('data', () => undefined);
    // How the stream closed: with the response sent, node reports a request END_STREAM and a reset both as an end;
    // the code tells them apart (0: the request ended, or a NO_ERROR reset).
    stream.on('close', () => upstream.push(`${headers[':path']} closed with code ${stream.rstCode}`));
    if (headers[':path'] === '/guard.Guard/Deny') {
      // Trailers-only PERMISSION_DENIED at once, the request body unread (an auth check that answers early).
      stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': '7', 'grpc-message': 'denied' }, { endStream: true });
      return;
    }
    // Answers 2 MiB (past every flow-control window) and OK trailers after the first message, the call still open.
    stream.once('data', () => {
      stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
      stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
      stream.end(Buffer.alloc(2 * 1024 * 1024, 3));
    });
  });
  mesh.model.update({
    services: [{ name: 'door', namespace: 'default', ports: [{ port: 8000, protocol: 'http' }] }, { name: 'guard', namespace: 'default', ports: [{ port: 50058, protocol: 'grpc' }] }],
    instances: [instance('guard', port)],
    routes: [],
    destinationPolicies: [],
  });
  const caller = await mesh.sidecar('door', 8000);
  const client = http2.connect(`http://127.0.0.1:${caller.outboundPort}`);
  /** A call whose client sends one message and never ends its side: what it got, and how its stream closed. */
  const openCall = (path: string) =>
    new Promise<{ grpcStatus: string | undefined; bytes: number; rstCode: number }>((resolve, reject) => {
      const req = client.request({ ':method': 'POST', ':path': path, ':authority': 'guard:50058', 'content-type': 'application/grpc', te: 'trailers' });
      let grpcStatus: string | undefined;
      let bytes = 0;
      req.on('response', (h) => (grpcStatus ??= h['grpc-status'] as string | undefined));
      req.on('trailers', (t) => (grpcStatus ??= t['grpc-status'] as string | undefined));
      req.on('data', (c: Buffer) => (bytes += c.length));
      req.on('error', reject);
      req.on('close', () => resolve({ grpcStatus, bytes, rstCode: req.rstCode ?? -1 }));
      req.write(Buffer.from('\0\0\0\0\x05hello'));
    });
  try {
    const denied = await withTimeout(openCall('/guard.Guard/Deny'), 5000, 'the denied call to be closed by the sidecar');
    assert.deepEqual(denied, { grpcStatus: '7', bytes: 0, rstCode: http2.constants.NGHTTP2_NO_ERROR });
    const early = await withTimeout(openCall('/guard.Guard/Dump'), 10_000, 'the early answer to be closed by the sidecar');
    assert.deepEqual(early, { grpcStatus: '0', bytes: 2 * 1024 * 1024, rstCode: http2.constants.NGHTTP2_NO_ERROR }, 'the whole answer and its trailers before the reset');
    await eventually(() => upstream.length === 2, 5000, 'the upstream streams to be reset');
    assert.deepEqual(upstream.sort(), ['/guard.Guard/Deny closed with code 8', '/guard.Guard/Dump closed with code 8'], 'reset (CANCEL) while the client still held its call open');
    assert.equal(await metric(caller.adminPort, 'envoy_http_downstream_rq_response_before_rq_complete'), 2);
  } finally {
    client.destroy();
  }
});

/** RST_STREAM(code) alone, as a Go or C++ server resets a stream (node's close() would send END_STREAM before it). */
function rst(stream: http2.ServerHttp2Stream, code: number): void {
  const key = Object.getOwnPropertySymbols(stream).find((k) => k.description === 'kHandle')!;
  (stream as unknown as Record<symbol, { rstStream(code: number): void }>)[key].rstStream(code);
}

test("an HTTP/2 upstream's RST_STREAM: REFUSED_STREAM is retried under retry_on refused-stream, a reset before the headers is a 503 `remote reset` (UR), and one mid-body resets the client's response instead of ending it", { timeout: 30_000 }, async () => {
  const calls = new Map<string, number>();
  const port = await h2Server((stream, headers) => {
    const path = String(headers[':path']);
    const n = (calls.get(path) ?? 0) + 1;
    calls.set(path, n);
    stream.on('error', () => undefined);
    if (path === '/refused-once' && n === 1) return rst(stream, http2.constants.NGHTTP2_REFUSED_STREAM);
    if (path === '/refused') return rst(stream, http2.constants.NGHTTP2_REFUSED_STREAM);
    if (path === '/reset') return rst(stream, http2.constants.NGHTTP2_INTERNAL_ERROR);
    stream.respond({ ':status': 200, 'content-type': 'text/plain' });
    if (path === '/cut') {
      // Half the body, then the upstream gives up on the stream: what the client got must not look complete.
      stream.write('x'.repeat(1000));
      setTimeout(() => rst(stream, http2.constants.NGHTTP2_INTERNAL_ERROR), 50);
      return;
    }
    stream.end('ok');
  });
  mesh.model.update({
    services: [{ name: 'reader', namespace: 'default', ports: [{ port: 8000, protocol: 'http' }] }, { name: 'store', namespace: 'default', ports: [{ port: 50059, protocol: 'http2' }] }],
    instances: [instance('store', port)],
    routes: [route('store', [{ destinations: [{ service: 'store', weight: 1 }], retries: { attempts: 1, retryOn: ['refused-stream'] } }])],
    destinationPolicies: [],
  });
  const caller = await mesh.sidecar('reader', 8000);
  const watching = await tap(caller.adminPort);
  try {
    const ok = await get(caller.outboundPort, 'store:50059', '/refused-once');
    assert.deepEqual([ok.status, ok.body, calls.get('/refused-once')], [200, 'ok', 2], 'the refused stream was retried');
    const refused = await get(caller.outboundPort, 'store:50059', '/refused');
    assert.equal(refused.status, 503);
    assert.equal(refused.body, 'upstream connect error or disconnect/reset before headers. reset reason: remote refused stream reset');
    assert.equal(calls.get('/refused'), 2);
    const reset = await get(caller.outboundPort, 'store:50059', '/reset');
    assert.equal(reset.status, 503);
    assert.equal(reset.body, 'upstream connect error or disconnect/reset before headers. reset reason: remote reset');
    assert.equal(calls.get('/reset'), 1, 'refused-stream does not retry other resets');
    const cut = await new Promise<{ status: number; bytes: number; outcome: string }>((resolve) => {
      const req = http.get({ host: '127.0.0.1', port: caller.outboundPort, path: '/cut', headers: { host: 'store:50059' } }, (res) => {
        let bytes = 0;
        res.on('data', (c: Buffer) => (bytes += c.length));
        res.on('end', () => resolve({ status: res.statusCode!, bytes, outcome: res.complete ? 'complete' : 'cut short' }));
        res.on('error', () => resolve({ status: res.statusCode!, bytes, outcome: 'cut short' }));
      });
      req.on('error', () => undefined);
    });
    assert.deepEqual(cut, { status: 200, bytes: 1000, outcome: 'cut short' });
    await eventually(() => watching.lines.length === 4, 5000, 'four tap lines');
    assert.deepEqual(watching.lines.map((l) => [l.path, l.response_code, l.response_flags]), [
      ['/refused-once', 200, '-'],
      // Refused again on its one retry: the retries ran out on a reset the policy retries (URX, as Envoy's router).
      ['/refused', 503, 'UR,URX'],
      ['/reset', 503, 'UR'],
      ['/cut', 200, 'UR'],
    ]);
  } finally {
    watching.close();
  }
});
