// The ADS server on @grpc/grpc-js: StreamAggregatedResources (SotW) and
// DeltaAggregatedResources. It knows the cache only through its group and
// endpoint events; requests are decoded with protobufjs and responses are
// written as pre-serialised bytes (resources are never re-encoded per push).
import * as grpc from '@grpc/grpc-js';
import type { ProxyRef } from '../model/types.ts';
import type { CacheEvent, SnapshotCache } from './cache.ts';
import { DeltaStream } from './delta.ts';
import type { DeltaDiscoveryRequest, DiscoveryRequest, XdsNode } from './discovery.ts';
import { TypeUrl, decodeMessage, discoveryTypes } from './discovery.ts';
import type { ServiceLookup } from './node.ts';
import { groupKey, proxyFromNode } from './node.ts';
import { SotwStream } from './sotw.ts';
import type { AdsStream, ResponseSink, StreamInfo, StreamType, XdsHooks } from './stream.ts';

const SERVICE = '/envoy.service.discovery.v3.AggregatedDiscoveryService';

/**
 * `credential` names what admitted the stream (a join token's id), so
 * revoking it can end the streams it opened (endStreams).
 */
export type AuthResult = { ok: true; credential?: string } | { ok: false; message: string };

/**
 * Decides whether a proxy may open a stream. Identity (issue 7) plugs in
 * here: credentials travel in node.metadata or the gRPC metadata.
 */
export type Authenticate = (node: XdsNode, metadata: grpc.Metadata, proxy: ProxyRef) => AuthResult | Promise<AuthResult>;

export interface AdsServerOptions {
  cache: SnapshotCache;
  hooks?: XdsHooks;
  authenticate?: Authenticate;
  /** For the WEFT_APP_PORT default (the service's first port). */
  lookupService?: ServiceLookup;
  /** A proxy was accepted; the controller makes sure its group has a snapshot. */
  onProxyConnected?(proxy: ProxyRef, group: string): void;
  /** The last stream of a group closed. */
  onGroupIdle?(group: string): void;
  /** A stream whose proxy reads nothing for this long is reset (default 60 s). */
  maxBlockedMs?: number;
  /** How long LDS and RDS wait for the answer to a CDS response that added clusters (default ROUTES_WAIT_MS, 15 s). */
  routesWaitMs?: number;
}

type Call<Req> = grpc.ServerDuplexStream<Req, Buffer>;

export class AdsServer {
  readonly #options: AdsServerOptions;
  readonly #hooks: XdsHooks;
  readonly #streams = new Set<AdsStream>();
  readonly #byGroup = new Map<string, Set<AdsStream>>();
  readonly #calls = new Set<grpc.ServerDuplexStream<unknown, Buffer>>();
  /** Open streams admitted by a credential, with how to end each. */
  readonly #byCredential = new Map<string, Map<AdsStream, (message: string) => void>>();
  #server: grpc.Server | undefined;
  #nextStreamId = 1;
  readonly #unsubscribe: () => void;

  constructor(options: AdsServerOptions) {
    this.#options = options;
    this.#hooks = options.hooks ?? {};
    this.#unsubscribe = options.cache.subscribe((event) => this.#onCacheEvent(event));
  }

  /** Binds host:port (0 = ephemeral) and resolves with the bound port; plaintext unless `credentials` are TLS ones (tls.ts). */
  async listen(host: string, port: number, credentials: grpc.ServerCredentials = grpc.ServerCredentials.createInsecure()): Promise<number> {
    const types = discoveryTypes();
    const server = new grpc.Server({ 'grpc.max_send_message_length': 64 * 1024 * 1024, 'grpc.max_receive_message_length': 16 * 1024 * 1024 });
    const identity = (b: Buffer) => b;
    const definition: grpc.ServiceDefinition = {
      StreamAggregatedResources: {
        path: `${SERVICE}/StreamAggregatedResources`,
        requestStream: true,
        responseStream: true,
        requestSerialize: identity,
        requestDeserialize: (b: Buffer) => decodeMessage<DiscoveryRequest>(types.DiscoveryRequest, b),
        responseSerialize: identity,
        responseDeserialize: identity,
      },
      DeltaAggregatedResources: {
        path: `${SERVICE}/DeltaAggregatedResources`,
        requestStream: true,
        responseStream: true,
        requestSerialize: identity,
        requestDeserialize: (b: Buffer) => decodeMessage<DeltaDiscoveryRequest>(types.DeltaDiscoveryRequest, b),
        responseSerialize: identity,
        responseDeserialize: identity,
      },
    };
    server.addService(definition, {
      StreamAggregatedResources: (call: Call<DiscoveryRequest>) => this.#handle(call, 'sotw'),
      DeltaAggregatedResources: (call: Call<DeltaDiscoveryRequest>) => this.#handle(call, 'delta'),
    });
    const bound = await new Promise<number>((resolve, reject) => {
      server.bindAsync(`${host.includes(':') ? `[${host}]` : host}:${port}`, credentials, (err, p) => (err ? reject(err) : resolve(p)));
    });
    this.#server = server;
    return bound;
  }

  /** Ends every stream and stops the server. */
  async close(): Promise<void> {
    this.#unsubscribe();
    for (const call of this.#calls) call.end();
    const server = this.#server;
    this.#server = undefined;
    if (!server) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        server.forceShutdown();
        resolve();
      }, 1000);
      server.tryShutdown(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  /** Open streams (one per connected proxy stream). */
  streams(): AdsStream[] {
    return [...this.#streams];
  }

  /** The EDS names some open stream subscribes to: a proxy may hold a cluster its group's snapshot no longer has (it has not applied, or it NACKed, the CDS that removed it). */
  watchedEndpoints(): Set<string> {
    const out = new Set<string>();
    for (const s of this.#streams) for (const n of s.subscribedNames(TypeUrl.endpoint)) out.add(n);
    return out;
  }

  /** The newest open stream of a proxy, if connected. */
  stream(proxyId: string): AdsStream | undefined {
    let found: AdsStream | undefined;
    for (const s of this.#streams) if (s.info.proxy.id === proxyId && (!found || s.info.streamId > found.info.streamId)) found = s;
    return found;
  }

  /**
   * Ends, with UNAUTHENTICATED, every open stream the credential admitted (a
   * revoked join token): the proxy gets nothing more, rotated certificates
   * included, and cannot reconnect with it. Returns how many were ended.
   */
  endStreams(credential: string, message: string): number {
    const open = this.#byCredential.get(credential);
    if (!open) return 0;
    const enders = [...open.values()];
    for (const end of enders) end(message);
    return enders.length;
  }

  groupsInUse(): string[] {
    return [...this.#byGroup.keys()];
  }

  #onCacheEvent(event: CacheEvent): void {
    if (event.kind === 'group') {
      for (const s of this.#byGroup.get(event.group) ?? []) s.onGroupChanged(event.changedTypes, event.stamp);
    } else {
      for (const s of this.#streams) s.onEndpointsChanged(event.names, event.stamp);
    }
  }

  #handle<Req extends DiscoveryRequest | DeltaDiscoveryRequest>(call: Call<Req>, streamType: StreamType): void {
    this.#calls.add(call as grpc.ServerDuplexStream<unknown, Buffer>);
    let stream: SotwStream | DeltaStream | undefined;
    let opening = false;
    let ended = false;
    let credential: string | undefined;
    const backlog: Req[] = [];
    const sink: ResponseSink = {
      write: (bytes) => (ended ? true : call.write(bytes)),
      onceDrain: (cb) => call.once('drain', cb),
      reset: (reason) => {
        fail(grpc.status.UNAVAILABLE, reason);
        cleanup();
      },
      maxBlockedMs: this.#options.maxBlockedMs ?? 60_000,
    };
    function fail(code: grpc.status, message: string): void {
      if (ended) return;
      ended = true;
      call.emit('error', { code, details: message, metadata: new grpc.Metadata() } as grpc.ServiceError);
    }
    const cleanup = () => {
      ended = true;
      this.#calls.delete(call as grpc.ServerDuplexStream<unknown, Buffer>);
      if (!stream) return;
      const s = stream;
      stream = undefined;
      if (credential !== undefined) {
        const open = this.#byCredential.get(credential);
        open?.delete(s);
        if (open?.size === 0) this.#byCredential.delete(credential);
      }
      s.close();
      this.#streams.delete(s);
      const peers = this.#byGroup.get(s.info.group);
      peers?.delete(s);
      if (peers && peers.size === 0) {
        this.#byGroup.delete(s.info.group);
        this.#options.onGroupIdle?.(s.info.group);
      }
      this.#hooks.streamClosed?.(s.info);
    };
    const open = async (first: Req) => {
      opening = true;
      const resolved = proxyFromNode(first.node, this.#options.lookupService);
      if ('errors' in resolved) {
        const message = resolved.errors.map((e) => `${e.path}: ${e.message}`).join('; ');
        this.#hooks.rejected?.(first.node, message);
        return fail(grpc.status.INVALID_ARGUMENT, message);
      }
      const proxy = resolved.proxy;
      if (this.#options.authenticate) {
        let verdict: AuthResult;
        try {
          verdict = await this.#options.authenticate(first.node!, call.metadata, proxy);
        } catch (err) {
          verdict = { ok: false, message: `authentication failed: ${(err as Error).message}` };
        }
        if (!verdict.ok) {
          this.#hooks.rejected?.(first.node, verdict.message);
          return fail(grpc.status.UNAUTHENTICATED, verdict.message);
        }
        credential = verdict.credential;
      }
      if (ended) return;
      // A node.id a connected proxy of another service holds is refused: proxy-status, sync and tap go by node.id,
      // so the newcomer (a copied bootstrap, or a proxy with any valid join token) would take over the other's
      // entry, and its admin address would be the one tapped. A reconnect of the same service replaces its entry.
      const holder = this.stream(proxy.id)?.info.proxy;
      if (holder && (holder.service !== proxy.service || holder.namespace !== proxy.namespace)) {
        const message = `node.id: ${JSON.stringify(proxy.id)} is in use by a connected proxy of ${holder.service}.${holder.namespace}; each proxy needs its own node.id`;
        this.#hooks.rejected?.(first.node, message);
        return fail(grpc.status.ALREADY_EXISTS, message);
      }
      // Response headers now rather than with the first response: a Delta client whose
      // initial_resource_versions are all current gets no response, and the headers tell it the stream is up.
      call.sendMetadata(new grpc.Metadata());
      const info: StreamInfo = { streamId: this.#nextStreamId++, proxy, group: groupKey(proxy), streamType, connectedAt: Date.now() };
      const s = streamType === 'sotw' ? new SotwStream(info, this.#options.cache, sink, this.#hooks, this.#options.routesWaitMs) : new DeltaStream(info, this.#options.cache, sink, this.#hooks, this.#options.routesWaitMs);
      stream = s;
      this.#streams.add(s);
      let peers = this.#byGroup.get(info.group);
      if (!peers) this.#byGroup.set(info.group, (peers = new Set()));
      peers.add(s);
      if (credential !== undefined) {
        let open = this.#byCredential.get(credential);
        if (!open) this.#byCredential.set(credential, (open = new Map()));
        open.set(s, (message) => {
          fail(grpc.status.UNAUTHENTICATED, message);
          cleanup();
        });
      }
      this.#hooks.streamOpened?.(info);
      this.#options.onProxyConnected?.(proxy, info.group);
      for (const req of [first, ...backlog.splice(0)]) dispatch(s, req);
    };
    const dispatch = (s: SotwStream | DeltaStream, req: Req) => {
      if (s instanceof SotwStream) s.handleRequest(req as DiscoveryRequest);
      else s.handleRequest(req as DeltaDiscoveryRequest);
    };
    call.on('data', (req: Req) => {
      if (ended) return;
      if (stream) return dispatch(stream, req);
      if (opening) return void backlog.push(req);
      void open(req);
    });
    call.on('end', () => {
      cleanup();
      call.end();
    });
    call.on('error', cleanup);
    call.on('cancelled', cleanup);
    call.on('close', cleanup);
  }
}

/** Fans each hook out to several observers. */
export function combineHooks(...all: (XdsHooks | undefined)[]): XdsHooks {
  const hooks = all.filter((h): h is XdsHooks => h !== undefined);
  const names: (keyof XdsHooks)[] = ['streamOpened', 'streamClosed', 'responseSent', 'resumed', 'acked', 'nacked', 'nackCleared', 'converged', 'overflow', 'rejected'];
  const out: XdsHooks = {};
  for (const name of names) {
    const fns = hooks.map((h) => h[name]?.bind(h)).filter((f) => f !== undefined) as ((...args: unknown[]) => void)[];
    if (fns.length > 0) (out as Record<string, unknown>)[name] = (...args: unknown[]) => { for (const f of fns) f(...args); };
  }
  return out;
}
