// Request bodies past the sidecar's buffer limit (1 MiB, Envoy's default
// per-connection buffer limit) stream to the app as they arrive instead of
// being held whole, with retries and mirroring off for that request, as
// Envoy's router does when a body overflows its retry buffer.

import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import type http from 'node:http';
import http2 from 'node:http2';
import { after, before, test } from 'node:test';
import { DEFAULT_BUFFER_LIMIT } from '../../sidecar/config.ts';
import type { Received, SinkApp } from './harness.ts';
import { MiB, TestMesh, freePort, get, instance, metric, route, service, startSinkApp, upload, withTimeout } from './harness.ts';

let mesh: TestMesh;
before(async () => {
  mesh = await TestMesh.start();
});

async function sinkApp(handler?: (req: http.IncomingMessage, res: http.ServerResponse, hit: number) => boolean, progress?: (bytes: number) => void): Promise<SinkApp> {
  const app = await startSinkApp(handler, progress);
  mesh.track(() => app.close());
  return app;
}
after(async () => {
  await mesh.close();
});

test('a 40 MiB upload streams through two sidecars: the app has the first MiBs before the client sends the rest, and every byte arrives', { timeout: 60_000 }, async () => {
  let sawTwo: () => void = () => undefined;
  const twoMiB = new Promise<void>((r) => (sawTwo = r));
  const app = await sinkApp(undefined, (bytes) => {
    if (bytes >= 2 * MiB) sawTwo();
  });
  const inbound = await freePort();
  mesh.model.update({ services: [service('uploader', 8000), service('store', 9000)], instances: [instance('store', inbound)], routes: [], destinationPolicies: [] });
  await mesh.sidecar('store', app.port, { inboundPort: inbound });
  const caller = await mesh.sidecar('uploader', 8000);

  // The client holds back everything after 3 MiB until the app has seen 2 MiB: a sidecar that waits for the whole body never gets it.
  const res = await withTimeout(upload(caller.outboundPort, 'store', 40, { pauseAfter: 3, resumeWhen: twoMiB }), 30_000, 'the upload');
  assert.equal(res.status, 200, res.body);
  const got = JSON.parse(res.body) as Received;
  assert.equal(got.bytes, res.sent.bytes);
  assert.equal(got.sha256, res.sent.sha256);
  assert.equal(got.contentLength, String(40 * MiB), 'the length the client sent reaches the app');
  assert.equal(got.transferEncoding, undefined);
  assert.equal(app.hits, 1);
});

test('a chunked upload past the buffer limit arrives whole, chunked', { timeout: 30_000 }, async () => {
  const app = await sinkApp();
  mesh.model.update({ services: [service('chunker', 8000), service('bucket', 9100)], instances: [instance('bucket', app.port)], routes: [], destinationPolicies: [] });
  const caller = await mesh.sidecar('chunker', 8000);
  const res = await upload(caller.outboundPort, 'bucket', 3, { chunked: true });
  assert.equal(res.status, 200, res.body);
  const got = JSON.parse(res.body) as Received;
  assert.deepEqual([got.bytes, got.sha256, got.transferEncoding, got.contentLength], [res.sent.bytes, res.sent.sha256, 'chunked', undefined]);
});

test('a body within the buffer limit is retried; one past it goes once and its 503 reaches the caller (retry_or_shadow_abandoned)', { timeout: 30_000 }, async () => {
  // Odd hits answer 503 after reading the body.
  const app = await sinkApp((req, res, hit) => {
    if (hit % 2 === 0) return false;
    req.resume();
    req.on('end', () => {
      res.statusCode = 503;
      res.end('unavailable');
    });
    return true;
  });
  mesh.model.update({
    services: [service('writer', 8000), service('ledger', 9200)],
    instances: [instance('ledger', app.port)],
    destinationPolicies: [],
    routes: [route('ledger', [{ destinations: [{ service: 'ledger', weight: 1 }], retries: { attempts: 2, retryOn: ['5xx'], perTryTimeoutMs: 10_000 } }])],
  });
  const caller = await mesh.sidecar('writer', 8000);
  const cluster = { envoy_cluster_name: 'outbound|9200||ledger.default' };

  const small = await get(caller.outboundPort, 'ledger', '/small', { method: 'POST', body: 'x'.repeat(64 * 1024) });
  assert.equal(small.status, 200, 'the 503 was retried with the buffered body');
  assert.equal(JSON.parse(small.body).bytes, 64 * 1024);
  assert.equal(app.hits, 2);

  const big = await upload(caller.outboundPort, 'ledger', Math.ceil((2 * DEFAULT_BUFFER_LIMIT) / MiB));
  assert.equal(big.status, 503, 'no retry: the body was not kept');
  assert.equal(big.body, 'unavailable');
  assert.equal(app.hits, 3);
  assert.equal(await metric(caller.adminPort, 'envoy_cluster_retry_or_shadow_abandoned', cluster), 1);
  assert.equal(await metric(caller.adminPort, 'envoy_cluster_upstream_rq_retry', cluster), 1);
});

test('a client that goes away mid-upload: the app sees its request cut short and the sidecar serves the next one', { timeout: 30_000 }, async () => {
  const app = await sinkApp();
  mesh.model.update({ services: [service('quitter', 8000), service('vault', 9300)], instances: [instance('vault', app.port)], routes: [], destinationPolicies: [] });
  const caller = await mesh.sidecar('quitter', 8000);
  await upload(caller.outboundPort, 'vault', 8, { abortAfter: 4 });
  await withTimeout(
    (async () => {
      while (app.aborted < 1) await new Promise((r) => setTimeout(r, 20));
    })(),
    10_000,
    'the app to see the request cut short',
  );
  const next = await upload(caller.outboundPort, 'vault', 2);
  assert.equal(next.status, 200);
  assert.equal((JSON.parse(next.body) as Received).sha256, next.sent.sha256);
});

test('over HTTP/2 (h2c) too: a 6 MiB upload streams to an HTTP/1.1 app with its length', { timeout: 30_000 }, async () => {
  const app = await sinkApp();
  mesh.model.update({ services: [service('h2-client', 8000), service('depot', 9400)], instances: [instance('depot', app.port)], routes: [], destinationPolicies: [] });
  const caller = await mesh.sidecar('h2-client', 8000);
  const session = http2.connect(`http://127.0.0.1:${caller.outboundPort}`);
  mesh.track(async () => session.close());
  const hash = createHash('sha256');
  const req = session.request({ ':method': 'POST', ':path': '/put', ':authority': 'depot', 'content-type': 'application/octet-stream', 'content-length': String(6 * MiB) });
  const answer = new Promise<{ status: number; body: string }>((resolve, reject) => {
    let status = 0;
    let body = '';
    req.setEncoding('utf8');
    req.on('response', (h) => (status = Number(h[':status'])));
    req.on('data', (c: string) => (body += c));
    req.on('end', () => resolve({ status, body }));
    req.on('error', reject);
  });
  for (let i = 0; i < 6; i++) {
    const chunk = randomBytes(MiB);
    hash.update(chunk);
    if (!req.write(chunk)) await new Promise((r) => req.once('drain', r));
  }
  req.end();
  const res = await answer;
  assert.equal(res.status, 200, res.body);
  const got = JSON.parse(res.body) as Received;
  assert.deepEqual([got.bytes, got.sha256, got.contentLength], [6 * MiB, hash.digest('hex'), String(6 * MiB)]);
});

test('an h2 client whose connection drops mid-body: the app never gets the part as a complete request (buffered or streamed)', { timeout: 30_000 }, async () => {
  const app = await sinkApp();
  mesh.model.update({ services: [service('h2-quitter', 8000), service('vault', 9500)], instances: [instance('vault', app.port)], routes: [], destinationPolicies: [] });
  const caller = await mesh.sidecar('h2-quitter', 8000);
  // 64 KiB stays within the buffer limit (read whole first); 3 MiB streams past it.
  for (const sent of [64 * 1024, 3 * MiB]) {
    const session = http2.connect(`http://127.0.0.1:${caller.outboundPort}`);
    session.on('error', () => undefined);
    const req = session.request({ ':method': 'POST', ':path': '/put', ':authority': 'vault', 'content-type': 'application/octet-stream' });
    req.on('error', () => undefined);
    req.write(randomBytes(sent));
    await new Promise((r) => setTimeout(r, 150));
    // The connection drops mid-body: no END_STREAM.
    session.destroy();
    await new Promise((r) => setTimeout(r, 300));
  }
  // node still ends such a request (just after 'aborted'): taken for the whole body, the part reached the app as a complete request.
  assert.equal(app.hits - app.aborted, 0, `${app.hits} request(s) reached the app, ${app.aborted} of them cut short`);
});

test("the route timeout starts once the request has arrived whole, as Envoy's: a streamed upload slower than it still gets its answer", { timeout: 30_000 }, async () => {
  const app = await sinkApp();
  mesh.model.update({
    services: [service('slow-up-caller', 8000), service('slow-up', 7000)],
    instances: [instance('slow-up', app.port)],
    routes: [route('slow-up', [{ destinations: [{ service: 'slow-up', weight: 1 }], timeoutMs: 500 }])],
  });
  const caller = await mesh.sidecar('slow-up-caller', 8000);
  // 3 MiB, past the buffer limit so it streams; the client stops for 1.5 s after 2 MiB, three route timeouts.
  const res = await upload(caller.outboundPort, 'slow-up', 3, { pauseAfter: 2, resumeWhen: new Promise((r) => setTimeout(r, 1500)) });
  assert.equal(res.status, 200, res.body);
  const got = JSON.parse(res.body) as Received;
  assert.equal(got.bytes, res.sent.bytes);
  assert.equal(got.sha256, res.sent.sha256);
  assert.equal(await metric(caller.adminPort, 'envoy_cluster_upstream_rq_timeout', { envoy_cluster_name: 'outbound|7000||slow-up.default' }), 0);
});
