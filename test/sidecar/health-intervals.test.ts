// When the sidecar health-checks a host, as Envoy chooses: no_traffic_interval
// until the cluster has carried a request (60 s unset), then interval;
// unhealthy_interval for a failing host; the edge intervals while a change
// of state waits for its threshold.

import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import type { HealthCheckConfig } from '../../sidecar/config.ts';
import { HealthChecker, nextCheckIn } from '../../sidecar/health.ts';
import { TestMesh, eventually, get, healthCheckConfig, instance, policy, service, startApp, withFields } from './harness.ts';

const closers: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of closers.reverse()) await c();
});

const config: HealthCheckConfig = healthCheckConfig({ intervalMs: 1000, unhealthyIntervalMs: 2000, unhealthyEdgeIntervalMs: 3000, healthyEdgeIntervalMs: 4000, timeoutMs: 500, healthyThreshold: 2, unhealthyThreshold: 2 });

test("Envoy's interval choice: no traffic yet, then by the check's result and whether a change is pending", () => {
  assert.equal(nextCheckIn(config, false, true, false), 60_000);
  assert.equal(nextCheckIn(config, false, false, true), 60_000);
  assert.equal(nextCheckIn(config, true, true, false), 1000, 'healthy, stays healthy');
  assert.equal(nextCheckIn(config, true, false, false), 2000, 'unhealthy, stays unhealthy');
  assert.equal(nextCheckIn(config, true, false, true), 3000, 'healthy host failed once: unhealthy edge');
  assert.equal(nextCheckIn(config, true, true, true), 4000, 'unhealthy host passed once: healthy edge');
  // no_traffic_healthy_interval: before traffic, for a host that passed and stays healthy.
  const healthyIdle: HealthCheckConfig = { ...config, noTrafficHealthyIntervalMs: 90_000 };
  assert.equal(nextCheckIn(healthyIdle, false, true, false), 90_000);
  assert.equal(nextCheckIn(healthyIdle, false, true, true), 60_000, 'passed, but a change is pending');
  assert.equal(nextCheckIn(healthyIdle, false, false, false), 60_000, 'failing');
  assert.equal(nextCheckIn(healthyIdle, true, true, false), 1000, 'after traffic: interval');
});

test('through a sidecar: checks every no_traffic_interval until the first request, then every interval', { timeout: 30_000 }, async () => {
  let hits = 0;
  const app = await startApp('hc', (req, res) => {
    if (req.url === '/healthz') hits++;
    res.end('ok');
  });
  closers.push(() => app.close());
  // The policy asks for checks every 100 ms; the translator's no_traffic_interval is overridden to 0.5 s here.
  const slowBeforeTraffic = (c: Record<string, any>) =>
    c.health_checks ? { ...c, health_checks: c.health_checks.map((h: Record<string, unknown>) => ({ ...h, no_traffic_interval: '0.5s' })) } : c;
  const mesh = await TestMesh.start({ translator: withFields({}, {}, slowBeforeTraffic) });
  closers.push(() => mesh.close());
  mesh.model.update({
    services: [service('caller', 8000), service('hc', 7000)],
    instances: [instance('hc', app.port)],
    destinationPolicies: [policy('hc', { healthCheck: { path: '/healthz', intervalMs: 100, timeoutMs: 500, healthyThreshold: 1, unhealthyThreshold: 1 } })],
    routes: [],
  });
  const caller = await mesh.sidecar('caller', 8000);
  await eventually(() => hits >= 1, 5000, 'the first check');
  const before = hits;
  await new Promise((r) => setTimeout(r, 1200));
  // 1.2 s at one check per 0.5 s: two or three more, never the dozen 100 ms would make.
  assert.ok(hits - before <= 3, `${hits - before} checks in 1.2 s before any traffic`);
  assert.equal((await get(caller.outboundPort, 'hc')).status, 200);
  // The check already scheduled still comes 0.5 s after the last; from then on every 100 ms.
  await new Promise((r) => setTimeout(r, 600));
  const after = hits;
  await new Promise((r) => setTimeout(r, 2000));
  assert.ok(hits - after >= 8, `${hits - after} checks in 2 s after the first request`);
});

test("Envoy's jitter: up to interval_jitter_percent of the wait plus up to interval_jitter, added to every wait, never 0", () => {
  const jittered: HealthCheckConfig = { ...config, intervalJitterPercent: 10, intervalJitterMs: 50 };
  assert.equal(nextCheckIn(jittered, true, true, false, () => 0), 1000);
  // 1000 + floor(0.5 * 100) + floor(0.5 * 50)
  assert.equal(nextCheckIn(jittered, true, true, false, () => 0.5), 1075);
  assert.equal(nextCheckIn(jittered, false, true, false, () => 0.999), 60_000 + 5994 + 49, 'the no-traffic wait too (floor(0.999 * 6000), floor(0.999 * 50))');
  assert.equal(nextCheckIn({ ...config, intervalMs: 0 }, true, true, false, () => 0.5), 1, 'never a 0 ms wait');
});

test("initial_jitter: a new host's first check waits a random time below it", { timeout: 10_000 }, async () => {
  let hits = 0;
  const app = await startApp('hc', (req, res) => {
    if (req.url === '/healthz') hits++;
    res.end('ok');
  });
  closers.push(() => app.close());
  const host = { key: `127.0.0.1:${app.port}`, address: '127.0.0.1', port: app.port, activeHealthy: true, hcFailures: 0, hcSuccesses: 0 };
  // random() = 0.5: the first check comes 200 ms after the start, not at once.
  const checker = new HealthChecker({ ...config, initialJitterMs: 400 }, () => [host], () => undefined, () => true, () => 0.5);
  checker.start();
  closers.push(async () => checker.stop());
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(hits, 0, 'no check within the first 100 ms');
  await eventually(() => hits === 1, 5_000, 'the first check');
  checker.stop();
});
