// Outlier detection as Envoy (1.36) runs it, external-origin errors only
// (split_external_local_origin_errors is false: a connect failure, reset or
// timeout counts as a 5xx and a gateway failure, as Envoy maps them to 503/504):
//
// - consecutive 5xx and consecutive gateway failures (502/503/504): a host
//   that reaches the count is ejected at once (if enforcing_* says so);
// - every interval, success rate and failure percentage over the interval
//   just ended: among hosts with enough requests (request_volume), and only
//   when enough hosts qualify (minimum_hosts), a host whose success rate is
//   below mean - stdev_factor/1000 x stdev, or whose failure percentage
//   reaches the threshold, is ejected.
//
// An ejection lasts base_ejection_time x the host's backoff (capped at
// max_ejection_time) plus a random jitter up to max_ejection_time_jitter.
// No ejection may take the ejected share of the cluster past
// max_ejection_percent (ejections_overflow), counting the host about to be
// ejected, unless always_eject_one_host lets the first one through: with
// Envoy's defaults (10%) a cluster of fewer than ten hosts ejects nothing.

import type { OutlierDetectionConfig } from './config.ts';
import { NO_RUNTIME, type Runtime } from './runtime.ts';

export interface OutlierHost {
  key: string;
  consecutive5xx: number;
  consecutiveGatewayFailure: number;
  /** Infinity while ejected (the host is out while this is in the future), else when the last ejection ended. */
  ejectedUntil: number;
  /** When the ejection in force may end: at the first interval tick from then on, as Envoy unejects. */
  ejectionEnds: number;
  /** Envoy's eject time backoff: the multiplier of base_ejection_time for the next ejection. */
  ejectionCount: number;
  /** Requests and non-5xx answers in the interval now running... */
  rqTotal: number;
  rqSuccess: number;
  /** ...and in the last complete one (what success rate and failure percentage read). */
  lastTotal: number;
  lastSuccess: number;
}

export type EjectionType = 'consecutive_5xx' | 'consecutive_gateway_failure' | 'success_rate' | 'failure_percentage';

export interface OutlierEvents {
  /** An outlier was found (counted whether or not it is ejected). */
  detected(type: EjectionType): void;
  /** It was ejected. */
  ejected(host: OutlierHost, type: EjectionType): void;
  /** It was not, because max_ejection_percent was reached. */
  overflow(): void;
}

/** The success rate threshold of the last interval that had enough hosts (for tests and the admin page), as Envoy keeps it. */
export interface SuccessRateStats {
  mean: number;
  threshold: number;
}

const isGatewayFailure = (status: number): boolean => status === 0 || status === 502 || status === 503 || status === 504;

export class OutlierDetector {
  #config: OutlierDetectionConfig;
  readonly #now: () => number;
  readonly #random: () => number;
  readonly #events: OutlierEvents;
  /** Envoy's runtime: each outlier_detection.* key, read where Envoy's DetectorImpl reads it, over the config's value. */
  readonly #runtime: Runtime;
  /** The last interval's success-rate mean and threshold; undefined when too few hosts qualified. */
  successRate: SuccessRateStats | undefined;

  constructor(config: OutlierDetectionConfig, events: OutlierEvents, now: () => number = Date.now, random: () => number = Math.random, runtime: Runtime = NO_RUNTIME) {
    this.#config = config;
    this.#runtime = runtime;
    this.#now = now;
    this.#random = random;
    this.#events = events;
  }

  update(config: OutlierDetectionConfig): void {
    this.#config = config;
  }

  isEjected(h: OutlierHost): boolean {
    return h.ejectedUntil > this.#now();
  }

  /** Records one response (status 0 = connect failure / reset / timeout) and ejects on a run of failures. */
  record(h: OutlierHost, status: number, all: readonly OutlierHost[]): void {
    h.rqTotal++;
    if (status !== 0 && status < 500) {
      h.rqSuccess++;
      h.consecutive5xx = 0;
      h.consecutiveGatewayFailure = 0;
      return;
    }
    const c = this.#config;
    const rt = this.#runtime;
    if (isGatewayFailure(status)) {
      if (++h.consecutiveGatewayFailure >= rt.getInteger('outlier_detection.consecutive_gateway_failure', c.consecutiveGatewayFailure) && !this.isEjected(h)) {
        h.consecutiveGatewayFailure = 0;
        this.#detected(h, 'consecutive_gateway_failure', all);
      }
    } else h.consecutiveGatewayFailure = 0;
    if (++h.consecutive5xx >= rt.getInteger('outlier_detection.consecutive_5xx', c.consecutive5xx) && !this.isEjected(h)) {
      h.consecutive5xx = 0;
      this.#detected(h, 'consecutive_5xx', all);
    }
  }

  /** A passing active health check ends an outlier ejection (successful_active_health_check_uneject_host, default true). */
  healthCheckPassed(h: OutlierHost): void {
    if (!this.#config.successfulActiveHealthCheckUnejectHost || !this.isEjected(h)) return;
    this.#uneject(h);
  }

  /**
   * Every `interval`: ejections whose time is up end (only here, as Envoy's
   * checkHostForUneject runs on the interval timer), the interval's success
   * rates are judged, and backoffs of hosts that stayed in decrease.
   */
  tick(all: readonly OutlierHost[]): void {
    const now = this.#now();
    for (const h of all) if (h.ejectedUntil === Infinity && now >= h.ejectionEnds) this.#uneject(h);
    for (const h of all) {
      h.lastTotal = h.rqTotal;
      h.lastSuccess = h.rqSuccess;
      h.rqTotal = 0;
      h.rqSuccess = 0;
    }
    this.#judgeSuccessRates(all);
    // A host back in service for a whole interval has its backoff lowered by one.
    for (const h of all) if (h.ejectionCount > 0 && h.ejectedUntil <= now && now - h.ejectedUntil >= this.#runtime.getInteger('outlier_detection.interval_ms', this.#config.intervalMs)) h.ejectionCount--;
  }

  #judgeSuccessRates(all: readonly OutlierHost[]): void {
    const c = this.#config;
    const rt = this.#runtime;
    const srMinimumHosts = rt.getInteger('outlier_detection.success_rate_minimum_hosts', c.successRateMinimumHosts);
    const srRequestVolume = rt.getInteger('outlier_detection.success_rate_request_volume', c.successRateRequestVolume);
    const fpMinimumHosts = rt.getInteger('outlier_detection.failure_percentage_minimum_hosts', c.failurePercentageMinimumHosts);
    const fpRequestVolume = rt.getInteger('outlier_detection.failure_percentage_request_volume', c.failurePercentageRequestVolume);
    this.successRate = undefined;
    if (all.length < srMinimumHosts && all.length < fpMinimumHosts) return;
    const bySuccessRate: [OutlierHost, number][] = [];
    const byFailurePercentage: [OutlierHost, number][] = [];
    let sum = 0;
    for (const h of all) {
      if (this.isEjected(h) || h.lastTotal === 0) continue;
      const rate = (h.lastSuccess * 100) / h.lastTotal;
      if (h.lastTotal >= srRequestVolume) {
        bySuccessRate.push([h, rate]);
        sum += rate;
      }
      if (h.lastTotal >= fpRequestVolume) byFailurePercentage.push([h, rate]);
    }
    if (bySuccessRate.length > 0 && bySuccessRate.length >= srMinimumHosts) {
      const mean = sum / bySuccessRate.length;
      let variance = 0;
      for (const [, rate] of bySuccessRate) variance += (rate - mean) ** 2;
      const stdev = Math.sqrt(variance / bySuccessRate.length);
      const threshold = mean - (rt.getInteger('outlier_detection.success_rate_stdev_factor', c.successRateStdevFactor) / 1000) * stdev;
      this.successRate = { mean, threshold };
      for (const [h, rate] of bySuccessRate) if (rate < threshold) this.#detected(h, 'success_rate', all);
    }
    if (byFailurePercentage.length > 0 && byFailurePercentage.length >= fpMinimumHosts) {
      const threshold = rt.getInteger('outlier_detection.failure_percentage_threshold', c.failurePercentageThreshold);
      for (const [h, rate] of byFailurePercentage) if (100 - rate >= threshold) this.#detected(h, 'failure_percentage', all);
    }
  }

  /** Envoy's enforceEjection: featureEnabled(outlier_detection.enforcing_<type>, the config's percent). */
  #enforcing(type: EjectionType): number {
    const c = this.#config;
    const rt = this.#runtime;
    switch (type) {
      case 'consecutive_5xx':
        return rt.percent('outlier_detection.enforcing_consecutive_5xx', c.enforcingConsecutive5xx);
      case 'consecutive_gateway_failure':
        return rt.percent('outlier_detection.enforcing_consecutive_gateway_failure', c.enforcingConsecutiveGatewayFailure);
      case 'success_rate':
        return rt.percent('outlier_detection.enforcing_success_rate', c.enforcingSuccessRate);
      case 'failure_percentage':
        return rt.percent('outlier_detection.enforcing_failure_percentage', c.enforcingFailurePercentage);
    }
  }

  /** Envoy's ejectHost: max_ejection_percent first (counting this host), then the enforcing_* chance. */
  #detected(h: OutlierHost, type: EjectionType, all: readonly OutlierHost[]): void {
    const c = this.#config;
    this.#events.detected(type);
    const active = all.filter((x) => this.isEjected(x)).length;
    const rt = this.#runtime;
    const maxPercent = Math.min(100, rt.getInteger('outlier_detection.max_ejection_percent', c.maxEjectionPercent));
    const allowed = (100 * (active + 1)) / all.length <= maxPercent || (c.alwaysEjectOneHost && active === 0);
    if (!allowed) {
      this.#events.overflow();
      return;
    }
    if (this.#random() * 100 >= this.#enforcing(type)) return;
    const base = rt.getInteger('outlier_detection.base_ejection_time_ms', c.baseEjectionTimeMs);
    const max = Math.max(rt.getInteger('outlier_detection.max_ejection_time_ms', c.maxEjectionTimeMs), base);
    // As Envoy: the backoff grows while base x backoff is under max + base.
    if (h.ejectionCount * base < max + base) h.ejectionCount++;
    const jitterMs = rt.getInteger('outlier_detection.max_ejection_time_jitter_ms', c.maxEjectionTimeJitterMs);
    const jitter = jitterMs > 0 ? Math.floor(this.#random() * (jitterMs + 1)) : 0;
    h.ejectionEnds = this.#now() + Math.min(base * h.ejectionCount, max) + jitter;
    h.ejectedUntil = Infinity;
    this.#events.ejected(h, type);
  }

  #uneject(h: OutlierHost): void {
    h.ejectedUntil = this.#now();
    h.consecutive5xx = 0;
    h.consecutiveGatewayFailure = 0;
  }
}
