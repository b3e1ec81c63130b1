// The cluster circuit breakers' retry_budget, per_host_thresholds and the
// circuit_breakers.<cluster>.<priority>.* runtime keys on a live sidecar, as
// Envoy applies them (source/common/upstream/resource_manager_impl.h,
// upstream_impl.cc, HostImpl::canCreateConnection): a retry budget in place of
// max_retries, a host's connections capped by per_host_thresholds'
// max_connections (the requests wait, upstream_cx_overflow), and a runtime key
// set through POST /runtime_modify tightening a limit from the next check on.
// weft's translator writes neither retry_budget nor per_host_thresholds: the
// tests edit its clusters as an operator's Envoy config might.

import assert from 'node:assert/strict';
import type http from 'node:http';
import { after, test } from 'node:test';
import { defaultTranslator } from '../../control/xds/index.ts';
import { TestMesh, admin, eventually, get, instance, metric, route, runtimeModify, service, startApp } from './harness.ts';

const closers: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of closers.reverse()) await c().catch(() => undefined);
});

/** A mesh whose translator's clusters go through `edit` (each cluster, by name). */
async function mesh(edit: (c: Record<string, any>) => void): Promise<TestMesh> {
  const base = defaultTranslator({ wasmBaseUrl: 'http://127.0.0.1:1', wasmClusterName: 'weft-control' });
  const m = await TestMesh.start({
    translator: {
      translateEndpoints: (x, n) => base.translateEndpoints(x, n),
      translateProxy: (x, p) => {
        const out = base.translateProxy(x, p);
        for (const c of out.clusters) edit(c.value as Record<string, any>);
        return out;
      },
    },
  });
  closers.push(() => m.close());
  return m;
}

/** POST /runtime_modify?KEY=VALUE, expected to be taken. */
const modify = (adminPort: number, key: string, value: string) => runtimeModify(adminPort, `${encodeURIComponent(key)}=${encodeURIComponent(value)}`);

/**
 * An app holding requests until release(), counting the TCP connections it accepted; with `failFirst`, the first
 * request of each x-call is answered 503 at once (the retry is held).
 */
async function holdingApp(name: string, failFirst = false) {
  const held: http.ServerResponse[] = [];
  const calls = new Map<string, number>();
  let releasing = false;
  const app = await startApp(name, (req, res) => {
    const call = String(req.headers['x-call'] ?? '');
    const n = (calls.get(call) ?? 0) + 1;
    calls.set(call, n);
    if (failFirst && n === 1) {
      res.statusCode = 503;
      return res.end('fail');
    }
    if (releasing) return res.end('ok');
    held.push(res);
  });
  closers.push(() => app.close());
  const seen = { connections: 0 };
  app.server.on('connection', () => seen.connections++);
  return {
    port: app.port,
    seen,
    held: () => held.length,
    /** Requests the app saw for x-call `call`. */
    attempts: (call: string) => calls.get(call) ?? 0,
    release() {
      releasing = true;
      for (const r of held.splice(0)) r.end('ok');
    },
  };
}

test('retry_budget replaces max_retries: min_retry_concurrency 1 lets one retry be in flight, a second is refused (the 503 goes downstream, upstream_rq_retry_overflow, rq_retry_open); its runtime key raises it live', { timeout: 30_000 }, async () => {
  const app = await holdingApp('rb-app', true);
  const clusterName = 'outbound|7480||rb-one.default';
  const m = await mesh((c) => {
    if (c.name !== clusterName) return;
    // max_retries 3 would admit three retries in flight: the budget (20% of a handful of requests: under 1) allows one.
    c.circuit_breakers.thresholds[0].max_retries = 3;
    c.circuit_breakers.thresholds[0].retry_budget = { budget_percent: { value: 20 }, min_retry_concurrency: 1 };
  });
  m.model.update({
    services: [service('rb-caller', 8000), service('rb-one', 7480)],
    instances: [instance('rb-one', app.port)],
    routes: [route('rb-one', [{ destinations: [{ service: 'rb-one', weight: 1 }], retries: { attempts: 2, retryOn: ['5xx'] } }])],
  });
  const caller = await m.sidecar('rb-caller', 8000);
  const cluster = { envoy_cluster_name: clusterName };
  const call = (id: string) => get(caller.outboundPort, 'rb-one', '/', { headers: { 'x-call': id } });
  const first = call('a');
  await eventually(() => app.held() === 1 && app.attempts('a') === 2, 5000, "the first call's retry held at the app");
  assert.equal(await metric(caller.adminPort, 'envoy_cluster_circuit_breakers_default_rq_retry_open', cluster), 1, 'the budget (1) is reached');
  const refused = await call('b');
  assert.equal(refused.status, 503, "the upstream's 503, not retried");
  assert.equal(app.attempts('b'), 1, 'no retry sent');
  assert.equal(await metric(caller.adminPort, 'envoy_cluster_upstream_rq_retry_overflow', cluster), 1);
  const clusters = await admin(caller.adminPort, '/clusters');
  assert.match(clusters.body, new RegExp(`${clusterName.replace(/\|/g, '\\|')}::default_priority::max_retries::1\\n`), 'the budget shows as max_retries in /clusters, as Envoy prints retries().max()');
  // The runtime key over the configured min_retry_concurrency, from the next check on.
  await modify(caller.adminPort, `circuit_breakers.${clusterName}.default.retry_budget.min_retry_concurrency`, '2');
  const second = call('c');
  await eventually(() => app.held() === 2 && app.attempts('c') === 2, 5000, "the third call's retry held at the app");
  assert.equal(await metric(caller.adminPort, 'envoy_cluster_upstream_rq_retry_overflow', cluster), 1, 'admitted under the raised budget');
  app.release();
  assert.deepEqual([(await first).status, (await second).status], [200, 200]);
});

test('retry_budget through the runtime alone: a retry_budget.budget_percent key turns the budget on over max_retries (as Envoy useRetryBudget), and removing it restores max_retries', { timeout: 30_000 }, async () => {
  const app = await holdingApp('rb-app2', true);
  const clusterName = 'outbound|7481||rb-two.default';
  const m = await mesh(() => undefined);
  m.model.update({
    services: [service('rb-caller2', 8000), service('rb-two', 7481)],
    instances: [instance('rb-two', app.port)],
    routes: [route('rb-two', [{ destinations: [{ service: 'rb-two', weight: 1 }], retries: { attempts: 2, retryOn: ['5xx'] } }])],
  });
  const caller = await m.sidecar('rb-caller2', 8000);
  const cluster = { envoy_cluster_name: clusterName };
  const call = (id: string) => get(caller.outboundPort, 'rb-two', '/', { headers: { 'x-call': id } });
  // Both keys at 0: a budget of no retry at all, over max_retries (3).
  await modify(caller.adminPort, `circuit_breakers.${clusterName}.default.retry_budget.budget_percent`, '0');
  await modify(caller.adminPort, `circuit_breakers.${clusterName}.default.retry_budget.min_retry_concurrency`, '0');
  const refused = await call('x');
  assert.equal(refused.status, 503);
  assert.equal(app.attempts('x'), 1, 'a budget of 0: no retry');
  assert.equal(await metric(caller.adminPort, 'envoy_cluster_upstream_rq_retry_overflow', cluster), 1);
  await modify(caller.adminPort, `circuit_breakers.${clusterName}.default.retry_budget.budget_percent`, '');
  await modify(caller.adminPort, `circuit_breakers.${clusterName}.default.retry_budget.min_retry_concurrency`, '');
  const retried = call('y');
  await eventually(() => app.attempts('y') === 2, 5000, 'retried under max_retries again');
  app.release();
  assert.equal((await retried).status, 200);
  assert.equal(await metric(caller.adminPort, 'envoy_cluster_upstream_rq_retry_overflow', cluster), 1);
});

test("per_host_thresholds max_connections 1: the host's requests share one connection (the others wait, upstream_cx_overflow) though the cluster allows 1024", { timeout: 30_000 }, async () => {
  const app = await holdingApp('ph-app');
  const clusterName = 'outbound|7482||ph-one.default';
  const m = await mesh((c) => {
    if (c.name === clusterName) c.circuit_breakers.per_host_thresholds = [{ max_connections: 1 }];
  });
  m.model.update({
    services: [service('ph-caller', 8000), service('ph-one', 7482)],
    instances: [instance('ph-one', app.port)],
    routes: [],
  });
  const caller = await m.sidecar('ph-caller', 8000);
  const cluster = { envoy_cluster_name: clusterName };
  const calls = [get(caller.outboundPort, 'ph-one')];
  await eventually(() => app.held() === 1, 5000, 'the first at the app');
  calls.push(get(caller.outboundPort, 'ph-one'), get(caller.outboundPort, 'ph-one'));
  await eventually(async () => (await metric(caller.adminPort, 'envoy_cluster_upstream_rq_pending_active', cluster)) === 2, 5000, 'two pending');
  assert.equal(app.seen.connections, 1, 'no second connection to the host');
  assert.ok((await metric(caller.adminPort, 'envoy_cluster_upstream_cx_overflow', cluster)) >= 1, 'upstream_cx_overflow counted');
  assert.equal(await metric(caller.adminPort, 'envoy_cluster_circuit_breakers_default_cx_open', cluster), 0, "the cluster's max_connections is not reached");
  app.release();
  assert.deepEqual((await Promise.all(calls)).map((r) => r.status), [200, 200, 200]);
  assert.equal(app.seen.connections, 1, 'all three on the one connection');
});

test('circuit_breakers.<cluster>.default.max_requests set through /runtime_modify tightens max_requests live (503 x-envoy-overloaded, rq_open, /clusters), and removing it restores the configured limit', { timeout: 30_000 }, async () => {
  const app = await holdingApp('rt-app');
  const clusterName = 'outbound|7483||rt-one.default';
  const m = await mesh(() => undefined);
  m.model.update({
    services: [service('rt-caller', 8000), service('rt-one', 7483)],
    instances: [instance('rt-one', app.port)],
    routes: [],
  });
  const caller = await m.sidecar('rt-caller', 8000);
  const cluster = { envoy_cluster_name: clusterName };
  const key = `circuit_breakers.${clusterName}.default.max_requests`;
  await modify(caller.adminPort, key, '1');
  const calls = [get(caller.outboundPort, 'rt-one')];
  await eventually(() => app.held() === 1, 5000, 'the first at the app');
  assert.equal(await metric(caller.adminPort, 'envoy_cluster_circuit_breakers_default_rq_open', cluster), 1);
  const refused = await get(caller.outboundPort, 'rt-one');
  assert.equal(refused.status, 503);
  assert.equal(refused.headers['x-envoy-overloaded'], 'true');
  assert.equal(await metric(caller.adminPort, 'envoy_cluster_upstream_rq_pending_overflow', cluster), 1);
  assert.match((await admin(caller.adminPort, '/clusters')).body, /::default_priority::max_requests::1\n/);
  await modify(caller.adminPort, key, '');
  calls.push(get(caller.outboundPort, 'rt-one'));
  await eventually(() => app.held() === 2, 5000, 'admitted under the configured max_requests again');
  app.release();
  assert.deepEqual((await Promise.all(calls)).map((r) => r.status), [200, 200]);
  assert.equal(await metric(caller.adminPort, 'envoy_cluster_upstream_rq_pending_overflow', cluster), 1);
});
