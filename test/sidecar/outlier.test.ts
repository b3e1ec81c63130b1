// Outlier detection as Envoy 1.36 runs it: the max_ejection_percent limit
// counting the host about to go (always_eject_one_host lets the first one
// through), success-rate and failure-percentage ejection every interval,
// consecutive gateway failures, the backoff and jitter of ejection times, and
// a passing active health check ending an ejection.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Cluster } from '../../sidecar/clusters.ts';
import type { ClusterConfig, OutlierDetectionConfig } from '../../sidecar/config.ts';
import { ENVOY_DEFAULT_CIRCUIT_BREAKERS, ENVOY_OUTLIER_DEFAULTS } from '../../sidecar/config.ts';
import { SidecarStats } from '../../sidecar/stats.ts';

function cluster(od: Partial<OutlierDetectionConfig>, hosts: number, clock: { now: number }): { c: Cluster; stats: SidecarStats } {
  const config: ClusterConfig = {
    name: 'od',
    type: 'STATIC',
    staticEndpoints: Array.from({ length: hosts }, (_, i) => ({ address: '127.0.0.1', port: 20_001 + i, health: 'HEALTHY' as const, weight: 1, priority: 0 })),
    connectTimeoutMs: 1000,
    idleTimeoutMs: 60_000,
    maxRequestsPerConnection: 0,
    lbPolicy: 'ROUND_ROBIN',
    ringHash: { minimumRingSize: 64, maximumRingSize: 1024 },
    http2: false,
    circuitBreakers: { ...ENVOY_DEFAULT_CIRCUIT_BREAKERS },
    circuitBreakersHigh: { ...ENVOY_DEFAULT_CIRCUIT_BREAKERS },
    healthChecks: [],
    // No panic mode: the usable hosts are exactly the ones not ejected.
    panicThresholdPercent: 0,
    outlierDetection: { ...ENVOY_OUTLIER_DEFAULTS, intervalMs: 600_000, ...od },
  };
  const stats = new SidecarStats();
  return { c: new Cluster(config, stats, () => clock.now), stats };
}

const labels = { envoy_cluster_name: 'od' };
const usablePorts = (c: Cluster): number[] => c.usableHosts().map((h) => h.port - 20_000);

/** `n` answers from host `i` (1-based), the first `failures` of them `status`. */
function answers(c: Cluster, i: number, n: number, failures: number, status = 503): void {
  const h = c.hosts[i - 1]!;
  for (let k = 0; k < n; k++) c.recordResult(h, k < failures ? status : 200);
}

/** The interval ends (the detector's timer, run by hand). */
function intervalEnds(c: Cluster): void {
  c.tickOutliers();
}

test('max_ejection_percent counts the host about to be ejected: with the default 10% a 2-host cluster ejects nothing (ejections_overflow)', () => {
  const clock = { now: 1_000 };
  const { c, stats } = cluster({}, 2, clock);
  try {
    // 500s: a gateway failure (502-504) would be detected a second time (consecutive_gateway_failure, not enforced).
    answers(c, 1, 5, 5, 500);
    assert.deepEqual(usablePorts(c), [1, 2], 'still in: 50% would exceed 10%');
    assert.equal(stats.ejectionsDetectedBy.consecutive_5xx.get(labels), 1);
    assert.equal(stats.ejectionsOverflow.get(labels), 1);
    assert.equal(stats.ejectionsEnforced.get(labels), 0);
  } finally {
    c.close();
  }
});

test('always_eject_one_host lets the first ejection through the limit, and only the first', () => {
  const clock = { now: 1_000 };
  const { c, stats } = cluster({ alwaysEjectOneHost: true }, 2, clock);
  try {
    answers(c, 1, 5, 5, 500);
    assert.deepEqual(usablePorts(c), [2]);
    answers(c, 2, 5, 5, 500);
    assert.deepEqual(usablePorts(c), [2], 'a second ejection would be 100%');
    assert.equal(stats.ejectionsEnforcedBy.consecutive_5xx.get(labels), 1);
    assert.equal(stats.ejectionsOverflow.get(labels), 1);
  } finally {
    c.close();
  }
});

test('success rate: a host below mean - 1.9 stdev over the interval is ejected (Envoy\'s 50/100/100/100/100 example: threshold 52)', () => {
  const clock = { now: 1_000 };
  // consecutive_5xx out of the way: only the interval's statistics eject here.
  const { c, stats } = cluster({ consecutive5xx: 1000, maxEjectionPercent: 20 }, 5, clock);
  try {
    for (const i of [1, 2, 3, 4]) answers(c, i, 100, 0);
    answers(c, 5, 100, 50);
    assert.deepEqual(usablePorts(c), [1, 2, 3, 4, 5], 'nothing happens before the interval ends');
    intervalEnds(c);
    assert.deepEqual(usablePorts(c), [1, 2, 3, 4]);
    const sr = c.outlierSuccessRate();
    assert.ok(sr);
    assert.equal(sr.mean, 90);
    assert.ok(Math.abs(sr.threshold - 52) < 1e-9, `threshold ${sr.threshold}`);
    assert.equal(stats.ejectionsEnforcedBy.success_rate.get(labels), 1);
    assert.equal(stats.ejectionsDetectedBy.success_rate.get(labels), 1);
    // The next interval starts from zero: nobody qualifies, nothing more is ejected.
    intervalEnds(c);
    assert.equal(c.outlierSuccessRate(), undefined);
    assert.equal(stats.ejectionsEnforced.get(labels), 1);
  } finally {
    c.close();
  }
});

test('success rate needs success_rate_minimum_hosts hosts with success_rate_request_volume requests each', () => {
  const clock = { now: 1_000 };
  const { c, stats } = cluster({ consecutive5xx: 1000, maxEjectionPercent: 20 }, 5, clock);
  try {
    for (const i of [1, 2, 3]) answers(c, i, 100, 0);
    answers(c, 4, 99, 0); // one request short: four hosts qualify, under the minimum of five
    answers(c, 5, 100, 50);
    intervalEnds(c);
    assert.deepEqual(usablePorts(c), [1, 2, 3, 4, 5]);
    assert.equal(c.outlierSuccessRate(), undefined);
    assert.equal(stats.ejectionsDetectedBy.success_rate.get(labels), 0);
  } finally {
    c.close();
  }
});

test('enforcing_success_rate 0: the outlier is detected and counted, not ejected', () => {
  const clock = { now: 1_000 };
  const { c, stats } = cluster({ consecutive5xx: 1000, maxEjectionPercent: 20, enforcingSuccessRate: 0 }, 5, clock);
  try {
    for (const i of [1, 2, 3, 4]) answers(c, i, 100, 0);
    answers(c, 5, 100, 50);
    intervalEnds(c);
    assert.deepEqual(usablePorts(c), [1, 2, 3, 4, 5]);
    assert.equal(stats.ejectionsDetectedBy.success_rate.get(labels), 1);
    assert.equal(stats.ejectionsEnforced.get(labels), 0);
  } finally {
    c.close();
  }
});

test('failure percentage: detected by default, ejected once enforcing_failure_percentage is set', () => {
  for (const enforcing of [0, 100]) {
    const clock = { now: 1_000 };
    const { c, stats } = cluster({ consecutive5xx: 1000, maxEjectionPercent: 20, enforcingSuccessRate: 0, enforcingFailurePercentage: enforcing }, 5, clock);
    try {
      for (const i of [1, 2, 3, 4]) answers(c, i, 50, 5);
      answers(c, 5, 50, 45); // 90% failures, over the default threshold of 85
      intervalEnds(c);
      assert.equal(stats.ejectionsDetectedBy.failure_percentage.get(labels), 1, `enforcing ${enforcing}`);
      assert.deepEqual(usablePorts(c), enforcing ? [1, 2, 3, 4] : [1, 2, 3, 4, 5]);
      assert.equal(stats.ejectionsEnforcedBy.failure_percentage.get(labels), enforcing ? 1 : 0);
    } finally {
      c.close();
    }
  }
});

test('consecutive gateway failures (502/503/504 and connection failures) eject when enforcing_consecutive_gateway_failure is set; a 500 breaks the run', () => {
  const clock = { now: 1_000 };
  const { c, stats } = cluster({ consecutive5xx: 1000, maxEjectionPercent: 50, enforcingConsecutiveGatewayFailure: 100 }, 2, clock);
  try {
    const h = c.hosts[0]!;
    for (const s of [502, 503, 504, 0, 500]) c.recordResult(h, s);
    assert.deepEqual(usablePorts(c), [1, 2], 'four in a row, then a 500');
    for (const s of [502, 503, 504, 0]) c.recordResult(h, s);
    assert.deepEqual(usablePorts(c), [1, 2]);
    c.recordResult(h, 503);
    assert.deepEqual(usablePorts(c), [2]);
    assert.equal(stats.ejectionsEnforcedBy.consecutive_gateway_failure.get(labels), 1);
    assert.equal(stats.ejectionsEnforcedBy.consecutive_5xx.get(labels), 0);
  } finally {
    c.close();
  }
});

test('ejection time: base x backoff plus jitter, the backoff growing per ejection and shrinking after an interval back in service; an ejection ends at the interval tick after its time is up', () => {
  const clock = { now: 1_000 };
  const { c } = cluster({ consecutive5xx: 1, maxEjectionPercent: 50, baseEjectionTimeMs: 10_000, intervalMs: 10_000, maxEjectionTimeJitterMs: 2_000 }, 2, clock);
  try {
    const h = c.hosts[0]!;
    c.recordResult(h, 500);
    const first = h.ejectionEnds - clock.now;
    assert.ok(first >= 10_000 && first <= 12_000, `first ejection ${first} ms`);
    // Time up, but no interval has ended since: still out (Envoy unejects on its interval timer).
    clock.now = h.ejectionEnds + 1;
    assert.equal(c.isEjected(h), true, 'still ejected until the interval tick');
    assert.deepEqual(usablePorts(c), [2]);
    intervalEnds(c);
    assert.equal(c.isEjected(h), false, 'back at the tick');
    c.recordResult(h, 500);
    const second = h.ejectionEnds - clock.now;
    assert.ok(second >= 20_000 && second <= 22_000, `second ejection ${second} ms`);
    // Back, and two whole intervals without trouble: the backoff is down by two, so the next ejection is the base again
    // (after one it would be 1 + 1 = 2 x base, as in Envoy, where an ejection raises the backoff before using it).
    clock.now = h.ejectionEnds;
    intervalEnds(c);
    clock.now += 10_000;
    intervalEnds(c);
    clock.now += 10_000;
    intervalEnds(c);
    c.recordResult(h, 500);
    const third = h.ejectionEnds - clock.now;
    assert.ok(third >= 10_000 && third <= 12_000, `third ejection ${third} ms`);
  } finally {
    c.close();
  }
});

test('a passing active health check ends an outlier ejection unless successful_active_health_check_uneject_host is false', () => {
  for (const uneject of [true, false]) {
    const clock = { now: 1_000 };
    const { c } = cluster({ consecutive5xx: 1, maxEjectionPercent: 50, successfulActiveHealthCheckUnejectHost: uneject }, 2, clock);
    try {
      const h = c.hosts[0]!;
      c.recordResult(h, 500);
      assert.deepEqual(usablePorts(c), [2]);
      c.healthCheckPassed(h);
      assert.deepEqual(usablePorts(c), uneject ? [1, 2] : [2], `uneject ${uneject}`);
    } finally {
      c.close();
    }
  }
});
