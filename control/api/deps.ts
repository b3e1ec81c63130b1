// What the API needs from the rest of the control plane, as narrow ports.
// control/main.ts adapts the real store, registry, xDS status and filter
// catalog to them, so the API depends on the control plane's public surface
// only, and tests can wire the same real parts in-process.
import type { Registry as PromRegistry } from 'prom-client';
import type { FilterModule, Instance, InstanceHealth, MeshModel, ProxyRef } from '../model/types.ts';
import type { FieldError } from './errors.ts';
import type { ReferenceError } from '../model/references.ts';
import type { Store } from '../store/store.ts';
import type { AuditJournal } from './audit-journal.ts';
import type { TokenStore } from './tokens.ts';

import type { StoredObject } from '../store/store.ts';
export type { Change, RevisionInfo, StoredObject } from '../store/store.ts';

/** The durable, revisioned store: control/store's interface as is. */
export type StorePort = Store;

export type RegistryResult<T> = { ok: true; value: T } | { ok: false; errors: FieldError[] };

/** Instance liveness (control/registry, adapted in main.ts). */
export interface RegistryPort {
  register(service: string, namespace: string, input: unknown, actor: string): Promise<RegistryResult<Instance>>;
  /** false when the id is unknown (expired or never registered). */
  heartbeat(id: string): boolean;
  deregister(id: string, actor: string): Promise<boolean>;
  setHealth(id: string, health: InstanceHealth, actor: string): Promise<boolean>;
  /** Every registered instance, live or not, with its current health and when it last registered or sent a heartbeat (ISO 8601). */
  instances(): (Instance & { live: boolean; lastHeartbeat?: string })[];
  /** One instance by id, as instances() lists it, without listing them all (heartbeats, health and deregistration look it up). */
  instance(id: string): (Instance & { live: boolean; lastHeartbeat?: string }) | undefined;
}

export const CONFIG_TYPES = ['listeners', 'routes', 'clusters', 'endpoints', 'extension-configs'] as const;
export type ConfigType = (typeof CONFIG_TYPES)[number];

export interface ProxyView {
  id: string;
  service: string;
  namespace: string;
  kind: string;
  /**
   * NOT_SENT: the control plane refuses to build this proxy's config (its service is not registered, a resource
   * fails validation), so the proxy keeps what it had, or waits with nothing; `refused` says why.
   */
  status: 'SYNCED' | 'STALE' | 'NACKED' | 'NOT_SENT' | 'DISCONNECTED';
  /** Why the control plane sends this proxy nothing new (status NOT_SENT): each refused field, with the model revision. */
  refused?: { path: string; message: string; revision: number }[];
  stream?: string;
  connectedSince?: string;
  /** ISO 8601 time of the proxy's last ACK. */
  lastAckAt?: string;
  /** Last ACKed version per config type. */
  versions: Partial<Record<ConfigType, string>>;
  /** Last NACK per type; `revision` is the model revision of the rejected push. */
  nacks: { type: string; message: string; version?: string; time?: string; revision?: number }[];
  convergenceMs?: number;
}

/** Connected proxies and what they were sent (control/xds status, adapted). */
export interface ProxyStatusPort {
  list(): ProxyView[];
  get(id: string): ProxyView | undefined;
  /** The proxy's current resources of one type, Envoy JSON keyed by name; undefined for an unknown proxy. */
  config(id: string, type: ConfigType): { name: string; value: unknown }[] | undefined;
  /** The ProxyRef a connected proxy declared (for diff). */
  ref(id: string): ProxyRef | undefined;
}

/** Store kind of catalog entries (uploaded and built-in modules); buildModel reads them. */
export const FILTER_MODULE_KIND = 'FilterModule';

export type ModuleCheck = { ok: true; module: FilterModule } | { ok: false; errors: FieldError[] };

/** The wasm filter catalog and module store (control/filters, adapted). */
export interface FilterCatalogPort {
  list(): Promise<FilterModule[]>;
  /** Checks a module and stores its bytes (content-addressed); the catalog entry to commit on success. */
  upload(name: string, bytes: Uint8Array, configSchema: unknown): Promise<ModuleCheck>;
  /** Module bytes by sha256 hex, or undefined. */
  read(sha256: string): Promise<Uint8Array | undefined>;
  /** Errors of a binding's config against the filter's schema (paths relative to the config). */
  validateConfig(filter: FilterModule, config: unknown): FieldError[];
  /** Whether the module's own proxy_on_configure accepts the plugin configuration a binding would send (control/filters/configure-check.ts); empty when it does. */
  configureErrors(filter: FilterModule, plugin: { name: string; rootId: string; configuration: string }): Promise<FieldError[]>;
  /** Whether `name` is one of this build's built-in filters (kept in the catalog by every start). */
  isBuiltin(name: string): boolean;
}

/** Envoy resources for one proxy, per config type (translate, adapted for diff). */
export type ProxyResources = Record<ConfigType, { name: string; value: unknown }[]> & { errors: FieldError[] };

export interface ApiDeps {
  store: StorePort;
  registry: RegistryPort;
  tokens: TokenStore;
  /** Who did what where the store's revisions cannot say (registry changes, tokens). */
  audit: AuditJournal;
  proxies: ProxyStatusPort;
  filters: FilterCatalogPort;
  /** Prometheus registries merged at /metrics (xDS metrics, process metrics). */
  metrics: PromRegistry[];
  /** The mesh model of the current state, or of `objects` (a hypothetical state, for diff and dry runs). */
  buildModel(objects?: StoredObject[]): MeshModel;
  /** Translation of one proxy against a model (resources by type, errors as values). */
  translate(model: MeshModel, proxy: ProxyRef): ProxyResources;
  /** Cross-reference errors of a desired state (a route to an unknown service or subset...). */
  checkReferences(objects: StoredObject[]): ReferenceError[];
  /** /readyz: true once the store is open and the xDS server listens. */
  ready(): boolean;
  /** Per-workload xDS join tokens; absent when mesh identity is off. */
  joinTokens?: JoinTokenPort;
}

export interface JoinTokenView {
  id: string;
  namespace: string;
  service: string;
  issuedAt: string;
  /** When it stops admitting proxies; absent: until revoked. */
  expiresAt?: string;
}

/** Issues join tokens a proxy presents in node.metadata WEFT_TOKEN (control/ca/join-tokens.ts). */
export interface JoinTokenPort {
  /** `ttlMs` undefined: the token admits until revoked. */
  issue(identity: { namespace: string; service: string }, ttlMs?: number): { token: string; record: JoinTokenView };
  /** The tokens issued and not revoked, expired ones included (never the tokens themselves). */
  list(): JoinTokenView[];
  /** Revokes a token by id and ends the xDS streams it admitted; false when no token has that id. */
  revoke(id: string): boolean;
  /** SPIFFE trust domain, for the response's spiffeId. */
  trustDomain: string;
}
