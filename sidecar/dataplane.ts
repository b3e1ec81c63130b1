// The sidecar's accepted configuration and the live objects built from it.
// The xDS client hands it decoded-but-unchecked resources per type; each one
// passes the fidelity contract (and, for wasm, a module load) or is rejected
// with its field path while the previous version keeps serving.

import type { ClusterConfig, ExtensionConfig, ListenerConfig, RouteConfig, TlsSecretRefs, TracingConfig, WasmPluginConfig } from './config.ts';
import { endpointsConfigDump } from './admin-endpoints.ts';
import { ClusterManager, DEFAULT_INITIAL_FETCH_TIMEOUT_MS } from './clusters.ts';
import type { DecodedByKind, ResourceKind } from './fidelity.ts';
import { TYPE_URLS, accept } from './fidelity.ts';
import { formatErrors } from './fidelity/fields.ts';
import { grpcStreamDispatcher, httpCallDispatcher } from './http-call.ts';
import { ListenerManager, type DrainScope } from './listeners.ts';
import { TlsContexts } from './tls-contexts.ts';
import type { ProxyEnv } from './proxy.ts';
import type { SidecarStats } from './stats.ts';
import type { SeriesFilter } from './metrics.ts';
import { Tracer, type Collector } from './tracing.ts';
import { Loggers } from './logging.ts';
import { OverloadManager, type OverloadOptions } from './overload.ts';
import { Tap } from './tap.ts';
import { Runtime, defaultLayers } from './runtime.ts';
import { WasmFilterLoader } from './wasm-filters.ts';
import type { LogEntry, WasmPlugin } from './wasm/index.ts';

/** Envoy's server states, in the order of its server.state gauge's values. */
export const SERVER_STATES = ['LIVE', 'DRAINING', 'PRE_INITIALIZING', 'INITIALIZING'] as const;
export type ServerState = (typeof SERVER_STATES)[number];

export interface IncomingResource {
  name: string;
  version: string;
  /** Envoy proto3 JSON, as control/envoy decodes it. */
  value: unknown;
}

interface Held<K extends ResourceKind> {
  version: string;
  config: DecodedByKind[K];
  raw: unknown;
  /** When it was accepted (config_dump's last_updated). */
  updated: Date;
}

/** A named resource whose bytes did not decode (Delta names them; a SotW one has no name to keep it under). */
export interface Undecodable {
  name: string;
  version: string;
  details: string;
}

/** The last update of a resource that was refused (config_dump's error_state, /init_dump): cleared once one is accepted or it is removed. */
interface Rejected {
  version: string;
  raw: unknown;
  details: string;
  at: Date;
}

/** One of `make()` per resource kind. */
function byKind<V>(make: () => V): Record<ResourceKind, V> {
  return { listener: make(), route: make(), cluster: make(), endpoint: make(), extension: make(), secret: make() };
}

export interface ApplyResult {
  /** One message per rejected resource, naming the resource and field path; empty = ACK. */
  errors: string[];
}

/** Adds to `out` the route configurations (RDS) or filter configs (ECDS) `listeners` name; returns `out`. */
function namedByListeners(listeners: Iterable<Held<'listener'>>, kind: 'route' | 'extension', out: Set<string>): Set<string> {
  for (const h of listeners) {
    const chain = h.config.chain;
    if (chain.kind !== 'http') continue;
    if (kind === 'route' && chain.rds) out.add(chain.rds);
    if (kind === 'extension') for (const f of chain.httpFilters) if (f.kind === 'ecds') out.add(f.resourceName);
  }
  return out;
}

export class DataPlane {
  readonly stats: SidecarStats;
  readonly clusters: ClusterManager;
  readonly listeners: ListenerManager;
  readonly wasm: WasmFilterLoader;
  // Map<any, any> per kind: each kind's map holds that kind's decoded config.
  readonly #held: { [K in ResourceKind]: Map<string, Held<K>> } = byKind(() => new Map());
  readonly #rejected = byKind(() => new Map<string, Rejected>());
  /** SDS certificates and trust bundles as node:tls contexts. */
  readonly tls = new TlsContexts();
  readonly #loadedPlugins = new Map<WasmPluginConfig, WasmPlugin>();
  /** Types that have had at least one response applied. */
  readonly #received = new Set<ResourceKind>();
  /**
   * EDS and ECDS names the control plane said do not exist (Delta
   * removed_resources) and that have not arrived since. Envoy ends an EDS
   * cluster's warming on such an answer (with the hosts it had, none for a new
   * cluster) and an ECDS filter's (which then answers 500 without a default
   * config), so they no longer hold up readiness. RDS it keeps waiting for.
   */
  readonly #toldAbsent = { endpoint: new Set<string>(), extension: new Set<string>() };

  /** The names of `kind` said not to exist, for the kinds where that ends warming (EDS, ECDS). */
  #absent(kind: ResourceKind): Set<string> | undefined {
    return kind === 'endpoint' || kind === 'extension' ? this.#toldAbsent[kind] : undefined;
  }
  /** The first full config was applied (Envoy's init manager runs once: later updates never make it unready). */
  #initialized = false;
  #markInitialized: () => void = () => undefined;
  /**
   * Resolves when the sidecar becomes ready. Not only after an xDS response: the last thing initialization waits for
   * may be a cluster's first health-check round.
   */
  readonly initialized: Promise<void> = new Promise((resolve) => (this.#markInitialized = resolve));
  /** The version each active cluster runs: while an update of it warms, the one before (config_dump's dynamic_active_clusters). */
  readonly #servingClusters = new Map<string, Held<'cluster'>>();
  /**
   * The version each listener runs (config_dump's active_state). Once initialized, a listener LDS adds or changes
   * warms, as Envoy's, until the route configuration, filter configs and secrets it names are held: a new one is not
   * bound meanwhile, a changed one's previous version serves (config_dump's warming_state).
   */
  readonly #servingListeners = new Map<string, Held<'listener'>>();
  /**
   * Envoy's initial_fetch_timeout, per subscription (GrpcSubscriptionImpl's init_fetch_timeout_timer_): for each
   * route configuration, filter config and secret the sidecar subscribes to (and each assignment before it is ready),
   * the timer started when it was first named, or `settled` once it came or its time passed. A settled name no longer
   * holds up the initialization of anything that names it, as the subscription's init target is then ready
   * (RdsRouteConfigSubscription, FilterConfigSubscription, SdsApi, EdsClusterImpl::onConfigUpdateFailed), also for a
   * listener (version) that names it later: it does not wait anew. Forgotten once nothing names it.
   */
  readonly #fetches = byKind(() => new Map<string, NodeJS.Timeout | 'settled'>());
  /** Bootstrap clusters an OpenTelemetry tracer may export to (weft sidecar --otel-collector: weft_otel). */
  readonly #collectors: ReadonlyMap<string, Collector>;
  /** OpenTelemetry tracers by collector cluster, service name and export timeout, made on first use. */
  readonly #tracers = new Map<string, Tracer>();
  readonly #tracerOf = new WeakMap<TracingConfig, Tracer>();
  readonly #log: (line: string) => void;
  /** The sidecar's log levels by logger (admin /logging). */
  readonly loggers: Loggers;
  /** Envoy's overload manager, when configured. */
  readonly overload: OverloadManager | undefined;
  /** Admin GET /tap: live requests. */
  readonly tap = new Tap();
  /** Envoy's layered runtime (admin /runtime, /runtime_modify), read by the fault filter, mirrors, outlier detection, panic thresholds and tracing. */
  readonly runtime: Runtime;

  constructor(
    stats: SidecarStats,
    options: {
      accessLog?: (line: string) => void;
      wasmLog?: (e: LogEntry) => void;
      random?: () => number;
      node?: { id: string; cluster: string };
      /** Bootstrap clusters by name, for the OpenTelemetry tracer's grpc_service. */
      collectors?: ReadonlyMap<string, Collector>;
      /** Lifecycle lines (the tracer's export failures); default stdout. */
      log?: (line: string) => void;
      /** Log levels (weft sidecar --log-level, admin /logging): the wasm logger's is the filters' level. Default: all at info. */
      loggers?: Loggers;
      /** Envoy's overload manager (weft sidecar --max-heap-mb, --max-downstream-connections); off when absent. */
      overload?: OverloadOptions;
      /** The layered runtime (weft sidecar --layered-runtime); default: the layers weft's Envoy bootstrap has, an admin layer among them. */
      runtime?: Runtime;
    } = {},
  ) {
    this.stats = stats;
    stats.serverState.set(SERVER_STATES.indexOf('PRE_INITIALIZING'));
    stats.serverLive.set(0);
    stats.workersStarted.set(0);
    this.#collectors = options.collectors ?? new Map();
    this.#log = options.log ?? ((line) => process.stdout.write(line + '\n'));
    // Envoy's active_clusters counts the bootstrap's static clusters: xds_cluster always, weft_otel with --otel-collector.
    this.runtime = options.runtime ?? new Runtime(defaultLayers(), options.node?.cluster ?? '', stats.runtime);
    this.clusters = new ClusterManager(stats, this.tls, 1 + this.#collectors.size, this.runtime);
    // A cluster's first health-check round may be what the sidecar's initialization waited for last.
    this.clusters.onClusterInitialized = () => this.#publishState();
    // As Envoy's cluster init manager holds the SdsApi init target of its transport socket: a cluster whose TLS secrets
    // are not held (and whose SDS initial_fetch_timeout has not passed) does not initialize, at start or warming later.
    this.clusters.secretsAwaited = (config) => {
      const t = config.tls;
      return t !== undefined && !(this.#awaitedNoMore('secret', t.certificate) && this.#awaitedNoMore('secret', t.validation));
    };
    // Filters log at the wasm logger's level (info unless --log-level, --component-log-level or /logging says otherwise);
    // they read the proxy's node (node.id, node.cluster: the service) as in Envoy.
    const properties = options.node ? { 'xds.node.id': options.node.id, 'xds.node.cluster': options.node.cluster } : undefined;
    // Log lines go to onLog only: kept in plugin.logs too, a filter that logs per
    // request (telemetry's access log) filled the old generation with them.
    // proxy_http_call goes to the sidecar's clusters by name; an unknown one is BAD_ARGUMENT, as in Envoy.
    this.wasm = new WasmFilterLoader({
      autoTick: true,
      logLevel: 'info',
      onLog: options.wasmLog,
      maxLogEntries: 0,
      // Header bytes reach filters as they came off the wire, and leave as the filter wrote them (Envoy's header bytes).
      headerBytes: true,
      properties,
      httpCall: httpCallDispatcher(this.clusters, stats),
      grpcStream: grpcStreamDispatcher(this.clusters, stats),
      hasCluster: (name) => this.clusters.get(name) !== undefined,
    });
    this.loggers = options.loggers ?? new Loggers();
    this.loggers.watch((name, level) => {
      if (name === 'wasm') this.wasm.setLogLevel(level);
    });
    const env: ProxyEnv = {
      clusters: this.clusters,
      routeConfig: (name) => this.#held.route.get(name)?.config,
      filters: {
        extension: (name) => this.#held.extension.get(name)?.config.plugin,
        plugin: (config) => this.#loadedPlugins.get(config),
      },
      stats,
      accessLog: options.accessLog,
      random: options.random ?? Math.random,
      tls: this.tls,
      nodeId: options.node?.id ?? '',
      nodeCluster: options.node?.cluster ?? '',
      tracer: (config) => this.#tracer(config),
      tap: this.tap,
      runtime: this.runtime,
    };
    this.listeners = new ListenerManager(env);
    if (options.overload && (options.overload.maxHeapBytes !== undefined || options.overload.maxDownstreamConnections !== undefined)) {
      this.overload = env.overload = new OverloadManager(options.overload, stats, (disabled) => this.listeners.setDiscouraged('overload', disabled));
    }
  }

  /**
   * Applies one xDS response of `kind`. `full` (SotW for LDS/CDS) means
   * anything not listed is removed; otherwise only `removed` goes away.
   */
  async apply(kind: ResourceKind, resources: readonly IncomingResource[], removed: readonly string[], full: boolean, undecodable: readonly Undecodable[] = []): Promise<ApplyResult> {
    const errors: string[] = [];
    if (kind === 'cluster') this.#noteServingClusters();
    const held = this.#held[kind] as Map<string, Held<ResourceKind>>;
    const rejected = this.#rejected[kind];
    const next = new Map(held);
    if (full) {
      for (const name of held.keys()) if (!resources.some((r) => r.name === name)) next.delete(name);
      for (const name of rejected.keys()) if (!resources.some((r) => r.name === name)) rejected.delete(name);
    }
    const absent = this.#absent(kind);
    for (const name of removed) {
      next.delete(name);
      rejected.delete(name);
      absent?.add(name);
    }
    const refusedNames = new Set<string>();
    const refuse = (r: IncomingResource, details: string) => {
      errors.push(details);
      refusedNames.add(r.name);
      rejected.set(r.name, { version: r.version, raw: r.value, details, at: new Date() });
    };
    // Named resources the xDS client could not decode (the client NACKs them): kept like any refused update.
    for (const u of undecodable) rejected.set(u.name, { version: u.version, raw: undefined, details: u.details, at: new Date() });
    for (const r of resources) {
      const result = accept(kind, r.value);
      if (!result.ok) {
        refuse(r, formatErrors(`${kind} ${r.name}`, result.errors));
        continue;
      }
      const collectorError = kind === 'listener' ? this.#checkCollector(result.value as ListenerConfig) : undefined;
      if (collectorError) {
        refuse(r, `${kind} ${r.name}: ${collectorError}`);
        continue;
      }
      const loadError = await this.#loadPlugins(kind, result.value);
      if (loadError) {
        refuse(r, `${kind} ${r.name}: ${loadError}`);
        continue;
      }
      next.set(r.name, { version: r.version, config: result.value, raw: r.value, updated: new Date() });
      rejected.delete(r.name);
      absent?.delete(r.name);
    }
    held.clear();
    for (const [k, v] of next) held.set(k, v);
    this.#received.add(kind);
    if (kind === 'cluster') {
      this.clusters.applyClusters(new Map([...this.#held.cluster].map(([k, v]) => [k, v.config])));
      this.#noteServingClusters();
      this.#forgetUnnamedEndpoints();
    } else if (kind === 'endpoint') {
      for (const r of resources) {
        const h = this.#held.endpoint.get(r.name);
        if (h) this.clusters.applyEndpoints(r.name, h.config.endpoints, h.config.policy);
      }
      for (const name of removed) this.clusters.applyEndpoints(name, undefined);
    } else if (kind === 'secret') {
      this.tls.setSecrets(new Map([...this.#held.secret].map(([k, v]) => [k, v.config])));
    }
    this.#watchFetches();
    // A cluster whose initialization waited for a secret goes on (it may then warm on through its health checks).
    if (kind === 'secret') this.clusters.secretsChanged();
    if (kind === 'listener') {
      for (const [name, message] of await this.#applyListeners()) {
        const details = `listener ${name}: address: ${message}`;
        const r = resources.find((x) => x.name === name);
        if (r) refuse(r, details);
        else errors.push(details);
        this.#held.listener.delete(name);
        this.#servingListeners.delete(name);
      }
    } else if (kind === 'route' || kind === 'extension' || kind === 'secret') {
      // What a warming listener waited for: it takes over (a bind failure leaves it warming, logged).
      for (const [name, message] of await this.#applyListeners()) this.#log(`listener ${name}: address: ${message}`);
    }
    if (kind === 'listener' || kind === 'extension') this.#releaseUnusedPlugins();
    const updates = this.stats.xdsUpdates[kind];
    (errors.length ? updates.rejected : updates.success).inc();
    if (kind === 'endpoint') {
      for (const r of resources) {
        const counter = refusedNames.has(r.name) ? this.stats.edsClusterUpdates.rejected : this.stats.edsClusterUpdates.success;
        for (const cluster of this.clusters.statNamesOfEds(r.name)) counter.inc({ envoy_cluster_name: cluster });
      }
    }
    this.#publishState();
    return { errors };
  }

  /**
   * Forgets the wasm plugins no held resource names any more: a filter config ECDS replaced or removed, a
   * listener's inline filter changed, a listener gone. Those named by a listener still serving while its update
   * warms stay. Streams already running keep their plugin until they end (WasmFilterLoader.retain).
   */
  #releaseUnusedPlugins(): void {
    const inUse = new Set<WasmPluginConfig>();
    for (const h of this.#held.extension.values()) inUse.add(h.config.plugin);
    for (const h of [...this.#held.listener.values(), ...this.#servingListeners.values()]) {
      const chain = h.config.chain;
      if (chain.kind !== 'http') continue;
      for (const f of chain.httpFilters) {
        if (f.kind === 'wasm') inUse.add(f.plugin);
        else if (f.kind === 'ecds' && f.defaultPlugin) inUse.add(f.defaultPlugin);
      }
    }
    for (const c of [...this.#loadedPlugins.keys()]) if (!inUse.has(c)) this.#loadedPlugins.delete(c);
    this.wasm.retain(new Set(this.#loadedPlugins.values()));
  }

  /** The loaded plugins, one per metric store (a plugin and the one replacing it share theirs while both run). */
  #pluginsByStore(): WasmPlugin[] {
    const byStore = new Map<unknown, WasmPlugin>();
    for (const p of this.#loadedPlugins.values()) byStore.set(p.metrics, p);
    return [...byStore.values()];
  }

  /**
   * The EDS assignments (held, refused or told absent) that no cluster names any more are dropped, as Envoy drops
   * a subscription's resources when its last cluster goes: kept, one piled up for every service that came and went
   * (bench:soak found it, ~8 KiB each with the control plane's copy).
   */
  #forgetUnnamedEndpoints(): void {
    const keep = this.clusters.edsNamesInUse();
    for (const name of this.wanted('endpoint')) keep.add(name);
    for (const name of [...this.#held.endpoint.keys()]) if (!keep.has(name)) this.#held.endpoint.delete(name);
    for (const name of [...this.#rejected.endpoint.keys()]) if (!keep.has(name)) this.#rejected.endpoint.delete(name);
    for (const name of [...this.#toldAbsent.endpoint]) if (!keep.has(name)) this.#toldAbsent.endpoint.delete(name);
    this.clusters.forgetAssignments(keep);
  }

  /** Each accepted cluster not warming is the version serving; one warming keeps the version it replaces (if any). */
  #noteServingClusters(): Map<string, Held<'cluster'>> {
    const serving = this.#servingClusters;
    for (const name of serving.keys()) if (!this.#held.cluster.has(name)) serving.delete(name);
    for (const [name, h] of this.#held.cluster) {
      // An update warming after initialization: the version before it serves on.
      if (this.clusters.warming.has(name)) continue;
      // At start, one not initialized yet is warming with no version active (Envoy's warming_clusters_ then).
      if (this.clusters.isWarming(name)) serving.delete(name);
      else serving.set(name, h);
    }
    return serving;
  }

  /**
   * Whether everything a listener names is there: its route configuration (or its initial_fetch_timeout passed:
   * Envoy's listener then serves without it, 404 NR), filter configs (or told absent) and secrets.
   */
  #listenerWarm(h: Held<'listener'>): boolean {
    const tls = h.config.tls;
    if (tls && !(this.#awaitedNoMore('secret', tls.certificate) && this.#awaitedNoMore('secret', tls.validation))) return false;
    const chain = h.config.chain;
    if (chain.kind !== 'http') return true;
    if (chain.rds && !this.#awaitedNoMore('route', chain.rds)) return false;
    return chain.httpFilters.every((f) => f.kind !== 'ecds' || this.#awaitedNoMore('extension', f.resourceName));
  }

  /**
   * Whether initialization no longer waits for a resource: it is held, or its initial_fetch_timeout passed, or (EDS,
   * ECDS) the control plane said it does not exist.
   */
  #awaitedNoMore(kind: 'endpoint' | 'route' | 'extension' | 'secret', name: string): boolean {
    return this.#held[kind].has(name) || this.#fetches[kind].get(name) === 'settled' || this.#absent(kind)?.has(name) === true;
  }

  /** Each subscribed name of RDS, ECDS, SDS (and EDS before it is ready) with its config source's initial_fetch_timeout (the first that names it). */
  #fetchTimeouts(kind: 'endpoint' | 'route' | 'extension' | 'secret'): Map<string, number> {
    const out = new Map<string, number>();
    const add = (name: string, ms: number | undefined) => {
      if (!out.has(name)) out.set(name, ms ?? DEFAULT_INITIAL_FETCH_TIMEOUT_MS);
    };
    if (kind === 'endpoint') {
      for (const h of this.#held.cluster.values()) if (h.config.type === 'EDS') add(h.config.edsServiceName!, h.config.edsInitialFetchTimeoutMs);
      return out;
    }
    const configs = kind === 'secret' ? [...this.#held.listener.values(), ...this.#held.cluster.values()] : [...this.#held.listener.values()];
    for (const h of configs) {
      const tls = h.config.tls;
      if (kind === 'secret' && tls) {
        add(tls.certificate, tls.certificateInitialFetchTimeoutMs);
        add(tls.validation, tls.validationInitialFetchTimeoutMs);
      }
      const chain = 'chain' in h.config ? h.config.chain : undefined;
      if (chain?.kind !== 'http') continue;
      if (kind === 'route' && chain.rds) add(chain.rds, chain.rdsInitialFetchTimeoutMs);
      if (kind === 'extension') for (const f of chain.httpFilters) if (f.kind === 'ecds') add(f.resourceName, f.initialFetchTimeoutMs);
    }
    return out;
  }

  /**
   * Starts the initial_fetch_timeout of each name newly subscribed to, settles those that came, and forgets those no
   * longer named (a later subscription to one starts over, as Envoy's new subscription would). EDS only until the
   * sidecar is ready: after, a warming cluster's own timer bounds its wait (ClusterManager).
   */
  #watchFetches(): void {
    for (const kind of ['endpoint', 'route', 'extension', 'secret'] as const) {
      const fetches = this.#fetches[kind];
      const named = kind === 'endpoint' && this.#initialized ? new Map<string, number>() : this.#fetchTimeouts(kind);
      for (const [name, state] of fetches) {
        if (named.has(name)) continue;
        if (state !== 'settled') clearTimeout(state);
        fetches.delete(name);
      }
      for (const [name, ms] of named) {
        const state = fetches.get(name);
        if (state === 'settled') continue;
        if (this.#held[kind].has(name)) {
          clearTimeout(state);
          fetches.set(name, 'settled');
          continue;
        }
        if (state !== undefined || ms === 0) continue;
        const timer = setTimeout(() => this.#fetchTimedOut(kind, name), ms);
        timer.unref();
        fetches.set(name, timer);
      }
    }
  }

  /** A subscription's initial_fetch_timeout passed without the resource: what named it stops waiting for it. */
  #fetchTimedOut(kind: 'endpoint' | 'route' | 'extension' | 'secret', name: string): void {
    if (typeof this.#fetches[kind].get(name) !== 'object') return;
    this.#fetches[kind].set(name, 'settled');
    // An EDS cluster initializes without its assignment (with the one last held for the name, if any).
    if (kind === 'endpoint') this.clusters.edsFetchTimedOut(name);
    // A cluster's transport socket stops waiting for the secret (its connections then fail, no certificate to present).
    if (kind === 'secret') this.clusters.secretsChanged();
    void this.#applyListeners().then((bindErrors) => {
      for (const [listener, message] of bindErrors) this.#log(`listener ${listener}: address: ${message}`);
      this.#publishState();
    });
  }

  /**
   * Brings the running listeners to the versions that serve: each accepted one, except, once initialized, one still
   * warming (its previous version, if any, serves on). Returns bind errors by name; publishes the warming gauge.
   */
  async #applyListeners(): Promise<Map<string, string>> {
    const serving = this.#servingListeners;
    let changed = false;
    for (const name of serving.keys()) {
      if (this.#held.listener.has(name)) continue;
      serving.delete(name);
      changed = true;
    }
    for (const [name, h] of this.#held.listener) {
      if (serving.get(name) === h || (this.#initialized && !this.#listenerWarm(h))) continue;
      serving.set(name, h);
      changed = true;
    }
    const warming = [...this.#held.listener].filter(([name, h]) => serving.get(name) !== h);
    this.stats.listenersWarming.set(warming.length);
    if (!changed) return new Map();
    return this.listeners.apply(new Map([...serving].map(([k, v]) => [k, v.config])));
  }

  /** As Envoy: the tracer's gRPC cluster must be one the proxy was started with (a bootstrap cluster). */
  #checkCollector(listener: ListenerConfig): string | undefined {
    const t = listener.chain.kind === 'http' ? listener.chain.tracing : undefined;
    if (!t || this.#collectors.has(t.collectorCluster)) return undefined;
    const known = [...this.#collectors.keys()];
    return `${t.collectorClusterPath}: unknown gRPC cluster ${JSON.stringify(t.collectorCluster)}: the sidecar has ${known.length ? `only ${known.join(', ')}` : 'no bootstrap clusters'} (start it with --otel-collector HOST:PORT to declare weft_otel)`;
  }

  /** Per request: the config object's tracer is remembered, so the key is built once per listener update. */
  #tracer(config: TracingConfig): Tracer | undefined {
    const known = this.#tracerOf.get(config);
    if (known) return known;
    const key = `${config.collectorCluster}\n${config.serviceName}\n${config.exportTimeoutMs}`;
    let t = this.#tracers.get(key);
    if (!t) {
      const collector = this.#collectors.get(config.collectorCluster);
      if (!collector) return undefined;
      t = new Tracer(config.serviceName, collector, config.exportTimeoutMs, this.stats, this.#log);
      this.#tracers.set(key, t);
    }
    this.#tracerOf.set(config, t);
    return t;
  }

  async #loadPlugins(kind: ResourceKind, value: unknown): Promise<string | undefined> {
    const configs: WasmPluginConfig[] = [];
    if (kind === 'extension') configs.push((value as ExtensionConfig).plugin);
    if (kind === 'listener') {
      const chain = (value as ListenerConfig).chain;
      if (chain.kind === 'http') for (const f of chain.httpFilters) if (f.kind === 'wasm') configs.push(f.plugin);
    }
    for (const c of configs) {
      try {
        this.#loadedPlugins.set(c, await this.wasm.load(c));
      } catch (e) {
        return `typed_config.config.vm_config.code: wasm module for ${JSON.stringify(c.name)} could not be loaded: ${(e as Error).message}`;
      }
    }
    return undefined;
  }

  /** The certificate and trust bundle each TLS listener and cluster uses, once per pair (admin /certs). */
  tlsInUse(): TlsSecretRefs[] {
    const seen = new Map<string, TlsSecretRefs>();
    for (const h of [...this.#held.listener.values(), ...this.#held.cluster.values()]) {
      const t = h.config.tls;
      if (t) seen.set(`${t.certificate}\0${t.validation}`, { certificate: t.certificate, validation: t.validation });
    }
    return [...seen.values()];
  }

  /** Resource names the sidecar wants for the non-wildcard types (what it subscribes to). */
  wanted(kind: 'endpoint' | 'route' | 'extension' | 'secret'): string[] {
    const out = new Set<string>();
    if (kind === 'secret') {
      for (const h of [...this.#held.listener.values(), ...this.#held.cluster.values()]) {
        const tls = h.config.tls;
        if (tls) out.add(tls.certificate).add(tls.validation);
      }
      return [...out].sort();
    }
    if (kind === 'endpoint') {
      for (const h of this.#held.cluster.values()) if (h.config.type === 'EDS') out.add(h.config.edsServiceName!);
    } else namedByListeners(this.#held.listener.values(), kind, out);
    return [...out].sort();
  }

  /**
   * Envoy's server state: PRE_INITIALIZING until the first full config is
   * applied, LIVE then (whatever later updates bring or are NACKed),
   * DRAINING once /drain_listeners was asked for or while /healthcheck/fail
   * holds (the admin's /ready then answers 503, so a load balancer stops
   * sending).
   */
  state(): ServerState {
    if (this.listeners.drainStarted) return 'DRAINING';
    if (!this.ready()) return 'PRE_INITIALIZING';
    return this.listeners.healthCheckFailed ? 'DRAINING' : 'LIVE';
  }

  #publishState(): void {
    const state = this.state();
    this.stats.serverState.set(SERVER_STATES.indexOf(state));
    this.stats.serverLive.set(state === 'LIVE' ? 1 : 0);
    // Started once, and never stopped again (draining keeps them), as Envoy's workers.
    if (this.ready()) this.stats.workersStarted.set(1);
  }

  /** Admin /drain_listeners (see ListenerManager.drain); drainTimeMs is the graceful drain's length (--drain-time-s). */
  drainListeners(scope: DrainScope, graceful: boolean, drainTimeMs: number): void {
    this.listeners.drain(scope, graceful, drainTimeMs);
    this.#publishState();
  }

  /**
   * A drain before exit (weft sidecar --termination-drain-s, on SIGTERM): the
   * inbound listeners drain gracefully, as /drain_listeners?graceful&inboundonly
   * (the app may still call out while it shuts down), until `maxMs` has passed
   * or, sooner, nothing is in progress on them and no request or connection
   * has arrived for `quietMs`. Resolves with which of the two ended it.
   */
  async drainBeforeExit(maxMs: number, quietMs = 1000): Promise<'quiet' | 'deadline'> {
    this.drainListeners('inbound', true, maxMs);
    const deadline = Date.now() + maxMs;
    let last = this.listeners.activity('inbound');
    let quietSince = Date.now();
    for (;;) {
      const now = Date.now();
      if (now >= deadline) return 'deadline';
      // Unref'd: a second signal ends the process without waiting for this loop.
      await new Promise((r) => setTimeout(r, Math.min(100, deadline - now)).unref());
      const a = this.listeners.activity('inbound');
      if (a.active > 0 || a.seen !== last.seen) {
        last = a;
        quietSince = Date.now();
      } else if (Date.now() - quietSince >= quietMs) return 'quiet';
    }
  }

  /**
   * Admin /healthcheck/fail (true) and /healthcheck/ok (false), as Envoy's:
   * while failed the server is DRAINING (/ready 503) and every listener asks
   * each connection to close after its next response, still accepting new ones.
   */
  failHealthCheck(failed: boolean): void {
    this.listeners.setDiscouraged('healthcheck', failed);
    this.#publishState();
  }

  /**
   * First full config applied: clusters with their endpoints, listeners with
   * their routes and filter configs. Once true, true for good, as Envoy's
   * initialization: a listener that later names a route still on its way, or
   * refused, waits for it alone (/init_dump) and does not take the server out.
   */
  ready(): boolean {
    if (!this.#initialized && this.#complete()) {
      this.#initialized = true;
      // From now on a cluster added or changed without its assignment warms apart, as Envoy's after its initialization.
      this.clusters.warmAfterInit = true;
      this.#markInitialized();
    }
    return this.#initialized;
  }

  #complete(): boolean {
    if (!this.#received.has('cluster') || !this.#received.has('listener')) return false;
    if (this.#held.listener.size === 0) return false;
    if (this.#refusedListeners().length > 0) return false;
    return (
      (['endpoint', 'route', 'extension', 'secret'] as const).every((kind) => this.wanted(kind).every((n) => this.#awaitedNoMore(kind, n))) &&
      // As Envoy's cluster manager initializes a health-checked cluster only once its hosts' first round completed.
      this.clusters.initialized()
    );
  }

  /**
   * What the sidecar still waits for (admin /init_dump): a first CDS or LDS
   * response, then each endpoint, route, filter config and secret its
   * clusters and listeners name that it does not hold, with the reason when
   * its last update was refused. Empty once everything named is held.
   */
  unready(): string[] {
    const out: string[] = [];
    for (const [kind, what] of [['cluster', 'CDS: the first cluster response'], ['listener', 'LDS: the first listener response']] as const) {
      if (!this.#received.has(kind)) out.push(what);
    }
    if (!this.#initialized) for (const [name, r] of this.#refusedListeners()) out.push(`LDS listener ${name} (version ${JSON.stringify(r.version)} NACKed: ${r.details})`);
    const labels = { endpoint: 'EDS cluster_load_assignment', route: 'RDS route_configuration', extension: 'ECDS extension_config', secret: 'SDS secret' } as const;
    for (const kind of ['endpoint', 'route', 'extension', 'secret'] as const) {
      for (const name of this.wanted(kind)) {
        if (this.#awaitedNoMore(kind, name)) continue;
        const refused = this.#rejected[kind].get(name);
        out.push(`${labels[kind]} ${name}${refused ? ` (version ${JSON.stringify(refused.version)} NACKed: ${refused.details})` : ''}`);
      }
    }
    // Clusters whose hosts' first health-check round is still running (at start, or a warming one).
    const built = [...this.clusters.clusters.values(), ...[...this.clusters.warming.values()].flatMap((w) => (w.cluster ? [w.cluster] : []))];
    for (const c of built) {
      if (c.pendingInitChecks > 0) out.push(`health checks: cluster ${c.name}, its hosts' first round (${c.pendingInitChecks} checks to complete)`);
    }
    return out;
  }

  /**
   * Listeners of the first config that were refused (a port another process holds, a field outside the subset) and
   * that no earlier version serves: until one is taken the sidecar is not ready, as its readiness means the first
   * full config is applied (docs/sidecar.md). Until 2026-11-29 such a sidecar said ready, its /init_dump {}, while
   * its inbound listener was not there.
   */
  #refusedListeners(): [string, { version: string; details: string }][] {
    return [...this.#rejected.listener].filter(([name]) => !this.#held.listener.has(name));
  }

  /**
   * The xDS client unsubscribed from these names: a refused update of one is no longer shown (config_dump,
   * /init_dump), and a route configuration or filter config no listener names any more is dropped, its wasm plugin
   * closed (proxy_on_done, proxy_on_delete) and its series gone, as Envoy drops a subscription's resource with its
   * last user. Until 2026-11-29 they stayed: a deleted FilterBinding's VM ran on (its ticks too), /config_dump kept
   * it, and `weft proxy-status` showed the proxy out of sync (EXTRA) for good.
   */
  unsubscribed(kind: ResourceKind, names: readonly string[]): void {
    for (const name of names) {
      this.#rejected[kind].delete(name);
      this.#absent(kind)?.delete(name);
    }
    if (kind === 'route' || kind === 'extension') {
      this.#forgetUnnamedConfigs();
      this.#releaseUnusedPlugins();
      this.#publishState();
    }
  }

  /** Route configurations and filter configs neither a held listener nor one still serving (its update warming) names. */
  #forgetUnnamedConfigs(): void {
    for (const kind of ['route', 'extension'] as const) {
      const keep = namedByListeners([...this.#held.listener.values(), ...this.#servingListeners.values()], kind, new Set());
      for (const name of [...this.#held[kind].keys()]) if (!keep.has(name)) this.#held[kind].delete(name);
    }
  }

  versions(kind: ResourceKind): Map<string, string> {
    return new Map([...this.#held[kind]].map(([k, v]) => [k, v.version]));
  }

  /**
   * /config_dump as Envoy writes it (envoy.admin.v3.ConfigDump): the node,
   * then every accepted resource as received, by kind, each with its version
   * and when it was accepted; endpoints only when asked (Envoy's
   * ?include_eds). Private keys are redacted, as in Envoy.
   */
  configDump(node: { id: string; cluster: string }, includeEds = false): { configs: Record<string, unknown>[] } {
    const asResource = (kind: ResourceKind, raw: unknown) => ({ '@type': TYPE_URLS[kind], ...((kind === 'secret' ? redacted(raw) : raw) as object) });
    // As Envoy's: a resource whose last update was refused carries error_state (that update, when, why) and
    // client_status NACKED, next to the version still serving; one never accepted has error_state alone.
    const failure = (kind: ResourceKind, name: string) => {
      const f = this.#rejected[kind].get(name);
      if (!f) return {};
      // An update that did not decode has no configuration to show.
      const failed = f.raw === undefined ? {} : { failed_configuration: asResource(kind, f.raw) };
      return { error_state: { ...failed, last_update_attempt: f.at.toISOString(), details: f.details, version_info: f.version }, client_status: 'NACKED' };
    };
    const entries = <K extends ResourceKind>(kind: K) => [...(this.#held[kind] as Map<string, Held<K>>)].map(([name, h]) => ({ name, h, resource: asResource(kind, h.raw), failed: failure(kind, name) }));
    const neverAccepted = (kind: ResourceKind) => [...this.#rejected[kind].keys()].filter((name) => !this.#held[kind].has(name)).map((name) => ({ name, failed: failure(kind, name) }));
    const latest = (kind: ResourceKind): string => {
      let last: Held<ResourceKind> | undefined;
      for (const h of (this.#held[kind] as Map<string, Held<ResourceKind>>).values()) if (!last || h.updated >= last.updated) last = h;
      return last?.version ?? '';
    };
    const ADMIN = 'type.googleapis.com/envoy.admin.v3.';
    const serving = this.#noteServingClusters();
    const configs: Record<string, unknown>[] = [
      { '@type': `${ADMIN}BootstrapConfigDump`, bootstrap: { node: { id: node.id, cluster: node.cluster } } },
      {
        '@type': `${ADMIN}ClustersConfigDump`,
        version_info: latest('cluster'),
        // As Envoy's: an active cluster as the version it runs; a warming one (an update of an active one too) apart.
        dynamic_active_clusters: [
          ...[...serving].map(([name, h]) => ({ version_info: h.version, cluster: asResource('cluster', h.raw), last_updated: h.updated.toISOString(), ...failure('cluster', name) })),
          ...neverAccepted('cluster').map(({ failed }) => failed),
        ],
        // A refused update of a cluster never active yet shows with the version warming (it has no other place).
        dynamic_warming_clusters: entries('cluster')
          .filter(({ name }) => this.clusters.isWarming(name))
          .map(({ name, h, resource, failed }) => ({ version_info: h.version, cluster: resource, last_updated: h.updated.toISOString(), ...(serving.has(name) ? {} : failed) })),
      },
      {
        '@type': `${ADMIN}EcdsConfigDump`,
        ecds_filters: [
          ...entries('extension').map(({ h, resource, failed }) => ({ version_info: h.version, ecds_filter: resource, last_updated: h.updated.toISOString(), ...failed })),
          ...neverAccepted('extension').map(({ failed }) => failed),
        ],
      },
      {
        '@type': `${ADMIN}ListenersConfigDump`,
        version_info: latest('listener'),
        // As Envoy's: the version serving under active_state, one still warming under warming_state.
        dynamic_listeners: [
          ...entries('listener').map(({ name, h, resource, failed }) => {
            const active = this.#servingListeners.get(name);
            const state = (s: Held<'listener'>) => ({ version_info: s.version, listener: asResource('listener', s.raw), last_updated: s.updated.toISOString() });
            return { name, ...(active ? { active_state: state(active) } : {}), ...(active !== h ? { warming_state: { version_info: h.version, listener: resource, last_updated: h.updated.toISOString() } } : {}), ...failed };
          }),
          ...neverAccepted('listener').map(({ name, failed }) => ({ name, ...failed })),
        ],
      },
      {
        '@type': `${ADMIN}RoutesConfigDump`,
        dynamic_route_configs: [
          ...entries('route').map(({ h, resource, failed }) => ({ version_info: h.version, route_config: resource, last_updated: h.updated.toISOString(), ...failed })),
          ...neverAccepted('route').map(({ failed }) => failed),
        ],
      },
      {
        '@type': `${ADMIN}SecretsConfigDump`,
        dynamic_active_secrets: [
          ...entries('secret').map(({ name, h, resource, failed }) => ({ name, version_info: h.version, last_updated: h.updated.toISOString(), secret: resource, ...failed })),
          ...neverAccepted('secret').map(({ name, failed }) => ({ name, ...failed })),
        ],
      },
    ];
    if (includeEds) {
      // As Envoy's: after the ECDS dump, before the listeners; rebuilt from every cluster's hosts (admin-endpoints.ts).
      const held = this.#held.endpoint;
      const eds = (name: string) => {
        const h = held.get(name);
        return { ...(h ? { version_info: h.version, last_updated: h.updated.toISOString() } : {}), ...failure('endpoint', name) };
      };
      configs.splice(3, 0, endpointsConfigDump(this.clusters, eds));
    }
    return { configs };
  }

  /**
   * Custom metrics of the wasm plugins in use (proxy_define_metric), labelled
   * by plugin, merged so each metric family is declared once even when two
   * plugins define the same name.
   */
  wasmPrometheus(keep?: SeriesFilter): string {
    const families = new Map<string, { head: string[]; samples: string[] }>();
    const family = (name: string) => {
      let f = families.get(name);
      if (!f) families.set(name, (f = { head: [], samples: [] }));
      return f;
    };
    for (const plugin of this.#pluginsByStore()) {
      let current: { name: string; f: { head: string[]; samples: string[] } } | undefined;
      for (const line of plugin.prometheus(keep).split('\n')) {
        if (line === '') continue;
        const meta = /^# (HELP|TYPE) (\S+)/.exec(line);
        if (meta) {
          current = { name: meta[2]!, f: family(meta[2]!) };
          if (!current.f.head.some((h) => h.startsWith(`# ${meta[1]} `))) current.f.head.push(line);
          continue;
        }
        const name = /^[^{\s]+/.exec(line)?.[0] ?? '';
        // Samples follow their family's # TYPE line (histograms add _bucket, _sum, _count).
        const f = current && (name === current.name || name.startsWith(`${current.name}_`)) ? current.f : family(name);
        f.samples.push(line);
      }
    }
    let out = '';
    for (const f of families.values()) out += '\n' + [...f.head, ...f.samples].join('\n') + '\n';
    return out;
  }

  /** The wasm plugins' own metrics (proxy_define_metric), each once per plugin. */
  /** Admin /reset_counters, as Envoy's: every counter to 0, the sidecar's and those wasm filters defined; gauges and histograms stay. */
  resetCounters(): void {
    this.stats.registry.resetCounters();
    for (const p of this.#pluginsByStore()) for (const m of p.metrics.all()) if (m.kind === 'counter') m.value = 0n;
  }

  wasmMetrics(): { plugin: string; metrics: import('./wasm/metrics.ts').Metric[] }[] {
    return this.#pluginsByStore().map((p) => ({ plugin: p.config.name, metrics: p.metrics.all() }));
  }

  listenerPort(name: string): number | undefined {
    return this.listeners.port(name);
  }

  clusterConfig(name: string): ClusterConfig | undefined {
    return this.#held.cluster.get(name)?.config;
  }

  routeConfig(name: string): RouteConfig | undefined {
    return this.#held.route.get(name)?.config;
  }

  async close(): Promise<void> {
    for (const fetches of Object.values(this.#fetches)) {
      for (const state of fetches.values()) if (state !== 'settled') clearTimeout(state);
      fetches.clear();
    }
    this.overload?.close();
    this.runtime.close();
    await this.listeners.close();
    // Spans of the requests just finished go out before the process ends.
    await Promise.all([...this.#tracers.values()].map((t) => t.close()));
    this.clusters.close();
    await this.wasm.close();
  }
}

/** Private keys never leave the proxy through its admin port: Envoy's config_dump says "[redacted]" too. */
function redacted(secret: unknown): unknown {
  const s = secret as { tls_certificate?: { private_key?: unknown } };
  if (!s?.tls_certificate?.private_key) return secret;
  return { ...s, tls_certificate: { ...s.tls_certificate, private_key: { inline_string: '[redacted]' } } };
}
