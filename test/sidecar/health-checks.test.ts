// How one active HTTP health check moves a host, as Envoy's HTTP checker
// judges it (HealthCheckerImplBase::ActiveHealthCheckSession): a response
// outside expected_statuses is an ACTIVE failure and takes a healthy host out
// at once; connect failures and timeouts are NETWORK failures and take
// unhealthy_threshold in a row. A host added to a health-checked cluster
// starts out (FAILED_ACTIVE_HC) and its first passing check brings it in,
// whatever healthy_threshold says (first_check_).

import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { Cluster } from '../../sidecar/clusters.ts';
import type { CheckedHost } from '../../sidecar/health.ts';
import type { ClusterConfig, EndpointConfig, HealthCheckConfig } from '../../sidecar/config.ts';
import { HealthChecker } from '../../sidecar/health.ts';
import { SidecarStats } from '../../sidecar/stats.ts';
import { clusterConfig, eventually, freePort, healthCheckConfig, startApp } from './harness.ts';

const closers: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of closers.reverse()) await c();
});

const config: HealthCheckConfig = healthCheckConfig({ healthyThreshold: 2, unhealthyThreshold: 3 });

const hostAt = (port: number): CheckedHost => ({ key: `127.0.0.1:${port}`, address: '127.0.0.1', port, activeHealthy: true, hcFailures: 0, hcSuccesses: 0 });

test('a status outside expected_statuses takes a healthy host out at once; unhealthy_threshold counts only connect failures and timeouts', async () => {
  let status = 503;
  const app = await startApp('hc', (_req, res) => {
    res.statusCode = status;
    res.end();
  });
  closers.push(() => app.close());
  const checker = new HealthChecker(config, () => [], () => undefined);

  const answering = hostAt(app.port);
  assert.equal(await checker.check(answering), false);
  assert.equal(answering.activeHealthy, false, 'one 503 is enough, whatever unhealthy_threshold says');

  status = 200;
  assert.equal(await checker.check(answering), true);
  assert.equal(answering.activeHealthy, false, 'healthy_threshold 2: one pass is not enough');
  assert.equal(await checker.check(answering), true);
  assert.equal(answering.activeHealthy, true);

  const refusing = hostAt(await freePort());
  for (let i = 1; i <= 2; i++) {
    assert.equal(await checker.check(refusing), false);
    assert.equal(refusing.activeHealthy, true, `connect failure ${i} of unhealthy_threshold 3`);
  }
  assert.equal(await checker.check(refusing), false);
  assert.equal(refusing.activeHealthy, false, 'the third connect failure in a row');
});

// No panic mode: the hosts the checks let through, and only those.
const clusterWith = (healthChecks: HealthCheckConfig[]): ClusterConfig => clusterConfig({ name: 'hc', edsServiceName: 'hc', healthChecks, panicThresholdPercent: 0 });
const ep = (port: number): EndpointConfig => ({ address: '127.0.0.1', port, health: 'HEALTHY', weight: 1, priority: 0 });

test('a host added to a health-checked cluster takes no traffic until its first check passes, and one pass is enough', { timeout: 20_000 }, async () => {
  const probe = (status: number) => (req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse) => {
    res.statusCode = req.url === '/healthz' ? status : 200;
    res.end();
  };
  const a = await startApp('a', probe(200));
  const b = await startApp('b', probe(503));
  const c = await startApp('c', probe(200));
  closers.push(() => a.close(), () => b.close(), () => c.close());
  // healthy_threshold 3 at one check a minute: only the first check can bring a host in within this test.
  const cluster = new Cluster(clusterWith([{ ...config, healthyThreshold: 3 }]), new SidecarStats());
  closers.push(async () => cluster.close());
  const usable = () => cluster.usableHosts().map((h) => h.port).sort();

  cluster.setEndpoints([ep(a.port)]);
  assert.deepEqual(usable(), [], 'not before its first check');
  await eventually(() => usable().length === 1, 5000, 'a in after its first check');

  cluster.setEndpoints([ep(a.port), ep(b.port), ep(c.port)]);
  assert.deepEqual(usable(), [a.port], 'the new hosts wait for their checks');
  await eventually(() => usable().includes(c.port), 5000, 'c in after one pass');
  await eventually(() => b.hits >= 1, 5000, "b's first check");
  assert.deepEqual(usable(), [a.port, c.port].sort(), 'b failed its first check: never in');

  // Without health checks, nothing they said keeps a host out.
  cluster.update(clusterWith([]));
  assert.deepEqual(usable(), [a.port, b.port, c.port].sort());
});

test("a check without http_health_check.host sends the cluster's name as Host, as Envoy's does", { timeout: 20_000 }, async () => {
  const hosts: (string | undefined)[] = [];
  const app = await startApp('h', (req, res) => {
    if (req.url === '/healthz') hosts.push(req.headers.host);
    res.end();
  });
  closers.push(() => app.close());
  const named = new Cluster(clusterWith([config]), new SidecarStats());
  closers.push(async () => named.close());
  named.setEndpoints([ep(app.port)]);
  await eventually(() => hosts.length >= 1, 5000, 'the first check');
  assert.equal(hosts[0], 'hc');
  const own = new Cluster({ ...clusterWith([{ ...config, host: 'orders.internal' }]), name: 'own' }, new SidecarStats());
  closers.push(async () => own.close());
  own.setEndpoints([ep(app.port)]);
  await eventually(() => hosts.length >= 2, 5000, 'the second cluster\'s check');
  assert.equal(hosts[1], 'orders.internal');
});

test('a CDS update that leaves the health checks as they were does not check every host again', { timeout: 20_000 }, async () => {
  const app = await startApp('steady', (_req, res) => res.end());
  closers.push(() => app.close());
  const cluster = new Cluster(clusterWith([config]), new SidecarStats());
  closers.push(async () => cluster.close());
  cluster.setEndpoints([ep(app.port)]);
  await eventually(() => app.hits === 1 && cluster.usableHosts().length === 1, 5000, 'the first check');
  for (let i = 0; i < 5; i++) cluster.update(structuredClone(cluster.config));
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(app.hits, 1, 'the next check is an interval (60 s) away, pushes or not');
  cluster.update({ ...cluster.config, healthChecks: [{ ...config, path: '/ready' }] });
  await eventually(() => app.hits === 2, 5000, 'a changed check starts over');
});
