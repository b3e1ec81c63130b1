// The router's timeout counters as Envoy keeps them (router.cc): the route
// timeout counts cluster.<name>.upstream_rq_timeout (onResponseTimeout); a
// try's own timeout counts upstream_rq_per_try_timeout, once per try, and
// not upstream_rq_timeout, even when it ends the request with its retries
// spent (onPerTryTimeoutCommon). Until 2026-11-28 that last case counted both.
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { TestMesh, eventually, get, instance, metric, route, service, startApp } from './harness.ts';

const closers: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of closers.reverse()) await c();
});

/** A test mesh and an app that answers /ready at once and anything else after 2 s. */
async function slowMesh(name: string): Promise<{ app: Awaited<ReturnType<typeof startApp>>; mesh: TestMesh }> {
  const timers = new Set<NodeJS.Timeout>();
  const app = await startApp(name, (req, res) => {
    if (req.url === '/ready') return void res.end('ok');
    const t = setTimeout(() => res.end('late'), 2000);
    timers.add(t);
  });
  const mesh = await TestMesh.start();
  closers.push(async () => {
    for (const t of timers) clearTimeout(t);
    await mesh.close();
    await app.close();
  });
  return { app, mesh };
}

test('a per-try timeout that ends the request counts per-try timeouts only; a route timeout counts upstream_rq_timeout', { timeout: 60_000 }, async () => {
  const { app, mesh } = await slowMesh('slowpoke');
  mesh.model.update({
    services: [service('slowpoke', 7991), service('impatient', 7992)],
    instances: [instance('slowpoke', app.port)],
    routes: [
      route('slowpoke', [
        { name: 'pertry', match: [{ path: { prefix: '/pertry' } }], destinations: [{ service: 'slowpoke', weight: 1 }], timeoutMs: 10_000, retries: { attempts: 1, perTryTimeoutMs: 150, retryOn: ['5xx'] } },
        { name: 'whole', destinations: [{ service: 'slowpoke', weight: 1 }], timeoutMs: 150 },
      ]),
    ],
  });
  const sc = await mesh.sidecar('impatient', 8000);
  await eventually(async () => (await get(sc.outboundPort, 'slowpoke', '/ready')).status === 200, 10_000, 'the route in place');

  assert.equal((await get(sc.outboundPort, 'slowpoke', '/pertry')).status, 504);
  assert.equal(await metric(sc.adminPort, 'envoy_cluster_upstream_rq_per_try_timeout'), 2, 'the first try and its retry');
  assert.equal(await metric(sc.adminPort, 'envoy_cluster_upstream_rq_timeout'), 0, 'no route timeout fired');

  assert.equal((await get(sc.outboundPort, 'slowpoke', '/whole')).status, 504);
  assert.equal(await metric(sc.adminPort, 'envoy_cluster_upstream_rq_timeout'), 1);
  assert.equal(await metric(sc.adminPort, 'envoy_cluster_upstream_rq_per_try_timeout'), 2);
});

test('a route timeout that ends a try early is the route timeout alone: the try is not also a per-try timeout', { timeout: 60_000 }, async () => {
  const { app, mesh } = await slowMesh('sluggish');
  mesh.model.update({
    services: [service('sluggish', 7993), service('waiter', 7994)],
    instances: [instance('sluggish', app.port)],
    // Tries at 0 and ~200-250 ms time out on their own; the third (from ~400-475 ms) is cut by the route timeout at
    // 500 ms. Its per-try timer used to be shortened to the time left, so the two timers raced and now and then
    // both counted.
    routes: [route('sluggish', [{ name: 'both', destinations: [{ service: 'sluggish', weight: 1 }], timeoutMs: 500, retries: { attempts: 5, perTryTimeoutMs: 200, retryOn: ['5xx'] } }])],
  });
  const sc = await mesh.sidecar('waiter', 8001);
  await eventually(async () => (await get(sc.outboundPort, 'sluggish', '/ready')).status === 200, 10_000, 'the route in place');
  // one after the other: in parallel, the cluster's max_retries (3 in flight) would refuse most retries
  const n = 8;
  const statuses: number[] = [];
  for (let i = 0; i < n; i++) statuses.push((await get(sc.outboundPort, 'sluggish', '/slow')).status);
  assert.deepEqual(statuses, Array(n).fill(504));
  assert.equal(await metric(sc.adminPort, 'envoy_cluster_upstream_rq_timeout'), n, 'each request ended by its route timeout');
  assert.equal(await metric(sc.adminPort, 'envoy_cluster_upstream_rq_per_try_timeout'), 2 * n, 'two tries each timed out on their own');
  assert.equal(await metric(sc.adminPort, 'envoy_cluster_upstream_rq_retry'), 2 * n);
});
