// gRPC streams (proxy_grpc_stream). Opt-in, as grpc.ts: a filter that opens
// streams imports this module (index.ts does not re-export it) and
// re-exports './exports-grpc-stream' beside './exports' (instead of
// './exports-grpc': it delivers unary calls' answers too), so filters that
// do not carry none of this.
//
// The host delivers everything a stream brings to the root context (as
// Envoy's does); the SDK hands it to the GrpcStream the filter opened, with
// the stream's `owner` (the request that opened it, if any) made the
// effective context first, so header and continue calls act on that
// request. An owner that has ended is dropped (`owner` becomes null) and the
// callbacks still come: a gRPC stream outlives the request that opened it.

import { proxy_grpc_cancel, proxy_grpc_close, proxy_grpc_send, proxy_grpc_stream } from './imports';
import { serializePairs, HeaderPair } from './headers';
import { HttpContext } from './context';
import { WasmResult } from './status';

/**
 * One gRPC stream: subclass it, override the callbacks you need, and open it
 * with openGrpcStream(). Read the initial metadata with
 * getHeader(HeaderMapType.GrpcReceiveInitialMetadata, name), a message with
 * getBuffer(BufferType.GrpcReceiveBuffer, 0, size), the trailing metadata
 * with getHeader(HeaderMapType.GrpcReceiveTrailingMetadata, name), the close
 * status's message with getStatus().message, each only in its callback.
 */
export class GrpcStream {
  /** The host's token, once open. */
  token: u32 = 0;

  constructor(public owner: HttpContext | null = null) {}

  /** The server's response headers (`numHeaders` of them; none for a trailers-only answer). */
  onInitialMetadata(numHeaders: u32): void {}
  /** One message, `size` bytes in BufferType.GrpcReceiveBuffer. */
  onMessage(size: usize): void {}
  /** The server's trailers (grpc-status, grpc-message, its trailing metadata; none when the host ended the stream). */
  onTrailingMetadata(numTrailers: u32): void {}
  /** The stream is over: the gRPC status (0 OK; 13 INTERNAL for a reset, 14 UNAVAILABLE for no server). Nothing follows. */
  onClose(status: u32): void {}

  /** Sends one message; `endStream` ends the request side (the server sees the end of its input). */
  send(message: Uint8Array, endStream: bool = false): WasmResult {
    return <WasmResult>proxy_grpc_send(this.token, message.dataStart, <usize>message.length, endStream ? 1 : 0);
  }

  /** Ends the request side; the server's answer still comes (onMessage ... onClose). */
  close(): WasmResult {
    return <WasmResult>proxy_grpc_close(this.token);
  }

  /** Resets the stream: the server sees it cancelled, and no callback follows. */
  cancel(): WasmResult {
    openGrpcStreams.delete(this.token);
    return <WasmResult>proxy_grpc_cancel(this.token);
  }
}

/** What the host answered the last openGrpcStream (PARSE_FAILURE: no such cluster). */
export let lastGrpcStreamResult: WasmResult = WasmResult.Ok;
/** token -> the open stream, until its onClose or its cancel. */
export const openGrpcStreams = new Map<u32, GrpcStream>();
const STREAM_TOKEN_SLOT: usize = memory.data(4);

/**
 * Opens `stream` to `method` of `service` (e.g. "weft.test.Chat", "Talk")
 * on `cluster`, with `metadata`. False with the host's refusal in
 * lastGrpcStreamResult.
 */
export function openGrpcStream(cluster: string, service: string, method: string, stream: GrpcStream, metadata: HeaderPair[] = []): bool {
  const c = String.UTF8.encode(cluster);
  const s = String.UTF8.encode(service);
  const m = String.UTF8.encode(method);
  const md = serializePairs(metadata);
  store<u32>(STREAM_TOKEN_SLOT, 0);
  lastGrpcStreamResult = <WasmResult>proxy_grpc_stream(changetype<usize>(c), <usize>c.byteLength, changetype<usize>(s), <usize>s.byteLength,
    changetype<usize>(m), <usize>m.byteLength, md.dataStart, <usize>md.length, STREAM_TOKEN_SLOT);
  if (lastGrpcStreamResult != WasmResult.Ok) return false;
  stream.token = load<u32>(STREAM_TOKEN_SLOT);
  openGrpcStreams.set(stream.token, stream);
  return true;
}
