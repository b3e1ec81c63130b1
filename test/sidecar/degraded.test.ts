// DEGRADED hosts as Envoy uses them (LoadBalancerBase::recalculatePerPriorityState,
// choosePriority): only for the traffic the healthy hosts cannot take once their
// share of the hosts, times the overprovisioning factor (1.4), falls below 100%;
// panic mode counts them with the healthy ones and never starts while healthy and
// degraded together are fully available. A host is degraded by EDS or by an active
// health check answering with x-envoy-degraded.

import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { clustersText } from '../../sidecar/admin-clusters.ts';
import { Cluster, type ClusterManager, type EndpointPolicy } from '../../sidecar/clusters.ts';
import type { ClusterConfig, ClusterLoadAssignmentConfig, EndpointConfig, HealthCheckConfig } from '../../sidecar/config.ts';
import { accept } from '../../sidecar/fidelity.ts';
import { HealthChecker } from '../../sidecar/health.ts';
import type { CheckedHost } from '../../sidecar/health.ts';
import { SidecarStats } from '../../sidecar/stats.ts';
import { clusterConfig, startApp } from './harness.ts';

const closers: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of closers.reverse()) await c();
});

const config = clusterConfig;

/** Ports 1.. healthy, then degraded, then unhealthy. */
function endpoints(healthy: number, degraded: number, unhealthy = 0): EndpointConfig[] {
  const out: EndpointConfig[] = [];
  const add = (n: number, health: EndpointConfig['health']) => {
    for (let i = 0; i < n; i++) out.push({ address: '127.0.0.1', port: out.length + 1, health, weight: 1, priority: 0 });
  };
  add(healthy, 'HEALTHY');
  add(degraded, 'DEGRADED');
  add(unhealthy, 'UNHEALTHY');
  return out;
}

/** A cluster whose draws run evenly over [0, 1), so shares come out exact. */
function clusterOf(eps: EndpointConfig[], extra: Partial<ClusterConfig> = {}, policy?: EndpointPolicy): Cluster {
  let i = 0;
  const c = new Cluster(config(extra), new SidecarStats(), Date.now, undefined, () => (i++ % 100) / 100);
  closers.push(async () => c.close());
  c.setEndpoints(eps, policy);
  return c;
}

function shares(c: Cluster, picks = 1000): { healthy: number; degraded: number; unhealthy: number } {
  const out = { healthy: 0, degraded: 0, unhealthy: 0 };
  for (let i = 0; i < picks; i++) {
    const h = c.pick({})!;
    if (h.edsHealth === 'DEGRADED') out.degraded++;
    else if (h.edsHealth === 'UNHEALTHY') out.unhealthy++;
    else out.healthy++;
  }
  return out;
}

test('degraded hosts take nothing while the healthy ones x 1.4 cover the load', () => {
  // 8 healthy of 10: 8 x 1.4 = 112%, capped at 100: the two degraded hosts stay idle.
  assert.deepEqual(shares(clusterOf(endpoints(8, 2))), { healthy: 1000, degraded: 0, unhealthy: 0 });
  // 3 healthy, 1 degraded: 3/4 x 1.4 = 105%.
  assert.deepEqual(shares(clusterOf(endpoints(3, 1))), { healthy: 1000, degraded: 0, unhealthy: 0 });
});

test("degraded hosts take what the healthy ones fall short of, Envoy's priority load split", () => {
  // 5 and 5: 70% and 70% available, 100 in all: the healthy take 70, the degraded the other 30.
  assert.deepEqual(shares(clusterOf(endpoints(5, 5))), { healthy: 700, degraded: 300, unhealthy: 0 });
  // 2 healthy, 2 degraded, 1 unhealthy: 56% and 56% available, capped at 100 together: the healthy take their 56,
  // the degraded the 44 left.
  assert.deepEqual(shares(clusterOf(endpoints(2, 2, 1))), { healthy: 560, degraded: 440, unhealthy: 0 });
  // Only degraded hosts: they take everything, and that is no panic.
  assert.deepEqual(shares(clusterOf(endpoints(0, 3))), { healthy: 0, degraded: 1000, unhealthy: 0 });
});

test("the EDS policy's overprovisioning_factor and weighted_priority_health change the split", () => {
  // Factor 100 (no headroom): 5 healthy of 10 are 50% available, so the degraded take half.
  const r = accept('endpoint', { cluster_name: 'c', endpoints: [], policy: { overprovisioning_factor: 100, weighted_priority_health: true } });
  assert.ok(r.ok, JSON.stringify(!r.ok && r.errors));
  const policy = (r.value as ClusterLoadAssignmentConfig).policy;
  assert.deepEqual(policy, { overprovisioningFactor: 100, weightedPriorityHealth: true });
  assert.deepEqual(shares(clusterOf(endpoints(5, 5), {}, { overprovisioningFactor: 100, weightedPriorityHealth: false })), { healthy: 500, degraded: 500, unhealthy: 0 });
  // Weighted: one healthy host of weight 4 against four degraded of weight 1 is 4/8 x 1.4 = 70%.
  const eps = endpoints(1, 4).map((e, i) => (i === 0 ? { ...e, weight: 4 } : e));
  assert.deepEqual(shares(clusterOf(eps, {}, { overprovisioningFactor: 140, weightedPriorityHealth: true })), { healthy: 700, degraded: 300, unhealthy: 0 });
  const bad = accept('endpoint', { cluster_name: 'c', endpoints: [], policy: { overprovisioning_factor: 0 } });
  assert.equal(bad.ok, false);
  assert.deepEqual(!bad.ok && bad.errors.map((e) => e.path), ['policy.overprovisioning_factor']);
});

test('panic counts degraded hosts with the healthy, and never starts while both together are fully available', () => {
  // Threshold 90, 8 healthy of 10: 80% < 90%, but 8 x 1.4 covers the load, so Envoy stays out of panic.
  assert.deepEqual(shares(clusterOf(endpoints(8, 0, 2), { panicThresholdPercent: 90 })), { healthy: 1000, degraded: 0, unhealthy: 0 });
  // 2 healthy + 2 degraded of 10: 40% < 50% and only 56% available: panic, every host.
  const panic = shares(clusterOf(endpoints(2, 2, 6)));
  assert.equal(panic.unhealthy, 600);
  // 3 + 3 of 10: 60% >= 50%: no panic; 42% and 42% available, half each.
  assert.deepEqual(shares(clusterOf(endpoints(3, 3, 4))), { healthy: 500, degraded: 500, unhealthy: 0 });
});

test('ring hash sends only to healthy hosts outside panic, as Envoy builds its ring from them', () => {
  const c = clusterOf(endpoints(5, 5), { lbPolicy: 'RING_HASH' });
  for (let i = 0; i < 200; i++) assert.equal(c.pick({ hash: BigInt(i) * 92233720368547758n })!.edsHealth, 'HEALTHY');
});

test('a passing health check that answers x-envoy-degraded marks its host degraded, and a later plain pass clears it', async () => {
  let degraded = true;
  const app = await startApp('hc', (_req, res) => {
    if (degraded) res.setHeader('x-envoy-degraded', '');
    res.end();
  });
  closers.push(() => app.close());
  const hc: HealthCheckConfig = { path: '/healthz', intervalMs: 60_000, noTrafficIntervalMs: 60_000, unhealthyIntervalMs: 60_000, unhealthyEdgeIntervalMs: 60_000, healthyEdgeIntervalMs: 60_000, timeoutMs: 2000, healthyThreshold: 1, unhealthyThreshold: 1, expectedStatuses: [{ start: 200, end: 201 }] };
  const checker = new HealthChecker(hc, () => [], () => undefined);
  const h: CheckedHost = { key: `127.0.0.1:${app.port}`, address: '127.0.0.1', port: app.port, activeHealthy: true, hcFailures: 0, hcSuccesses: 0 };
  assert.equal(await checker.check(h), true, 'still a pass');
  assert.equal(h.activeDegraded, true);
  degraded = false;
  await checker.check(h);
  assert.equal(h.activeDegraded, false);

  // In a cluster: a host its check calls degraded is used as a degraded one, and admin /clusters says so.
  const c = clusterOf(endpoints(5, 0));
  for (const host of c.hosts.slice(0, 5).filter((_, i) => i >= 2)) host.activeDegraded = true;
  // 2 healthy, 3 degraded by their checks: 56% and 84% available: the healthy take 56, the degraded 44.
  let byCheck = 0;
  for (let i = 0; i < 1000; i++) if (c.pick({})!.activeDegraded) byCheck++;
  assert.equal(byCheck, 440);
  const text = clustersText({ clusters: new Map([['c', c]]), active: () => [c].values() } as unknown as ClusterManager);
  assert.match(text, /c::127\.0\.0\.1:3::health_flags::\/degraded_active_hc/);
});

test('membership_healthy counts the healthy host set, as Envoy: not the degraded hosts, not the ejected ones; membership_degraded counts the degraded set', () => {
  const stats = new SidecarStats();
  const c = new Cluster(config(), stats);
  closers.push(async () => c.close());
  const gauge = () => stats.membershipHealthy.series(stats.clusterLabel('c')).value;
  const degraded = () => stats.membershipDegraded.series(stats.clusterLabel('c')).value;
  c.setEndpoints(endpoints(3, 2));
  assert.equal(gauge(), 3, 'the two DEGRADED endpoints are not healthy');
  assert.equal(degraded(), 2);
  c.hosts[0]!.activeDegraded = true;
  c.hosts[1]!.ejectedUntil = Date.now() + 60_000;
  c.tickOutliers();
  assert.equal(gauge(), 1, 'one degraded by its check, one ejected');
  assert.equal(degraded(), 3, 'the two EDS DEGRADED and the one its check marked');
});

test('round robin keeps its place in the healthy and the degraded hosts apart, as Envoy keeps one index per host source', () => {
  // Factor 100: 2 healthy of 4 take half. Draws alternate healthy, degraded, healthy, ...
  let i = 0;
  const c = new Cluster(config(), new SidecarStats(), Date.now, undefined, () => (i++ % 2 === 0 ? 0.1 : 0.9));
  closers.push(async () => c.close());
  c.setEndpoints(endpoints(2, 2), { overprovisioningFactor: 100, weightedPriorityHealth: false });
  const byPort = new Map<number, number>();
  for (let n = 0; n < 100; n++) {
    const port = c.pick({})!.port;
    byPort.set(port, (byPort.get(port) ?? 0) + 1);
  }
  // One shared rotation would give each set the same host every time (its turns are every other one).
  assert.deepEqual([...byPort].sort(([a], [b]) => a - b), [[1, 25], [2, 25], [3, 25], [4, 25]]);
});

test("a STATIC cluster's load_assignment policy is read as EDS's, not NACKed", () => {
  const lbEndpoints = endpoints(1, 1).map((e) => ({ endpoint: { address: { socket_address: { address: e.address, port_value: e.port } } }, health_status: e.health }));
  const r = accept('cluster', { name: 'c', type: 'STATIC', connect_timeout: '1s', load_assignment: { cluster_name: 'c', endpoints: [{ lb_endpoints: lbEndpoints }], policy: { overprovisioning_factor: 100 } } });
  assert.ok(r.ok, JSON.stringify(!r.ok && r.errors));
  const decoded = r.value as ClusterConfig;
  assert.deepEqual(decoded.staticPolicy, { overprovisioningFactor: 100, weightedPriorityHealth: false });
  let i = 0;
  const c = new Cluster(decoded, new SidecarStats(), Date.now, undefined, () => (i++ % 100) / 100);
  closers.push(async () => c.close());
  // 1 of 2 healthy at factor 100: half the requests go to the degraded host (at 140, 70 / 30).
  assert.deepEqual(shares(c, 100), { healthy: 50, degraded: 50, unhealthy: 0 });
});
