// A raw ADS client for protocol tests: speaks StreamAggregatedResources or
// DeltaAggregatedResources over a real socket with @grpc/grpc-js and the
// protobufjs discovery types, and hands every response to the test as it
// arrives. Reusable by any test that needs to act as a proxy.
import * as grpc from '@grpc/grpc-js';
import protobuf from 'protobufjs';
import type { DeltaDiscoveryRequest, DiscoveryRequest, XdsNode } from '../../control/xds/discovery.ts';
import { decodeMessage, discoveryTypes, encodeMessage } from '../../control/xds/discovery.ts';
import { nodeMetadata } from '../../control/xds/node.ts';

export interface SotwReply {
  typeUrl: string;
  version: string;
  nonce: string;
  /** Resource names in response order (field 1 of every Envoy resource type we serve). */
  names: string[];
  bytes: Uint8Array[];
}

export interface DeltaReply {
  typeUrl: string;
  systemVersion: string;
  nonce: string;
  resources: { name: string; version: string; bytes: Uint8Array }[];
  removed: string[];
}

/** Field 1 (name / cluster_name) of an encoded resource. */
export function resourceName(bytes: Uint8Array): string {
  const r = protobuf.Reader.create(bytes);
  while (r.pos < r.len) {
    const tag = r.uint32();
    if (tag >>> 3 === 1 && (tag & 7) === 2) return r.string();
    r.skipType(tag & 7);
  }
  return '';
}

abstract class BaseClient<Req, Reply> {
  protected readonly call: grpc.ClientDuplexStream<Req, Reply>;
  readonly #client: grpc.Client;
  readonly #queue: Reply[] = [];
  readonly #waiters: ((r: Reply | Error) => void)[] = [];
  /** Every response received, in order. */
  readonly received: Reply[] = [];
  #error: Error | undefined;
  #sentNode = false;
  /** The server's response headers, once they arrived. */
  headers: grpc.Metadata | undefined;
  protected readonly node: XdsNode;

  protected constructor(port: number, method: string, node: XdsNode, serialize: (r: Req) => Buffer, deserialize: (b: Buffer) => Reply, metadata?: grpc.Metadata) {
    this.node = node;
    this.#client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
    this.call = this.#client.makeBidiStreamRequest(method, serialize, deserialize, metadata ?? new grpc.Metadata());
    this.call.on('metadata', (headers: grpc.Metadata) => (this.headers = headers));
    this.call.on('data', (reply: Reply) => {
      this.received.push(reply);
      const w = this.#waiters.shift();
      if (w) w(reply);
      else this.#queue.push(reply);
    });
    this.call.on('error', (err: Error) => this.#fail(err));
    this.call.on('end', () => this.#fail(new Error('stream ended')));
  }

  #fail(err: Error): void {
    this.#error ??= err;
    for (const w of this.#waiters.splice(0)) w(err);
  }

  /** The stream's terminal error, once it ended. */
  get error(): Error | undefined {
    return this.#error;
  }

  protected withNode<T extends object>(req: T): T {
    if (this.#sentNode) return req;
    this.#sentNode = true;
    return { ...req, node: this.node };
  }

  /** The next response; rejects after timeoutMs (a bound on the test, not a speed assertion). */
  next(timeoutMs = 15_000): Promise<Reply> {
    const queued = this.#queue.shift();
    if (queued) return Promise.resolve(queued);
    if (this.#error) return Promise.reject(this.#error);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        const i = this.#waiters.indexOf(waiter);
        if (i >= 0) this.#waiters.splice(i, 1);
        reject(new Error(`no response within ${timeoutMs} ms`));
      }, timeoutMs);
      const waiter = (r: Reply | Error) => {
        clearTimeout(timer);
        if (r instanceof Error) reject(r);
        else resolve(r);
      };
      this.#waiters.push(waiter);
    });
  }

  /** Responses until (and including) the first one matching `until`. */
  async collectUntil(until: (r: Reply) => boolean, timeoutMs = 15_000): Promise<Reply[]> {
    const out: Reply[] = [];
    for (;;) {
      const r = await this.next(timeoutMs);
      out.push(r);
      if (until(r)) return out;
    }
  }

  /** Responses already received and not yet consumed by next(). */
  pending(): Reply[] {
    return [...this.#queue];
  }

  /** Stops reading (HTTP/2 flow control then pushes back on the server): a slow proxy. */
  pause(): void {
    this.call.pause();
  }

  resume(): void {
    this.call.resume();
  }

  close(): void {
    this.call.cancel();
    this.#client.close();
  }
}

export class SotwClient extends BaseClient<DiscoveryRequest, SotwReply> {
  constructor(port: number, node: XdsNode, metadata?: grpc.Metadata) {
    const t = discoveryTypes();
    super(
      port,
      '/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources',
      node,
      (r) => encodeMessage(t.DiscoveryRequest, r),
      (b) => {
        const m = decodeMessage<{ version_info?: string; nonce?: string; type_url?: string; resources?: { value: Uint8Array }[] }>(t.DiscoveryResponse, b);
        const bytes = (m.resources ?? []).map((a) => a.value);
        return { typeUrl: m.type_url ?? '', version: m.version_info ?? '', nonce: m.nonce ?? '', names: bytes.map(resourceName), bytes };
      },
      metadata,
    );
  }

  send(req: DiscoveryRequest): void {
    this.call.write(this.withNode(req));
  }

  /** Subscribes (first request for a type) or changes the subscription, quoting `after`'s nonce. */
  request(typeUrl: string, names: string[] = [], after?: SotwReply): void {
    this.send({ type_url: typeUrl, resource_names: names, version_info: after?.version ?? '', response_nonce: after?.nonce ?? '' });
  }

  ack(reply: SotwReply, names: string[] = []): void {
    this.send({ type_url: reply.typeUrl, version_info: reply.version, response_nonce: reply.nonce, resource_names: names });
  }

  nack(reply: SotwReply, message: string, lastGoodVersion = '', names: string[] = []): void {
    this.send({ type_url: reply.typeUrl, version_info: lastGoodVersion, response_nonce: reply.nonce, resource_names: names, error_detail: { code: 3, message } });
  }
}

export class DeltaClient extends BaseClient<DeltaDiscoveryRequest, DeltaReply> {
  constructor(port: number, node: XdsNode, metadata?: grpc.Metadata) {
    const t = discoveryTypes();
    super(
      port,
      '/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources',
      node,
      (r) => encodeMessage(t.DeltaDiscoveryRequest, r),
      (b) => {
        const m = decodeMessage<{
          system_version_info?: string;
          nonce?: string;
          type_url?: string;
          removed_resources?: string[];
          resources?: { name?: string; version?: string; resource?: { value: Uint8Array } }[];
        }>(t.DeltaDiscoveryResponse, b);
        return {
          typeUrl: m.type_url ?? '',
          systemVersion: m.system_version_info ?? '',
          nonce: m.nonce ?? '',
          resources: (m.resources ?? []).map((r) => ({ name: r.name ?? '', version: r.version ?? '', bytes: r.resource?.value ?? new Uint8Array() })),
          removed: m.removed_resources ?? [],
        };
      },
      metadata,
    );
  }

  send(req: DeltaDiscoveryRequest): void {
    this.call.write(this.withNode(req));
  }

  subscribe(typeUrl: string, names: string[] = [], options: { initialVersions?: Record<string, string>; nonce?: string; unsubscribe?: string[] } = {}): void {
    this.send({
      type_url: typeUrl,
      resource_names_subscribe: names,
      resource_names_unsubscribe: options.unsubscribe ?? [],
      initial_resource_versions: options.initialVersions ?? {},
      response_nonce: options.nonce ?? '',
    });
  }

  ack(reply: DeltaReply): void {
    this.send({ type_url: reply.typeUrl, response_nonce: reply.nonce });
  }

  nack(reply: DeltaReply, message: string): void {
    this.send({ type_url: reply.typeUrl, response_nonce: reply.nonce, error_detail: { code: 3, message } });
  }
}

/** An xDS node as weft expects it (node.cluster = service). */
export function testNode(id: string, service: string, metadata: Record<string, string | number> = {}): XdsNode {
  return { id, cluster: service, metadata: nodeMetadata(metadata) };
}
