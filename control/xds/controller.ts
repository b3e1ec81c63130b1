// The model -> xDS controller: on every store or registry change it rebuilds
// the model, retranslates what depends on the change, validates through the
// cache and publishes. Instance-only changes retranslate only the affected
// services' ClusterLoadAssignments; config changes retranslate every active
// proxy group. Errors are values: a group whose translation or validation
// fails keeps its last good snapshot and the errors are kept for the API.
import type { MeshModel, ProxyRef, Service } from '../model/types.ts';
import { performance } from 'node:perf_hooks';
import type { ChangeStamp, PreparedGroup, ResourceInput, SnapshotCache, SnapshotError } from './cache.ts';
import { TypeUrl } from './discovery.ts';

/** One committed change, as the model source reports it. */
export interface ModelChange {
  /** 'instances' when only instance registrations / liveness changed. */
  kind: 'config' | 'instances';
  revision: number;
  /** Date.now() when the change was committed. */
  committedAt: number;
  /** For instance changes: the services ("namespace/name") whose instances changed. */
  services?: string[];
}

/** Where the controller gets the mesh model and hears about changes. */
export interface ModelSource {
  model(): MeshModel;
  /**
   * Optional fast path for instance-only changes: `previous` with its
   * instances (and revision) refreshed, operator objects reused.
   */
  refreshInstances?(previous: MeshModel): MeshModel;
  subscribe(listener: (change: ModelChange) => void): () => void;
}

interface TranslatedProxy {
  listeners: ResourceInput[];
  routes: ResourceInput[];
  clusters: ResourceInput[];
  extensionConfigs: ResourceInput[];
  endpointNames: string[];
  errors: { resource?: string; path: string; message: string }[];
}

/** The translator's surface (control/translate/index.ts). */
export interface Translator {
  translateProxy(model: MeshModel, proxy: ProxyRef): TranslatedProxy;
  translateEndpoints(model: MeshModel, clusterNames: Iterable<string>): { endpoints: ResourceInput[]; errors: { resource?: string; path: string; message: string }[] };
}

interface StagedGroup {
  stamp: ChangeStamp;
  resources: Record<string, ResourceInput[]>;
  endpointNames: string[];
}

/** A config change being applied in slices. */
interface SlicedApply {
  /** The one model snapshot every group of this apply is translated against. */
  model: MeshModel;
  stamp: ChangeStamp;
  /** The groups active when it began, in order; `next` is the first not yet translated. */
  queue: [string, ProxyRef][];
  next: number;
  /** Groups dropped or (re)added since it began: not translated by it (ensureGroup translated a new one itself). */
  skip: Set<string>;
  /** The union of the translated groups' ClusterLoadAssignments, published before the groups. */
  endpointNames: Set<string>;
}

export interface ControllerError extends SnapshotError {
  /** The proxy group (or "endpoints") whose snapshot was refused. */
  group: string;
  revision: number;
}

/**
 * SDS Secrets per proxy (mesh identity, issue 7). Kept apart from the pure
 * translator because certificates come from the CA's clock: each group gets
 * the Secrets of its own service identity only, and a rotation republishes.
 */
export interface SecretSource {
  secretsFor(proxy: ProxyRef): ResourceInput[];
  /** Called when any identity's certificate changed. */
  subscribe(listener: () => void): () => void;
}

export interface ControllerOptions {
  cache: SnapshotCache;
  source: ModelSource;
  translator: Translator;
  secrets?: SecretSource;
  /**
   * Push-storm protection, as Istio's PILOT_DEBOUNCE_AFTER: changes are
   * coalesced into one retranslation and push, made once none has arrived
   * for this long (default 100 ms). A burst of applies or registrations
   * costs a few pushes per proxy. Unlike Istio's, a change that comes after
   * a quiet spell (none pushed for this long) goes out at once: only what
   * follows it within the quiet period waits, so a lone change is not
   * delayed by the debounce at all.
   */
  debounceMs?: number;
  /**
   * ... but never later than this after the first change not yet pushed
   * (default 1 s; Istio's PILOT_DEBOUNCE_MAX), so a steady stream of changes
   * still reaches the proxies.
   */
  debounceMaxMs?: number;
  /**
   * The EDS names some connected proxy subscribes to. A ClusterLoadAssignment no group's snapshot names is
   * dropped from the cache once no proxy watches it either (not before: a proxy that NACKed the CDS removing its
   * cluster still serves with it). Without this option unreferenced ones are dropped at once.
   */
  watchedEndpoints?: () => ReadonlySet<string>;
  /** A snapshot was refused (translation or validation errors); the last good one stays. */
  onErrors?(kind: 'group' | 'endpoints', errors: ControllerError[]): void;
  /**
   * A config change retranslates every proxy group; it does so in slices of
   * about this much work (default 10 ms), yielding to the event loop between
   * them, so /healthz, the API and heartbeats are answered during a push to a
   * thousand groups. The groups are still published together at the end.
   */
  sliceMs?: number;
}

export class XdsController {
  readonly #cache: SnapshotCache;
  readonly #source: ModelSource;
  readonly #translator: Translator;
  readonly #secrets: SecretSource | undefined;
  #unsubscribeSecrets: (() => void) | undefined;
  readonly #debounceMs: number;
  readonly #debounceMaxMs: number;
  /** When the oldest pending change arrived. */
  #firstPendingAt = 0;
  /** When the last push was made (a change after a quiet spell goes out at once). */
  #lastFlushAt = -Infinity;
  readonly #onErrors: ControllerOptions['onErrors'];
  readonly #watchedEndpoints: ControllerOptions['watchedEndpoints'];
  /** Active proxy groups and a representative proxy of each. */
  readonly #groups = new Map<string, ProxyRef>();
  readonly #groupEndpoints = new Map<string, string[]>();
  #model: MeshModel | undefined;
  #services = new Map<string, Service>();
  #pending: ModelChange[] = [];
  #timer: NodeJS.Timeout | undefined;
  /** How many of the pending changes #model already reflects (ensureGroup rebuilt it within the window). */
  #pendingInModel = 0;
  #unsubscribe: (() => void) | undefined;
  #errors: ControllerError[] = [];
  /** Translated and prepared (encoded, validated) but not yet published groups: a config change publishes their endpoints first. */
  readonly #staged = new Map<string, { prepared: PreparedGroup; endpointNames: string[] }>();
  readonly #sliceMs: number;
  /** The config change being applied in slices, if any: changes that arrive meanwhile wait for it. */
  #applying: SlicedApply | undefined;
  /** The next slice of #applying. */
  #slice: NodeJS.Immediate | undefined;
  /** When the newest pending change arrived. */
  #lastPendingAt = 0;

  constructor(options: ControllerOptions) {
    this.#cache = options.cache;
    this.#source = options.source;
    this.#translator = options.translator;
    this.#secrets = options.secrets;
    this.#debounceMs = options.debounceMs ?? 100;
    this.#debounceMaxMs = options.debounceMaxMs ?? 1000;
    this.#onErrors = options.onErrors;
    this.#watchedEndpoints = options.watchedEndpoints;
    this.#sliceMs = options.sliceMs ?? 10;
  }

  /** Starts listening for changes. */
  start(): void {
    this.#unsubscribe ??= this.#source.subscribe((change) => this.#enqueue(change));
    // A certificate rotation republishes every group (unchanged Secrets are no-ops in the cache).
    this.#unsubscribeSecrets ??= this.#secrets?.subscribe(() => this.#enqueue({ kind: 'config', revision: this.#model?.revision ?? 0, committedAt: Date.now() }));
  }

  /** Stops listening; pending changes, and a config change being applied in slices, are dropped. */
  stop(): void {
    if (this.#slice) clearImmediate(this.#slice);
    this.#slice = undefined;
    this.#applying = undefined;
    this.#discardStaged();
    this.#unsubscribe?.();
    this.#unsubscribe = undefined;
    this.#unsubscribeSecrets?.();
    this.#unsubscribeSecrets = undefined;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#pending = [];
    this.#pendingInModel = 0;
  }

  /** The service a node names, for the WEFT_APP_PORT default. */
  lookupService = (namespace: string, name: string): Service | undefined => {
    this.#ensureModel();
    return this.#services.get(`${namespace}/${name}`);
  };

  /**
   * A proxy connected: translate its group now if it is new, so its first
   * requests are answered from a snapshot built for it.
   */
  ensureGroup(proxy: ProxyRef, group: string): void {
    if (this.#groups.has(group)) return;
    this.#groups.set(group, proxy);
    // a config change being applied in slices leaves it alone: it is translated here, from the model in use
    this.#applying?.skip.add(group);
    // A proxy that connects while changes wait out the debounce window is translated from the store as it is now,
    // not from the model the last push used: its first config must already carry what was committed (a filter
    // binding, an authorization policy), or a sidecar would go ready and serve without it until the window ends.
    // The push of the window still comes (and finds this group's snapshot unchanged). The model is rebuilt once
    // per change that came since, not per proxy: a reconnect storm within one window builds it once.
    if (this.#pending.length > this.#pendingInModel) {
      this.#setModel(this.#source.model());
      this.#pendingInModel = this.#pending.length;
    }
    const model = this.#ensureModel();
    const stamp = { revision: model.revision, committedAt: Date.now() };
    const names = this.#translateGroup(model, group, proxy, stamp);
    // all of them, not just the missing ones: a cached CLA no active group referenced
    // was not kept up to date (unchanged ones are no-ops in the cache)
    if (names) this.#publishEndpoints(model, stamp, names);
  }

  /** The last proxy of a group left: stop translating for it. */
  dropGroup(group: string): void {
    // not published by a config change being applied in slices, which would bring it back
    this.#applying?.skip.add(group);
    const staged = this.#staged.get(group);
    if (staged) this.#cache.discardGroup(staged.prepared);
    this.#staged.delete(group);
    this.#groups.delete(group);
    this.#groupEndpoints.delete(group);
    this.#cache.deleteGroup(group);
    this.#dropUnreferencedEndpoints({ revision: this.#model?.revision ?? 0, committedAt: Date.now() });
  }

  /** Errors of the last refused snapshots (cleared per group when it publishes). */
  errors(): ControllerError[] {
    return [...this.#errors];
  }

  /**
   * Applies pending changes now instead of at the end of the window (tests,
   * shutdown): finishes a config change being applied in slices, then applies
   * what is pending, all before it returns.
   */
  flush(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#applying) this.#continueApply(Infinity);
    this.#applyPending(true);
  }

  /** The debounce timer fired. */
  #onTimer(): void {
    this.#timer = undefined;
    // changes that came during a sliced apply wait for it: its end schedules them
    if (this.#applying) return;
    this.#applyPending(false);
  }

  #applyPending(sync: boolean): void {
    this.#lastFlushAt = Date.now();
    const changes = this.#pending;
    this.#pending = [];
    this.#pendingInModel = 0;
    if (changes.length > 0) this.#apply(changes, sync);
  }

  /**
   * A change after a quiet spell is pushed at once (on the next turn of the
   * event loop, with whatever else arrived in this one); each later change
   * restarts the quiet period, up to debounceMaxMs after the first pending one.
   */
  #enqueue(change: ModelChange): void {
    const now = Date.now();
    if (this.#pending.length === 0) this.#firstPendingAt = now;
    this.#lastPendingAt = now;
    this.#pending.push(change);
    this.#schedule(this.#pending.length === 1 && now - this.#lastFlushAt >= this.#debounceMs);
  }

  #schedule(leading: boolean): void {
    if (this.#timer) clearTimeout(this.#timer);
    const now = Date.now();
    const due = leading ? now : Math.min(this.#lastPendingAt + this.#debounceMs, this.#firstPendingAt + this.#debounceMaxMs);
    this.#timer = setTimeout(() => this.#onTimer(), Math.max(0, due - now));
  }

  #ensureModel(): MeshModel {
    if (!this.#model) this.#setModel(this.#source.model());
    return this.#model!;
  }

  #setModel(model: MeshModel): void {
    this.#model = model;
    this.#services = new Map(model.services.map((s) => [`${s.namespace}/${s.name}`, s]));
  }

  #apply(changes: ModelChange[], sync: boolean): void {
    const configChanged = changes.some((c) => c.kind === 'config');
    if (!configChanged && this.#model && this.#source.refreshInstances) this.#model = this.#source.refreshInstances(this.#model);
    else this.#setModel(this.#source.model());
    const model = this.#model!;
    // one stamp for the coalesced burst: the newest revision, timed from the oldest commit
    const stamp: ChangeStamp = {
      revision: Math.max(...changes.map((c) => c.revision)),
      committedAt: Math.min(...changes.map((c) => c.committedAt)),
    };
    if (configChanged) {
      // every group, against this one model, in slices; published together when the last is translated
      this.#applying = { model, stamp, queue: [...this.#groups], next: 0, skip: new Set(), endpointNames: new Set() };
      this.#continueApply(sync ? Infinity : this.#sliceMs);
      return;
    }
    const services = new Set(changes.flatMap((c) => c.services ?? []));
    const names = new Set<string>();
    for (const list of this.#groupEndpoints.values()) {
      for (const n of list) if (services.size === 0 || services.has(serviceOfCluster(n))) names.add(n);
    }
    this.#publishEndpoints(model, stamp, names);
  }

  /**
   * Translates and prepares groups of the sliced apply for about budgetMs (at
   * least one), then yields to the event loop (setImmediate) and goes on; after
   * the last it publishes: endpoints (their union) first, then every group,
   * then drops endpoints no group references any more, as one apply always did.
   */
  #continueApply(budgetMs: number): void {
    const apply = this.#applying;
    if (!apply) return;
    if (this.#slice) clearImmediate(this.#slice);
    this.#slice = undefined;
    const deadline = performance.now() + budgetMs;
    while (apply.next < apply.queue.length) {
      const [group, proxy] = apply.queue[apply.next++]!;
      if (apply.skip.has(group) || this.#groups.get(group) !== proxy) continue;
      let names: string[];
      try {
        names = this.#translateGroup(apply.model, group, proxy, apply.stamp, true) ?? this.#groupEndpoints.get(group) ?? [];
      } catch (err) {
        // a translator bug: the apply is abandoned (nothing of it published) rather than left holding back every later change
        this.#applying = undefined;
        this.#discardStaged();
        throw err;
      }
      for (const n of names) apply.endpointNames.add(n);
      if (apply.next < apply.queue.length && performance.now() >= deadline) {
        this.#slice = setImmediate(() => {
          this.#slice = undefined;
          this.#continueApply(this.#sliceMs);
        });
        return;
      }
    }
    this.#applying = undefined;
    this.#publishEndpoints(apply.model, apply.stamp, apply.endpointNames);
    this.#publishGroups();
    this.#dropUnreferencedEndpoints(apply.stamp);
    this.#lastFlushAt = Date.now();
    // changes that came meanwhile: their window may have passed while they waited
    if (this.#pending.length > 0 && !this.#timer) this.#schedule(false);
  }

  #translateGroup(model: MeshModel, group: string, proxy: ProxyRef, stamp: ChangeStamp, stageOnly = false): string[] | undefined {
    const out = this.#translator.translateProxy(model, { ...proxy, id: group });
    if (out.errors.length > 0) {
      this.#report('group', group, stamp, out.errors.map((e) => ({ typeUrl: '', resource: e.resource ?? '', path: e.path, message: e.message })));
      return undefined;
    }
    const staged: StagedGroup = {
      stamp,
      resources: {
        [TypeUrl.cluster]: out.clusters,
        [TypeUrl.extensionConfig]: out.extensionConfigs,
        [TypeUrl.listener]: out.listeners,
        [TypeUrl.route]: out.routes,
        ...(this.#secrets ? { [TypeUrl.secret]: this.#secrets.secretsFor(proxy) } : {}),
      },
      endpointNames: out.endpointNames,
    };
    if (stageOnly) {
      // encoded and validated now (the costly part), published with the others at the end
      const prepared = this.#cache.prepareGroup(group, staged);
      if (!prepared.ok) {
        this.#report('group', group, stamp, prepared.errors);
        return undefined;
      }
      const previous = this.#staged.get(group);
      if (previous) this.#cache.discardGroup(previous.prepared);
      this.#staged.set(group, { prepared, endpointNames: out.endpointNames });
      return out.endpointNames;
    }
    const result = this.#cache.setGroup(group, staged);
    if (!result.ok) {
      this.#report('group', group, stamp, result.errors);
      return undefined;
    }
    this.#published(group, out.endpointNames);
    return out.endpointNames;
  }

  #publishGroups(): void {
    const staged = [...this.#staged];
    this.#staged.clear();
    for (const [group, { prepared, endpointNames }] of staged) {
      this.#cache.commitGroup(prepared);
      this.#published(group, endpointNames);
    }
  }

  #discardStaged(): void {
    for (const { prepared } of this.#staged.values()) this.#cache.discardGroup(prepared);
    this.#staged.clear();
  }

  #published(group: string, endpointNames: string[]): void {
    this.#groupEndpoints.set(group, endpointNames);
    this.#errors = this.#errors.filter((e) => e.group !== group);
  }

  #publishEndpoints(model: MeshModel, stamp: ChangeStamp, names: Iterable<string>): void {
    const list = [...names];
    if (list.length === 0) return;
    const out = this.#translator.translateEndpoints(model, list);
    const errors: SnapshotError[] = out.errors.map((e) => ({ typeUrl: TypeUrl.endpoint, resource: e.resource ?? '', path: e.path, message: e.message }));
    if (errors.length === 0) {
      const result = this.#cache.setEndpoints(stamp, out.endpoints);
      if (result.ok) {
        this.#errors = this.#errors.filter((e) => e.group !== 'endpoints');
        return;
      }
      errors.push(...result.errors);
    }
    this.#report('endpoints', 'endpoints', stamp, errors);
  }

  /**
   * ClusterLoadAssignments of clusters no group has any more (a service removed, a subset renamed) and no proxy
   * watches: kept, the cache grew by one for every service that ever came and went, each holding its encoded
   * bytes (bench:soak: 8 KiB per change that replaced a service). One a proxy still watches goes at a later change.
   */
  #dropUnreferencedEndpoints(stamp: ChangeStamp): void {
    const keep = new Set<string>(this.#watchedEndpoints?.() ?? []);
    for (const names of this.#groupEndpoints.values()) for (const n of names) keep.add(n);
    const remove = this.#cache.endpointNames().filter((n) => !keep.has(n));
    if (remove.length > 0) this.#cache.setEndpoints(stamp, [], { remove });
  }

  #report(kind: 'group' | 'endpoints', group: string, stamp: ChangeStamp, errors: SnapshotError[]): void {
    const tagged = errors.map((e) => ({ ...e, group, revision: stamp.revision }));
    this.#errors = [...this.#errors.filter((e) => e.group !== group), ...tagged];
    this.#onErrors?.(kind, tagged);
  }
}

/**
 * The "namespace/service" an EDS cluster belongs to, from the translator's
 * naming contract: outbound|<port>|<subset>|<service>.<namespace>.
 */
export function serviceOfCluster(clusterName: string): string {
  const host = clusterName.slice(clusterName.lastIndexOf('|') + 1);
  const dot = host.lastIndexOf('.');
  return dot < 0 ? `default/${host}` : `${host.slice(dot + 1)}/${host.slice(0, dot)}`;
}
