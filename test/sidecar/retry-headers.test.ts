// Retries decided by headers, as Envoy's RetryStateImpl decides them
// (source/common/router/retry_state_impl.cc): `retry_on: retriable-headers`
// retries a response matching one of the policy's `retriable_headers` (or a
// name the request lists in x-envoy-retriable-header-names), and
// `retriable_request_headers` lets only a request matching one of them be
// retried at all; `envoy-ratelimited` retries an upstream Envoy's rate
// limited answer, and `rate_limited_retry_back_off` waits what its reset
// header (Retry-After) says. weft's translator sets none of these; an Envoy
// configuration may, and the sidecar honours it. Driven directly with the
// golden minimal config and a real app on loopback.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { after, before, test } from 'node:test';
import { DataPlane } from '../../sidecar/dataplane.ts';
import { resetIntervalMs } from '../../sidecar/forward.ts';
import { SidecarStats } from '../../sidecar/stats.ts';
import { get } from './harness.ts';

type Json = Record<string, any>;
const REVIEWS = 'outbound|9080||reviews.default';
const golden = (file: string): { name: string; value: Json }[] => JSON.parse(readFileSync(new URL(`../golden/minimal-http/${file}`, import.meta.url), 'utf8'));
const resources = (file: string, patch: (v: Json) => Json = (v) => v) => golden(file).map((r) => ({ name: r.name, version: 'v1', value: patch(structuredClone(r.value)) }));

const closers: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of closers.reverse()) await c();
});

/** Attempts the app saw, per x-test-id. */
const attempts = new Map<string, number>();
/** Whether a request reached the app with x-envoy-retriable-header-names, per x-test-id. */
const leaked = new Map<string, boolean>();
let port = 0;

before(async () => {
  // /hdr and /names: the first attempt answers 200 with x-retry-me: 1, the next a plain 200; /req: 503, then 200.
  const app = http.createServer((req, res) => {
    const id = String(req.headers['x-test-id']);
    const n = (attempts.get(id) ?? 0) + 1;
    attempts.set(id, n);
    leaked.set(id, req.headers['x-envoy-retriable-header-names'] !== undefined);
    if (req.url!.startsWith('/rl') && n === 1) {
      // An upstream Envoy's rate limiter: 429 with x-envoy-ratelimited, and when to come back.
      res.writeHead(429, { 'x-envoy-ratelimited': 'true', 'retry-after': '1' });
      return res.end(`attempt ${n}`);
    }
    if (req.url!.startsWith('/req')) {
      res.statusCode = n === 1 ? 503 : 200;
      return res.end(`attempt ${n}`);
    }
    if (n === 1) res.setHeader('x-retry-me', '1');
    res.end(`attempt ${n}`);
  });
  await new Promise<void>((r) => app.listen(0, '127.0.0.1', () => r()));
  closers.push(() => new Promise<void>((r) => app.close(() => r())));
  closers.push(async () => app.closeAllConnections());
  const appPort = (app.address() as { port: number }).port;

  const dp = new DataPlane(new SidecarStats(), { node: { id: 'web-1', cluster: 'web' } });
  closers.push(() => dp.close());
  const routes = resources('routes.json', (r) => {
    if (r.name !== 'outbound') return r;
    const vh = r.virtual_hosts.find((v: Json) => v.name === 'reviews.default:9080');
    const to = (prefix: string, retry_policy: Json) => ({ match: { prefix }, route: { cluster: REVIEWS, retry_policy } });
    vh.routes = [
      to('/hdr', { retry_on: 'retriable-headers', num_retries: 2, retry_back_off: { base_interval: '0.001s' }, retriable_headers: [{ name: 'x-retry-me', string_match: { exact: '1' } }] }),
      to('/req', { retry_on: '5xx', num_retries: 2, retry_back_off: { base_interval: '0.001s' }, retriable_request_headers: [{ name: 'x-idempotent', present_match: true }, { name: ':method', string_match: { exact: 'PUT' } }] }),
      to('/names', { retry_on: 'retriable-headers', num_retries: 2, retry_back_off: { base_interval: '0.001s' } }),
      to('/rl-wait', { retry_on: 'envoy-ratelimited', num_retries: 1, retry_back_off: { base_interval: '0.001s' }, rate_limited_retry_back_off: { reset_headers: [{ name: 'x-ratelimit-reset', format: 'UNIX_TIMESTAMP' }, { name: 'Retry-After' }], max_interval: '5s' } }),
      to('/rl-now', { retry_on: 'envoy-ratelimited', num_retries: 1, retry_back_off: { base_interval: '0.001s' } }),
      to('/rl-5xx', { retry_on: '5xx,retriable-status-codes', retriable_status_codes: [429], num_retries: 1, retry_back_off: { base_interval: '0.001s' } }),
      ...vh.routes,
    ];
    return r;
  });
  const endpoints = resources('endpoints.json', (e) => (e.cluster_name === REVIEWS ? { ...e, endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: appPort } } } }] }] } : e));
  assert.deepEqual(await dp.apply('cluster', resources('clusters.json'), [], true), { errors: [] });
  assert.deepEqual(await dp.apply('listener', resources('listeners.json', (l) => ({ ...l, address: { socket_address: { address: '127.0.0.1', port_value: 0 } } })), [], true), { errors: [] });
  assert.deepEqual(await dp.apply('route', routes, [], false), { errors: [] });
  assert.deepEqual(await dp.apply('endpoint', endpoints, [], false), { errors: [] });
  port = dp.listenerPort('outbound')!;
});

test('retry_on retriable-headers retries a response matching retriable_headers, and only that', async () => {
  const res = await get(port, 'reviews', '/hdr', { headers: { 'x-test-id': 'hdr-1' } });
  assert.equal(res.status, 200);
  assert.equal(res.body, 'attempt 2', 'the first answer carried x-retry-me: 1 and was retried');
  assert.equal(res.headers['x-retry-me'], undefined);
  assert.equal(attempts.get('hdr-1'), 2);
  // A route whose policy lists no headers and a request naming none: the same answer is taken as it is.
  const plain = await get(port, 'reviews', '/names', { headers: { 'x-test-id': 'names-0' } });
  assert.equal(plain.body, 'attempt 1');
  assert.equal(plain.headers['x-retry-me'], '1');
});

test('x-envoy-retriable-header-names adds presence matchers, and is not passed upstream', async () => {
  const res = await get(port, 'reviews', '/names', { headers: { 'x-test-id': 'names-1', 'x-envoy-retriable-header-names': 'x-other, X-Retry-Me' } });
  assert.equal(res.status, 200);
  assert.equal(res.body, 'attempt 2');
  assert.equal(attempts.get('names-1'), 2);
  assert.equal(leaked.get('names-1'), false);
});

test('retriable_request_headers: a request matching none of them gets no retry; one matching any does', async () => {
  const none = await get(port, 'reviews', '/req', { headers: { 'x-test-id': 'req-0' } });
  assert.equal(none.status, 503, 'the 503 comes back unretried');
  assert.equal(attempts.get('req-0'), 1);
  const marked = await get(port, 'reviews', '/req', { headers: { 'x-test-id': 'req-1', 'x-idempotent': 'yes' } });
  assert.equal(marked.status, 200);
  assert.equal(attempts.get('req-1'), 2);
  const put = await get(port, 'reviews', '/req', { method: 'PUT', headers: { 'x-test-id': 'req-2' } });
  assert.equal(put.status, 200, ':method is matched as the router sends it');
  assert.equal(attempts.get('req-2'), 2);
});

test('envoy-ratelimited retries an upstream Envoy\'s rate limited answer, which no other condition retries', async () => {
  const other = await get(port, 'reviews', '/rl-5xx', { headers: { 'x-test-id': 'rl-0' } });
  assert.equal(other.status, 429, 'retriable-status-codes 429 does not retry x-envoy-ratelimited');
  assert.equal(attempts.get('rl-0'), 1);
  const retried = await get(port, 'reviews', '/rl-now', { headers: { 'x-test-id': 'rl-1' } });
  assert.equal(retried.status, 200);
  assert.equal(attempts.get('rl-1'), 2);
});

test('rate_limited_retry_back_off waits what the retried answer\'s Retry-After says (1 s here) before the retry', async () => {
  const started = Date.now();
  const res = await get(port, 'reviews', '/rl-wait', { headers: { 'x-test-id': 'rl-2' } });
  const waited = Date.now() - started;
  assert.equal(res.status, 200);
  assert.equal(attempts.get('rl-2'), 2);
  // Envoy's JitteredLowerBoundBackOffStrategy: at least the interval (the exponential back-off here is 1 ms).
  assert.ok(waited >= 990, `retried after ${waited} ms`);
});

test('reset headers are read as Envoy\'s ResetHeaderParserImpl reads them', () => {
  const rl = { resetHeaders: [{ name: 'x-ratelimit-reset', unixTimestamp: true }, { name: 'retry-after', unixTimestamp: false }], maxIntervalMs: 60_000 };
  const now = Date.UTC(2026, 10, 28, 12, 0, 0, 400);
  assert.equal(resetIntervalMs(rl, [['retry-after', '7']], now), 7000);
  assert.equal(resetIntervalMs(rl, [['x-ratelimit-reset', String(now / 1000 + 30 | 0)], ['retry-after', '7']], now), 30_000, 'the first header configured wins');
  assert.equal(resetIntervalMs(rl, [['x-ratelimit-reset', String(Math.floor(now / 1000) - 5)], ['retry-after', '7']], now), 7000, 'a timestamp in the past is skipped');
  assert.equal(resetIntervalMs(rl, [['retry-after', '120']], now), undefined, 'over max_interval');
  assert.equal(resetIntervalMs(rl, [['retry-after', 'Wed, 21 Oct 2026 07:28:00 GMT']], now), undefined, 'an HTTP date is not whole seconds');
  assert.equal(resetIntervalMs(rl, [['retry-after', '1.5']], now), undefined);
  assert.equal(resetIntervalMs(rl, [], now), undefined);
});
