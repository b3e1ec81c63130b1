// What SotW and Delta streams share: scoping a proxy to its group's snapshot,
// the make-before-break push loop, lingering clusters, backpressure and the
// lifecycle hooks that status and metrics hang off.
import type { ProxyRef } from '../model/types.ts';
import type { ChangeStamp, EncodedResource, GroupSnapshot, SnapshotCache } from './cache.ts';
import { PUSH_ORDER, TypeUrl } from './discovery.ts';

export type StreamType = 'sotw' | 'delta';

export interface StreamInfo {
  readonly streamId: number;
  readonly proxy: ProxyRef;
  readonly group: string;
  readonly streamType: StreamType;
  readonly connectedAt: number;
}

export interface ResponseInfo {
  typeUrl: string;
  version: string;
  nonce: string;
  bytes: number;
  resources: number;
  removed: number;
  stamp?: ChangeStamp;
}

/**
 * Lifecycle hooks: the only way status, metrics and benchmarks observe a
 * stream. Called synchronously; must not throw or block.
 */
export interface XdsHooks {
  streamOpened?(stream: StreamInfo): void;
  streamClosed?(stream: StreamInfo): void;
  responseSent?(stream: StreamInfo, response: ResponseInfo): void;
  /** A Delta client opened a type saying what it holds (initial_resource_versions): the version of that set. */
  resumed?(stream: StreamInfo, typeUrl: string, version: string): void;
  acked?(stream: StreamInfo, typeUrl: string, version: string): void;
  nacked?(stream: StreamInfo, typeUrl: string, version: string, message: string, stamp?: ChangeStamp): void;
  /** The resources a NACK refused left the subscription or the proxy's scope: the type is no longer NACKED, though nothing was ACKed. */
  nackCleared?(stream: StreamInfo, typeUrl: string): void;
  /** Every response caused by `stamp` has been ACKed: commit -> ACK took `seconds`. */
  converged?(stream: StreamInfo, stamp: ChangeStamp, seconds: number): void;
  /** A change arrived while the stream was still blocked on the previous one and was coalesced. */
  overflow?(stream: StreamInfo): void;
  rejected?(node: unknown, reason: string): void;
}

/** The write side of a gRPC stream, abstracted for the push loop. */
export interface ResponseSink {
  write(bytes: Buffer): boolean;
  onceDrain(callback: () => void): void;
  /**
   * The proxy has not read for too long: end the stream so it reconnects
   * and resyncs (linkerd's answer to a stuck watcher) instead of holding
   * transport buffers forever.
   */
  reset(reason: string): void;
  /** How long the stream may stay blocked before reset (ms). */
  readonly maxBlockedMs: number;
}

interface Lingering {
  resource: EncodedResource;
  edsName: string;
}

export interface TypeConfig {
  version: string;
  resources: { name: string; version: string; resource: unknown }[];
}

/** What a client subscribed to for one type; each protocol's per-type state extends it. */
export interface Subscription {
  wildcard: boolean;
  names: Set<string>;
}

export abstract class AdsStream<S extends Subscription = Subscription> {
  readonly info: StreamInfo;
  /** Per-type subscription state, kept by the protocol subclass. */
  protected readonly types = new Map<string, S>();
  protected readonly cache: SnapshotCache;
  protected readonly hooks: XdsHooks;
  readonly #sink: ResponseSink;
  /** Types to recompute, with the change that dirtied them (for convergence). */
  readonly #dirty = new Map<string, ChangeStamp | undefined>();
  /** Changes pushed but not yet ACKed everywhere on this stream. */
  #pendingStamps: ChangeStamp[] = [];
  #pumping = false;
  #blocked = false;
  #closed = false;
  #nonceCounter = 0;
  /** Clusters removed from the snapshot but kept until no pushed route can reference them. */
  readonly #lingering = new Map<string, Lingering>();
  #clusterScope: ReadonlyMap<string, EncodedResource> = new Map();
  /**
   * Extension configs (ECDS) removed from the snapshot but kept until no pushed listener can name them:
   * Envoy answers requests through a listener whose ECDS filter config was removed with a 500
   * (MissingConfigFilter), the old listener's connections all through their drain.
   */
  readonly #lingeringExtensions = new Map<string, EncodedResource>();
  #extensionScope: ReadonlyMap<string, EncodedResource> = new Map();
  readonly #rewarmOnSubscribe = new Set<string>();
  /**
   * While a CDS response that added clusters is unanswered (and this timer, routesWaitMs long, has not fired;
   * undefined when not waiting), LDS and RDS wait: a route may name the new clusters, and Envoy (like the weft sidecar) answers a
   * CDS response only once its new clusters have warmed (ClusterManagerImpl pauses CDS while any warms), so a
   * route pushed before then sends requests to a cluster that is not there yet (503 NC). xds_protocol
   * "Eventual consistency considerations": the management plane must ensure clusters referenced by a route
   * are in place before pushing the route. Istio pushes without waiting.
   */
  #routesWaitTimer: NodeJS.Timeout | undefined;

  readonly #routesWaitMs: number;

  constructor(info: StreamInfo, cache: SnapshotCache, sink: ResponseSink, hooks: XdsHooks, routesWaitMs = ROUTES_WAIT_MS) {
    this.info = info;
    this.#routesWaitMs = routesWaitMs;
    this.cache = cache;
    this.#sink = sink;
    this.hooks = hooks;
    this.#clusterScope = this.group()?.types.get(TypeUrl.cluster)?.resources ?? new Map();
    this.#extensionScope = this.group()?.types.get(TypeUrl.extensionConfig)?.resources ?? new Map();
  }

  protected group(): GroupSnapshot | undefined {
    return this.cache.group(this.info.group);
  }

  protected nextNonce(): string {
    return `${this.info.streamId.toString(36)}.${(++this.#nonceCounter).toString(36)}`;
  }

  /** Everything of a type this proxy may see, before subscription filtering. */
  protected scope(typeUrl: string): ReadonlyMap<string, EncodedResource> {
    const group = this.group();
    if (!group) return new Map();
    if (typeUrl === TypeUrl.endpoint) {
      const out = new Map<string, EncodedResource>();
      for (const name of group.endpointNames) {
        const cla = this.cache.endpoint(name);
        if (cla) out.set(name, cla);
      }
      for (const l of this.#lingering.values()) {
        const cla = this.cache.endpoint(l.edsName);
        if (cla) out.set(l.edsName, cla);
      }
      return out;
    }
    const own = group.types.get(typeUrl)?.resources ?? new Map<string, EncodedResource>();
    if (typeUrl === TypeUrl.extensionConfig && this.#lingeringExtensions.size > 0) {
      const out = new Map(own);
      for (const [name, r] of this.#lingeringExtensions) if (!out.has(name)) out.set(name, r);
      return out;
    }
    if (typeUrl !== TypeUrl.cluster || this.#lingering.size === 0) return own;
    const out = new Map(own);
    for (const [name, l] of this.#lingering) if (!out.has(name)) out.set(name, l.resource);
    return out;
  }

  /** Whether a (lingering) EDS name is in scope even if the group dropped it. */
  protected isLingeringEds(name: string): boolean {
    for (const l of this.#lingering.values()) if (l.edsName === name) return true;
    return false;
  }

  /** The names the client subscribed to for this type (none for a wildcard subscription or none at all). */
  subscribedNames(typeUrl: string): ReadonlySet<string> {
    return this.types.get(typeUrl)?.names ?? new Set();
  }

  /** Whether the client subscribed to this type at all. */
  isSubscribed(typeUrl: string): boolean {
    return this.types.has(typeUrl);
  }

  /** Whether the client subscribed to any of `names` (or to the whole type). */
  protected wants(typeUrl: string, names: ReadonlySet<string>): boolean {
    const st = this.types.get(typeUrl);
    if (!st) return false;
    if (st.wildcard) return true;
    for (const n of names) if (st.names.has(n)) return true;
    return false;
  }

  // --- protocol-specific parts -------------------------------------------

  /** Builds (and records as sent) the response for a type, or null if there is nothing to send. */
  protected abstract buildResponse(typeUrl: string, stamp: ChangeStamp | undefined): { bytes: Buffer; info: ResponseInfo } | null;
  /** Whether the client currently holds this resource. */
  protected abstract clientHas(typeUrl: string, name: string): boolean;
  /** Pushed, not ACKed or NACKed. */
  protected abstract inFlight(typeUrl: string): boolean;
  /** The last response of this type was NACKed and nothing newer ACKed. */
  protected abstract isNacked(typeUrl: string): boolean;
  /** The resources the client holds, per type (for config dumps). */
  abstract config(): Record<string, TypeConfig>;
  /** The next EDS response carries these ClusterLoadAssignments (those subscribed to) even if unchanged. */
  protected abstract resendEndpoints(edsNames: ReadonlySet<string>): void;

  /**
   * A CDS response updated clusters the proxy held. Envoy warms an updated EDS
   * cluster again and puts it in service only once a ClusterLoadAssignment
   * arrives for it, even an unchanged one (xds_protocol "Resource warming");
   * without one it waits out initial_fetch_timeout (15 s). So their CLAs go
   * out again, after the CDS response, as Istio does (envoy#13009).
   */
  protected clustersUpdated(clusters: Iterable<EncodedResource>, stamp: ChangeStamp | undefined): void {
    const names = new Set<string>();
    for (const c of clusters) if (isEdsCluster(c)) names.add(edsNameOf(c));
    if (names.size === 0) return;
    if (!this.isSubscribed(TypeUrl.endpoint)) {
      // A reconnecting proxy asks for CDS before EDS: the EDS request's initial_resource_versions must not hide these.
      for (const n of names) this.#rewarmOnSubscribe.add(n);
      return;
    }
    this.resendEndpoints(names);
    this.markDirty(TypeUrl.endpoint, stamp);
  }

  /**
   * A CDS response added clusters the proxy did not hold: LDS and RDS wait for its answer (an ACK once they
   * warmed, or a NACK), at most ROUTES_WAIT_MS (Envoy's default initial_fetch_timeout), after which a
   * cluster still waiting for its endpoints is initialized without them anyway.
   */
  protected clustersAdded(): void {
    if (!this.isSubscribed(TypeUrl.listener) && !this.isSubscribed(TypeUrl.route)) return;
    clearTimeout(this.#routesWaitTimer);
    this.#routesWaitTimer = setTimeout(() => {
      this.#routesWaitTimer = undefined;
      this.pump();
    }, this.#routesWaitMs);
    this.#routesWaitTimer.unref();
  }

  /** Whether a dirty type waits (LDS and RDS, for a CDS response that added clusters). */
  #waits(typeUrl: string): boolean {
    if (this.#routesWaitTimer === undefined || (typeUrl !== TypeUrl.listener && typeUrl !== TypeUrl.route)) return false;
    if (this.inFlight(TypeUrl.cluster)) return true;
    clearTimeout(this.#routesWaitTimer);
    this.#routesWaitTimer = undefined;
    return false;
  }

  /** EDS names of clusters updated before the proxy subscribed to EDS on this stream (emptied by the call). */
  protected takeRewarmOnSubscribe(): Set<string> {
    const names = new Set(this.#rewarmOnSubscribe);
    this.#rewarmOnSubscribe.clear();
    return names;
  }

  // --- change notification ---------------------------------------------

  /** The group snapshot changed. */
  onGroupChanged(changedTypes: ReadonlySet<string>, stamp: ChangeStamp): void {
    if (changedTypes.has(TypeUrl.cluster)) this.#updateLingering();
    if (changedTypes.has(TypeUrl.extensionConfig)) this.#updateLingeringExtensions();
    for (const t of changedTypes) this.markDirty(t, stamp);
    if (changedTypes.has(TypeUrl.cluster)) this.markDirty(TypeUrl.endpoint, stamp);
    this.pump();
  }

  /** ClusterLoadAssignments changed; only streams subscribed to one of them are woken. */
  onEndpointsChanged(names: ReadonlySet<string>, stamp: ChangeStamp): void {
    if (!this.isSubscribed(TypeUrl.endpoint) || !this.wants(TypeUrl.endpoint, names)) return;
    const group = this.group();
    let inScope = false;
    for (const n of names) if (group?.endpointNames.has(n) || this.isLingeringEds(n)) inScope = true;
    if (!inScope) return;
    this.markDirty(TypeUrl.endpoint, stamp);
    this.pump();
  }

  protected markDirty(typeUrl: string, stamp?: ChangeStamp): void {
    if (this.#blocked && this.#dirty.has(typeUrl)) this.hooks.overflow?.(this.info);
    const prev = this.#dirty.get(typeUrl);
    // keep the oldest stamp: convergence is measured from the first change not yet delivered
    this.#dirty.set(typeUrl, prev && stamp ? (prev.committedAt <= stamp.committedAt ? prev : stamp) : (prev ?? stamp));
  }

  #updateLingering(): void {
    const now = this.group()?.types.get(TypeUrl.cluster)?.resources ?? new Map<string, EncodedResource>();
    const routesInUse = this.isSubscribed(TypeUrl.listener) || this.isSubscribed(TypeUrl.route);
    for (const [name, resource] of this.#clusterScope) {
      if (routesInUse && !now.has(name) && this.clientHas(TypeUrl.cluster, name)) this.#lingering.set(name, { resource, edsName: edsNameOf(resource) });
    }
    for (const name of now.keys()) this.#lingering.delete(name);
    this.#clusterScope = now;
  }

  #updateLingeringExtensions(): void {
    const now = this.group()?.types.get(TypeUrl.extensionConfig)?.resources ?? new Map<string, EncodedResource>();
    if (this.isSubscribed(TypeUrl.listener)) {
      for (const [name, resource] of this.#extensionScope) {
        if (!now.has(name) && this.clientHas(TypeUrl.extensionConfig, name)) this.#lingeringExtensions.set(name, resource);
      }
    }
    for (const name of now.keys()) this.#lingeringExtensions.delete(name);
    this.#extensionScope = now;
  }

  /**
   * A lingering cluster (or extension config) goes once every route (or
   * listener) the proxy may still be using has been replaced: LDS and RDS
   * have nothing dirty, nothing in flight and no outstanding NACK.
   */
  #releaseLingering(): void {
    if (this.#lingering.size === 0 && this.#lingeringExtensions.size === 0) return;
    for (const t of [TypeUrl.listener, TypeUrl.route]) {
      if (!this.isSubscribed(t)) continue;
      if (this.#dirty.has(t) || this.inFlight(t) || this.isNacked(t)) return;
    }
    if (this.#lingering.size > 0) {
      this.#lingering.clear();
      this.markDirty(TypeUrl.cluster);
      this.markDirty(TypeUrl.endpoint);
    }
    if (this.#lingeringExtensions.size > 0) {
      this.#lingeringExtensions.clear();
      this.markDirty(TypeUrl.extensionConfig);
    }
  }

  // --- push loop -----------------------------------------------------------

  /**
   * Sends every dirty type in make-before-break order. Re-scans from the top
   * after each write so a change arriving mid-push still goes CDS first. When
   * the transport pushes back, it waits for drain with only dirty flags
   * pending: a slow stream holds at most one response per type, always built
   * from the latest snapshot, and never blocks the producer.
   */
  pump(): void {
    if (this.#pumping || this.#blocked || this.#closed) return;
    this.#pumping = true;
    try {
      for (;;) {
        const ready = (t: string) => this.#dirty.has(t) && !this.#waits(t);
        let next: string | undefined = PUSH_ORDER.find(ready) ?? [...this.#dirty.keys()].find(ready);
        if (next === undefined) {
          this.#releaseLingering();
          next = PUSH_ORDER.find(ready);
          if (next === undefined) break;
        }
        const stamp = this.#dirty.get(next);
        this.#dirty.delete(next);
        if (!this.isSubscribed(next)) continue;
        const response = this.buildResponse(next, stamp);
        if (!response) continue;
        if (stamp) this.#pendingStamps.push(stamp);
        this.hooks.responseSent?.(this.info, response.info);
        if (!this.#sink.write(response.bytes)) {
          this.#blocked = true;
          const timer = setTimeout(() => {
            if (this.#blocked && !this.#closed) this.#sink.reset(`proxy read nothing for ${this.#sink.maxBlockedMs} ms; reconnect to resync`);
          }, this.#sink.maxBlockedMs);
          timer.unref();
          this.#sink.onceDrain(() => {
            clearTimeout(timer);
            this.#blocked = false;
            this.pump();
          });
          return;
        }
      }
      this.#checkConverged();
    } finally {
      this.#pumping = false;
    }
  }

  /** Called by subclasses after an ACK or NACK was processed. */
  protected afterReply(nacked: boolean): void {
    if (nacked) this.#pendingStamps = [];
    this.#releaseLingering();
    this.pump();
  }

  #checkConverged(): void {
    if (this.#pendingStamps.length === 0 || this.#dirty.size > 0) return;
    for (const t of PUSH_ORDER) if (this.inFlight(t)) return;
    const now = Date.now();
    const seen = new Set<number>();
    for (const s of this.#pendingStamps) {
      if (seen.has(s.revision)) continue;
      seen.add(s.revision);
      this.hooks.converged?.(this.info, s, Math.max(0, now - s.committedAt) / 1000);
    }
    this.#pendingStamps = [];
  }

  close(): void {
    this.#closed = true;
    clearTimeout(this.#routesWaitTimer);
  }
}

/** How long LDS and RDS wait for a CDS response that added clusters to be answered: Envoy's default initial_fetch_timeout. */
export const ROUTES_WAIT_MS = 15_000;

function isEdsCluster(cluster: EncodedResource): boolean {
  const json = cluster.json as { type?: string; eds_cluster_config?: unknown } | undefined;
  return json?.type === 'EDS' || json?.eds_cluster_config !== undefined;
}

function edsNameOf(cluster: EncodedResource): string {
  const json = cluster.json as { eds_cluster_config?: { service_name?: string } } | undefined;
  return json?.eds_cluster_config?.service_name || cluster.name;
}
