// The sidecar's ADS client. Subscribes as Envoy does: wildcard CDS and LDS,
// then EDS for its clusters, RDS for its route configs and ECDS for its
// filters as those arrive. Each response is decoded with control/envoy,
// applied through the data plane (fidelity contract), then ACKed, or NACKed
// with the field paths in error_detail. Delta by default, SotW on request;
// reconnects with jittered backoff and, in Delta, initial_resource_versions.

import { readFileSync } from 'node:fs';
import { checkServerIdentity, connect as tlsConnect, type PeerCertificate } from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import type protobuf from 'protobufjs';
import { CONTROL_PLANE_ID_PATTERN } from '../control/ca/spiffe.ts';
import { decodeResource, discoveryTypes } from '../control/envoy/index.ts';
import type { DataPlane, IncomingResource, Undecodable } from './dataplane.ts';
import type { ResourceKind } from './fidelity.ts';
import { TYPE_URLS, kindOfTypeUrl } from './fidelity.ts';

const SERVICE = '/envoy.service.discovery.v3.AggregatedDiscoveryService';
const CONVERT: protobuf.IConversionOptions = { longs: String, enums: String, bytes: Buffer, defaults: false, arrays: true, objects: true };
/** Subscribe order: Envoy's make-before-break (clusters and endpoints before listeners and routes). */
const DEPENDENT: Record<ResourceKind, ResourceKind[]> = { cluster: ['endpoint', 'secret'], listener: ['route', 'extension', 'secret'], endpoint: [], route: [], extension: [], secret: [] };

export interface XdsNodeInfo {
  id: string;
  cluster: string;
  metadata: Record<string, string>;
}

export interface XdsClientOptions {
  server: string;
  node: XdsNodeInfo;
  dataPlane: DataPlane;
  sotw?: boolean;
  /**
   * xDS over TLS (weft control --xds-tls): verify the server against these
   * roots (PEM, the mesh root: weft sidecar --xds-ca), and check its name
   * against `serverName` instead of the host of `server`. Plaintext when absent.
   */
  tls?: { rootsPem: Buffer; serverName?: string };
  /** Every ACK or NACK, for logs and tests. */
  /** After each response is applied and answered: its version, the names it updated and removed, and the NACK's message if any. */
  onResponse?: (event: { kind: ResourceKind; version: string; nack?: string; updated: string[]; removed: string[] }) => void;
  /** The stream came up, or ended (`error`: grpc-js's message, `code`: the gRPC status it ended with). */
  onConnection?: (up: boolean, error?: string, code?: number) => void;
}

interface AnyMsg {
  type_url: string;
  value: Buffer;
}

interface DeltaResponse {
  system_version_info?: string;
  resources?: { name: string; version?: string; resource?: AnyMsg }[];
  type_url: string;
  removed_resources?: string[];
  nonce: string;
}

interface SotwResponse {
  version_info?: string;
  resources?: AnyMsg[];
  type_url: string;
  nonce: string;
}

/** The sidecar's version, as Envoy's node carries its own (user_agent_build_version). */
const BUILD_VERSION = (() => {
  const version = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;
  const [major_number = 0, minor_number = 0, patch = 0] = version.split(/[.-]/).map((n) => Number.parseInt(n, 10) || 0);
  return { version: { major_number, minor_number, patch } };
})();

/** google.protobuf.Struct: protobufjs's bundled well-known types use camelCase field names, even under keepCase. */
function struct(values: Record<string, string>) {
  return { fields: Object.fromEntries(Object.entries(values).map(([k, v]) => [k, { stringValue: v }])) };
}

export class XdsClient {
  readonly #o: XdsClientOptions;
  readonly #client: grpc.Client;
  #call: grpc.ClientDuplexStream<object, unknown> | undefined;
  #closed = false;
  #attempt = 0;
  #retry: NodeJS.Timeout | undefined;
  /** Names subscribed per non-wildcard type on the current stream. */
  #subscribed = new Map<ResourceKind, Set<string>>();
  /**
   * SotW: last accepted version and latest nonce per type. The versions outlive a stream (the nonces do not), as in
   * Envoy's GrpcMuxImpl: a new stream's first request of each type says what the sidecar still runs.
   */
  #sotwState = new Map<ResourceKind, { version: string; nonce: string }>();
  #queue: Promise<void> = Promise.resolve();
  #sentNode = false;
  /**
   * CDS ACKs (and NACKs) held while a cluster warms once the first full config is applied, as Envoy pauses CDS then
   * (ClusterManagerImpl::updateClusterCounts), so an ADS server can tell when a cluster is warm before sending routes
   * to it; sent once no cluster warms. SotW: only the latest (it says all a newer one would).
   */
  #heldCds: Record<string, unknown>[] = [];

  constructor(o: XdsClientOptions) {
    this.#o = o;
    o.dataPlane.clusters.onWarmingDone = () => this.#releaseCds();
    this.#client = new grpc.Client(o.server, o.tls ? xdsChannelCredentials(o.tls.rootsPem) : grpc.credentials.createInsecure(), {
      ...(o.tls?.serverName ? { 'grpc.ssl_target_name_override': o.tls.serverName, 'grpc.default_authority': o.tls.serverName } : {}),
      'grpc.max_receive_message_length': 64 * 1024 * 1024,
      'grpc.keepalive_time_ms': 30_000,
      // The channel's own reconnect schedule, as the stream's below (100 ms doubling to 5 s): grpc-js's
      // default (1 s growing to 120 s) left sidecars up to two minutes behind a control plane that came back.
      'grpc.initial_reconnect_backoff_ms': 100,
      'grpc.max_reconnect_backoff_ms': 5000,
    });
  }

  start(): void {
    this.#connect();
  }

  #connect(): void {
    if (this.#closed) return;
    const types = discoveryTypes();
    const sotw = this.#o.sotw === true;
    const reqType = sotw ? types.DiscoveryRequest : types.DeltaDiscoveryRequest;
    const resType = sotw ? types.DiscoveryResponse : types.DeltaDiscoveryResponse;
    const call = this.#client.makeBidiStreamRequest(
      `${SERVICE}/${sotw ? 'StreamAggregatedResources' : 'DeltaAggregatedResources'}`,
      (m: object) => Buffer.from(reqType.encode(reqType.fromObject(m)).finish()),
      (b: Buffer) => resType.toObject(resType.decode(b), CONVERT),
    );
    this.#call = call;
    this.#sentNode = false;
    // Their nonces were the old stream's.
    this.#heldCds = [];
    this.#subscribed = new Map();
    for (const [kind, st] of this.#sotwState) this.#sotwState.set(kind, { version: st.version, nonce: '' });
    // Up once the server answers with response headers (weft's control plane sends them as it accepts the
    // stream; others with their first response): a Delta reconnect whose versions are all current gets no response.
    call.on('metadata', () => {
      if (this.#call !== call) return;
      this.#attempt = 0;
      this.#o.dataPlane.stats.xdsConnected.set(1);
      this.#o.onConnection?.(true);
    });
    call.on('data', (msg: unknown) => {
      this.#queue = this.#queue.then(() => (sotw ? this.#onSotw(msg as SotwResponse) : this.#onDelta(msg as DeltaResponse))).catch((e: Error) => {
        process.stderr.write(`weft sidecar: xDS response handling failed: ${e.stack}\n`);
      });
    });
    const onEnd = (err?: Error) => {
      if (this.#call !== call) return;
      this.#call = undefined;
      this.#o.dataPlane.stats.xdsConnected.set(0);
      this.#o.onConnection?.(false, err?.message, (err as { code?: number } | undefined)?.code);
      this.#scheduleReconnect();
    };
    call.on('error', (err: Error) => onEnd(err));
    call.on('end', () => onEnd());
    // Wildcard types first; the dependent ones follow from what these bring.
    for (const kind of ['cluster', 'listener'] as const) this.#subscribe(kind, undefined);
    for (const kind of ['endpoint', 'route', 'extension', 'secret'] as const) {
      const names = this.#o.dataPlane.wanted(kind);
      if (names.length) this.#subscribe(kind, names);
    }
  }

  #scheduleReconnect(): void {
    if (this.#closed) return;
    const base = Math.min(5000, 100 * 2 ** this.#attempt++);
    this.#retry = setTimeout(() => this.#connect(), base / 2 + Math.random() * (base / 2));
    this.#retry.unref();
  }

  #send(msg: Record<string, unknown>): void {
    if (!this.#sentNode) {
      const n = this.#o.node;
      msg.node = { id: n.id, cluster: n.cluster, metadata: struct(n.metadata), user_agent_name: 'weft-sidecar', user_agent_build_version: BUILD_VERSION, client_features: ['envoy.lb.does_not_support_overprovisioning'] };
      this.#sentNode = true;
    }
    this.#call?.write(msg);
  }

  /** `names` undefined = wildcard. Sends only when the subscription changes. */
  #subscribe(kind: ResourceKind, names: string[] | undefined): void {
    const typeUrl = TYPE_URLS[kind];
    const prev = this.#subscribed.get(kind);
    const sotw = this.#o.sotw === true;
    if (names === undefined) {
      if (prev) return;
      this.#subscribed.set(kind, new Set());
      if (sotw) this.#send({ type_url: typeUrl, resource_names: [], version_info: this.#sotwState.get(kind)?.version ?? '' });
      else this.#send({ type_url: typeUrl, resource_names_subscribe: [], initial_resource_versions: Object.fromEntries(this.#o.dataPlane.versions(kind)) });
      return;
    }
    const next = new Set(names);
    // An empty SotW resource_names would mean wildcard: subscribe only once there is something to ask for.
    if (!prev && next.size === 0) return;
    if (prev && prev.size === next.size && [...next].every((n) => prev.has(n))) return;
    this.#subscribed.set(kind, next);
    // What it no longer asks for, it no longer reports as refused: nothing will ACK or remove those.
    const dropped = prev ? [...prev].filter((n) => !next.has(n)) : [];
    if (dropped.length) this.#o.dataPlane.unsubscribed(kind, dropped);
    if (sotw) {
      const st = this.#sotwState.get(kind);
      this.#send({ type_url: typeUrl, resource_names: [...next], version_info: st?.version ?? '', response_nonce: st?.nonce ?? '' });
    } else {
      const subscribe = [...next].filter((n) => !prev?.has(n));
      const unsubscribe = dropped;
      const versions = this.#o.dataPlane.versions(kind);
      const initial = prev ? {} : Object.fromEntries([...versions].filter(([n]) => next.has(n)));
      this.#send({ type_url: typeUrl, resource_names_subscribe: subscribe, resource_names_unsubscribe: unsubscribe, initial_resource_versions: initial });
    }
  }

  #decode(kind: ResourceKind, name: string | undefined, any: AnyMsg | undefined, errors: string[]): unknown {
    if (!any) return undefined;
    try {
      return decodeResource(any.type_url || TYPE_URLS[kind], any.value);
    } catch (e) {
      errors.push(`${kind} ${name ?? '?'}: ${(e as Error).message}`);
      return undefined;
    }
  }

  /** The resource kind of a response's type, or a NACK (INVALID_ARGUMENT) for a type the sidecar does not take. */
  #kindOrRefuse(res: { type_url: string; nonce: string }): ReturnType<typeof kindOfTypeUrl> {
    const kind = kindOfTypeUrl(res.type_url);
    if (!kind) this.#send({ type_url: res.type_url, response_nonce: res.nonce, error_detail: { code: 3, message: `type ${res.type_url} is not supported by the weft sidecar` } });
    return kind;
  }

  /**
   * Whether a resource of a response is one the sidecar asked for: anything of the wildcard types (CDS, LDS),
   * only subscribed names of the others. As Envoy's watch map, the rest is ignored, not applied
   * (xds_protocol: "The client will silently ignore any supplied resources that were not explicitly requested").
   */
  #requested(kind: ResourceKind, name: string): boolean {
    if (kind === 'cluster' || kind === 'listener') return true;
    return this.#subscribed.get(kind)?.has(name) ?? false;
  }

  /** A NACK of the whole response, nothing applied: what Envoy's xDS mux does with a malformed response. */
  #refuseWhole(kind: ResourceKind, res: { type_url: string; nonce: string }, message: string): void {
    if (this.#o.sotw === true) {
      const st = this.#sotwState.get(kind);
      this.#sotwState.set(kind, { version: st?.version ?? '', nonce: res.nonce });
    }
    this.#o.dataPlane.stats.xdsUpdates[kind].rejected.inc();
    this.#ack(kind, res.type_url, res.nonce, '', [message], [], []);
  }

  async #onDelta(res: DeltaResponse): Promise<void> {
    const kind = this.#kindOrRefuse(res);
    if (!kind) return;
    // As Envoy's DeltaSubscriptionState: a name twice among the resources, or among them and removed_resources,
    // or a resource of another type refuses the whole response.
    const names = new Set<string>();
    for (const r of res.resources ?? []) {
      if (names.has(r.name)) return this.#refuseWhole(kind, res, `duplicate name ${r.name} found among added/updated resources`);
      names.add(r.name);
      const embedded = r.resource?.type_url;
      if (embedded && embedded !== res.type_url) {
        return this.#refuseWhole(kind, res, `type URL ${embedded} embedded in an individual Any does not match the message-wide type URL ${res.type_url} in DeltaDiscoveryResponse`);
      }
    }
    for (const n of res.removed_resources ?? []) {
      if (names.has(n)) return this.#refuseWhole(kind, res, `duplicate name ${n} found in the union of added+removed resources`);
      names.add(n);
    }
    const decodeErrors: string[] = [];
    const resources: IncomingResource[] = [];
    const undecodable: Undecodable[] = [];
    for (const r of res.resources ?? []) {
      if (!this.#requested(kind, r.name)) continue;
      const before = decodeErrors.length;
      const value = this.#decode(kind, r.name, r.resource, decodeErrors);
      if (value !== undefined) resources.push({ name: r.name, version: r.version ?? '', value });
      else if (decodeErrors.length > before) undecodable.push({ name: r.name, version: r.version ?? '', details: decodeErrors.at(-1)! });
    }
    const removed = (res.removed_resources ?? []).filter((n) => this.#requested(kind, n));
    const result = await this.#o.dataPlane.apply(kind, resources, removed, false, undecodable);
    this.#ack(kind, res.type_url, res.nonce, res.system_version_info ?? '', [...decodeErrors, ...result.errors], resources, removed);
  }

  async #onSotw(res: SotwResponse): Promise<void> {
    const kind = this.#kindOrRefuse(res);
    if (!kind) return;
    // As Envoy's GrpcMuxImpl: a resource of another type refuses the whole response.
    const stray = (res.resources ?? []).find((any) => any.type_url !== res.type_url);
    if (stray) return this.#refuseWhole(kind, res, `${stray.type_url} does not match the message-wide type URL ${res.type_url} in DiscoveryResponse`);
    const decodeErrors: string[] = [];
    const resources: IncomingResource[] = [];
    for (const any of res.resources ?? []) {
      const value = this.#decode(kind, undefined, any, decodeErrors);
      const name = resourceName(kind, value);
      if (value === undefined || !name || !this.#requested(kind, name)) continue;
      // As Envoy's CDS and LDS: the first of a name is taken, a second one is refused (the response is NACKed).
      if (resources.some((r) => r.name === name)) {
        decodeErrors.push(`${kind} ${name}: duplicate ${kind} ${name} found`);
        continue;
      }
      resources.push({ name, version: res.version_info ?? '', value });
    }
    // For LDS and CDS a SotW response is the whole set; for the others it lists only what changed among the subscribed names.
    const full = kind === 'listener' || kind === 'cluster';
    const result = await this.#o.dataPlane.apply(kind, resources, [], full);
    const errors = [...decodeErrors, ...result.errors];
    const prev = this.#sotwState.get(kind);
    const version = errors.length ? prev?.version ?? '' : res.version_info ?? '';
    this.#sotwState.set(kind, { version, nonce: res.nonce });
    this.#ack(kind, res.type_url, res.nonce, res.version_info ?? '', errors, resources, []);
  }

  #ack(kind: ResourceKind, typeUrl: string, nonce: string, version: string, errors: string[], resources: readonly IncomingResource[], removed: readonly string[]): void {
    const sotw = this.#o.sotw === true;
    const msg: Record<string, unknown> = { type_url: typeUrl, response_nonce: nonce };
    if (sotw) {
      msg.version_info = this.#sotwState.get(kind)?.version ?? '';
      msg.resource_names = [...(this.#subscribed.get(kind) ?? [])];
    }
    if (errors.length) msg.error_detail = { code: 3, message: errors.join('\n') };
    const clusters = this.#o.dataPlane.clusters;
    // Clusters warm only once the first full config was applied (ClusterManager.warmAfterInit).
    if (kind === 'cluster' && clusters.warming.size > 0) {
      if (sotw) this.#heldCds = [msg];
      else this.#heldCds.push(msg);
    } else this.#send(msg);
    this.#o.onResponse?.({ kind, version, nack: errors.length ? errors.join('\n') : undefined, updated: resources.map((r) => r.name), removed: [...removed] });
    for (const dep of DEPENDENT[kind]) this.#subscribe(dep, this.#o.dataPlane.wanted(dep as 'endpoint' | 'route' | 'extension' | 'secret'));
  }

  #releaseCds(): void {
    const held = this.#heldCds;
    this.#heldCds = [];
    for (const msg of held) this.#send(msg);
  }

  close(): void {
    this.#closed = true;
    clearTimeout(this.#retry);
    this.#call?.cancel();
    this.#call = undefined;
    this.#client.close();
  }
}

/** The control plane's SPIFFE ID (control/ca/serving-cert.ts), in any trust domain. */
const CONTROL_PLANE_ID = new RegExp(CONTROL_PLANE_ID_PATTERN);

/**
 * TLS to the control plane: the chain must verify against `rootsPem`, the
 * certificate must name the host dialled (or --xds-server-name), and it
 * must be the control plane's (its SPIFFE ID), not some workload's: every
 * workload holds a certificate from the same mesh CA.
 */
export function xdsChannelCredentials(rootsPem: Buffer): grpc.ChannelCredentials {
  return grpc.credentials.createSsl(rootsPem, null, null, {
    checkServerIdentity: (host: string, cert: PeerCertificate) => {
      const err = checkServerIdentity(host, cert);
      if (err) return err;
      const uris = (cert.subjectaltname ?? '').split(/,\s*/).filter((s) => s.startsWith('URI:')).map((s) => s.slice(4));
      if (!uris.some((u) => CONTROL_PLANE_ID.test(u))) return new Error(`the xDS server's certificate is not the weft control plane's: no URI SAN spiffe://<trust-domain>/ns/weft-system/sa/weft-control (has ${uris.join(', ') || 'none'})`);
      return undefined;
    },
  });
}

/**
 * Whether host:port completes a TLS handshake (any certificate): asked when a
 * plaintext xDS stream cannot connect, since a TLS server (weft control
 * --xds-tls) just closes a plaintext connection and grpc-js then says no more
 * than "Failed to connect".
 */
export function speaksTls(server: string, timeoutMs = 2000): Promise<boolean> {
  const m = /^\[?(.*?)\]?:(\d+)$/.exec(server);
  if (!m) return Promise.resolve(false);
  return new Promise((resolve) => {
    const socket = tlsConnect({ host: m[1]!, port: Number(m[2]), rejectUnauthorized: false, ALPNProtocols: ['h2'] });
    const done = (yes: boolean) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(yes);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    timer.unref();
    socket.once('secureConnect', () => done(true));
    socket.once('error', () => done(false));
    socket.once('close', () => done(false));
  });
}

function resourceName(kind: ResourceKind, value: unknown): string | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const v = value as Record<string, unknown>;
  return (kind === 'endpoint' ? v.cluster_name : v.name) as string | undefined;
}
