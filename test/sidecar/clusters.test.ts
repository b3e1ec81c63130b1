// Which hosts may take a new request: EDS health (DRAINING and UNHEALTHY
// take none), outlier ejection, and Envoy's panic mode below the threshold.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { clustersJson, clustersText } from '../../sidecar/admin-clusters.ts';
import { Cluster, type ClusterManager } from '../../sidecar/clusters.ts';
import type { EndpointConfig } from '../../sidecar/config.ts';
import { ENVOY_OUTLIER_DEFAULTS } from '../../sidecar/config.ts';
import { SidecarStats } from '../../sidecar/stats.ts';
import { clusterConfig, eventually } from './harness.ts';

const config = clusterConfig;
const ep = (port: number, health: EndpointConfig['health']): EndpointConfig => ({ address: '127.0.0.1', port, health, weight: 1, priority: 0 });

test('DRAINING, UNHEALTHY and TIMEOUT endpoints take no new requests; HEALTHY, UNKNOWN and DEGRADED do', () => {
  const c = new Cluster(config(), new SidecarStats());
  try {
    c.setEndpoints([ep(1, 'HEALTHY'), ep(2, 'UNKNOWN'), ep(3, 'DEGRADED'), ep(4, 'DRAINING'), ep(5, 'UNHEALTHY'), ep(6, 'TIMEOUT')]);
    assert.deepEqual(c.usableHosts().map((h) => h.port).sort(), [1, 2, 3]);
    // 2 healthy of the 5 not draining are 56% available: the DEGRADED host takes a third of the requests (degraded.test.ts).
    const picked = new Set(Array.from({ length: 300 }, () => c.pick({})!.port));
    assert.deepEqual([...picked].sort(), [1, 2, 3]);
  } finally {
    c.close();
  }
});

test("admin /clusters?format=json: eds_health_status as Envoy's admin derives it from the host's flags (HEALTHY for an endpoint sent UNKNOWN, UNHEALTHY for TIMEOUT)", () => {
  const c = new Cluster(config(), new SidecarStats());
  try {
    c.setEndpoints([ep(1, 'HEALTHY'), ep(2, 'UNKNOWN'), ep(3, 'DEGRADED'), ep(4, 'DRAINING'), ep(5, 'UNHEALTHY'), ep(6, 'TIMEOUT')]);
    const cm = { clusters: new Map([['c', c]]), active: () => [c].values() } as unknown as ClusterManager;
    type Json = { cluster_statuses: { host_statuses: { address: { socket_address: { port_value: number } }; health_status: { eds_health_status: string } }[] }[] };
    const hosts = (clustersJson(cm) as Json).cluster_statuses[0]!.host_statuses;
    const status = Object.fromEntries(hosts.map((h) => [h.address.socket_address.port_value, h.health_status.eds_health_status]));
    assert.deepEqual(status, { 1: 'HEALTHY', 2: 'HEALTHY', 3: 'DEGRADED', 4: 'DRAINING', 5: 'UNHEALTHY', 6: 'UNHEALTHY' });
    // The text format's health_flags agree: what the JSON calls HEALTHY is `healthy` there.
    const flags = clustersText(cm).split('\n').filter((l) => l.includes('::health_flags::')).map((l) => l.slice(l.lastIndexOf('::') + 2));
    assert.deepEqual(flags, ['healthy', 'healthy', '/degraded_eds_health', '/eds_status_draining', '/failed_eds_health', '/failed_eds_health']);
  } finally {
    c.close();
  }
});

test('an ejected host is skipped until its ejection ends (at the interval tick after base_ejection_time); below the panic threshold every candidate is used', () => {
  let now = 1_000;
  const c = new Cluster(config({ outlierDetection: { ...ENVOY_OUTLIER_DEFAULTS, consecutive5xx: 2, intervalMs: 60_000, baseEjectionTimeMs: 5_000, maxEjectionPercent: 100 } }), new SidecarStats(), () => now);
  try {
    c.setEndpoints([ep(1, 'HEALTHY'), ep(2, 'HEALTHY'), ep(3, 'HEALTHY')]);
    const h3 = c.hosts.find((h) => h.port === 3)!;
    c.recordResult(h3, 503);
    assert.equal(c.usableHosts().length, 3, 'one 5xx is not enough');
    c.recordResult(h3, 0);
    assert.deepEqual(c.usableHosts().map((h) => h.port).sort(), [1, 2]);
    now += 5_001;
    assert.equal(c.usableHosts().length, 2, 'still out after base_ejection_time until the interval ends');
    c.tickOutliers();
    assert.equal(c.usableHosts().length, 3, 'back at the interval after base_ejection_time');
    // Two of three ejected: 33% usable is under the 50% panic threshold, so all three take traffic.
    for (const h of c.hosts.filter((x) => x.port !== 1)) {
      c.recordResult(h, 500);
      c.recordResult(h, 500);
    }
    assert.equal(c.hosts.filter((h) => h.ejectedUntil > now).length, 2, 'both ejected');
    assert.equal(c.usableHosts().length, 3);
    c.update({ ...c.config, panicThresholdPercent: 0 });
    assert.deepEqual(c.usableHosts().map((h) => h.port), [1], 'panic mode off: only the healthy host');
  } finally {
    c.close();
  }
});

test('a CDS update that leaves a cluster as it was does not restart its outlier detection interval', { timeout: 20_000 }, async () => {
  const c = new Cluster(config({ outlierDetection: { ...ENVOY_OUTLIER_DEFAULTS, consecutive5xx: 1, intervalMs: 300, baseEjectionTimeMs: 100, maxEjectionPercent: 100 } }), new SidecarStats());
  // The control plane pushes every 100 ms (any change anywhere in the mesh resends every cluster), faster than the interval.
  const pushes = setInterval(() => c.update(structuredClone(c.config)), 100);
  try {
    c.setEndpoints([ep(1, 'HEALTHY'), ep(2, 'HEALTHY')]);
    c.recordResult(c.hosts[0]!, 503);
    assert.deepEqual(c.usableHosts().map((h) => h.port), [2], 'ejected');
    // Back at the first interval tick after base_ejection_time, pushes or not.
    await eventually(() => c.usableHosts().length === 2, 5000, 'the ejected host back');
  } finally {
    clearInterval(pushes);
    c.close();
  }
});

test("panic mode, as Envoy's: counted over the hosts not draining, and then every one of them takes traffic, EDS UNHEALTHY and TIMEOUT too; each pick in panic counts lb_healthy_panic", () => {
  const stats = new SidecarStats();
  const c = new Cluster(config(), stats);
  const panics = () => stats.lbHealthyPanic.series(stats.clusterLabel('c')).value;
  const excluded = () => stats.membershipExcluded.series(stats.clusterLabel('c')).value;
  try {
    // One healthy host of three not draining: 33%, under the 50% threshold.
    c.setEndpoints([ep(1, 'HEALTHY'), ep(2, 'UNHEALTHY'), ep(3, 'TIMEOUT'), ep(4, 'DRAINING')]);
    assert.deepEqual(c.usableHosts().map((h) => h.port).sort(), [1, 2, 3]);
    assert.equal(excluded(), 1, 'the draining host is excluded');
    for (let i = 0; i < 5; i++) c.pick({});
    assert.equal(panics(), 5);
    // Two of three not draining are healthy (67%): no panic, though two of five hosts would be 40%.
    c.setEndpoints([ep(1, 'HEALTHY'), ep(2, 'HEALTHY'), ep(3, 'UNHEALTHY'), ep(4, 'DRAINING'), ep(5, 'DRAINING')]);
    assert.deepEqual(c.usableHosts().map((h) => h.port).sort(), [1, 2]);
    assert.equal(excluded(), 2);
    for (let i = 0; i < 5; i++) c.pick({});
    assert.equal(panics(), 5, 'no panic, no count');
  } finally {
    c.close();
  }
});
