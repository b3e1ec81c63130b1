// Clusters as the data plane sees them: config from CDS, hosts from EDS (or
// a STATIC load_assignment), each with its load balancer, circuit breaker,
// outlier detector, health checker and connection pools. Which hosts may take
// a new request is decided here and nowhere else.

import type { ClusterConfig, EndpointConfig } from './config.ts';
import { CircuitBreaker } from './circuit-breaker.ts';
import { HealthChecker } from './health.ts';
import type { CheckedHost } from './health.ts';
import { createLoadBalancer } from './lb/index.ts';
import type { LbHost, LoadBalancer, PickContext } from './lb/index.ts';
import { OutlierDetector } from './outlier.ts';
import type { OutlierEvents, OutlierHost, SuccessRateStats } from './outlier.ts';
import type { SidecarStats } from './stats.ts';
import { createPool, type UpstreamTls } from './upstream.ts';
import type { TlsContexts } from './tls-contexts.ts';
import type { PoolOptions, UpstreamPool } from './upstream.ts';

/** A host's lifetime request counts, as Envoy's per-host stats in admin /clusters. */
export class HostCounters {
  rqTotal = 0;
  rqSuccess = 0;
  rqError = 0;
  rqTimeout = 0;
  cxConnectFail = 0;
}

export class Host implements LbHost, OutlierHost, CheckedHost {
  readonly key: string;
  readonly address: string;
  readonly port: number;
  weight: number;
  edsHealth: EndpointConfig['health'];
  priority: number;
  zone: string | undefined;
  readonly counters = new HostCounters();
  activeRequests = 0;
  consecutive5xx = 0;
  consecutiveGatewayFailure = 0;
  ejectedUntil = 0;
  ejectionEnds = 0;
  ejectionCount = 0;
  rqTotal = 0;
  rqSuccess = 0;
  lastTotal = 0;
  lastSuccess = 0;
  activeHealthy = true;
  hcFailures = 0;
  hcSuccesses = 0;
  hcChecked = false;
  pool: UpstreamPool;

  constructor(ep: EndpointConfig, pool: UpstreamPool) {
    this.key = `${ep.address}:${ep.port}`;
    this.address = ep.address;
    this.port = ep.port;
    this.weight = ep.weight;
    this.edsHealth = ep.health;
    this.priority = ep.priority;
    this.zone = ep.zone;
    this.pool = pool;
  }
}

export class Cluster {
  config: ClusterConfig;
  hosts: Host[] = [];
  /** True once its endpoints are known (EDS warmed, or STATIC). */
  warmed: boolean;
  /** True once a request or connection went to one of its hosts: health checks leave no_traffic_interval. */
  hadTraffic = false;
  lb: LoadBalancer;
  readonly breaker: CircuitBreaker;
  readonly #stats: SidecarStats;
  #outlier: OutlierDetector | undefined;
  #outlierTimer: NodeJS.Timeout | undefined;
  #checkers: HealthChecker[] = [];
  readonly #now: () => number;
  readonly #tls: TlsContexts | undefined;

  constructor(config: ClusterConfig, stats: SidecarStats, now: () => number = Date.now, tls?: TlsContexts) {
    this.config = config;
    this.#stats = stats;
    this.#now = now;
    this.#tls = tls;
    this.lb = createLoadBalancer(config);
    this.breaker = new CircuitBreaker(config.circuitBreakers, config.http2);
    this.warmed = config.type !== 'EDS';
    this.#configure();
    if (config.type !== 'EDS') this.setEndpoints(config.staticEndpoints);
  }

  get name(): string {
    return this.config.name;
  }

  update(config: ClusterConfig): void {
    const poolChanged =
      config.http2 !== this.config.http2 || config.connectTimeoutMs !== this.config.connectTimeoutMs || config.circuitBreakers.maxConnections !== this.config.circuitBreakers.maxConnections ||
      config.idleTimeoutMs !== this.config.idleTimeoutMs || config.maxRequestsPerConnection !== this.config.maxRequestsPerConnection ||
      JSON.stringify(config.tls) !== JSON.stringify(this.config.tls);
    if (config.lbPolicy !== this.config.lbPolicy) this.lb = createLoadBalancer(config);
    const previous = this.config;
    this.config = config;
    this.breaker.update(config.circuitBreakers, config.http2);
    if (poolChanged) {
      for (const h of this.hosts) {
        const old = h.pool;
        h.pool = this.#pool(h);
        void old.close();
      }
    }
    this.#configure(previous);
    if (config.type !== 'EDS') this.setEndpoints(config.staticEndpoints);
  }

  /**
   * Outlier detection and health checks from the config. A CDS update resends
   * every cluster, changed or not (as Envoy ignores an unchanged one): the
   * outlier interval and the health checkers restart only when their own
   * settings changed, or a mesh pushing more often than the interval would
   * never reach its tick (ejections never ending) and re-check every host at
   * each push.
   */
  #configure(previous?: ClusterConfig): void {
    const od = this.config.outlierDetection;
    const odChanged = !previous || JSON.stringify(od) !== JSON.stringify(previous.outlierDetection);
    if (od) {
      if (this.#outlier) this.#outlier.update(od);
      else this.#outlier = new OutlierDetector(od, this.#outlierEvents(), this.#now);
      if (odChanged || this.#outlierTimer === undefined) {
        clearInterval(this.#outlierTimer);
        this.#outlierTimer = setInterval(() => this.tickOutliers(), od.intervalMs);
        this.#outlierTimer.unref();
      }
    } else {
      this.#outlier = undefined;
      clearInterval(this.#outlierTimer);
      this.#outlierTimer = undefined;
    }
    if (previous && this.#checkers.length > 0 && JSON.stringify(this.config.healthChecks) === JSON.stringify(previous.healthChecks) && this.config.name === previous.name && JSON.stringify(this.config.tls) === JSON.stringify(previous.tls)) return;
    for (const c of this.#checkers) c.close();
    if (this.config.healthChecks.length === 0) {
      // No checks any more: what they said no longer keeps a host out.
      for (const h of this.hosts) Object.assign(h, { activeHealthy: true, hcFailures: 0, hcSuccesses: 0, hcChecked: false });
    }
    this.#checkers = this.config.healthChecks.map(
      (hc) =>
        // Without a host of its own, a check says the cluster's name in Host, as Envoy's HTTP checker does.
        new HealthChecker(hc.host ? hc : { ...hc, host: this.name }, () => this.hosts, (h, ok) => {
          (ok ? this.#stats.healthCheckSuccess : this.#stats.healthCheckFailure).inc(this.#stats.clusterLabel(this.name));
          // A host passing its checks again is back from an outlier ejection too (successful_active_health_check_uneject_host).
          if (ok && h.activeHealthy) this.healthCheckPassed(h as Host);
          this.#refreshGauges();
        }, () => this.hadTraffic, undefined, this.#upstreamTls()),
    );
    for (const c of this.#checkers) c.start();
  }

  #pool(h: { address: string; port: number }) {
    return createPool(this.connectOptions(h), this.config.http2);
  }

  /** How to reach a host: its pool's options, also used for a connection of its own (a WebSocket upgrade). */
  connectOptions(h: { address: string; port: number }): PoolOptions {
    const series = this.#stats.cluster(this.name);
    return { address: h.address, port: h.port, connections: this.config.circuitBreakers.maxConnections, connectTimeoutMs: this.config.connectTimeoutMs, idleTimeoutMs: this.config.idleTimeoutMs, maxRequestsPerConnection: this.config.maxRequestsPerConnection, tls: this.#upstreamTls(), cx: { total: series.cxTotal, active: series.cxActive } };
  }

  /** Per new connection: the current certificate (rotation applies to the next connection) and the SANs to expect. */
  #upstreamTls(): UpstreamTls | undefined {
    const refs = this.config.tls;
    const contexts = this.#tls;
    if (!refs) return undefined;
    return () => {
      const secureContext = contexts?.context(refs);
      return secureContext ? { secureContext, uriSans: refs.uriSans } : undefined;
    };
  }

  setEndpoints(endpoints: readonly EndpointConfig[]): void {
    const byKey = new Map(this.hosts.map((h) => [h.key, h]));
    const next: Host[] = [];
    let added = false;
    for (const ep of endpoints) {
      const key = `${ep.address}:${ep.port}`;
      const existing = byKey.get(key);
      if (existing) {
        existing.weight = ep.weight;
        existing.edsHealth = ep.health;
        existing.priority = ep.priority;
        existing.zone = ep.zone;
        byKey.delete(key);
        next.push(existing);
      } else {
        const h = new Host(ep, this.#pool(ep));
        // As Envoy: a host added to a health-checked cluster is out (FAILED_ACTIVE_HC) until its first check passes.
        h.activeHealthy = this.config.healthChecks.length === 0;
        next.push(h);
        added = true;
      }
    }
    // Removed hosts finish their in-flight requests; their pools close once idle.
    for (const gone of byKey.values()) void gone.pool.close();
    this.hosts = next;
    this.warmed = true;
    if (added) for (const c of this.#checkers) c.hostsAdded();
    this.#refreshGauges();
  }

  /**
   * Hosts that may take a new request: EDS HEALTHY/UNKNOWN/DEGRADED, passing
   * active checks, not ejected. In Envoy's panic mode (under the threshold,
   * counted over the hosts not draining, as Envoy leaves its excluded hosts
   * out) every host not draining, whatever its health: EDS UNHEALTHY and
   * TIMEOUT ones too.
   */
  usableHosts(): Host[] {
    const now = this.#now();
    const inService = this.hosts.filter((h) => h.edsHealth !== 'DRAINING');
    const usable = inService.filter((h) => (h.edsHealth === 'HEALTHY' || h.edsHealth === 'UNKNOWN' || h.edsHealth === 'DEGRADED') && h.activeHealthy && h.ejectedUntil <= now);
    const threshold = this.config.panicThresholdPercent;
    if (threshold > 0 && inService.length > 0 && (usable.length * 100) / inService.length < threshold && usable.length < inService.length) {
      // Envoy's panic mode: too few healthy hosts, spread load over all of them rather than overload the few.
      return inService;
    }
    return usable;
  }

  pick(ctx: PickContext): Host | undefined {
    return this.lb.pick(this.usableHosts(), ctx) as Host | undefined;
  }

  /** Feeds outlier detection (and the host's counters) with one attempt's outcome (status 0: connect failure, reset or timeout). */
  recordResult(h: Host, status: number, timedOut = false): void {
    const c = h.counters;
    if (status !== 0 && status < 500) c.rqSuccess++;
    else c.rqError++;
    if (timedOut) c.rqTimeout++;
    this.#outlier?.record(h, status, this.hosts);
  }

  /** Outlier detection's interval: success rates judged, ejection backoffs lowered. */
  tickOutliers(): void {
    this.#outlier?.tick(this.hosts);
    this.#refreshGauges();
  }

  /** Whether outlier detection has this host out now. */
  isEjected(h: Host): boolean {
    return h.ejectedUntil > this.#now();
  }

  /**
   * The host's success rate over the last interval, as Envoy reports it: -1
   * without outlier detection or with fewer requests than the smaller of the
   * two request volumes (success rate, failure percentage).
   */
  hostSuccessRate(h: Host): number {
    const od = this.config.outlierDetection;
    if (!od || h.lastTotal === 0 || h.lastTotal < Math.min(od.successRateRequestVolume, od.failurePercentageRequestVolume)) return -1;
    return (h.lastSuccess * 100) / h.lastTotal;
  }

  /** The last interval's success-rate mean and ejection threshold (undefined: too few hosts had enough requests). */
  outlierSuccessRate(): SuccessRateStats | undefined {
    return this.#outlier?.successRate;
  }

  /** An active health check passed on a host that is up by its checks: it is back from an outlier ejection too. */
  healthCheckPassed(h: Host): void {
    this.#outlier?.healthCheckPassed(h);
    this.#refreshGauges();
  }

  #outlierEvents(): OutlierEvents {
    const stats = this.#stats;
    const labels = this.#stats.clusterLabel(this.name);
    return {
      detected: (type) => stats.ejectionsDetectedBy[type].inc(labels),
      ejected: (_h, type) => {
        stats.ejectionsEnforced.inc(labels);
        stats.ejectionsEnforcedBy[type].inc(labels);
        this.#refreshGauges();
      },
      overflow: () => stats.ejectionsOverflow.inc(labels),
    };
  }

  #refreshGauges(): void {
    const now = this.#now();
    const labels = this.#stats.clusterLabel(this.name);
    this.#stats.membershipTotal.set(labels, this.hosts.length);
    this.#stats.membershipHealthy.set(labels, this.hosts.filter((h) => (h.edsHealth === 'HEALTHY' || h.edsHealth === 'UNKNOWN') && h.activeHealthy).length);
    this.#stats.ejectionsActive.set(labels, this.hosts.filter((h) => h.ejectedUntil > now).length);
  }

  close(): void {
    clearInterval(this.#outlierTimer);
    for (const c of this.#checkers) c.close();
    for (const h of this.hosts) void h.pool.close();
  }
}

/** All clusters by name; CDS adds, updates and removes them, EDS feeds their hosts. */
export class ClusterManager {
  readonly clusters = new Map<string, Cluster>();
  /** EDS assignments that arrived before (or outlive) their cluster, by EDS service name. */
  readonly #assignments = new Map<string, readonly EndpointConfig[]>();
  readonly #stats: SidecarStats;
  readonly #tls: TlsContexts | undefined;

  constructor(stats: SidecarStats, tls?: TlsContexts) {
    this.#stats = stats;
    this.#tls = tls;
  }

  get(name: string): Cluster | undefined {
    return this.clusters.get(name);
  }

  applyClusters(configs: ReadonlyMap<string, ClusterConfig>): void {
    const statNames = new Set([...configs].map(([n, config]) => config.altStatName ?? n));
    for (const [name, c] of this.clusters) {
      if (!configs.has(name)) {
        c.close();
        this.clusters.delete(name);
        this.#stats.clusterRemoved(name, statNames);
      }
    }
    for (const [name, config] of configs) {
      this.#stats.setAltStatName(name, config.altStatName, statNames);
      this.#stats.clusterAdded(name, { outlierDetection: config.outlierDetection !== undefined, healthChecks: config.healthChecks.length > 0 });
      const existing = this.clusters.get(name);
      if (existing) existing.update(config);
      else {
        const c = new Cluster(config, this.#stats, Date.now, this.#tls);
        this.clusters.set(name, c);
        const eds = config.edsServiceName;
        if (config.type === 'EDS' && eds && this.#assignments.has(eds)) c.setEndpoints(this.#assignments.get(eds)!);
      }
    }
  }

  applyEndpoints(edsName: string, endpoints: readonly EndpointConfig[] | undefined): void {
    if (endpoints) this.#assignments.set(edsName, endpoints);
    else this.#assignments.delete(edsName);
    for (const c of this.clusters.values()) {
      if (c.config.type === 'EDS' && c.config.edsServiceName === edsName) c.setEndpoints(endpoints ?? []);
    }
  }

  /** EDS names the current clusters need. */
  edsNames(): string[] {
    return [...this.clusters.values()].filter((c) => c.config.type === 'EDS').map((c) => c.config.edsServiceName!);
  }

  close(): void {
    for (const c of this.clusters.values()) c.close();
    this.clusters.clear();
  }
}
