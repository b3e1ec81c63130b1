// The x-envoy-* request headers Envoy's router reads (every request is
// internal in a sidecar): a request may set its own timeout, per-try timeout
// and retries; they are taken off before the upstream sees the request,
// which gets x-envoy-expected-rq-timeout-ms instead. suppress_envoy_headers
// turns off the headers the router adds. Attempt counts, when a virtual host
// asks for them.

import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { TestMesh, get, instance, service, startApp, withFields } from './harness.ts';

const closers: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of closers.reverse()) await c();
});

/** An app that echoes the x-envoy-* headers it got; /flaky fails every other hit with 503; /slow answers after 300 ms on odd hits, /stall always. */
async function echoApp() {
  const app = await startApp('echo', (req, res, hit) => {
    const envoy = Object.fromEntries(Object.entries(req.headers).filter(([k]) => k.startsWith('x-envoy-')));
    res.setHeader('content-type', 'application/json');
    const body = JSON.stringify(envoy);
    if (req.url === '/flaky' && hit % 2 === 1) {
      res.statusCode = 503;
      return res.end(body);
    }
    if (req.url === '/slow' && hit % 2 === 1) return void setTimeout(() => res.end(body), 300);
    if (req.url === '/stall') return void setTimeout(() => res.end(body), 300);
    res.end(body);
  });
  closers.push(() => app.close());
  return app;
}

async function meshWith(app: { port: number }, hcm: Parameters<typeof withFields>[0], routeAction: Record<string, unknown>, virtualHost: Record<string, unknown> = {}): Promise<number> {
  const mesh = await TestMesh.start({ translator: withFields(hcm, routeAction, undefined, virtualHost) });
  closers.push(() => mesh.close());
  mesh.model.update({ services: [service('caller', 8000), service('echo', 7000)], instances: [instance('echo', app.port)], routes: [] });
  return (await mesh.sidecar('caller', 8000)).outboundPort;
}

test('x-envoy-upstream-rq-timeout-ms sets the request\'s timeout; the upstream sees x-envoy-expected-rq-timeout-ms, not the request\'s header', { timeout: 30_000 }, async () => {
  const app = await echoApp();
  const port = await meshWith(app, {}, { timeout: '3s' });
  const plain = await get(port, 'echo', '/');
  assert.deepEqual(JSON.parse(plain.body), { 'x-envoy-expected-rq-timeout-ms': '3000' });
  const own = await get(port, 'echo', '/', { headers: { 'x-envoy-upstream-rq-timeout-ms': '1000' } });
  assert.deepEqual(JSON.parse(own.body), { 'x-envoy-expected-rq-timeout-ms': '1000' });
  // /slow's first hit takes 300 ms: over a 100 ms timeout of the request's own.
  const late = await get(port, 'echo', '/slow', { headers: { 'x-envoy-upstream-rq-timeout-ms': '100' } });
  assert.equal(late.status, 504);
  assert.equal(late.body, 'upstream request timeout');
});

test('x-envoy-retry-on asks for retries on a route without a policy; x-envoy-max-retries 0 asks for none; per-try timeout by header', { timeout: 30_000 }, async () => {
  const app = await echoApp();
  const port = await meshWith(app, {}, {});
  assert.equal((await get(port, 'echo', '/flaky')).status, 503, 'no retry policy: the 503 comes back');
  const retried = await get(port, 'echo', '/flaky', { headers: { 'x-envoy-retry-on': '5xx,not-a-condition' } });
  assert.equal(retried.status, 200);
  assert.deepEqual(JSON.parse(retried.body), { 'x-envoy-expected-rq-timeout-ms': '15000' }, "the retry headers went no further; Envoy's default route timeout is expected");
  assert.equal((await get(port, 'echo', '/flaky', { headers: { 'x-envoy-retry-on': '5xx', 'x-envoy-max-retries': '0' } })).status, 503);
  // The first try of /slow (300 ms) is cut at 100 ms, the retry answers at once.
  const perTry = await get(port, 'echo', '/slow', { headers: { 'x-envoy-retry-on': 'gateway-error', 'x-envoy-upstream-rq-per-try-timeout-ms': '100' } });
  assert.equal(perTry.status, 200);
  assert.deepEqual(JSON.parse(perTry.body), { 'x-envoy-expected-rq-timeout-ms': '100' });
});

test('x-envoy-retriable-status-codes adds retriable status codes to a policy retrying on retriable-status-codes, and goes no further; so do the retry headers the sidecar does not act on', { timeout: 30_000 }, async () => {
  const app = await echoApp();
  const port = await meshWith(app, {}, { retry_policy: { retry_on: 'retriable-status-codes', num_retries: 1 } });
  assert.equal((await get(port, 'echo', '/flaky')).status, 503, 'no code is retriable yet');
  // /flaky fails odd hits: this one takes an even hit, so the next /flaky fails first.
  assert.equal((await get(port, 'echo', '/')).status, 200);
  const retried = await get(port, 'echo', '/flaky', { headers: { 'x-envoy-retriable-status-codes': '429, 503', 'x-envoy-retriable-header-names': 'x-retry-me', 'x-envoy-hedge-on-per-try-timeout': 'true' } });
  assert.equal(retried.status, 200);
  assert.deepEqual(Object.keys(JSON.parse(retried.body)), ['x-envoy-expected-rq-timeout-ms'], 'the retry headers were consumed');
  const notRetriable = await get(port, 'echo', '/flaky', { headers: { 'x-envoy-retriable-status-codes': '500' } });
  assert.equal(notRetriable.status, 503);
});

test("a route timeout during a retry's backoff is answered 504, as Envoy's: the response being retried was given up", { timeout: 30_000 }, async () => {
  const app = await echoApp();
  const port = await meshWith(app, {}, { timeout: '0.3s', retry_policy: { retry_on: '5xx', num_retries: 1, retry_back_off: { base_interval: '10s' } } });
  // The backoff is a random part of base_interval: pinned near all of it, far past the route timeout.
  const random = Math.random;
  Math.random = () => 0.99;
  try {
    // A fresh app's first /flaky hit is a 503: retried after the backoff, which the route timeout cuts.
    const r = await get(port, 'echo', '/flaky');
    assert.equal(r.status, 504);
    assert.equal(r.body, 'upstream request timeout');
  } finally {
    Math.random = random;
  }
  assert.equal(app.hits, 1, 'no second attempt');
});

test('suppress_envoy_headers: no x-envoy-upstream-service-time downstream, no expected timeout upstream; the request\'s headers still work', { timeout: 30_000 }, async () => {
  const app = await echoApp();
  const suppress = (hcm: Record<string, any>) => ({
    ...hcm,
    http_filters: hcm.http_filters.map((f: Record<string, any>) => (f.name === 'envoy.filters.http.router' ? { ...f, typed_config: { ...f.typed_config, suppress_envoy_headers: true } } : f)),
  });
  const plainPort = await meshWith(app, {}, { timeout: '3s' });
  assert.ok((await get(plainPort, 'echo', '/')).headers['x-envoy-upstream-service-time'] !== undefined);
  const port = await meshWith(app, suppress, { timeout: '3s' });
  const r = await get(port, 'echo', '/');
  assert.equal(r.headers['x-envoy-upstream-service-time'], undefined);
  assert.deepEqual(JSON.parse(r.body), {});
  assert.equal((await get(port, 'echo', '/flaky', { headers: { 'x-envoy-retry-on': '5xx' } })).status, 200);
});

test('include_request_attempt_count / include_attempt_count_in_response: each attempt says which it is, the response how many; a retry expects only the time left', { timeout: 30_000 }, async () => {
  const app = await echoApp();
  const port = await meshWith(app, {}, { timeout: '3s', retry_policy: { retry_on: '5xx', num_retries: 2 } }, { include_request_attempt_count: true, include_attempt_count_in_response: true });
  // /flaky fails its odd hits: a fresh app's first hit fails, the retry succeeds.
  const r = await get(port, 'echo', '/flaky');
  assert.equal(r.status, 200);
  const seen = JSON.parse(r.body) as Record<string, string>;
  assert.equal(seen['x-envoy-attempt-count'], '2', 'the upstream saw the second attempt');
  assert.equal(r.headers['x-envoy-attempt-count'], '2', 'the response says two attempts were made');
  const left = Number(seen['x-envoy-expected-rq-timeout-ms']);
  assert.ok(left > 0 && left < 3000, `the retry expects the time left of 3000 ms: ${left}`);
  const once = await get(port, 'echo', '/');
  assert.equal(JSON.parse(once.body)['x-envoy-attempt-count'], '1');
  assert.equal(once.headers['x-envoy-attempt-count'], '1');
  // The router's own 504 after a per-try timeout and a retry says so too.
  const late = await get(port, 'echo', '/stall', { headers: { 'x-envoy-upstream-rq-per-try-timeout-ms': '100', 'x-envoy-retry-on': 'gateway-error', 'x-envoy-max-retries': '1' } });
  assert.equal(late.status, 504);
  assert.equal(late.body, 'upstream request timeout');
  assert.equal(late.headers['x-envoy-attempt-count'], '2', 'the local reply counts the attempts made');
});

test('x-envoy-upstream-rq-timeout-alt-response: a timeout is answered 204; respect_expected_rq_timeout: an earlier proxy\'s expected timeout is the timeout', { timeout: 30_000 }, async () => {
  const app = await echoApp();
  const port = await meshWith(app, {}, { timeout: '3s' });
  const alt = await get(port, 'echo', '/stall', { headers: { 'x-envoy-upstream-rq-timeout-ms': '100', 'x-envoy-upstream-rq-timeout-alt-response': '' } });
  assert.equal(alt.status, 204);
  assert.equal(alt.body, '');
  assert.equal((await get(port, 'echo', '/stall', { headers: { 'x-envoy-upstream-rq-timeout-ms': '100' } })).status, 504);
  // Without respect_expected_rq_timeout an incoming expected timeout changes nothing (replaced by this proxy's own).
  const ignored = await get(port, 'echo', '/stall', { headers: { 'x-envoy-expected-rq-timeout-ms': '100' } });
  assert.equal(ignored.status, 200);
  assert.deepEqual(JSON.parse(ignored.body), { 'x-envoy-expected-rq-timeout-ms': '3000' });

  const respect = (hcm: Record<string, any>) => ({
    ...hcm,
    http_filters: hcm.http_filters.map((f: Record<string, any>) => (f.name === 'envoy.filters.http.router' ? { ...f, typed_config: { ...f.typed_config, respect_expected_rq_timeout: true } } : f)),
  });
  const respecting = await meshWith(app, respect, { timeout: '3s' });
  const expected = await get(respecting, 'echo', '/stall', { headers: { 'x-envoy-expected-rq-timeout-ms': '100', 'x-envoy-upstream-rq-timeout-ms': '5000' } });
  assert.equal(expected.status, 504, 'the expected timeout wins over the request timeout header');
  const slowEnough = await get(respecting, 'echo', '/stall', { headers: { 'x-envoy-expected-rq-timeout-ms': '2000' } });
  assert.equal(slowEnough.status, 200);
  assert.deepEqual(JSON.parse(slowEnough.body), { 'x-envoy-expected-rq-timeout-ms': '2000' });
});
