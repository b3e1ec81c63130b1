// ?usedonly on /stats and /stats/prometheus as Envoy means it: the stats
// written at least once since start (Envoy's sticky "used" flag), not those
// that are not 0 now. A cluster whose healthy hosts fell to 0 keeps its
// membership_healthy 0 series, so an alert on it fires; a request gauge back
// at 0 and a counter /reset_counters zeroed stay listed; what was never
// written is left out.

import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { collectStats } from '../../sidecar/admin-stats.ts';
import { ClusterManager } from '../../sidecar/clusters.ts';
import type { SeriesFilter } from '../../sidecar/metrics.ts';
import { SidecarStats } from '../../sidecar/stats.ts';
import { MetricType, WasmResult } from '../../sidecar/wasm/abi.ts';
import { MetricStore } from '../../sidecar/wasm/metrics.ts';
import { callerToApi, clusterConfig, get } from './harness.ts';

const closers: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of closers.reverse()) await c();
});

const usedOnly: SeriesFilter = (_name, used) => used;
const lines = (text: string) => text.split('\n').filter((l) => l && !l.startsWith('#'));

test("a cluster whose last healthy host goes keeps membership_healthy 0 under usedonly (Envoy's set() marks a gauge used); ejections_active only once a host was ejected", () => {
  const stats = new SidecarStats();
  const cm = new ClusterManager(stats);
  try {
    cm.applyClusters(new Map([['web', clusterConfig({ name: 'web', edsServiceName: 'web' })]]));
    cm.applyEndpoints('web', [{ address: '127.0.0.1', port: 8001, health: 'HEALTHY', weight: 1, priority: 0 }]);
    assert.ok(lines(stats.registry.metrics(usedOnly)).includes('envoy_cluster_membership_healthy{envoy_cluster_name="web"} 1'));
    cm.applyEndpoints('web', [{ address: '127.0.0.1', port: 8001, health: 'UNHEALTHY', weight: 1, priority: 0 }]);
    const used = lines(stats.registry.metrics(usedOnly));
    assert.ok(used.includes('envoy_cluster_membership_healthy{envoy_cluster_name="web"} 0'), 'the series an alert on no healthy host reads is still there');
    assert.ok(used.includes('envoy_cluster_membership_total{envoy_cluster_name="web"} 1'));
    // Recomputed on every refresh here, moved only by an ejection in Envoy: not used while no host was ejected.
    assert.ok(!used.some((l) => l.startsWith('envoy_cluster_outlier_detection_ejections_active{')));
    // Never written: left out.
    assert.ok(!used.some((l) => l.startsWith('envoy_cluster_upstream_rq_timeout{') || l.startsWith('envoy_cluster_upstream_rq_pending_active{')));
  } finally {
    cm.close();
  }
});

test('through a running sidecar: request gauges back at 0 and counters /reset_counters zeroed stay under usedonly; the server state (0, LIVE) is listed', { timeout: 30_000 }, async () => {
  const { sc } = await callerToApi(closers);
  for (let i = 0; i < 2; i++) assert.equal((await get(sc.outboundPort, 'api', '/')).status, 200);
  const stats = async (q: string) => (await (await fetch(`http://127.0.0.1:${sc.adminPort}/stats?${q}`)).text()).trimEnd().split('\n');
  const cluster = 'cluster.outbound|7000||api.default';

  let used = await stats('usedonly');
  for (const line of ['server.state: 0', 'http.outbound.downstream_rq_active: 0', `${cluster}.upstream_rq_active: 0`, `${cluster}.upstream_rq_200: 2`, 'listener_manager.total_listeners_draining: 0']) {
    assert.ok(used.includes(line), `${line} in\n${used.join('\n')}`);
  }
  // The first request waited for the connection made for it, so it was pending (as in Envoy's pool): pending_active moved, and is listed.
  assert.ok(used.includes(`${cluster}.upstream_rq_pending_active: 0`), used.join('\n'));
  assert.ok(!used.some((l) => l.startsWith(`${cluster}.upstream_rq_retry:`) || l.startsWith(`${cluster}.upstream_rq_retry_success:`)), 'never written: left out');
  // Istio's pilot-agent asks exactly this for readiness (GetReadinessStats) and waits while server.state is absent.
  const readiness = await stats('usedonly&filter=^(server\\.state|listener_manager\\.workers_started)');
  assert.ok(readiness.includes('server.state: 0'), readiness.join('\n'));
  assert.ok(readiness.includes('listener_manager.workers_started: 1'), readiness.join('\n'));

  assert.equal((await fetch(`http://127.0.0.1:${sc.adminPort}/reset_counters`, { method: 'POST' })).status, 200);
  used = await stats('usedonly');
  assert.ok(used.includes(`${cluster}.upstream_rq_200: 0`) && used.includes(`${cluster}.upstream_rq_total: 0`), 'a reset counter was written: still listed, at 0');
  assert.ok(!used.some((l) => l.startsWith(`${cluster}.upstream_rq_retry:`)));
  const prom = lines(await (await fetch(`http://127.0.0.1:${sc.adminPort}/stats/prometheus?usedonly`)).text());
  assert.ok(prom.includes('envoy_cluster_upstream_rq_total{envoy_cluster_name="outbound|7000||api.default"} 0'));
  assert.ok(prom.includes('envoy_http_downstream_rq_active{envoy_http_conn_manager_prefix="outbound"} 0'));
});

test("a wasm filter's metrics under usedonly: a gauge set to 0 and a counter /reset_counters zeroed are used, one never written is not (Envoy's stats they are)", () => {
  const store = new MetricStore();
  const gauge = store.define(MetricType.Gauge, 'queue_depth').id;
  const counter = store.define(MetricType.Counter, 'denied_total').id;
  store.define(MetricType.Counter, 'never_total');
  store.define(MetricType.Histogram, 'never_ms');
  assert.equal(store.record(gauge, 0n), WasmResult.Ok);
  assert.equal(store.increment(counter, 3n), WasmResult.Ok);
  store.find('denied_total')!.value = 0n; // what POST /reset_counters does to it (DataPlane.resetCounters)
  const kept: string[] = [];
  const text = store.prometheus({ plugin: 'p' }, (name, used) => {
    if (used) kept.push(name);
    return used;
  });
  assert.deepEqual(kept.sort(), ['wasmcustom.denied_total', 'wasmcustom.queue_depth']);
  assert.match(text, /^queue_depth\{plugin="p"\} 0$/m);
  assert.match(text, /^denied_total\{plugin="p"\} 0$/m);
  const stats = collectStats([], [{ plugin: 'p', metrics: store.all() }], { usedOnly: true });
  assert.deepEqual(stats.scalars, [{ name: 'wasmcustom.denied_total', value: 0 }, { name: 'wasmcustom.queue_depth', value: 0 }]);
  assert.deepEqual(stats.histograms, []);
});
