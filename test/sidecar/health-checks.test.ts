// How one active HTTP health check moves a host, as Envoy's HTTP checker
// judges it (HealthCheckerImplBase::ActiveHealthCheckSession): a response
// outside expected_statuses is an ACTIVE failure and takes a healthy host out
// at once; connect failures and timeouts are NETWORK failures and take
// unhealthy_threshold in a row.

import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import type { CheckedHost } from '../../sidecar/health.ts';
import type { HealthCheckConfig } from '../../sidecar/config.ts';
import { HealthChecker } from '../../sidecar/health.ts';
import { freePort, startApp } from './harness.ts';

const closers: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of closers.reverse()) await c();
});

const config: HealthCheckConfig = {
  path: '/healthz',
  intervalMs: 60_000,
  noTrafficIntervalMs: 60_000,
  unhealthyIntervalMs: 60_000,
  unhealthyEdgeIntervalMs: 60_000,
  healthyEdgeIntervalMs: 60_000,
  timeoutMs: 2000,
  healthyThreshold: 2,
  unhealthyThreshold: 3,
  expectedStatuses: [{ start: 200, end: 201 }],
};

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
