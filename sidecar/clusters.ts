// Clusters as the data plane sees them: config from CDS, hosts from EDS (or
// a STATIC load_assignment), each with its load balancer, circuit breaker,
// outlier detector, health checker and connection pools. Which hosts may take
// a new request is decided here and nowhere else.

import type net from 'node:net';
import type { ClusterConfig, EndpointConfig, RoutingPriority } from './config.ts';
import { CircuitBreaker } from './circuit-breaker.ts';
import { HealthChecker } from './health.ts';
import type { CheckedHost } from './health.ts';
import { createLoadBalancer } from './lb/index.ts';
import type { HostSource, LbHost, LoadBalancer, PickContext } from './lb/index.ts';
import { OutlierDetector } from './outlier.ts';
import { NO_RUNTIME, type Runtime } from './runtime.ts';
import type { OutlierEvents, OutlierHost, SuccessRateStats } from './outlier.ts';
import type { SidecarStats } from './stats.ts';
import type { Counter } from './metrics.ts';
import { createPool, type UpstreamTls } from './upstream.ts';
import type { TlsContexts } from './tls-contexts.ts';
import type { PoolOptions, UpstreamPool } from './upstream.ts';

/** A ClusterLoadAssignment's `policy` as host selection reads it. */
export interface EndpointPolicy {
  /** overprovisioning_factor, in percent (Envoy's default 140). */
  readonly overprovisioningFactor: number;
  /** weighted_priority_health: availability counted by load_balancing_weight instead of hosts. */
  readonly weightedPriorityHealth: boolean;
}

export const DEFAULT_ENDPOINT_POLICY: EndpointPolicy = { overprovisioningFactor: 140, weightedPriorityHealth: false };

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
  /** What ring hash hashes for this host (hostHashKey). */
  hashKey: string;
  hostname: string | undefined;
  metadataHashKey: string | undefined;
  weight: number;
  edsHealth: EndpointConfig['health'];
  priority: number;
  zone: string | undefined;
  readonly counters = new HostCounters();
  /**
   * Its connections open or being made, of every pool (both priorities) and upgrade: Envoy's host cx_active, which
   * per_host_thresholds' max_connections is checked against (canCreateConnection).
   */
  readonly connectionsOpen = { value: 0 };
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
  /** Its last passing check answered with x-envoy-degraded (Envoy's DEGRADED_ACTIVE_HC). */
  activeDegraded = false;
  hcFailures = 0;
  hcSuccesses = 0;
  hcChecked = false;
  /**
   * Envoy's PENDING_ACTIVE_HC: added to a health-checked cluster with ignore_new_hosts_until_first_hc, it is an
   * excluded host (left out of the host count, as a draining one) until its first check completes, passed or failed.
   */
  pendingActiveHc = false;
  /** Its DEFAULT priority connection pool, made for it once it exists (its counters count what the pool does). */
  pool!: UpstreamPool;
  /** Its HIGH priority connection pool, made on first use: Envoy keeps a host's pools apart by priority. */
  highPool: UpstreamPool | undefined;

  constructor(ep: EndpointConfig, useHostnameForHashing = false) {
    this.key = `${ep.address}:${ep.port}`;
    this.address = ep.address;
    this.port = ep.port;
    this.hostname = ep.hostname;
    this.metadataHashKey = ep.hashKey;
    this.hashKey = hostHashKey(this, useHostnameForHashing);
    this.weight = ep.weight;
    this.edsHealth = ep.health;
    this.priority = ep.priority;
    this.zone = ep.zone;
  }
}

/**
 * Envoy's HashingLoadBalancer::hashKey: the `envoy.lb` metadata's hash_key; else, with use_hostname_for_hashing, the
 * endpoint's hostname; else the address as Envoy prints it (an IPv6 one in brackets).
 */
export function hostHashKey(h: Pick<Host, 'address' | 'port' | 'hostname' | 'metadataHashKey'>, useHostname: boolean): string {
  if (h.metadataHashKey) return h.metadataHashKey;
  if (useHostname && h.hostname) return h.hostname;
  return h.address.includes(':') ? `[${h.address}]:${h.port}` : `${h.address}:${h.port}`;
}

export class Cluster {
  config: ClusterConfig;
  hosts: Host[] = [];
  /** True once a request or connection went to one of its hosts: health checks leave no_traffic_interval. */
  hadTraffic = false;
  lb: LoadBalancer;
  /**
   * Its resource managers by routing priority, [DEFAULT, HIGH], as Envoy's ClusterInfoImpl::ResourceManagers: each
   * with its own thresholds and counts, applied by that priority's pools (a route's `priority` picks them).
   */
  readonly breakers: readonly [CircuitBreaker, CircuitBreaker];
  /** The DEFAULT priority's. */
  readonly breaker: CircuitBreaker;
  /** Open upstream connections' sockets, with the bytes already counted of each. */
  readonly #sockets = new Map<net.Socket, { rx: number; tx: number }>();
  readonly #stats: SidecarStats;
  /** CDS removed it (or the sidecar stops): its pools drain, uncounted. */
  #closed = false;
  /** Closed, removed or replaced by a new version: its gauges are no longer its to set. */
  #retired = false;
  #outlier: OutlierDetector | undefined;
  #outlierTimer: NodeJS.Timeout | undefined;
  #checkers: HealthChecker[] = [];
  readonly #now: () => number;
  readonly #random: () => number;
  /** Envoy's runtime: upstream.healthy_panic_threshold and the outlier_detection.* keys. */
  readonly #runtime: Runtime;
  readonly #tls: TlsContexts | undefined;
  /** The ClusterLoadAssignment's policy: what the degraded hosts' share is worked out with (hostSets). */
  #endpointPolicy: EndpointPolicy = DEFAULT_ENDPOINT_POLICY;
  /**
   * Envoy's cluster initialization (ClusterImplBase::onInitDone): it starts once the cluster has its first hosts (a
   * STATIC one at once, an EDS one with its first assignment, or being told there is none) and, with health checks,
   * ends once as many checks have completed, passed or failed, as it had hosts then (pending_initialize_health_checks_);
   * without, at once. undefined: not started.
   */
  #pendingInitChecks: number | undefined;
  /** Given its first hosts (pre-initialization done: Envoy's onPreInitComplete). */
  #hostsGiven = false;
  /**
   * Whether its transport socket still waits for an SDS secret: Envoy's SdsApi is an init target of the cluster's own
   * init manager (ClusterImplBase::init_manager_), initialized after pre-initialization (onPreInitComplete), so the
   * cluster's health-check round is counted (onInitDone) only once the secrets are there or their
   * initial_fetch_timeout passed. Asked again on secretsChanged().
   */
  readonly #awaitsSecrets: (() => boolean) | undefined;
  #initialized = false;
  /** Called once, when initialization ends (the sidecar's readiness, a warming cluster's activation). */
  onInitialized: (() => void) | undefined;

  constructor(config: ClusterConfig, stats: SidecarStats, now: () => number = Date.now, tls?: TlsContexts, random: () => number = Math.random, runtime: Runtime = NO_RUNTIME, awaitsSecrets?: () => boolean) {
    this.config = config;
    this.#runtime = runtime;
    this.#awaitsSecrets = awaitsSecrets;
    this.#stats = stats;
    this.#now = now;
    this.#random = random;
    this.#tls = tls;
    this.lb = createLoadBalancer(config);
    // Envoy's runtime prefix per priority: circuit_breakers.<cluster>.<default|high>. (ResourceManagers::load).
    this.breakers = [
      new CircuitBreaker(config.circuitBreakers, runtime, `circuit_breakers.${config.name}.default.`),
      new CircuitBreaker(config.circuitBreakersHigh, runtime, `circuit_breakers.${config.name}.high.`),
    ];
    this.breaker = this.breakers[0];
    for (const priority of [0, 1] as const) {
      const b = this.breakers[priority];
      // upstream_rq_active and upstream_rq_pending_total are the cluster's, whatever the priority.
      b.activeSeries = () => stats.cluster(this.name).rqActive;
      b.onPending = () => stats.upstreamRqPendingTotal.inc(stats.clusterLabel(this.name));
      b.onChange = () => this.#refreshBreakerGauges(priority);
    }
    this.#configure();
    if (config.type !== 'EDS') this.setEndpoints(config.staticEndpoints, config.staticPolicy);
    this.#refreshBreakerGauges(0);
    this.#refreshBreakerGauges(1);
  }

  get name(): string {
    return this.config.name;
  }

  /** Whether initialization ended: hosts given and, with health checks, their first round completed. */
  get initialized(): boolean {
    return this.#initialized;
  }

  /** While initialization waits for health checks: how many more must complete (0 otherwise). */
  get pendingInitChecks(): number {
    return this.#initialized ? 0 : (this.#pendingInitChecks ?? 0);
  }

  /** Whether it was given its first hosts (initialization started). */
  get hostsGiven(): boolean {
    return this.#hostsGiven;
  }

  /** Whether initialization waits for its transport socket's SDS secrets (hosts given, secrets not there yet). */
  get awaitingSecrets(): boolean {
    return this.#hostsGiven && this.#pendingInitChecks === undefined;
  }

  /** Initialization starts with the first hosts (setEndpoints), then waits for the secrets, then the checks. */
  #startInitialization(): void {
    this.#hostsGiven = true;
    if (this.#pendingInitChecks !== undefined || this.#awaitsSecrets?.() === true) return;
    this.#pendingInitChecks = this.#checkers.length > 0 ? this.hosts.length : 0;
    if (this.#pendingInitChecks === 0) this.#finishInitialization();
  }

  /** A secret came or its initial_fetch_timeout passed: initialization goes on if it waited for that. */
  secretsChanged(): void {
    if (this.#hostsGiven) this.#startInitialization();
  }

  /** A health check completed (passed or failed): one fewer for initialization to wait for. */
  #initCheckCompleted(): void {
    if (this.#initialized || this.#pendingInitChecks === undefined || this.#pendingInitChecks === 0) return;
    if (--this.#pendingInitChecks === 0) this.#finishInitialization();
  }

  #finishInitialization(): void {
    if (this.#initialized) return;
    this.#initialized = true;
    this.onInitialized?.();
  }

  /** The ClusterLoadAssignment's policy in force (admin /config_dump?include_eds shows its overprovisioning_factor). */
  get endpointPolicy(): EndpointPolicy {
    return this.#endpointPolicy;
  }

  update(config: ClusterConfig): void {
    const poolChanged =
      config.http2 !== this.config.http2 || config.connectTimeoutMs !== this.config.connectTimeoutMs || config.circuitBreakers.maxConnections !== this.config.circuitBreakers.maxConnections ||
      config.circuitBreakersHigh.maxConnections !== this.config.circuitBreakersHigh.maxConnections ||
      config.idleTimeoutMs !== this.config.idleTimeoutMs || config.maxRequestsPerConnection !== this.config.maxRequestsPerConnection || config.maxConcurrentStreams !== this.config.maxConcurrentStreams ||
      config.enableTrailers !== this.config.enableTrailers ||
      JSON.stringify(config.tls) !== JSON.stringify(this.config.tls);
    if (config.lbPolicy !== this.config.lbPolicy || JSON.stringify(config.ringHash) !== JSON.stringify(this.config.ringHash) || JSON.stringify(config.leastRequest) !== JSON.stringify(this.config.leastRequest)) this.lb = createLoadBalancer(config);
    const useHostname = config.ringHash.useHostnameForHashing === true;
    for (const h of this.hosts) h.hashKey = hostHashKey(h, useHostname);
    const previous = this.config;
    this.config = config;
    this.breakers[0].update(config.circuitBreakers);
    this.breakers[1].update(config.circuitBreakersHigh);
    if (poolChanged) {
      for (const h of this.hosts) {
        const old = h.pool;
        const oldHigh = h.highPool;
        h.pool = this.#pool(h, 0);
        h.highPool = undefined;
        void old.close();
        void oldHigh?.close();
      }
    }
    this.#configure(previous);
    if (config.type !== 'EDS') this.setEndpoints(config.staticEndpoints, config.staticPolicy);
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
      else this.#outlier = new OutlierDetector(od, this.#outlierEvents(), this.#now, Math.random, this.#runtime);
      if (odChanged || this.#outlierTimer === undefined) this.#armOutlierTimer();
    } else {
      this.#outlier = undefined;
      clearTimeout(this.#outlierTimer);
      this.#outlierTimer = undefined;
    }
    if (previous && this.#checkers.length > 0 && JSON.stringify(this.config.healthChecks) === JSON.stringify(previous.healthChecks) && this.config.name === previous.name && JSON.stringify(this.config.tls) === JSON.stringify(previous.tls)) return;
    for (const c of this.#checkers) c.close();
    if (this.config.healthChecks.length === 0) {
      // No checks any more: what they said no longer keeps a host out.
      for (const h of this.hosts) Object.assign(h, { activeHealthy: true, activeDegraded: false, pendingActiveHc: false, hcFailures: 0, hcSuccesses: 0, hcChecked: false });
    }
    this.#checkers = this.config.healthChecks.map(
      (hc) =>
        // Without a host of its own, a check says the cluster's name in Host, as Envoy's HTTP checker does.
        new HealthChecker(hc.host ? hc : { ...hc, host: this.name }, () => this.hosts, (h, ok, _changed, network) => {
          // As Envoy's checker counts: every attempt, then success or failure, a network failure (connect, timeout) also as such.
          const labels = this.#stats.clusterLabel(this.name);
          this.#stats.healthCheckAttempt.inc(labels);
          (ok ? this.#stats.healthCheckSuccess : this.#stats.healthCheckFailure).inc(labels);
          if (network) this.#stats.healthCheckNetworkFailure.inc(labels);
          // Its first check completed: no longer excluded (Envoy's clearPendingFlag, on a pass or a failure).
          (h as Host).pendingActiveHc = false;
          // A host passing its checks again is back from an outlier ejection too (successful_active_health_check_uneject_host).
          if (ok && h.activeHealthy) this.healthCheckPassed(h as Host);
          this.#refreshGauges();
          this.#initCheckCompleted();
        }, () => this.hadTraffic, undefined, this.#upstreamTls()),
    );
    for (const c of this.#checkers) c.start();
    // No checks left to wait for: initialization, if it waited for them, is over.
    if (this.#checkers.length === 0 && this.#pendingInitChecks !== undefined) this.#finishInitialization();
  }

  #pool(h: Host, priority: RoutingPriority) {
    return createPool(this.connectOptions(h, priority), this.config.http2);
  }

  /** The host's pool for a routing priority (a route's `priority`): the HIGH one is made on first use, as Envoy's. */
  poolFor(h: Host, priority: RoutingPriority): UpstreamPool {
    return priority === 0 ? h.pool : (h.highPool ??= this.#pool(h, 1));
  }

  /** Closes every pool of a host (they drain). */
  #closePools(h: Host): void {
    void h.pool.close();
    void h.highPool?.close();
  }

  /**
   * How to reach a host: its pool's options for a routing priority (that priority's breaker), also used for a
   * connection of its own (a WebSocket upgrade).
   */
  connectOptions(h: Host, priority: RoutingPriority = 0): PoolOptions {
    const series = this.#stats.cluster(this.name);
    const stats = this.#stats;
    const labels = stats.clusterLabel(this.name);
    const breaker = this.breakers[priority];
    // The priority's count, which also keeps the host's (both priorities'), as Envoy's ActiveClient raises both.
    const clusterOpen = breaker.connections;
    const hostOpen = h.connectionsOpen;
    const connectionsOpen = {
      get value(): number {
        return clusterOpen.value;
      },
      set value(v: number) {
        hostOpen.value += v - clusterOpen.value;
        clusterOpen.value = v;
      },
      changed: clusterOpen.changed,
    };
    return {
      address: h.address,
      port: h.port,
      connections: breaker.limits.maxConnections,
      connectionsOpen,
      // As Envoy's HostImpl::canCreateConnection: under per_host_thresholds' max_connections (of the priority; read
      // from the cluster's config now), then under the cluster's max_connections (its runtime key over it).
      canConnect: () => {
        const perHost = this.breakers[priority].limits.maxConnectionsPerHost;
        if (perHost !== undefined && hostOpen.value >= perHost) return false;
        return clusterOpen.value < breaker.maxConnections();
      },
      connectTimeoutMs: this.config.connectTimeoutMs,
      idleTimeoutMs: this.config.idleTimeoutMs,
      maxRequestsPerConnection: this.config.maxRequestsPerConnection,
      maxConcurrentStreams: this.config.maxConcurrentStreams,
      enableTrailers: this.config.enableTrailers,
      // A request waiting in the pool for a connection: upstream_rq_pending_active while it waits, _overflow when refused.
      pending: () => {
        const place = breaker.tryPending();
        if (!place) {
          stats.upstreamRqPendingOverflow.inc(labels);
          return undefined;
        }
        stats.upstreamRqPendingActive.inc(labels);
        return () => {
          place();
          stats.upstreamRqPendingActive.dec(labels);
        };
      },
      // A request given a connection (HTTP/2: a stream): max_requests, refused past it as Envoy's pool refuses it (pending_overflow).
      request: () => {
        const place = breaker.tryRequest();
        if (!place) stats.upstreamRqPendingOverflow.inc(labels);
        return place;
      },
      tls: this.#upstreamTls(),
      cx: {
        total: series.cxTotal,
        active: series.cxActive,
        http1Total: series.cxHttp1Total,
        http2Total: series.cxHttp2Total,
        connectFailed: (timedOut) => {
          // Per connection, as Envoy counts it (a connection that fails fails every request waiting for it).
          this.#countConnection(stats.upstreamCxConnectFail);
          if (timedOut) this.#countConnection(stats.upstreamCxConnectTimeout);
          h.counters.cxConnectFail++;
        },
        destroyed: (byPeer, close) => {
          if (this.#closed) return;
          this.#countConnection(stats.upstreamCxDestroy);
          this.#countConnection(byPeer ? stats.upstreamCxDestroyRemote : stats.upstreamCxDestroyLocal);
          if (close.activeRq) {
            this.#countConnection(stats.upstreamCxDestroyWithActiveRq);
            this.#countConnection(byPeer ? stats.upstreamCxDestroyRemoteWithActiveRq : stats.upstreamCxDestroyLocalWithActiveRq);
          }
          stats.upstreamCxLengthMs.observe(stats.clusterLabel(this.name), close.lengthMs);
          this.#countBytes(close.socket);
          this.#sockets.delete(close.socket);
        },
        opened: (socket) => void this.#sockets.set(socket, { rx: 0, tx: 0 }),
        protocolError: () => this.#countConnection(stats.upstreamCxProtocolError),
        tls: (outcome) => {
          if (!this.#closed) stats.tlsCluster[outcome].inc(stats.clusterLabel(this.name));
        },
        connectMs: (ms) => {
          if (!this.#closed) stats.upstreamCxConnectMs.observe(stats.clusterLabel(this.name), ms);
        },
        idleTimeout: () => this.#countConnection(stats.upstreamCxIdleTimeout),
        maxRequests: () => this.#countConnection(stats.upstreamCxMaxRequests),
        changed: () => this.#refreshBreakerGauges(priority),
      },
      // upstream_rq_total and the host's rq_total: a request given a connection (HTTP/2: a stream), where Envoy's
      // pool counts it, so one refused as overflow or failed by its connection is not among them.
      cancelled: () => {
        if (!this.#closed) stats.upstreamRqCancelled.inc(stats.clusterLabel(this.name));
      },
      attached: () => {
        h.counters.rqTotal++;
        if (!this.#closed) this.#stats.cluster(this.name).rq.value++;
      },
      cxOverflow: () => this.#countConnection(stats.upstreamCxOverflow),
      unfinished: (how) => this.#countConnection(how === 'failure_eject' ? stats.upstreamRqPendingFailureEject : how === 'rx_reset' ? stats.upstreamRqRxReset : stats.upstreamRqTxReset),
    };
  }

  /**
   * Envoy's circuit_breakers.default.* (priority 0) or .high.* (1) gauges, as its resource manager sets them
   * (ManagedResourceImpl): *_open 1 while the limit is reached (the breaker admits no more); remaining_* what is left
   * of it, with that priority's track_remaining only. cx_pool_open stays 0: max_connection_pools is not accepted, so
   * pools are unlimited.
   */
  #refreshBreakerGauges(priority: RoutingPriority): void {
    if (this.#retired) return;
    const s = this.#stats.cluster(this.name);
    const b = this.breakers[priority];
    const l = b.limits;
    const open = s.breakerOpen[priority];
    const cx = b.connections.value;
    // The limits in force: the runtime keys over the configured ones, the retry budget over max_retries.
    const maxCx = b.maxConnections();
    const maxPending = b.maxPendingRequests();
    const maxRq = b.maxRequests();
    const maxRetries = b.maxRetries();
    open.cx.value = cx >= maxCx ? 1 : 0;
    open.rqPending.value = b.pending >= maxPending ? 1 : 0;
    open.rq.value = b.active >= maxRq ? 1 : 0;
    open.rqRetry.value = b.activeRetries >= maxRetries ? 1 : 0;
    const r = l.trackRemaining || s.breakerRemaining[priority] ? this.#stats.breakerRemaining(this.name, priority, l.trackRemaining === true) : undefined;
    if (r) {
      r.cx.value = Math.max(0, maxCx - cx);
      r.pending.value = Math.max(0, maxPending - b.pending);
      r.rq.value = Math.max(0, maxRq - b.active);
      // As Envoy's RetryBudgetImpl::clearRemainingGauge: with a retry budget, remaining_retries is 0.
      r.retries.value = b.retryBudgetInUse() ? 0 : Math.max(0, maxRetries - b.activeRetries);
    }
  }

  /** The bytes the cluster's open connections moved since last counted: upstream_cx_rx_bytes_total / _tx_bytes_total. */
  countBytes(): void {
    for (const socket of this.#sockets.keys()) this.#countBytes(socket);
  }

  #countBytes(socket: net.Socket): void {
    const seen = this.#sockets.get(socket);
    if (!seen || this.#closed) return;
    const l = this.#stats.clusterLabel(this.name);
    this.#stats.upstreamCxRxBytes.inc(l, socket.bytesRead - seen.rx);
    this.#stats.upstreamCxTxBytes.inc(l, socket.bytesWritten - seen.tx);
    seen.rx = socket.bytesRead;
    seen.tx = socket.bytesWritten;
  }

  /**
   * A connection event in the cluster's stats, under its current stat name. A connection may close after CDS
   * removed the cluster (its pools drain): that no longer counts, or it would bring the removed series back.
   */
  #countConnection(counter: Counter<'envoy_cluster_name'>): void {
    if (!this.#closed) counter.inc(this.#stats.clusterLabel(this.name));
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

  setEndpoints(endpoints: readonly EndpointConfig[], policy: EndpointPolicy = DEFAULT_ENDPOINT_POLICY): void {
    this.#endpointPolicy = policy;
    // Hosts by address, in order: an assignment may list one address twice (two instances behind one sidecar port),
    // and each is its own host. Keyed one per address, the second was made anew at every update and the one it
    // replaced was neither kept nor closed: its pool's connections stayed open (bench:soak, ~1 per update).
    const byKey = new Map<string, Host[]>();
    for (const h of this.hosts) {
      const same = byKey.get(h.key);
      if (same) same.push(h);
      else byKey.set(h.key, [h]);
    }
    const next: Host[] = [];
    let added = false;
    for (const ep of endpoints) {
      const key = `${ep.address}:${ep.port}`;
      const existing = byKey.get(key)?.shift();
      if (existing) {
        existing.weight = ep.weight;
        existing.hostname = ep.hostname;
        existing.metadataHashKey = ep.hashKey;
        existing.hashKey = hostHashKey(existing, this.config.ringHash.useHostnameForHashing === true);
        existing.edsHealth = ep.health;
        existing.priority = ep.priority;
        existing.zone = ep.zone;
        next.push(existing);
      } else {
        const h = new Host(ep, this.config.ringHash.useHostnameForHashing === true);
        h.pool = this.#pool(h, 0);
        // As Envoy: a host added to a health-checked cluster is out (FAILED_ACTIVE_HC) until its first check passes, and
        // with ignore_new_hosts_until_first_hc not counted at all (PENDING_ACTIVE_HC) until that check completes.
        h.activeHealthy = this.config.healthChecks.length === 0;
        h.pendingActiveHc = !h.activeHealthy && this.config.ignoreNewHostsUntilFirstHc === true;
        next.push(h);
        added = true;
      }
    }
    // Removed hosts finish their in-flight requests; their pools close once idle.
    for (const gone of byKey.values()) for (const h of gone) this.#closePools(h);
    this.hosts = next;
    if (added) for (const c of this.#checkers) c.hostsAdded();
    this.#refreshGauges();
    this.#startInitialization();
  }

  /**
   * Envoy's host sets for the cluster's one priority, and the share of new requests the healthy hosts take
   * (LoadBalancerBase::recalculatePerPriorityState / recalculatePerPriorityPanic). Hosts not draining count (as
   * Envoy leaves its excluded hosts out). Healthy: EDS HEALTHY/UNKNOWN, passing active checks, not ejected; degraded:
   * the same but EDS DEGRADED or marked degraded by its check (x-envoy-degraded). Each set's availability is its
   * share of the hosts (of their weight, with weighted_priority_health) x overprovisioning_factor (default 1.4),
   * capped at 100: healthy hosts take their availability's share of the traffic and degraded hosts the rest, so
   * degraded hosts get requests only once fewer than 1/1.4 of the hosts are healthy. Panic (every host, whatever its
   * health) when healthy + degraded are below healthy_panic_threshold, unless together they are available in full.
   */
  hostSets(): { inService: Host[]; healthy: Host[]; degraded: Host[]; panic: boolean; healthyLoad: number } {
    const now = this.#now();
    // Envoy's excluded hosts (draining, or waiting for their first check with ignore_new_hosts_until_first_hc) are not counted.
    const inService = this.hosts.filter((h) => h.edsHealth !== 'DRAINING' && !h.pendingActiveHc);
    const healthy: Host[] = [];
    const degraded: Host[] = [];
    for (const h of inService) {
      if (!h.activeHealthy || h.ejectedUntil > now) continue;
      if (h.edsHealth === 'DEGRADED' || (h.activeDegraded && (h.edsHealth === 'HEALTHY' || h.edsHealth === 'UNKNOWN'))) degraded.push(h);
      else if (h.edsHealth === 'HEALTHY' || h.edsHealth === 'UNKNOWN') healthy.push(h);
    }
    if (inService.length === 0) return { inService, healthy, degraded, panic: false, healthyLoad: 100 };
    const { overprovisioningFactor, weightedPriorityHealth } = this.#endpointPolicy;
    const size = (hs: readonly Host[]) => (weightedPriorityHealth ? hs.reduce((n, h) => n + h.weight, 0) : hs.length);
    const total = size(inService);
    const healthyAvailability = Math.min(100, Math.floor((overprovisioningFactor * size(healthy)) / total));
    const degradedAvailability = Math.min(100, Math.floor((overprovisioningFactor * size(degraded)) / total));
    const available = Math.min(100, healthyAvailability + degradedAvailability);
    // As Envoy's recalculatePerPriorityPanic: the runtime's upstream.healthy_panic_threshold (an integer) over the config's.
    const threshold = Math.min(100, this.#runtime.getInteger('upstream.healthy_panic_threshold', this.config.panicThresholdPercent));
    const panic = available < 100 && (100 * (healthy.length + degraded.length)) / inService.length < threshold;
    // Nothing available and no panic (threshold 0): the healthy set, empty, as Envoy gives priority 0 all the load.
    let healthyLoad = 100;
    if (available > 0) {
      const degradedLoad = Math.min(100 - Math.min(100, Math.floor((healthyAvailability * 100) / available)), Math.floor((degradedAvailability * 100) / available));
      // Rounding's remainder goes to the healthy hosts when they have any availability, as Envoy gives it to the first available set.
      healthyLoad = healthyAvailability > 0 ? 100 - degradedLoad : 0;
    }
    return { inService, healthy, degraded, panic, healthyLoad };
  }

  /** Hosts that may take a new request: the healthy and degraded ones, or in panic every host not draining. */
  usableHosts(): Host[] {
    const s = this.hostSets();
    return s.panic ? s.inService : [...s.healthy, ...s.degraded];
  }

  /**
   * One host for a new request. As Envoy's choosePriority: a draw of 1-100 goes to the healthy hosts when it is
   * within their load, else to the degraded ones. Ring hash builds its ring over the healthy hosts only (or every
   * host in panic), as Envoy's thread-aware balancers do, so it never sends to a degraded host outside panic.
   */
  pick(ctx: PickContext): Host | undefined {
    const s = this.hostSets();
    let source: HostSource;
    if (s.panic) {
      source = 'all';
      this.#stats.lbHealthyPanic.inc(this.#stats.clusterLabel(this.name));
    }
    else if (this.config.lbPolicy === 'RING_HASH') source = 'healthy';
    else source = Math.floor(this.#random() * 100) + 1 <= s.healthyLoad ? 'healthy' : 'degraded';
    const hosts = source === 'all' ? s.inService : source === 'healthy' ? s.healthy : s.degraded;
    return this.lb.pick(hosts, { ...ctx, source }) as Host | undefined;
  }

  /** Feeds outlier detection (and the host's counters) with one attempt's outcome (status 0: connect failure, reset or timeout). */
  recordResult(h: Host, status: number, timedOut = false): void {
    const c = h.counters;
    if (status !== 0 && status < 500) c.rqSuccess++;
    else c.rqError++;
    if (timedOut) c.rqTimeout++;
    this.#outlier?.record(h, status, this.hosts);
  }

  /**
   * The outlier interval's timer, armed again after each tick for the runtime's outlier_detection.interval_ms or the
   * config's, as Envoy's DetectorImpl::armIntervalTimer (so a /runtime_modify of it applies from the next tick).
   */
  #armOutlierTimer(): void {
    clearTimeout(this.#outlierTimer);
    const od = this.config.outlierDetection;
    if (!od || this.#retired) return;
    this.#outlierTimer = setTimeout(() => {
      this.tickOutliers();
      this.#armOutlierTimer();
    }, Math.max(1, this.#runtime.getInteger('outlier_detection.interval_ms', od.intervalMs)));
    this.#outlierTimer.unref();
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
    if (this.#retired) return;
    const now = this.#now();
    const labels = this.#stats.clusterLabel(this.name);
    this.#stats.membershipTotal.set(labels, this.hosts.length);
    // Envoy's membership_healthy: its healthy host set, so neither degraded nor ejected hosts count.
    const sets = this.hostSets();
    this.#stats.membershipHealthy.set(labels, sets.healthy.length);
    this.#stats.membershipDegraded.set(labels, sets.degraded.length);
    this.#stats.membershipExcluded.set(labels, this.hosts.length - sets.inService.length);
    this.#stats.ejectionsActive.set(labels, this.hosts.filter((h) => h.ejectedUntil > now).length);
    if (this.config.healthChecks.length > 0) {
      // Envoy's health_check.healthy and .degraded: hosts its checks have in (FAILED_ACTIVE_HC clear), and those marked degraded.
      this.#stats.healthCheckHealthy.set(labels, this.hosts.filter((h) => h.activeHealthy).length);
      this.#stats.healthCheckDegraded.set(labels, this.hosts.filter((h) => h.activeHealthy && h.activeDegraded).length);
    }
  }

  /**
   * Stops its checks and timers; its pools drain (requests in flight finish, then the connections close). `removed`:
   * CDS removed it, so nothing it does any more is counted (its series are gone); a cluster replaced by a new version
   * of itself (same name, same series) goes on counting what its draining connections do, as Envoy's old cluster's
   * pools count into the stats they share by name.
   */
  close(removed = true): void {
    this.#closed = removed;
    this.#retired = true;
    clearTimeout(this.#outlierTimer);
    for (const c of this.#checkers) c.close();
    for (const h of this.hosts) this.#closePools(h);
  }
}

/** Envoy's default initial_fetch_timeout: how long a cluster (or listener) warms for what its config source gives when it says nothing. */
export const DEFAULT_INITIAL_FETCH_TIMEOUT_MS = 15_000;

/** An assignment as the cluster manager holds it: what EDS said for one service name. */
interface Assignment {
  endpoints: readonly EndpointConfig[];
  policy: EndpointPolicy;
}

/** A cluster CDS added or changed after initialization, before it takes traffic. */
interface WarmingCluster {
  config: ClusterConfig;
  /** Its eds_config's initial_fetch_timeout, while it waits for its assignment. */
  timer: NodeJS.Timeout | undefined;
  /** The new cluster, built once it has its hosts, while its first health-check round runs. */
  cluster?: Cluster;
}

/** All clusters by name; CDS adds, updates and removes them, EDS feeds their hosts. */
export class ClusterManager {
  /** The active clusters: the ones requests are routed to. */
  readonly clusters = new Map<string, Cluster>();
  /**
   * Envoy's warming clusters, by name: a cluster CDS added or changed once the first full config was applied, until it
   * has initialized (ClusterManagerImpl::addOrUpdateCluster, then ClusterImplBase::initialize): an EDS one until its
   * assignment (an empty one when the control plane says it does not exist, or its initial_fetch_timeout), then, with
   * health checks, until its hosts' first round completed (passed or failed). It is not routed to (a route to a new one
   * is answered 503 NC, as Envoy's router answers cluster_not_found); an updated one's previous version serves
   * meanwhile, and is then replaced by the new one, built afresh (hosts, health, ejections, connections), its own
   * pools draining.
   */
  readonly warming = new Map<string, WarmingCluster>();
  /** Set once the first full config was applied: from then on a cluster waiting for its assignment warms. */
  warmAfterInit = false;
  /** Called when the last warming cluster became active (or went): the xDS client sends the CDS ACK it held. */
  onWarmingDone: (() => void) | undefined;
  /** Called when a cluster finished initializing (its first health-check round): the sidecar may be ready now. */
  onClusterInitialized: (() => void) | undefined;
  /**
   * Whether a cluster's transport socket still waits for an SDS secret it names (not held, its initial_fetch_timeout
   * not passed): the DataPlane's answer. Such a cluster does not initialize until it is there (Cluster.secretsChanged).
   */
  secretsAwaited: (config: ClusterConfig) => boolean = () => false;
  /** The post-initialization warming count last published: the CDS ACK is released when it drops to 0. */
  #lastWarming = 0;
  /** EDS assignments that arrived before (or outlive) their cluster, by EDS service name. */
  readonly #assignments = new Map<string, Assignment>();
  readonly #stats: SidecarStats;
  readonly #tls: TlsContexts | undefined;
  /** Clusters the bootstrap defines (xds_cluster, weft_otel): Envoy's active_clusters counts them too. */
  readonly #bootstrapClusters: number;
  readonly #runtime: Runtime;

  constructor(stats: SidecarStats, tls?: TlsContexts, bootstrapClusters = 0, runtime: Runtime = NO_RUNTIME) {
    this.#stats = stats;
    this.#runtime = runtime;
    this.#tls = tls;
    this.#bootstrapClusters = bootstrapClusters;
    this.#publish();
    stats.onRefresh(() => {
      for (const c of this.clusters.values()) c.countBytes();
    });
  }

  /** An active cluster (a warming one is not there yet, as in Envoy's thread-local cluster map). */
  get(name: string): Cluster | undefined {
    return this.clusters.get(name);
  }

  /** Whether every active cluster has initialized (hosts given and, with health checks, their first round done). */
  initialized(): boolean {
    for (const c of this.clusters.values()) if (!c.initialized) return false;
    return true;
  }

  /**
   * Whether `name` is one of Envoy's warming clusters: one CDS added or changed after initialization that has not
   * initialized yet (`warming`), or, at start, a cluster of the first CDS responses that has not initialized yet: Envoy
   * adds those to warming_clusters_ too (addOrUpdateCluster, then ClusterManagerInitHelper::addCluster) and moves each
   * to active_clusters_ once it initialized (onClusterInit, clusterWarmingToActive). Before the sidecar is ready such a
   * cluster is still routed to (Envoy's workers do not run then; the sidecar's listeners may).
   */
  isWarming(name: string): boolean {
    return this.warming.has(name) || this.clusters.get(name)?.initialized === false;
  }

  /** Envoy's active_clusters_ (admin /clusters, config_dump ?include_eds list these): the clusters that have initialized. */
  *active(): IterableIterator<Cluster> {
    for (const c of this.clusters.values()) if (c.initialized) yield c;
  }

  /** A secret came or its initial_fetch_timeout passed: clusters whose initialization waited for it go on. */
  secretsChanged(): void {
    for (const c of [...this.clusters.values(), ...[...this.warming.values()].flatMap((w) => (w.cluster ? [w.cluster] : []))]) c.secretsChanged();
  }

  applyClusters(configs: ReadonlyMap<string, ClusterConfig>): void {
    const statNames = new Set([...configs].map(([n, config]) => config.altStatName ?? n));
    for (const name of [...this.warming.keys()]) {
      if (configs.has(name)) continue;
      this.#unwarm(name, true);
      // One never active takes the series CDS made for it (an active one's go with it below).
      if (!this.clusters.has(name)) this.#stats.clusterRemoved(name, statNames);
    }
    for (const [name, c] of this.clusters) {
      if (!configs.has(name)) {
        c.close();
        this.clusters.delete(name);
        this.#stats.clusterRemoved(name, statNames);
      }
    }
    for (const [name, config] of configs) {
      this.#stats.setAltStatName(name, config.altStatName, statNames);
      this.#stats.clusterAdded(name, { outlierDetection: config.outlierDetection !== undefined, healthChecks: config.healthChecks.length > 0, tls: config.tls !== undefined });
      const eds = config.type === 'EDS' ? config.edsServiceName : undefined;
      const assignment = eds ? this.#assignments.get(eds) : undefined;
      const existing = this.clusters.get(name);
      const warm = this.warming.get(name);
      // The same again (a SotW CDS response resends every cluster) changes nothing, as Envoy blocks an update whose hash
      // is the warming cluster's (or, with none warming, the active one's).
      const same = JSON.stringify((warm ?? existing)?.config) === JSON.stringify(config);
      if (warm && same) continue;
      if (existing && same) {
        existing.update(config);
        continue;
      }
      this.#unwarm(name);
      // As Envoy's cluster manager: a new or changed cluster is a new cluster (loadCluster), its hosts afresh. Before
      // initialization it is active at once (the sidecar is not ready until it initialized; warming_clusters counts it
      // until then). After, as Envoy's EDS cluster then (xds_protocol "Resource warming"), a new or changed one warms
      // until the next assignment for its name, even one the sidecar already holds (another cluster's, or unchanged):
      // EdsClusterImpl's own subscription waits for a response, the mux delivering nothing it cached (envoy#47302; the
      // EDS resources cache is read only on its initial_fetch_timeout, as #warm does); then, with health checks,
      // through their first round, and with TLS, until its secrets; the previous version serving meanwhile.
      if (!this.warmAfterInit) this.#activate(this.#build(config, assignment));
      else if (eds !== undefined) this.#warm(config);
      else this.#settle(this.#build(config, undefined));
    }
    this.#publish();
  }

  /** A new cluster for `config`, a previous version's traffic history kept, an EDS one fed `assignment` when given. */
  #build(config: ClusterConfig, assignment: Assignment | undefined): Cluster {
    const c = new Cluster(config, this.#stats, Date.now, this.#tls, Math.random, this.#runtime, config.tls ? () => this.secretsAwaited(config) : undefined);
    // As Envoy's checker reads upstream_cx_total, a counter kept by the cluster's name: a new version is not "no traffic".
    c.hadTraffic = this.clusters.get(config.name)?.hadTraffic ?? false;
    c.onInitialized = () => this.#clusterInitialized(c);
    if (config.type === 'EDS' && assignment) c.setEndpoints(assignment.endpoints, assignment.policy);
    return c;
  }

  /** After initialization: a built cluster is active once it initialized, warming until then. */
  #settle(c: Cluster): void {
    if (c.initialized) this.#activate(c);
    else this.warming.set(c.name, { config: c.config, timer: undefined, cluster: c });
  }

  /** `c` takes its name's place among the active clusters; a previous version drains. */
  #activate(c: Cluster): void {
    const previous = this.clusters.get(c.name);
    this.clusters.set(c.name, c);
    if (previous && previous !== c) previous.close(false);
  }

  #clusterInitialized(c: Cluster): void {
    const w = this.warming.get(c.name);
    if (w?.cluster === c) {
      this.warming.delete(c.name);
      this.#activate(c);
    }
    // At start too: an initialized cluster leaves warming_clusters for active_clusters.
    this.#publish();
    this.onClusterInitialized?.();
  }

  /** Holds an EDS cluster's config apart until an assignment for it or its initial_fetch_timeout (0: no bound). */
  #warm(config: ClusterConfig): void {
    const ms = config.edsInitialFetchTimeoutMs ?? DEFAULT_INITIAL_FETCH_TIMEOUT_MS;
    // Out of time: built with the assignment held for its name if any (Envoy's EDS cluster takes its EDS cache's on
    // a fetch timeout), else without hosts, as Envoy's ends its initialization then.
    const timer = ms > 0 ? setTimeout(() => this.#promote(config.name, this.#assignments.get(config.edsServiceName!) ?? { endpoints: [], policy: DEFAULT_ENDPOINT_POLICY }), ms) : undefined;
    timer?.unref();
    this.warming.set(config.name, { config, timer });
  }

  /** Ends a warming: its timer, and the new cluster if one was built (removed or superseded: it never served). */
  #unwarm(name: string, removed = false): void {
    const w = this.warming.get(name);
    if (!w) return;
    clearTimeout(w.timer);
    w.cluster?.close(removed);
    this.warming.delete(name);
  }

  /** A warming EDS cluster has its hosts (`assignment`): the new cluster is built, active once it initialized. */
  #promote(name: string, assignment: Assignment): void {
    const w = this.warming.get(name);
    if (!w || w.cluster) return;
    clearTimeout(w.timer);
    this.warming.delete(name);
    this.#settle(this.#build(w.config, assignment));
    this.#publish();
  }

  /**
   * Envoy's cluster_manager.active_clusters (the bootstrap's clusters too, active from the start) and
   * .warming_clusters (at start the CDS clusters not yet initialized, as Envoy's; see isWarming).
   */
  #publish(): void {
    let starting = 0;
    for (const c of this.clusters.values()) if (!c.initialized && !this.warming.has(c.name)) starting++;
    this.#stats.activeClusters.set(this.#bootstrapClusters + this.clusters.size - starting);
    this.#stats.warmingClusters.set(this.warming.size + starting);
    // CDS is paused (its ACK held) only by warming after initialization, as Envoy's updateClusterCounts.
    const before = this.#lastWarming;
    this.#lastWarming = this.warming.size;
    if (before > 0 && this.warming.size === 0) this.onWarmingDone?.();
  }

  applyEndpoints(edsName: string, endpoints: readonly EndpointConfig[] | undefined, policy: EndpointPolicy = DEFAULT_ENDPOINT_POLICY): void {
    if (endpoints) this.#assignments.set(edsName, { endpoints, policy });
    else this.#assignments.delete(edsName);
    const built = [...this.clusters.values(), ...[...this.warming.values()].flatMap((w) => (w.cluster ? [w.cluster] : []))];
    for (const c of built) {
      if (c.config.type === 'EDS' && c.config.edsServiceName === edsName) c.setEndpoints(endpoints ?? [], policy);
    }
    // An assignment for it ends a cluster's wait for one; so does being told it does not exist (no hosts), as in Envoy.
    for (const [name, w] of [...this.warming]) {
      if (!w.cluster && w.config.edsServiceName === edsName) this.#promote(name, { endpoints: endpoints ?? [], policy });
    }
  }

  /** The stat names (alt_stat_name, else the name) of the clusters, built or warming, whose EDS subscription is `edsName`. */
  statNamesOfEds(edsName: string): Set<string> {
    const out = new Set<string>();
    for (const c of this.clusters.values()) if (c.config.type === 'EDS' && c.config.edsServiceName === edsName) out.add(c.config.altStatName ?? c.config.name);
    for (const [name, w] of this.warming) if (w.config.type === 'EDS' && w.config.edsServiceName === edsName) out.add(w.config.altStatName ?? name);
    return out;
  }

  /** The EDS service names of every cluster built or warming (a replaced version still serving keeps its own). */
  edsNamesInUse(): Set<string> {
    const out = new Set<string>();
    for (const c of this.clusters.values()) if (c.config.type === 'EDS') out.add(c.config.edsServiceName!);
    for (const w of this.warming.values()) {
      if (w.config.type === 'EDS') out.add(w.config.edsServiceName!);
      if (w.cluster?.config.type === 'EDS') out.add(w.cluster.config.edsServiceName!);
    }
    return out;
  }

  /** Drops the assignments held for EDS names not in `keep` (no cluster names them any more). */
  forgetAssignments(keep: ReadonlySet<string>): void {
    for (const name of [...this.#assignments.keys()]) if (!keep.has(name)) this.#assignments.delete(name);
  }

  /**
   * Before the sidecar is ready: an EDS subscription's initial_fetch_timeout passed without its assignment. Its
   * clusters not yet given hosts initialize with the assignment last held for the name (none), as Envoy's
   * EdsClusterImpl::onConfigUpdateFailed ends its pre-initialization.
   */
  edsFetchTimedOut(edsName: string): void {
    const held = this.#assignments.get(edsName);
    for (const c of this.clusters.values()) {
      if (c.config.type === 'EDS' && c.config.edsServiceName === edsName && !c.hostsGiven) c.setEndpoints(held?.endpoints ?? [], held?.policy);
    }
  }

  close(): void {
    for (const name of [...this.warming.keys()]) this.#unwarm(name, true);
    for (const c of this.clusters.values()) c.close();
    this.clusters.clear();
  }
}
