// proxy_grpc_call as Envoy's wasm host makes it: a unary gRPC call over the
// host's http_call path (HTTP/2 POST /<service>/<method>, the message in one
// gRPC frame), its outcome read as Envoy's gRPC async client reads it
// (AsyncRequestImpl::onRemoteClose): OK with one message is a success,
// anything else a failure with a gRPC status and message.

import { concat } from './buffer.ts';
import { encodeUtf8 } from './memory.ts';
import type { HeaderPairs } from './headers.ts';

/** Envoy's Grpc::Utility::httpToGrpcStatus: the gRPC status of an HTTP answer that carries none. */
export function grpcStatusOf(httpStatus: number): number {
  switch (httpStatus) {
    case 400:
      return 13;
    case 401:
      return 16;
    case 403:
      return 7;
    case 404:
      return 12;
    case 429:
    case 502:
    case 503:
    case 504:
      return 14;
    default:
      return 2;
  }
}

/** gRPC status codes the host itself answers with. */
export const GrpcStatus = { Ok: 0, Cancelled: 1, Unknown: 2, Internal: 13, Unavailable: 14 } as const;

/** Where a call goes: the cluster, and the :authority (the cluster's name unless the GrpcService says). */
export interface GrpcTarget {
  cluster: string;
  authority: string;
}

/**
 * The `grpc_service` argument: a serialized envoy.config.core.v3.GrpcService
 * (its envoy_grpc.cluster_name and authority), or, as Envoy falls back to
 * when the bytes are not one, a cluster name. `bad`: a GrpcService without
 * an envoy_grpc target (google_grpc is not offered here), which Envoy's async
 * client manager refuses.
 */
export function grpcTarget(bytes: Uint8Array, asText: (b: Uint8Array) => string): GrpcTarget | 'bad' {
  const fields = readMessage(bytes);
  if (fields === undefined) {
    const cluster = asText(bytes);
    return { cluster, authority: cluster };
  }
  const envoyGrpc = fields.get(1);
  if (envoyGrpc === undefined || !(envoyGrpc instanceof Uint8Array)) return 'bad';
  const inner = readMessage(envoyGrpc);
  const cluster = inner?.get(1);
  if (!(cluster instanceof Uint8Array) || cluster.length === 0) return 'bad';
  const authority = inner?.get(2);
  const name = asText(cluster);
  return { cluster: name, authority: authority instanceof Uint8Array && authority.length > 0 ? asText(authority) : name };
}

/**
 * Protobuf wire format, leniently as ParseFromString reads it (unknown
 * fields skipped): the last value of each field, length-delimited ones as
 * bytes; undefined when the bytes are not a message.
 */
function readMessage(bytes: Uint8Array): Map<number, Uint8Array | bigint> | undefined {
  const fields = new Map<number, Uint8Array | bigint>();
  let at = 0;
  const varint = (): bigint | undefined => {
    let value = 0n;
    for (let shift = 0n; shift < 70n; shift += 7n) {
      if (at >= bytes.length) return undefined;
      const b = bytes[at++]!;
      value |= BigInt(b & 0x7f) << shift;
      if ((b & 0x80) === 0) return value;
    }
    return undefined;
  };
  while (at < bytes.length) {
    const key = varint();
    if (key === undefined) return undefined;
    const field = Number(key >> 3n);
    const wire = Number(key & 7n);
    if (field === 0) return undefined;
    if (wire === 0) {
      const v = varint();
      if (v === undefined) return undefined;
      fields.set(field, v);
    } else if (wire === 1 || wire === 5) {
      at += wire === 1 ? 8 : 4;
      if (at > bytes.length) return undefined;
    } else if (wire === 2) {
      const length = varint();
      if (length === undefined || BigInt(at) + length > BigInt(bytes.length)) return undefined;
      fields.set(field, bytes.subarray(at, at + Number(length)));
      at += Number(length);
    } else return undefined;
  }
  return fields;
}

/** The HTTP/2 request headers of a call or stream, as Envoy's gRPC async client sends them (a stream has no timeout). */
export function grpcHeaders(target: GrpcTarget, service: string, method: string, metadata: HeaderPairs, timeoutMs = 0): HeaderPairs {
  const headers: HeaderPairs = [
    [':method', 'POST'],
    [':path', `/${service}/${method}`],
    [':authority', target.authority],
    [':scheme', 'http'],
    ['content-type', 'application/grpc'],
    ['te', 'trailers'],
  ];
  if (timeoutMs > 0) headers.push(['grpc-timeout', `${timeoutMs}m`]);
  for (const [name, value] of metadata) headers.push([name.toLowerCase(), value]);
  return headers;
}

/** One message as a gRPC length-prefixed frame (uncompressed). */
export function grpcFrame(message: Uint8Array): Uint8Array {
  const body = new Uint8Array(5 + message.length);
  new DataView(body.buffer).setUint32(1, message.length);
  body.set(message, 5);
  return body;
}

/** The HTTP/2 request of a unary call, as Envoy's gRPC async client sends it. */
export function grpcRequest(target: GrpcTarget, service: string, method: string, metadata: HeaderPairs, message: Uint8Array, timeoutMs: number): { headers: HeaderPairs; body: Uint8Array } {
  return { headers: grpcHeaders(target, service, method, metadata, timeoutMs), body: grpcFrame(message) };
}

/**
 * Reads gRPC frames out of a response body that arrives in chunks cut
 * anywhere, as Envoy's Grpc::Decoder: each whole frame's message in order;
 * 'bad' for a frame with flags (a compressed message this host never asked
 * for), which Envoy's async stream fails with INTERNAL.
 */
export class GrpcFrameReader {
  private pending = new Uint8Array(0);

  push(chunk: Uint8Array): Uint8Array[] | 'bad' {
    let data = this.pending.length === 0 ? chunk : concat(this.pending, chunk);
    const messages: Uint8Array[] = [];
    while (data.length >= 5) {
      const length = new DataView(data.buffer, data.byteOffset, data.byteLength).getUint32(1);
      if (data.length < 5 + length) break;
      if (length > 0 && data[0] !== 0) return 'bad';
      messages.push(data.slice(5, 5 + length));
      data = data.subarray(5 + length);
    }
    this.pending = data.slice();
    return messages;
  }
}

export type GrpcOutcome = { code: 0; message: ''; response: Uint8Array } | { code: number; message: string; response?: undefined };

const header = (pairs: HeaderPairs | undefined, name: string) => pairs?.find(([k]) => k === name)?.[1];

/** Envoy's response code details of an answer that came from the upstream (the router's `via_upstream`). */
export const VIA_UPSTREAM = 'via_upstream';

/**
 * A close status message as Envoy's gRPC async client hands it on
 * (source/common/grpc/async_client_impl.cc, enhancedGrpcMessage, in
 * notifyRemoteClose): the grpc-message as it came (not percent-decoded:
 * Common::getGrpcMessage reads the header as it is), followed by the
 * stream's response code details in braces; the details alone when there is
 * no message, the message alone when there are no details.
 */
export function enhancedGrpcMessage(message: string, details: string): string {
  if (message === '') return details;
  return details === '' ? message : `${message}{${details}}`;
}

/**
 * A grpc-message value as gRPC's spec and Envoy percent-encode one: the
 * UTF-8 bytes below a space or from `~` up, and `%`, as %XX; everything
 * else, spaces included, as it is.
 */
export function encodeGrpcMessage(text: string): string {
  let out = '';
  for (const b of encodeUtf8(text)) out += b < 0x20 || b >= 0x7e || b === 0x25 ? `%${b.toString(16).toUpperCase().padStart(2, '0')}` : String.fromCharCode(b);
  return out;
}

/**
 * A unary call's outcome from its HTTP answer (undefined: no answer, the
 * call could not be made), read as Envoy's AsyncRequestImpl reads it: the
 * answer goes through the same reading as a stream's (GrpcStreamReader, so
 * frames, statuses and messages are read one way in both), and the call
 * succeeds with the last message when it closes OK (onReceiveMessageRaw
 * keeps the latest); OK without a message is INTERNAL with no message
 * (onRemoteClose). `details`: the answer's response code details
 * (via_upstream unless the router answered itself).
 */
export function grpcOutcome(response: { headers: HeaderPairs; body: Uint8Array; trailers?: HeaderPairs; details?: string } | undefined): GrpcOutcome {
  if (response === undefined) return { code: GrpcStatus.Unavailable, message: 'upstream connection failure' };
  let last: Uint8Array | undefined;
  let code: number = GrpcStatus.Unknown;
  let message = '';
  const reader = new GrpcStreamReader({
    initialMetadata: () => undefined,
    message: (m) => (last = m),
    trailingMetadata: () => undefined,
    close: (c, m) => {
      code = c;
      message = m;
    },
    resetUpstream: () => undefined,
  });
  const trailers = response.trailers ?? [];
  // Nothing after the headers: they ended the stream (a trailers-only answer, or none at all).
  reader.headers(response.headers, response.body.length === 0 && trailers.length === 0, response.details);
  if (response.body.length > 0) reader.data(response.body);
  reader.end(trailers);
  if (code !== GrpcStatus.Ok) return { code, message };
  if (last === undefined) return { code: GrpcStatus.Internal, message: '' };
  return { code: 0, message: '', response: last };
}

/** What a gRPC stream tells the module, in Envoy's order: initial metadata, messages, trailing metadata, then the close. */
export interface GrpcStreamCallbacks {
  initialMetadata(headers: HeaderPairs): void;
  message(message: Uint8Array): void;
  trailingMetadata(trailers: HeaderPairs): void;
  close(code: number, message: string): void;
  /** The stream failed on the host's side (a bad frame, an answer that is no gRPC): reset it upstream. */
  resetUpstream(): void;
}

/**
 * A stream's HTTP/2 response read as Envoy's gRPC async stream reads it
 * (source/common/grpc/async_client_impl.cc, AsyncStreamImpl::onHeaders,
 * onData, onTrailers, onReset, streamError): the response headers are the
 * initial metadata, empty when they end the stream (trailers-only); a status
 * other than 200 closes it with its trailers-only grpc-status, else
 * httpToGrpcStatus of the HTTP status (until 2026-11-28 CANCELLED, as older
 * Envoy answered); a frame with flags is INTERNAL; a body that ends without
 * trailers is UNKNOWN, as is trailers without grpc-status; a reset is
 * INTERNAL. A failure on the way is delivered as empty trailing metadata
 * and the close, and the stream is reset. Nothing is delivered after the
 * close. Every close message is enhancedGrpcMessage's: the grpc-message as
 * it came, with the answer's response code details (`done{via_upstream}`,
 * `via_upstream` alone for a failure after an upstream's headers).
 */
export class GrpcStreamReader {
  closed = false;
  private readonly frames = new GrpcFrameReader();
  /** The response code details of the answer (enhancedGrpcMessage): none before its headers. */
  private details = '';

  constructor(private readonly to: GrpcStreamCallbacks) {}

  /** `details`: the answer's response code details, via_upstream unless the router answered itself (its local reply's). */
  headers(headers: HeaderPairs, endStream: boolean, details: string = VIA_UPSTREAM): void {
    if (this.closed) return;
    this.details = details;
    const status = header(headers, ':status');
    const grpcStatus = header(headers, 'grpc-status');
    // Envoy hands the headers over as initial metadata unless they end the stream (trailers-only: empty).
    this.to.initialMetadata(endStream ? [] : headers);
    if (status !== '200') {
      // The trailers-only status if there is one, else the HTTP status mapped by Utility::httpToGrpcStatus, as
      // Envoy's client has done since it stopped answering CANCELLED here; for unary calls and streams alike.
      if (endStream && grpcStatus !== undefined) this.trailers(headers);
      else this.fail(grpcStatusOf(Number(status)));
      return;
    }
    if (endStream) this.trailers(headers);
  }

  data(chunk: Uint8Array): void {
    if (this.closed) return;
    const messages = this.frames.push(chunk);
    if (messages === 'bad') return this.fail(GrpcStatus.Internal);
    for (const message of messages) {
      if (this.closed) return;
      this.to.message(message);
    }
  }

  /** The response ended: with trailers, their status; a body that ended the stream (no trailers) is UNKNOWN. */
  end(trailers: HeaderPairs): void {
    if (this.closed) return;
    if (trailers.length === 0) return this.fail(GrpcStatus.Unknown);
    this.trailers(trailers);
  }

  reset(): void {
    if (this.closed) return;
    this.fail(GrpcStatus.Internal, false);
  }

  private trailers(trailers: HeaderPairs): void {
    this.to.trailingMetadata(trailers);
    if (this.closed) return;
    this.closed = true;
    const code = header(trailers, 'grpc-status');
    this.to.close(code !== undefined && /^\d+$/.test(code) ? Number(code) : GrpcStatus.Unknown, enhancedGrpcMessage(header(trailers, 'grpc-message') ?? '', this.details));
  }

  private fail(code: number, resetUpstream = true): void {
    this.to.trailingMetadata([]);
    if (this.closed) return;
    this.closed = true;
    this.to.close(code, enhancedGrpcMessage('', this.details));
    if (resetUpstream) this.to.resetUpstream();
  }
}
