// Unary gRPC callouts (proxy_grpc_call) for a stream. Opt-in: a filter that
// makes them imports this module (index.ts does not re-export it) and
// re-exports './exports-grpc' beside './exports', so filters that do not
// carry none of this. The answer comes back to the stream that made
// the call, made the effective context first: onGrpcReceive with the
// response message in BufferType.GrpcReceiveBuffer, or onGrpcClose with the
// gRPC status (its message through getStatus()).

import { proxy_grpc_call, proxy_grpc_cancel, proxy_set_effective_context } from './imports';
import { serializePairs, HeaderPair } from './headers';
import { HttpContext } from './context';
import { WasmResult } from './status';

/** A stream that makes gRPC calls: subclass it instead of HttpContext. */
export class GrpcHttpContext extends HttpContext {
  /** The response message (`size` bytes in BufferType.GrpcReceiveBuffer) of a call that ended OK. */
  onGrpcReceive(token: u32, size: usize): void {}
  /** A call that failed: its gRPC status (14 UNAVAILABLE when no server answered or it timed out); getStatus().message says more. */
  onGrpcClose(token: u32, status: u32): void {}

  /**
   * Calls `method` of `service` (e.g. "envoy.service.auth.v3.Authorization",
   * "Check") on `cluster` with a serialized request message. Returns the
   * call token, or 0 with the host's refusal in `lastGrpcCallResult`
   * (PARSE_FAILURE: no such cluster).
   */
  grpcCall(cluster: string, service: string, method: string, message: Uint8Array, timeoutMs: u32, metadata: HeaderPair[] = []): u32 {
    const c = String.UTF8.encode(cluster);
    const s = String.UTF8.encode(service);
    const m = String.UTF8.encode(method);
    const md = serializePairs(metadata);
    store<u32>(GRPC_TOKEN_SLOT, 0);
    lastGrpcCallResult = <WasmResult>proxy_grpc_call(changetype<usize>(c), <usize>c.byteLength, changetype<usize>(s), <usize>s.byteLength,
      changetype<usize>(m), <usize>m.byteLength, md.dataStart, <usize>md.length, message.dataStart, <usize>message.length, timeoutMs, GRPC_TOKEN_SLOT);
    if (lastGrpcCallResult != WasmResult.Ok) return 0;
    const token = load<u32>(GRPC_TOKEN_SLOT);
    pendingGrpcCalls.set(token, this);
    return token;
  }

  /** Abandons a call: nothing more is delivered for it. */
  cancelGrpcCall(token: u32): WasmResult {
    pendingGrpcCalls.delete(token);
    return <WasmResult>proxy_grpc_cancel(token);
  }
}

export let lastGrpcCallResult: WasmResult = WasmResult.Ok;
/** token -> the stream that made the call (its own map: the host numbers gRPC and http calls apart). */
export const pendingGrpcCalls = new Map<u32, GrpcHttpContext>();
const GRPC_TOKEN_SLOT: usize = memory.data(4);

/** The stream that made call `token`, made the effective context (the call forgotten); null if unknown or ended (the host no longer knows it). */
export function grpcCaller(token: u32): GrpcHttpContext | null {
  if (!pendingGrpcCalls.has(token)) return null;
  const stream = pendingGrpcCalls.get(token);
  pendingGrpcCalls.delete(token);
  return proxy_set_effective_context(stream.id) == WasmResult.Ok ? stream : null;
}
