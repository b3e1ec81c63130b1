// The fault filter's response_rate_limit on a live sidecar, as Envoy's fault_filter.cc sets it up
// (maybeSetupResponseRateLimit) and its StreamRateLimiter paces the body: fixed_limit and header_limit
// (x-envoy-fault-throughput-response, and its -percentage header), the runtime's
// fault.http.rate_limit.response_percent, the counter http.<prefix>.fault.response_rl_injected and the active fault
// the paced stream holds until it ends. Elapsed times are checked only as lower bounds the limit itself implies.

import assert from 'node:assert/strict';
import http from 'node:http';
import http2 from 'node:http2';
import { after, test } from 'node:test';
import { FILL_INTERVAL_MS, StreamRateLimiter } from '../../sidecar/rate-limiter.ts';
import { TestMesh, eventually, instance, meshEditingFaults, metric, route, runtimeModify as modify, service, startApp, type TestApp } from './harness.ts';

const closers: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of closers.reverse()) await c().catch(() => undefined);
});

const BODY = Buffer.alloc(20 * 1024, 'abcdefghijklmnopqrstuvwxyz0123456789');

async function app(): Promise<TestApp> {
  // 20 KiB in 1 KiB writes, so the sidecar gets it in pieces as a real app's body comes.
  const a = await startApp('shop', (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(BODY.length), 'x-served': 'now' });
    for (let i = 0; i < BODY.length; i += 1024) res.write(BODY.subarray(i, i + 1024));
    res.end();
  });
  closers.push(() => a.close());
  return a;
}

async function mesh(edit: (fault: Record<string, any>, routeName: string) => void): Promise<TestMesh> {
  const m = await meshEditingFaults(edit);
  closers.push(() => m.close());
  return m;
}

interface Timed {
  status: number;
  body: Buffer;
  /** ms from the request to its response headers, and to its last byte. */
  headersMs: number;
  ms: number;
  /** Body bytes received by the time the headers had been received plus 150 ms. */
  earlyBytes: number;
}

function fetchTimed(port: number, path: string, headers: Record<string, string>): Promise<Timed> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const req = http.get({ host: '127.0.0.1', port, path, headers: { host: 'shop', ...headers }, agent: false }, (res) => {
      const headersMs = performance.now() - t0;
      const chunks: Buffer[] = [];
      let received = 0;
      let earlyBytes = -1;
      const early = setTimeout(() => (earlyBytes = received), 150);
      res.on('data', (c: Buffer) => {
        chunks.push(c);
        received += c.length;
      });
      res.on('end', () => {
        clearTimeout(early);
        resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks), headersMs, ms: performance.now() - t0, earlyBytes: earlyBytes < 0 ? received : earlyBytes });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
  });
}

const byHeader = (name: string) => ({ match: [{ headers: [{ name: 'x-test', match: { exact: name } }] }] });

test('response_rate_limit paces the response body at limit_kbps (headers at once, the body whole), counts response_rl_injected and holds an active fault; header_limit and the runtime percent decide per request', { timeout: 90_000 }, async () => {
  const shop = await app();
  const m = await mesh((f, name) => {
    delete f.abort;
    delete f.delay;
    if (name === 'default/shop/fixed') f.response_rate_limit = { fixed_limit: { limit_kbps: '10' }, percentage: { numerator: 100 } };
    else f.response_rate_limit = { header_limit: {}, percentage: { numerator: 100 } };
  });
  m.model.update({
    services: [service('caller', 8000), service('shop', 7000)],
    instances: [instance('shop', shop.port)],
    routes: [route('shop', [
      { name: 'fixed', ...byHeader('fixed'), destinations: [{ service: 'shop', weight: 1 }], fault: { delay: { fixedDelayMs: 1, percentage: 100 } } },
      { name: 'asked', destinations: [{ service: 'shop', weight: 1 }], fault: { delay: { fixedDelayMs: 1, percentage: 100 } } },
    ])],
  });
  const sc = await m.sidecar('caller', 8000);
  const injected = () => metric(sc.adminPort, 'envoy_http_fault_response_rl_injected', { envoy_http_conn_manager_prefix: 'outbound' });
  const active = () => metric(sc.adminPort, 'envoy_http_fault_active_faults', { envoy_http_conn_manager_prefix: 'outbound' });

  // fixed_limit 10 KiB/s over 20 KiB: the bucket starts with one 50 ms fill interval's worth (512 bytes), so the
  // rest takes (20480 - 512) / 10240 s, at least 1.95 s less one interval of timer slack.
  const fixed = await fetchTimed(sc.outboundPort, '/', { 'x-test': 'fixed' });
  assert.equal(fixed.status, 200);
  assert.ok(fixed.body.equals(BODY), 'the paced body arrives whole and in order');
  assert.ok(fixed.ms >= 1950 - FILL_INTERVAL_MS, `20 KiB at 10 KiB/s took ${fixed.ms.toFixed(0)} ms`);
  assert.ok(fixed.headersMs < fixed.ms - 1000, `the headers (${fixed.headersMs.toFixed(0)} ms) went out before the paced body (${fixed.ms.toFixed(0)} ms)`);
  // 150 ms after the headers, a 10 KiB/s limit has let out about 2 KiB, nowhere near the 20 KiB the app wrote at once.
  assert.ok(fixed.earlyBytes < 6 * 1024, `${fixed.earlyBytes} bytes within 150 ms of the headers`);
  assert.equal(await injected(), 1);
  await eventually(async () => (await active()) === 0, 5000, 'the paced stream gave its active fault back when it ended');

  // An HTTP/2 client's response is paced the same way (the headers are not corked behind the first paced bytes).
  const session = http2.connect(`http://127.0.0.1:${sc.outboundPort}`);
  const h2 = await new Promise<{ status: number; body: Buffer; headersMs: number; ms: number }>((resolve, reject) => {
    const t0 = performance.now();
    const req = session.request({ ':path': '/', ':authority': 'shop', 'x-test': 'fixed' });
    let headersMs = 0;
    let status = 0;
    const chunks: Buffer[] = [];
    req.on('response', (h) => {
      headersMs = performance.now() - t0;
      status = Number(h[':status']);
    });
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve({ status, body: Buffer.concat(chunks), headersMs, ms: performance.now() - t0 }));
    req.on('error', reject);
    req.end();
  });
  session.close();
  assert.equal(h2.status, 200);
  assert.ok(h2.body.equals(BODY));
  assert.ok(h2.ms >= 1950 - FILL_INTERVAL_MS, `over HTTP/2: ${h2.ms.toFixed(0)} ms`);
  assert.ok(h2.headersMs < h2.ms - 1000, `over HTTP/2 the headers (${h2.headersMs.toFixed(0)} ms) went out before the paced body`);
  assert.equal(await injected(), 2);

  // header_limit: no header, an invalid one or 0 is no limit (no counter); a value is the limit in KiB/s.
  for (const h of [{}, { 'x-envoy-fault-throughput-response': 'fast' }, { 'x-envoy-fault-throughput-response': '0' }] as Record<string, string>[]) {
    const r = await fetchTimed(sc.outboundPort, '/', h);
    assert.ok(r.body.equals(BODY));
  }
  assert.equal(await injected(), 2, 'no limit without a valid non-zero header');
  const asked = await fetchTimed(sc.outboundPort, '/', { 'x-envoy-fault-throughput-response': '20' });
  assert.ok(asked.body.equals(BODY));
  // (20480 - 1024) / 20480 s.
  assert.ok(asked.ms >= 950 - FILL_INTERVAL_MS, `20 KiB at 20 KiB/s took ${asked.ms.toFixed(0)} ms`);
  assert.equal(await injected(), 3);
  // The percentage header lowers the configured 100% (0: never); the runtime's key replaces the percentage.
  await fetchTimed(sc.outboundPort, '/', { 'x-envoy-fault-throughput-response': '20', 'x-envoy-fault-throughput-response-percentage': '0' });
  assert.equal(await injected(), 3);
  await modify(sc.adminPort, 'fault.http.rate_limit.response_percent=0');
  await fetchTimed(sc.outboundPort, '/', { 'x-test': 'fixed' });
  assert.equal(await injected(), 3, 'fault.http.rate_limit.response_percent=0 turns it off');
  await modify(sc.adminPort, 'fault.http.rate_limit.response_percent=');

  // A client that leaves mid-body ends the paced stream: its active fault is given back, nothing more is written.
  const left = await new Promise<number>((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port: sc.outboundPort, headers: { host: 'shop', 'x-test': 'fixed' }, agent: false }, (res) => {
      let n = 0;
      res.on('data', (c: Buffer) => (n += c.length));
      setTimeout(() => {
        req.destroy();
        resolve(n);
      }, 300);
    });
    req.on('error', () => undefined);
    setTimeout(() => reject(new Error('no response headers')), 5000);
  });
  assert.ok(left < BODY.length, `the client left after ${left} of ${BODY.length} bytes`);
  assert.equal(await injected(), 4);
  await eventually(async () => (await active()) === 0, 5000, 'the abandoned paced stream gave its active fault back');
});

test('the rate limiter writes one fill interval at first, then what the tokens allow, and tells the reader to stop above the watermark and go on below half of it', async () => {
  const out: { at: number; n: number }[] = [];
  let resumed = 0;
  const t0 = performance.now();
  // 1 KiB/s: 51 bytes at first, then about 51 bytes per 50 ms tick.
  const rl = new StreamRateLimiter(1, 400, (c) => out.push({ at: performance.now() - t0, n: c.length }), () => resumed++);
  assert.equal(rl.write(Buffer.alloc(300)), true, 'below the watermark: go on reading');
  assert.equal(rl.write(Buffer.alloc(300)), false, '600 bytes buffered, above 400: stop');
  const drained = new Promise<void>((r) => rl.whenDrained(r));
  await drained;
  const total = out.reduce((a, x) => a + x.n, 0);
  assert.equal(total, 600);
  // One 50 ms interval of 1024 B/s in whole bytes (51), and what refilled in the millisecond or two before the timer ran.
  assert.ok(out[0]!.n >= 51 && out[0]!.n <= 70, `first write ${out[0]!.n} bytes`);
  // 549 bytes after the first 51 at 1024 B/s: no sooner than ~536 ms.
  assert.ok(out.at(-1)!.at >= 500, `600 bytes at 1 KiB/s done after ${out.at(-1)!.at.toFixed(0)} ms`);
  assert.equal(resumed, 1, 'resumed once, when the buffer fell below 200 bytes');
  // No write bigger than the tokens that could have built up since the previous one (plus the first interval's).
  for (let i = 1; i < out.length; i++) assert.ok(out[i]!.n <= Math.ceil(((out[i]!.at - out[i - 1]!.at) * 1024) / 1000) + 52, `write ${i}: ${out[i]!.n} bytes after ${(out[i]!.at - out[i - 1]!.at).toFixed(0)} ms`);
  // Destroyed: buffered bytes are dropped, and a drain wait returns at once.
  const gone = new StreamRateLimiter(1, 400, () => assert.fail('nothing is written after destroy'), () => undefined);
  gone.write(Buffer.alloc(1000));
  gone.destroy();
  await new Promise<void>((r) => gone.whenDrained(r));
  await new Promise((r) => setTimeout(r, 120));
});

test("a Route's fault.responseRateLimit (weft's own API, unedited translation) paces the body on a live sidecar, for its share of requests only", { timeout: 60_000 }, async () => {
  const shop = await app();
  const m = await TestMesh.start();
  closers.push(() => m.close());
  m.model.update({
    services: [service('caller', 8000), service('shop', 7000)],
    instances: [instance('shop', shop.port)],
    routes: [route('shop', [
      { name: 'slow', ...byHeader('slow'), destinations: [{ service: 'shop', weight: 1 }], fault: { responseRateLimit: { limitKbps: 10, percentage: 100 } } },
      { name: 'never', destinations: [{ service: 'shop', weight: 1 }], fault: { responseRateLimit: { limitKbps: 1, percentage: 0 } } },
    ])],
  });
  const sc = await m.sidecar('caller', 8000);
  const injected = () => metric(sc.adminPort, 'envoy_http_fault_response_rl_injected', { envoy_http_conn_manager_prefix: 'outbound' });

  const slow = await fetchTimed(sc.outboundPort, '/', { 'x-test': 'slow' });
  assert.equal(slow.status, 200);
  assert.ok(slow.body.equals(BODY));
  assert.ok(slow.ms >= 1950 - FILL_INTERVAL_MS, `20 KiB at limitKbps 10 took ${slow.ms.toFixed(0)} ms`);
  assert.ok(slow.headersMs < slow.ms - 1000, 'the headers are not held back');
  assert.equal(await injected(), 1);

  // percentage 0: the other rule's 1 KiB/s (20 s for this body) never applies.
  const fast = await fetchTimed(sc.outboundPort, '/', {});
  assert.ok(fast.body.equals(BODY));
  assert.ok(fast.ms < 10_000, `unlimited: ${fast.ms.toFixed(0)} ms`);
  assert.equal(await injected(), 1);
});
