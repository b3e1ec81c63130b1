// A health-checked cluster's health_check.* stats, as Envoy's checker keeps
// them: attempt for every check, success or failure for its result,
// network_failure for a failure to connect or a timeout, and the gauges
// healthy (hosts its checks have in) and degraded (passing, but saying
// x-envoy-degraded).

import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { Cluster } from '../../sidecar/clusters.ts';
import type { ClusterConfig, EndpointConfig, HealthCheckConfig } from '../../sidecar/config.ts';
import { SidecarStats } from '../../sidecar/stats.ts';
import { clusterConfig, eventually, freePort, healthCheckConfig, startApp } from './harness.ts';

const closers: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of closers.reverse()) await c();
});

const check: HealthCheckConfig = healthCheckConfig();
const ep = (port: number): EndpointConfig => ({ address: '127.0.0.1', port, health: 'HEALTHY', weight: 1, priority: 0 });

test('health_check attempt, success, failure, network_failure, and the healthy and degraded gauges', { timeout: 20_000 }, async () => {
  const up = await startApp('up', (_req, res) => res.end());
  const degraded = await startApp('degraded', (_req, res) => {
    res.setHeader('x-envoy-degraded', '1');
    res.end();
  });
  const failing = await startApp('failing', (_req, res) => {
    res.statusCode = 503;
    res.end();
  });
  closers.push(() => up.close(), () => degraded.close(), () => failing.close());
  const refused = await freePort();
  const stats = new SidecarStats();
  const config: ClusterConfig = clusterConfig({ name: 'hcs', edsServiceName: 'hcs', healthChecks: [check] });
  stats.clusterAdded('hcs', { outlierDetection: false, healthChecks: true });
  const labels = stats.clusterLabel('hcs');
  assert.equal(stats.healthCheckHealthy.get(labels), 0, 'there at 0 with the cluster');
  const cluster = new Cluster(config, stats);
  closers.push(async () => cluster.close());
  cluster.setEndpoints([ep(up.port), ep(degraded.port), ep(failing.port), ep(refused)]);
  await eventually(() => stats.healthCheckAttempt.get(labels) === 4, 5000, 'each host checked once');
  assert.equal(stats.healthCheckSuccess.get(labels), 2);
  assert.equal(stats.healthCheckFailure.get(labels), 2);
  assert.equal(stats.healthCheckNetworkFailure.get(labels), 1, 'the refused connection, not the 503');
  assert.equal(stats.healthCheckHealthy.get(labels), 2);
  assert.equal(stats.healthCheckDegraded.get(labels), 1);
});
