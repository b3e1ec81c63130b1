// The host's gRPC callbacks, for filters that make gRPC calls (grpc.ts):
// re-export this from the filter's entry file beside './exports'. Each answer
// goes back to the stream that made the call, made effective first; an
// answer for a stream that has ended (the host refuses to make it effective) is dropped.

import { proxy_set_effective_context } from './imports';
import { GrpcHttpContext, pendingGrpcCalls } from './grpc';
import { WasmResult } from './status';

/** The stream that made call `token`, made the effective context; null if unknown or ended (the host no longer knows it). */
function caller(token: u32): GrpcHttpContext | null {
  if (!pendingGrpcCalls.has(token)) return null;
  const stream = pendingGrpcCalls.get(token);
  pendingGrpcCalls.delete(token);
  return proxy_set_effective_context(stream.id) == WasmResult.Ok ? stream : null;
}

export function proxy_on_grpc_receive(rootId: u32, token: u32, size: usize): void {
  const stream = caller(token);
  if (stream !== null) stream.onGrpcReceive(token, size);
}

export function proxy_on_grpc_close(rootId: u32, token: u32, status: u32): void {
  const stream = caller(token);
  if (stream !== null) stream.onGrpcClose(token, status);
}
