// max_connections on HTTP/1.1 clusters as Envoy's pools apply it
// (conn_pool_base.cc): it counts the cluster's upstream connections (idle
// ones too), not its active requests. A request with no free connection is
// pending in its host's pool (max_pending_requests; past it 503
// x-envoy-overloaded); at the connection limit the pool counts
// upstream_cx_overflow and the request waits for one of the host's
// connections; a host with no connection at all gets one anyway.
// max_requests is taken as a request is given its connection.
// Apps here hold every request until told, and count the TCP connections the
// sidecar opened to them.

import assert from 'node:assert/strict';
import type http from 'node:http';
import { after, test } from 'node:test';
import { TestMesh, eventually, get, instance, metric, policy, route, service, startApp, withFields } from './harness.ts';

const closers: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of closers.reverse()) await c();
});

/** An app that holds every request until release(), counting the TCP connections it accepted. */
async function holdingApp(name: string) {
  const held: http.ServerResponse[] = [];
  let releasing = false;
  const app = await startApp(name, (_req, res) => {
    if (releasing) return res.end('ok');
    held.push(res);
  });
  closers.push(() => app.close());
  const seen = { connections: 0, open: 0 };
  app.server.on('connection', (s) => {
    seen.connections++;
    seen.open++;
    s.once('close', () => seen.open--);
  });
  return {
    port: app.port,
    seen,
    held: () => held.length,
    hits: () => app.hits,
    release() {
      releasing = true;
      for (const r of held.splice(0)) r.end('ok');
    },
  };
}

test('HTTP/1.1 max_connections 2, max_pending_requests 2: two requests on two connections, two pending for them (upstream_cx_overflow), the fifth 503 x-envoy-overloaded; all on the same two connections', { timeout: 30_000 }, async () => {
  const app = await holdingApp('cl-one');
  const mesh = await TestMesh.start();
  closers.push(() => mesh.close());
  mesh.model.update({
    services: [service('cl-caller', 8000), service('cl-one', 7460)],
    instances: [instance('cl-one', app.port)],
    destinationPolicies: [policy('cl-one', { circuitBreakers: { maxConnections: 2, maxPendingRequests: 2, maxRequests: 100 } })],
    routes: [],
  });
  const caller = await mesh.sidecar('cl-caller', 8000);
  const cluster = { envoy_cluster_name: 'outbound|7460||cl-one.default' };
  const calls = [get(caller.outboundPort, 'cl-one')];
  await eventually(() => app.held() === 1, 5000, 'the first at the app');
  calls.push(get(caller.outboundPort, 'cl-one'));
  await eventually(() => app.held() === 2, 5000, 'the second at the app');
  assert.equal(app.seen.connections, 2, 'a connection each');
  assert.equal(await metric(caller.adminPort, 'envoy_cluster_upstream_cx_overflow', cluster), 0);
  calls.push(get(caller.outboundPort, 'cl-one'), get(caller.outboundPort, 'cl-one'));
  await eventually(async () => (await metric(caller.adminPort, 'envoy_cluster_upstream_rq_pending_active', cluster)) === 2, 5000, 'two pending');
  assert.equal(await metric(caller.adminPort, 'envoy_cluster_upstream_cx_overflow', cluster), 2, 'each pending request found max_connections reached');
  assert.equal(await metric(caller.adminPort, 'envoy_cluster_upstream_cx_active', cluster), 2);
  assert.equal(await metric(caller.adminPort, 'envoy_cluster_circuit_breakers_default_cx_open', cluster), 1);
  assert.equal(await metric(caller.adminPort, 'envoy_cluster_circuit_breakers_default_rq_pending_open', cluster), 1);
  const refused = await get(caller.outboundPort, 'cl-one');
  assert.equal(refused.status, 503);
  assert.equal(refused.headers['x-envoy-overloaded'], 'true');
  assert.equal(await metric(caller.adminPort, 'envoy_cluster_upstream_rq_pending_overflow', cluster), 1);
  assert.equal(app.seen.connections, 2, 'no connection past max_connections');
  app.release();
  const statuses = (await Promise.all(calls)).map((r) => r.status);
  assert.deepEqual(statuses, [200, 200, 200, 200], 'the pending ones were served on the connections that came free');
  assert.equal(app.hits(), 4);
  assert.equal(app.seen.connections, 2, 'the pending requests took the two connections, no new one');
  assert.equal(await metric(caller.adminPort, 'envoy_cluster_upstream_rq_pending_active', cluster), 0);
  assert.equal(await metric(caller.adminPort, 'envoy_cluster_upstream_rq_active', cluster), 0);
  // Idle keep-alive connections still fill max_connections, as Envoy's resource manager counts them.
  assert.equal(await metric(caller.adminPort, 'envoy_cluster_upstream_cx_active', cluster), 2);
  assert.equal(await metric(caller.adminPort, 'envoy_cluster_circuit_breakers_default_cx_open', cluster), 1);
  assert.equal((await get(caller.outboundPort, 'cl-one')).status, 200);
  assert.equal(app.seen.connections, 2, 'an idle connection is reused');
});

test('HTTP/1.1 max_connections counts over the cluster, per host: with max_connections 1 and two hosts each host still gets one connection (upstream_cx_overflow), and a third request waits for its host\'s connection rather than opening another', { timeout: 30_000 }, async () => {
  const a = await holdingApp('cl-two');
  const b = await holdingApp('cl-two');
  const mesh = await TestMesh.start();
  closers.push(() => mesh.close());
  mesh.model.update({
    services: [service('cl-caller2', 8000), service('cl-two', 7461)],
    instances: [instance('cl-two', a.port), instance('cl-two', b.port)],
    destinationPolicies: [policy('cl-two', { loadBalancer: { policy: 'round_robin' }, circuitBreakers: { maxConnections: 1, maxPendingRequests: 10, maxRequests: 100 } })],
    routes: [],
  });
  const caller = await mesh.sidecar('cl-caller2', 8000);
  const cluster = { envoy_cluster_name: 'outbound|7461||cl-two.default' };
  const held = () => a.held() + b.held();
  const calls = [get(caller.outboundPort, 'cl-two')];
  await eventually(() => held() === 1, 5000, 'the first at an app');
  calls.push(get(caller.outboundPort, 'cl-two'));
  // The second host has no connection: Envoy makes it one past max_connections, counting the overflow.
  await eventually(() => a.held() === 1 && b.held() === 1, 5000, 'one request held at each host');
  assert.equal(await metric(caller.adminPort, 'envoy_cluster_upstream_cx_overflow', cluster), 1);
  assert.equal(await metric(caller.adminPort, 'envoy_cluster_upstream_cx_active', cluster), 2);
  calls.push(get(caller.outboundPort, 'cl-two'), get(caller.outboundPort, 'cl-two'));
  await eventually(async () => (await metric(caller.adminPort, 'envoy_cluster_upstream_rq_pending_active', cluster)) === 2, 5000, 'two pending');
  assert.equal(await metric(caller.adminPort, 'envoy_cluster_upstream_cx_overflow', cluster), 3);
  assert.deepEqual([a.seen.connections, b.seen.connections], [1, 1], 'no host gets a second connection');
  a.release();
  b.release();
  assert.deepEqual((await Promise.all(calls)).map((r) => r.status), [200, 200, 200, 200]);
  assert.deepEqual([a.hits(), b.hits()], [2, 2], 'each pending request waited for its own host\'s connection');
  assert.deepEqual([a.seen.connections, b.seen.connections], [1, 1]);
});

test('HTTP/1.1 max_requests with connections to spare: past it a request is refused as it is given a connection (503 x-envoy-overloaded, upstream_rq_pending_overflow), never queued', { timeout: 30_000 }, async () => {
  const app = await holdingApp('cl-three');
  const mesh = await TestMesh.start();
  closers.push(() => mesh.close());
  mesh.model.update({
    services: [service('cl-caller3', 8000), service('cl-three', 7462)],
    instances: [instance('cl-three', app.port)],
    destinationPolicies: [policy('cl-three', { circuitBreakers: { maxConnections: 10, maxPendingRequests: 10, maxRequests: 2 } })],
    routes: [],
  });
  const caller = await mesh.sidecar('cl-caller3', 8000);
  const cluster = { envoy_cluster_name: 'outbound|7462||cl-three.default' };
  const calls = [get(caller.outboundPort, 'cl-three'), get(caller.outboundPort, 'cl-three')];
  await eventually(() => app.held() === 2, 5000, 'two at the app');
  assert.equal(await metric(caller.adminPort, 'envoy_cluster_circuit_breakers_default_rq_open', cluster), 1);
  const refused = await get(caller.outboundPort, 'cl-three');
  assert.equal(refused.status, 503);
  assert.equal(refused.headers['x-envoy-overloaded'], 'true');
  assert.equal(await metric(caller.adminPort, 'envoy_cluster_upstream_rq_pending_overflow', cluster), 1);
  app.release();
  assert.deepEqual((await Promise.all(calls)).map((r) => r.status), [200, 200]);
  assert.equal(app.hits(), 2, 'the refused request never reached the app');
  assert.equal(await metric(caller.adminPort, 'envoy_cluster_upstream_rq_active', cluster), 0);
  assert.equal(await metric(caller.adminPort, 'envoy_cluster_circuit_breakers_default_rq_open', cluster), 0);
});

test('track_remaining: circuit_breakers.default.remaining_cx, remaining_pending, remaining_rq, remaining_retries follow the counts; without it they are not reported, as Envoy\'s null gauges; cx_pool_open is there at 0', { timeout: 30_000 }, async () => {
  const app = await holdingApp('cl-four');
  const tracked = (c: Record<string, any>) =>
    String(c.name).includes('cl-four') ? { ...c, circuit_breakers: { thresholds: [{ ...c.circuit_breakers.thresholds[0], max_connections: 1, max_pending_requests: 3, max_requests: 5, max_retries: 3, track_remaining: true }] } } : c;
  const mesh = await TestMesh.start({ translator: withFields({}, {}, tracked) });
  closers.push(() => mesh.close());
  mesh.model.update({
    services: [service('cl-caller4', 8000), service('cl-four', 7463), service('cl-other', 7464)],
    instances: [instance('cl-four', app.port), instance('cl-other', app.port)],
    destinationPolicies: [],
    routes: [],
  });
  const caller = await mesh.sidecar('cl-caller4', 8000);
  const cluster = { envoy_cluster_name: 'outbound|7463||cl-four.default' };
  const remaining = () => Promise.all(['remaining_cx', 'remaining_pending', 'remaining_rq', 'remaining_retries'].map((g) => metric(caller.adminPort, `envoy_cluster_circuit_breakers_default_${g}`, cluster)));
  assert.deepEqual(await remaining(), [1, 3, 5, 3], 'each limit whole before any traffic');
  const calls = [get(caller.outboundPort, 'cl-four')];
  await eventually(() => app.held() === 1, 5000, 'the first at the app');
  calls.push(get(caller.outboundPort, 'cl-four'));
  await eventually(async () => (await metric(caller.adminPort, 'envoy_cluster_upstream_rq_pending_active', cluster)) === 1, 5000, 'the second pending');
  assert.deepEqual(await remaining(), [0, 2, 4, 3], 'one connection, one pending, one request taken');
  app.release();
  assert.deepEqual((await Promise.all(calls)).map((r) => r.status), [200, 200]);
  assert.deepEqual(await remaining(), [0, 3, 5, 3], 'the idle connection still takes its place');
  const text = (await get(caller.adminPort, 'admin', '/stats?filter=circuit_breakers')).body;
  assert.match(text, /^cluster\.outbound\|7463\|\|cl-four\.default\.circuit_breakers\.default\.remaining_pending: 3$/m, "Envoy's stat name");
  assert.match(text, /^cluster\.outbound\|7463\|\|cl-four\.default\.circuit_breakers\.default\.cx_pool_open: 0$/m);
  assert.doesNotMatch(text, /cl-other\.default\.circuit_breakers\.default\.remaining_/, 'no remaining_* gauges without track_remaining');
  assert.match(text, /cl-other\.default\.circuit_breakers\.default\.cx_open: 0/);
});

/**
 * The default translator with `thresholds` as the circuit breakers of the clusters whose name has `svc`, and the
 * routes matching the path prefix `/high` sent at RouteAction.priority HIGH (weft's API sets neither; an operator's
 * Envoy config might).
 */
function prioritized(svc: string, thresholds: Record<string, unknown>[]) {
  const highRoutes = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(highRoutes);
    if (v === null || typeof v !== 'object') return v;
    const o: Record<string, any> = Object.fromEntries(Object.entries(v).map(([k, x]) => [k, highRoutes(x)]));
    if (o.match?.prefix === '/high' && o.route) o.route = { ...o.route, priority: 'HIGH' };
    return o;
  };
  const base = withFields({}, {}, (c) => (String(c.name).includes(svc) ? { ...c, circuit_breakers: { thresholds } } : c));
  return {
    translateEndpoints: base.translateEndpoints,
    translateProxy: (m: Parameters<typeof base.translateProxy>[0], p: Parameters<typeof base.translateProxy>[1]) => {
      const out = base.translateProxy(m, p);
      return { ...out, routes: out.routes.map((r) => ({ ...r, value: highRoutes(r.value) })) };
    },
  };
}

test('route priority HIGH: its requests take the cluster\'s HIGH thresholds and pools. DEFAULT max_connections 1 / max_pending_requests 1 is full (the next DEFAULT request 503 x-envoy-overloaded) while HIGH requests get connections of their own up to HIGH\'s 3; circuit_breakers.high.* gauges and /clusters high_priority show it', { timeout: 30_000 }, async () => {
  const app = await holdingApp('cl-prio');
  const mesh = await TestMesh.start({
    translator: prioritized('cl-prio', [
      { priority: 'DEFAULT', max_connections: 1, max_pending_requests: 1, max_requests: 100 },
      { priority: 'HIGH', max_connections: 3, max_pending_requests: 3, max_requests: 100, track_remaining: true },
    ]),
  });
  closers.push(() => mesh.close());
  mesh.model.update({
    services: [service('cl-prio-caller', 8000), service('cl-prio', 7465)],
    instances: [instance('cl-prio', app.port)],
    destinationPolicies: [],
    routes: [route('cl-prio', [{ name: 'high', match: [{ path: { prefix: '/high' } }], destinations: [{ service: 'cl-prio', weight: 1 }] }])],
  });
  const caller = await mesh.sidecar('cl-prio-caller', 8000);
  const cluster = { envoy_cluster_name: 'outbound|7465||cl-prio.default' };
  const gauges = (p: 'default' | 'high') => Promise.all(['cx_open', 'rq_pending_open', 'rq_open', 'rq_retry_open'].map((g) => metric(caller.adminPort, `envoy_cluster_circuit_breakers_${p}_${g}`, cluster)));
  const remaining = () => Promise.all(['remaining_cx', 'remaining_pending', 'remaining_rq', 'remaining_retries'].map((g) => metric(caller.adminPort, `envoy_cluster_circuit_breakers_high_${g}`, cluster)));
  assert.deepEqual(await remaining(), [3, 3, 100, 3], "HIGH's limits whole before any traffic (track_remaining on its thresholds)");

  // DEFAULT: one request on its one connection, one pending, the third overflows.
  const calls = [get(caller.outboundPort, 'cl-prio', '/low')];
  await eventually(() => app.held() === 1, 5000, 'the first DEFAULT request at the app');
  calls.push(get(caller.outboundPort, 'cl-prio', '/low'));
  await eventually(async () => (await metric(caller.adminPort, 'envoy_cluster_upstream_rq_pending_active', cluster)) === 1, 5000, 'the second DEFAULT request pending');
  const refused = await get(caller.outboundPort, 'cl-prio', '/low');
  assert.equal(refused.status, 503);
  assert.equal(refused.headers['x-envoy-overloaded'], 'true');
  assert.deepEqual(await gauges('default'), [1, 1, 0, 0], 'DEFAULT: max_connections and max_pending_requests reached');
  assert.deepEqual(await gauges('high'), [0, 0, 0, 0], 'HIGH: nothing taken');

  // HIGH: three requests, each on a connection of its own (HIGH's pool, HIGH's count), none refused.
  for (let i = 0; i < 3; i++) calls.push(get(caller.outboundPort, 'cl-prio', '/high'));
  await eventually(() => app.held() === 4, 5000, 'the three HIGH requests at the app beside the DEFAULT one');
  assert.equal(app.seen.connections, 4, "one DEFAULT connection, three HIGH ones: the HIGH requests did not wait for DEFAULT's");
  // A fourth HIGH request waits (HIGH's max_connections 3), among HIGH's pending places.
  calls.push(get(caller.outboundPort, 'cl-prio', '/high'));
  await eventually(async () => (await metric(caller.adminPort, 'envoy_cluster_upstream_rq_pending_active', cluster)) === 2, 5000, 'the fourth HIGH request pending');
  assert.equal(app.seen.connections, 4, 'no connection past HIGH max_connections');
  assert.deepEqual(await gauges('high'), [1, 0, 0, 0], 'HIGH: max_connections reached, max_pending_requests not');
  assert.deepEqual(await remaining(), [0, 2, 97, 3]);
  assert.deepEqual(await gauges('default'), [1, 1, 0, 0], "DEFAULT's own counts unchanged by HIGH traffic");

  const text = (await get(caller.adminPort, 'admin', '/stats?filter=circuit_breakers')).body;
  assert.match(text, /^cluster\.outbound\|7465\|\|cl-prio\.default\.circuit_breakers\.high\.cx_open: 1$/m, "Envoy's stat name");
  assert.match(text, /^cluster\.outbound\|7465\|\|cl-prio\.default\.circuit_breakers\.high\.remaining_pending: 2$/m);
  assert.match(text, /^cluster\.outbound\|7465\|\|cl-prio\.default\.circuit_breakers\.high\.cx_pool_open: 0$/m);
  assert.doesNotMatch(text, /circuit_breakers\.default\.remaining_/, "DEFAULT's thresholds have no track_remaining");
  const clusters = (await get(caller.adminPort, 'admin', '/clusters')).body;
  assert.match(clusters, /^outbound\|7465\|\|cl-prio\.default::default_priority::max_connections::1$/m);
  assert.match(clusters, /^outbound\|7465\|\|cl-prio\.default::high_priority::max_connections::3$/m);
  assert.match(clusters, /^outbound\|7465\|\|cl-prio\.default::high_priority::max_retries::3$/m);

  app.release();
  assert.deepEqual((await Promise.all(calls)).map((r) => r.status), [200, 200, 200, 200, 200, 200], 'every request but the DEFAULT overflow served');
  assert.equal(app.seen.connections, 4, 'the pending ones took their own priority\'s connections');
});

test('route priority HIGH with tighter limits than DEFAULT: HIGH max_requests 1 refuses the second HIGH request (503 x-envoy-overloaded, circuit_breakers.high.rq_open 1) while DEFAULT requests run side by side; HIGH max_retries 0 refuses a HIGH retry (upstream_rq_retry_overflow) that DEFAULT makes', { timeout: 30_000 }, async () => {
  let failing = true;
  const held: http.ServerResponse[] = [];
  const app = await startApp('cl-prio2', (req, res) => {
    if (req.url?.includes('flaky') && failing) {
      res.statusCode = 503;
      return res.end('down');
    }
    if (req.url?.includes('hold')) return void held.push(res);
    res.end('ok');
  });
  closers.push(() => app.close());
  const mesh = await TestMesh.start({
    translator: prioritized('cl-prio2', [{ priority: 'HIGH', max_requests: 1, max_retries: 0 }]),
  });
  closers.push(() => mesh.close());
  const dest = [{ service: 'cl-prio2', weight: 1 }];
  mesh.model.update({
    services: [service('cl-prio2-caller', 8000), service('cl-prio2', 7466)],
    instances: [instance('cl-prio2', app.port)],
    destinationPolicies: [],
    routes: [
      route('cl-prio2', [
        { name: 'high', match: [{ path: { prefix: '/high' } }], destinations: dest, retries: { attempts: 1, retryOn: ['5xx'] } },
        { name: 'low', match: [{ path: { prefix: '/' } }], destinations: dest, retries: { attempts: 1, retryOn: ['5xx'] } },
      ]),
    ],
  });
  const caller = await mesh.sidecar('cl-prio2-caller', 8000);
  const cluster = { envoy_cluster_name: 'outbound|7466||cl-prio2.default' };
  const first = get(caller.outboundPort, 'cl-prio2', '/high/hold');
  await eventually(() => held.length === 1, 5000, 'the first HIGH request at the app');
  const second = await get(caller.outboundPort, 'cl-prio2', '/high/hold');
  assert.equal(second.status, 503, 'HIGH max_requests 1: refused');
  assert.equal(second.headers['x-envoy-overloaded'], 'true');
  assert.equal(await metric(caller.adminPort, 'envoy_cluster_circuit_breakers_high_rq_open', cluster), 1);
  assert.equal(await metric(caller.adminPort, 'envoy_cluster_circuit_breakers_default_rq_open', cluster), 0);
  const low = [get(caller.outboundPort, 'cl-prio2', '/low/hold'), get(caller.outboundPort, 'cl-prio2', '/low/hold')];
  await eventually(() => held.length === 3, 5000, 'both DEFAULT requests at the app beside the HIGH one');
  for (const r of held.splice(0)) r.end('ok');
  assert.deepEqual([(await first).status, ...(await Promise.all(low)).map((r) => r.status)], [200, 200, 200]);
  assert.equal(await metric(caller.adminPort, 'envoy_cluster_circuit_breakers_high_rq_open', cluster), 0);

  // Retries: DEFAULT's max_retries (3) lets the retry go; HIGH's 0 refuses it.
  const hits = app.hits;
  assert.equal((await get(caller.outboundPort, 'cl-prio2', '/low/flaky')).status, 503);
  assert.equal(app.hits - hits, 2, 'DEFAULT: the first try and its retry');
  assert.equal(await metric(caller.adminPort, 'envoy_cluster_upstream_rq_retry_overflow', cluster), 0);
  assert.equal((await get(caller.outboundPort, 'cl-prio2', '/high/flaky')).status, 503);
  assert.equal(app.hits - hits, 3, 'HIGH: no retry');
  assert.equal(await metric(caller.adminPort, 'envoy_cluster_upstream_rq_retry_overflow', cluster), 1);
  failing = false;
});
