// Traffic policy from the control plane, measured at the app: canary
// weights, retries, timeouts, header mutations and prefix rewrite.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { TestMesh, freePort, get, instance, load, metric, policy, route, service, startApp, tap } from './harness.ts';

let mesh: TestMesh;
before(async () => {
  mesh = await TestMesh.start();
});
after(async () => {
  await mesh.close();
});

test('a 90/10 canary split holds over 2,000 requests, within 3 points', { timeout: 60_000 }, async () => {
  const v1 = await startApp('v1');
  const v2 = await startApp('v2');
  mesh.track(() => v1.close());
  mesh.track(() => v2.close());
  mesh.model.update({
    services: [service('web', 8000), service('reviews', 9080)],
    instances: [instance('reviews', v1.port, { version: 'v1' }), instance('reviews', v2.port, { version: 'v2' })],
    destinationPolicies: [policy('reviews', { subsets: [{ name: 'v1', labels: { version: 'v1' } }, { name: 'v2', labels: { version: 'v2' } }] })],
    routes: [route('reviews', [{ name: 'canary', destinations: [{ service: 'reviews', subset: 'v1', weight: 90 }, { service: 'reviews', subset: 'v2', weight: 10 }] }])],
  });
  const web = await mesh.sidecar('web', 8000);
  // 2,000 draws: a 3-point band is 4.5 standard deviations of the v2 share (0.67 points), so a correct split
  // leaves it about once in 130,000 runs; over 1,000 draws (3.2 deviations) it was once in ~600 (v2 at 13.3% in a CI run).
  const n = 2000;
  const responses = await load(n, 16, () => get(web.outboundPort, 'reviews'));
  assert.ok(responses.every((r) => r.status === 200));
  assert.equal(v1.hits + v2.hits, n);
  const share = responses.filter((r) => r.headers['x-app'] === 'v2').length / n;
  assert.ok(Math.abs(share - 0.1) <= 0.03, `v2 got ${(share * 100).toFixed(1)}%`);
  assert.equal(await metric(web.adminPort, 'envoy_cluster_upstream_rq_total', { envoy_cluster_name: 'outbound|9080|v2|reviews.default' }), v2.hits);
});

test('retries turn an app\'s intermittent 503s into successes; without them the 503s reach the caller', { timeout: 60_000 }, async () => {
  const flaky = await startApp('flaky', (_req, res, hit) => {
    res.statusCode = hit % 2 === 1 ? 503 : 200;
    res.end(hit % 2 === 1 ? 'unavailable' : 'ok');
  });
  mesh.track(() => flaky.close());
  mesh.model.update({
    services: [service('caller', 8000), service('flaky', 7000), service('flaky2', 7001)],
    instances: [instance('flaky', flaky.port), instance('flaky2', flaky.port)],
    destinationPolicies: [],
    routes: [route('flaky', [{ destinations: [{ service: 'flaky', weight: 1 }], retries: { attempts: 2, retryOn: ['5xx'], perTryTimeoutMs: 2000 } }])],
  });
  const caller = await mesh.sidecar('caller', 8000);
  const retried = await load(20, 1, () => get(caller.outboundPort, 'flaky'));
  assert.deepEqual(retried.map((r) => r.status), Array(20).fill(200));
  assert.ok((await metric(caller.adminPort, 'envoy_cluster_upstream_rq_retry', { envoy_cluster_name: 'outbound|7000||flaky.default' })) >= 20);
  const plain = await load(20, 1, () => get(caller.outboundPort, 'flaky2'));
  assert.equal(plain.filter((r) => r.status === 503).length, 10, 'no retry policy on flaky2: half fail');
});

test("retries spent on a retriable answer: Envoy's URX in the access log (UF,URX after connect failures) and upstream_rq_retry_limit_exceeded", { timeout: 60_000 }, async () => {
  const down = await startApp('down', (req, res) => {
    res.statusCode = req.url === '/missing' ? 404 : 503;
    res.end('no');
  });
  mesh.track(() => down.close());
  const closed = await freePort();
  mesh.model.update({
    services: [service('caller5', 8000), service('down', 7400), service('gone', 7401)],
    instances: [instance('down', down.port), instance('gone', closed)],
    destinationPolicies: [],
    routes: [
      route('down', [{ destinations: [{ service: 'down', weight: 1 }], retries: { attempts: 2, retryOn: ['5xx'] } }]),
      route('gone', [{ destinations: [{ service: 'gone', weight: 1 }], retries: { attempts: 1, retryOn: ['connect-failure'] } }]),
    ],
  });
  const caller = await mesh.sidecar('caller5', 8000);
  const watching = await tap(caller.adminPort, '?max=3');
  assert.equal((await get(caller.outboundPort, 'down', '/')).status, 503, 'the last 503 goes downstream');
  assert.equal((await get(caller.outboundPort, 'down', '/missing')).status, 404, 'not retriable: no retry, no flag');
  assert.equal((await get(caller.outboundPort, 'gone', '/')).status, 503);
  await watching.ended;
  assert.deepEqual(watching.lines.map((l) => [l.authority, l.response_code, l.response_flags, l.attempts]), [
    ['down', 503, 'URX', 3],
    ['down', 404, '-', 1],
    ['gone', 503, 'UF,URX', 2],
  ]);
  assert.equal(await metric(caller.adminPort, 'envoy_cluster_upstream_rq_retry_limit_exceeded', { envoy_cluster_name: 'outbound|7400||down.default' }), 1);
  assert.equal(await metric(caller.adminPort, 'envoy_cluster_upstream_rq_retry_limit_exceeded', { envoy_cluster_name: 'outbound|7401||gone.default' }), 1);
});

test('a route timeout answers 504 upstream request timeout; faster requests pass', { timeout: 30_000 }, async () => {
  const slow = await startApp('slow', (req, res) => {
    const ms = req.url === '/slow' ? 3000 : 0;
    const t = setTimeout(() => res.end('done'), ms);
    res.on('close', () => clearTimeout(t));
  });
  mesh.track(() => slow.close());
  mesh.model.update({
    services: [service('caller2', 8000), service('slow', 7100)],
    instances: [instance('slow', slow.port)],
    destinationPolicies: [],
    routes: [route('slow', [{ destinations: [{ service: 'slow', weight: 1 }], timeoutMs: 300 }])],
  });
  const caller = await mesh.sidecar('caller2', 8000);
  const t0 = Date.now();
  const timedOut = await get(caller.outboundPort, 'slow', '/slow');
  assert.equal(timedOut.status, 504);
  assert.equal(timedOut.body, 'upstream request timeout');
  assert.ok(Date.now() - t0 < 2500, 'answered before the app did');
  assert.equal((await get(caller.outboundPort, 'slow', '/fast')).status, 200);
  assert.equal(await metric(caller.adminPort, 'envoy_cluster_upstream_rq_timeout', { envoy_cluster_name: 'outbound|7100||slow.default' }), 1);
});

test('path match, prefix rewrite and header mutations reach the app as configured', { timeout: 30_000 }, async () => {
  const echo = await startApp('echo');
  mesh.track(() => echo.close());
  mesh.model.update({
    services: [service('caller3', 8000), service('echo', 7200)],
    instances: [instance('echo', echo.port)],
    destinationPolicies: [],
    routes: [
      route('echo', [
        {
          name: 'api',
          match: [{ path: { prefix: '/api/' }, headers: [{ name: 'x-user', match: { exact: 'alice' } }] }],
          destinations: [{ service: 'echo', weight: 1 }],
          prefixRewrite: '/v2/',
          requestHeaders: { add: [{ name: 'x-added', value: 'yes' }], remove: ['x-secret'] },
          responseHeaders: { add: [{ name: 'x-resp', value: 'r' }] },
        },
      ]),
    ],
  });
  const caller = await mesh.sidecar('caller3', 8000);
  const hit = await get(caller.outboundPort, 'echo', '/api/items?q=1', { headers: { 'x-user': 'alice', 'x-secret': 's' } });
  assert.equal(hit.status, 200);
  const seen = JSON.parse(hit.body);
  assert.equal(seen.url, '/v2/items?q=1');
  // As Envoy's router, the path the client asked for goes along when a route rewrites it.
  assert.equal(seen.headers['x-envoy-original-path'], '/api/items?q=1');
  assert.equal(seen.headers['x-added'], 'yes');
  assert.equal(seen.headers['x-secret'], undefined);
  assert.equal(hit.headers['x-resp'], 'r');
  // Not matching the header: falls through to the default route, unrewritten.
  const other = JSON.parse((await get(caller.outboundPort, 'echo', '/api/items', { headers: { 'x-user': 'bob' } })).body);
  assert.equal(other.url, '/api/items');
  assert.equal(other.headers['x-envoy-original-path'], undefined, 'no rewrite, no original path');
  assert.equal(other.headers['x-added'], undefined);
});

test("local replies carry the chosen route's response headers, as Envoy finalizes them with the stream's route: the router's 503 and a fault abort alike", { timeout: 30_000 }, async () => {
  mesh.model.update({
    services: [service('caller5', 8000), service('empty', 7400)],
    instances: [],
    destinationPolicies: [],
    routes: [
      route('empty', [
        { match: [{ path: { prefix: '/fault' } }], destinations: [{ service: 'empty', weight: 1 }], fault: { abort: { httpStatus: 418, percentage: 100 } }, responseHeaders: { add: [{ name: 'x-route', value: 'fault' }] } },
        { destinations: [{ service: 'empty', weight: 1 }], responseHeaders: { add: [{ name: 'x-route', value: 'empty' }], remove: ['content-type'] } },
      ]),
    ],
  });
  const caller = await mesh.sidecar('caller5', 8000);
  const none = await get(caller.outboundPort, 'empty', '/');
  assert.equal(none.status, 503);
  assert.equal(none.body, 'no healthy upstream');
  assert.equal(none.headers['x-route'], 'empty', "the route's response_headers_to_add");
  assert.equal(none.headers['content-type'], undefined, 'and its response_headers_to_remove');
  const aborted = await get(caller.outboundPort, 'empty', '/fault');
  assert.equal(aborted.status, 418);
  assert.equal(aborted.headers['x-route'], 'fault', "the fault filter's abort, under its own route's headers");
});

test("upstream_rq_retry_success counts a retry whose answer the policy would not retry again, as Envoy's router: a 500 after a 429 under retriable-status-codes is one, a 429 that ran out of retries is none", { timeout: 30_000 }, async () => {
  const answers: number[] = [];
  const app = await startApp('quota2', (_req, res) => {
    res.statusCode = answers.shift() ?? 200;
    res.end();
  });
  mesh.track(() => app.close());
  mesh.model.update({
    services: [service('caller6', 8000), service('quota2', 7500)],
    instances: [instance('quota2', app.port)],
    destinationPolicies: [],
    routes: [route('quota2', [{ destinations: [{ service: 'quota2', weight: 1 }], retries: { attempts: 2, retryOn: ['retriable-status-codes'], retriableStatusCodes: [429] } }])],
  });
  const caller = await mesh.sidecar('caller6', 8000);
  const labels = { envoy_cluster_name: 'outbound|7500||quota2.default' };
  answers.push(429, 500);
  assert.equal((await get(caller.outboundPort, 'quota2', '/')).status, 500);
  assert.equal(await metric(caller.adminPort, 'envoy_cluster_upstream_rq_retry_success', labels), 1, 'the 500 ended the retrying');
  answers.push(429, 429, 429);
  assert.equal((await get(caller.outboundPort, 'quota2', '/')).status, 429);
  assert.equal(await metric(caller.adminPort, 'envoy_cluster_upstream_rq_retry_success', labels), 1, 'retries that ran out are no success');
});
