// Per-proxy status, fed only by stream lifecycle hooks: who is connected,
// what each proxy last ACKed, its last NACK per type (with the model revision
// that caused it), how long its last change took to converge, and whether it
// is SYNCED, STALE (pushed, not yet ACKed), NACKED or DISCONNECTED.
import type { ProxyRef } from '../model/types.ts';
import type { ChangeStamp } from './cache.ts';
import { TypeUrl } from './discovery.ts';
import type { ResponseInfo, StreamInfo, StreamType, TypeConfig, XdsHooks } from './stream.ts';

/** The REST API's config kinds (/api/v1/proxies/{id}/config) and the type URLs they name. */
export const CONFIG_KINDS = {
  listeners: TypeUrl.listener,
  routes: TypeUrl.route,
  clusters: TypeUrl.cluster,
  endpoints: TypeUrl.endpoint,
  'extension-configs': TypeUrl.extensionConfig,
} as const;

export type ProxySyncStatus = 'SYNCED' | 'STALE' | 'NACKED' | 'DISCONNECTED';

export interface NackRecord {
  typeUrl: string;
  message: string;
  version: string;
  /** ISO 8601. */
  time: string;
  /** Model revision of the push that was rejected. */
  revision?: number;
}

export interface ProxyStatus {
  id: string;
  service: string;
  namespace: string;
  kind: ProxyRef['kind'];
  stream: StreamType;
  /** ISO 8601. */
  connectedSince: string;
  disconnectedAt?: string;
  status: ProxySyncStatus;
  /** Last ACKed version per type URL (after a Delta reconnect, until an ACK: the version of what the proxy said it holds). */
  ackedVersions: Record<string, string>;
  /** Last NACK per type URL (kept after a later ACK, for history). */
  lastNacks: Record<string, NackRecord>;
  /** ISO 8601 time of the last ACK of any type. */
  lastAckAt?: string;
  /** Commit -> ACK of the last change that reached this proxy. */
  convergenceMs?: number;
  /** Model revision of the last converged change. */
  syncedRevision?: number;
}

interface Entry {
  streamId: number;
  proxy: ProxyRef;
  status: ProxyStatus;
  pending: Set<string>;
  nacked: Set<string>;
}

export interface ProxyStatusOptions {
  /** How long a disconnected proxy stays listed (default 10 minutes). */
  retainDisconnectedMs?: number;
  now?: () => number;
}

export class ProxyStatusBook implements XdsHooks {
  readonly #entries = new Map<string, Entry>();
  readonly #retainMs: number;
  readonly #now: () => number;
  #configSource: (id: string) => Record<string, TypeConfig> | undefined = () => undefined;

  constructor(options: ProxyStatusOptions = {}) {
    this.#retainMs = options.retainDisconnectedMs ?? 10 * 60_000;
    this.#now = options.now ?? Date.now;
  }

  /** Where config() reads a connected proxy's current resources (the ADS server). */
  setConfigSource(source: (id: string) => Record<string, TypeConfig> | undefined): void {
    this.#configSource = source;
  }

  // --- public queries (REST API, CLI) -------------------------------------

  /** Every known proxy, connected or recently disconnected, sorted by id. */
  list(): ProxyStatus[] {
    this.#prune();
    return [...this.#entries.values()].map((e) => this.#view(e)).sort((a, b) => a.id.localeCompare(b.id));
  }

  get(id: string): ProxyStatus | undefined {
    this.#prune();
    const e = this.#entries.get(id);
    return e ? this.#view(e) : undefined;
  }

  /** The ProxyRef a proxy declared in its node. */
  ref(id: string): ProxyRef | undefined {
    return this.#entries.get(id)?.proxy;
  }

  /**
   * The resources a connected proxy holds, per type URL, as Envoy JSON
   * (for /api/v1/proxies/{id}/config). Undefined if not connected.
   */
  config(id: string): Record<string, TypeConfig> | undefined {
    const e = this.#entries.get(id);
    if (!e || e.status.disconnectedAt) return undefined;
    return this.#configSource(id);
  }

  // --- hooks ---------------------------------------------------------------

  streamOpened(s: StreamInfo): void {
    const previous = this.#entries.get(s.proxy.id);
    this.#entries.set(s.proxy.id, {
      streamId: s.streamId,
      proxy: s.proxy,
      pending: new Set(),
      nacked: new Set(),
      status: {
        id: s.proxy.id,
        service: s.proxy.service,
        namespace: s.proxy.namespace,
        kind: s.proxy.kind,
        stream: s.streamType,
        connectedSince: new Date(s.connectedAt).toISOString(),
        status: 'SYNCED',
        ackedVersions: {},
        lastNacks: previous?.status.lastNacks ?? {},
      },
    });
  }

  streamClosed(s: StreamInfo): void {
    const e = this.#current(s);
    if (!e) return;
    e.status.disconnectedAt = new Date(this.#now()).toISOString();
  }

  responseSent(s: StreamInfo, r: ResponseInfo): void {
    this.#current(s)?.pending.add(r.typeUrl);
  }

  /** What a reconnecting proxy says it holds is its version until it ACKs something newer. */
  resumed(s: StreamInfo, typeUrl: string, version: string): void {
    const e = this.#current(s);
    if (e && e.status.ackedVersions[typeUrl] === undefined) e.status.ackedVersions[typeUrl] = version;
  }

  acked(s: StreamInfo, typeUrl: string, version: string): void {
    const e = this.#current(s);
    if (!e) return;
    e.pending.delete(typeUrl);
    e.nacked.delete(typeUrl);
    e.status.ackedVersions[typeUrl] = version;
    e.status.lastAckAt = new Date(this.#now()).toISOString();
  }

  nacked(s: StreamInfo, typeUrl: string, version: string, message: string, stamp?: ChangeStamp): void {
    const e = this.#current(s);
    if (!e) return;
    e.pending.delete(typeUrl);
    e.nacked.add(typeUrl);
    e.status.lastNacks[typeUrl] = { typeUrl, message, version, time: new Date(this.#now()).toISOString(), revision: stamp?.revision };
  }

  nackCleared(s: StreamInfo, typeUrl: string): void {
    this.#current(s)?.nacked.delete(typeUrl);
  }

  converged(s: StreamInfo, stamp: ChangeStamp, seconds: number): void {
    const e = this.#current(s);
    if (!e) return;
    e.status.convergenceMs = Math.round(seconds * 1000 * 10) / 10;
    e.status.syncedRevision = stamp.revision;
  }

  #current(s: StreamInfo): Entry | undefined {
    const e = this.#entries.get(s.proxy.id);
    return e && e.streamId === s.streamId ? e : undefined;
  }

  #view(e: Entry): ProxyStatus {
    const status: ProxySyncStatus = e.status.disconnectedAt ? 'DISCONNECTED' : e.nacked.size > 0 ? 'NACKED' : e.pending.size > 0 ? 'STALE' : 'SYNCED';
    return structuredClone({ ...e.status, status });
  }

  #prune(): void {
    const cutoff = this.#now() - this.#retainMs;
    for (const [id, e] of this.#entries) {
      if (e.status.disconnectedAt && Date.parse(e.status.disconnectedAt) < cutoff) this.#entries.delete(id);
    }
  }
}
