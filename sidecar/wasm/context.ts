// What host functions need from a context (root or HTTP stream), and the VM
// services they share. imports.ts codes against these interfaces only.

import type { WasmResultCode } from './abi.ts';
import type { HostBuffer } from './buffer.ts';
import type { HeaderMap, HeaderPairs } from './headers.ts';
import type { GuestMemory } from './memory.ts';
import type { MetricStore } from './metrics.ts';
import type { PropertySources } from './properties.ts';
import type { SharedState } from './shared.ts';

export interface LocalReply {
  status: number;
  body: Uint8Array;
  headers: HeaderPairs;
  /** gRPC status, or undefined when the module passed -1 (none). */
  grpcStatus: number | undefined;
  details: string;
}

export interface HostContext {
  readonly id: number;
  readonly isRoot: boolean;
  /**
   * The map of that type the module may change now, or undefined
   * (BAD_ARGUMENT): Envoy's Context::getMap, which holds a stream's map only
   * from its phase until the filter continues past it.
   */
  headerMap(type: number): HeaderMap | undefined;
  /**
   * The map it may read now (Envoy's getConstMap): the same, except that in
   * proxy_on_log it is the map as logged (request headers, response headers
   * and trailers). Without one, the code a value lookup answers: NOT_FOUND
   * in proxy_on_log, BAD_ARGUMENT otherwise.
   */
  readableMap(type: number): HeaderMap | WasmResultCode;
  /** The buffer of that type visible in this context now, or undefined (NOT_FOUND). */
  buffer(type: number): HostBuffer | undefined;
  properties(): PropertySources;
  sendLocalResponse(reply: LocalReply): WasmResultCode;
  continueStream(streamType: number): WasmResultCode;
  closeStream(streamType: number): WasmResultCode;
  /** An http_call made from this context was dispatched; the stream stays waiting until it finishes. */
  httpCallStarted(token: number): void;
  /** Its response (or failure) has been delivered to the module. */
  httpCallFinished(token: number): void;
  /** The VM trapped: anything waiting on this context must re-decide. */
  vmFailed(): void;
}

export interface HttpCallRequest {
  /** Upstream cluster name as the module gave it. */
  cluster: string;
  headers: HeaderPairs;
  body: Uint8Array;
  trailers: HeaderPairs;
  timeoutMs: number;
  /** Aborted when the timeout fires or the plugin closes. */
  signal: AbortSignal;
}

export interface HttpCallResponse {
  headers: HeaderPairs;
  body?: Uint8Array | string;
  trailers?: HeaderPairs;
  /**
   * Envoy's response code details of the answer, which a grpc_call's close
   * message carries (enhancedGrpcMessage): `via_upstream` (the default) for
   * an upstream's, the router's detail for its own local reply.
   */
  details?: string;
}

/**
 * Sends an http_call to a cluster. Reject (or never resolve) to make the call
 * fail: the module then receives proxy_on_http_call_response with 0 headers,
 * as Envoy delivers a failed or timed-out callout.
 */
export type HttpCallDispatcher = (request: HttpCallRequest) => Promise<HttpCallResponse>;

/**
 * An http_call response as the module reads it, as Envoy keeps it: a failed
 * call has no headers, body or trailers (BAD_ARGUMENT for a header, NOT_FOUND
 * for the body), and a response without trailers has no trailer map.
 */
export interface DeliveredHttpCall {
  headers: HeaderMap | undefined;
  body: HostBuffer | undefined;
  trailers: HeaderMap | undefined;
  status: { code: number; message: string };
}

/**
 * A grpc_call's answer, or a gRPC stream's event, as the module reads it:
 * a message (proxy_on_grpc_receive, buffer 5), a stream's initial or
 * trailing metadata (map 4 or 5), or the status it closed with.
 */
export interface DeliveredGrpcCall {
  buffer: HostBuffer | undefined;
  status: { code: number; message: string };
  initialMetadata?: HeaderMap;
  trailingMetadata?: HeaderMap;
}

/** A gRPC stream the module opened (proxy_grpc_stream): the HTTP/2 request's headers, the body to follow. */
export interface GrpcStreamRequest {
  cluster: string;
  /** :method POST, :path /<service>/<method>, :authority, :scheme, content-type, te, then the module's metadata. */
  headers: HeaderPairs;
}

/** What the upstream does with a gRPC stream, as HTTP/2 events; the host reads gRPC out of them. */
export interface GrpcStreamEvents {
  /**
   * The response headers (:status first); `endStream`: they ended the stream
   * (a trailers-only answer). `details`: Envoy's response code details of the
   * answer, which close messages carry (enhancedGrpcMessage): `via_upstream`
   * (the default) for an upstream's, the router's detail for its local reply.
   */
  headers(headers: HeaderPairs, endStream: boolean, details?: string): void;
  /** Response body bytes (gRPC frames, cut anywhere). */
  data(chunk: Uint8Array): void;
  /** The response ended, with its trailers ([] when the body ended it). */
  end(trailers: HeaderPairs): void;
  /** The stream was reset (or the connection went) before the response ended. */
  reset(): void;
}

/** The host's side of an open stream. */
export interface GrpcStreamHandle {
  /** Sends request body bytes (gRPC frames); `endStream` half-closes the request. */
  write(data: Uint8Array, endStream: boolean): void;
  /** Resets the stream (RST_STREAM CANCEL); no event follows. */
  reset(): void;
}

/**
 * Opens a gRPC stream's HTTP/2 request on a cluster. Events must not be
 * delivered from inside the call or from inside write()/reset() (the host
 * defers them if they are).
 */
export type GrpcStreamDispatcher = (request: GrpcStreamRequest, events: GrpcStreamEvents) => GrpcStreamHandle;

/** What the host functions of one VM can reach beyond the active context. */
export interface VmServices {
  readonly memory: GuestMemory;
  readonly metrics: MetricStore;
  readonly shared: SharedState;
  readonly vmId: string;
  /** Header names and values cross as bytes (one character per byte), not as UTF-8 text: HostEnv.headerBytes. */
  readonly headerBytes: boolean;
  logLevel(): number;
  log(level: number, message: string): void;
  nowNs(): bigint;
  setTickPeriod(ms: number): void;
  /** The context the module is acting as (current, or the effective one it selected). */
  active(): HostContext;
  setEffectiveContext(id: number): boolean;
  done(context: HostContext): WasmResultCode;
  /** Buffer and maps of the http_call response being delivered, if any. */
  httpCallResponse(): DeliveredHttpCall | undefined;
  startHttpCall(from: HostContext, cluster: string, headers: HeaderPairs, body: Uint8Array, trailers: HeaderPairs, timeoutMs: number): { result: WasmResultCode; token: number };
  /** The grpc_call answer being delivered, if any. */
  grpcCallResponse(): DeliveredGrpcCall | undefined;
  startGrpcCall(from: HostContext, service: Uint8Array, serviceName: string, method: string, metadata: HeaderPairs, message: Uint8Array, timeoutMs: number): { result: WasmResultCode; token: number };
  cancelGrpcCall(token: number): WasmResultCode;
  /** proxy_grpc_close: a call is cancelled as by cancelGrpcCall, a stream half-closed (its callbacks keep coming). */
  closeGrpc(token: number): WasmResultCode;
  startGrpcStream(service: Uint8Array, serviceName: string, method: string, metadata: HeaderPairs): { result: WasmResultCode; token: number };
  sendGrpcStream(token: number, message: Uint8Array, endStream: boolean): WasmResultCode;
  registerQueue(name: string): number;
  callForeign(name: string, args: Uint8Array): { result: WasmResultCode; value?: Uint8Array };
}
