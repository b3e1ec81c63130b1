// The host's gRPC callbacks, for filters that make gRPC calls (grpc.ts):
// re-export this from the filter's entry file beside './exports'. Each answer
// goes back to the stream that made the call, made effective first; an
// answer for a stream that has ended (the host refuses to make it effective) is dropped.

import { proxy_set_effective_context } from './imports';
import { pendingGrpcCalls } from './grpc';
import { WasmResult } from './status';

export function proxy_on_grpc_receive(rootId: u32, token: u32, size: usize): void {
  if (!pendingGrpcCalls.has(token)) return;
  const stream = pendingGrpcCalls.get(token);
  pendingGrpcCalls.delete(token);
  // The host no longer knows a stream that has ended.
  if (proxy_set_effective_context(stream.id) != WasmResult.Ok) return;
  stream.onGrpcReceive(token, size);
}

export function proxy_on_grpc_close(rootId: u32, token: u32, status: u32): void {
  if (!pendingGrpcCalls.has(token)) return;
  const stream = pendingGrpcCalls.get(token);
  pendingGrpcCalls.delete(token);
  // The host no longer knows a stream that has ended.
  if (proxy_set_effective_context(stream.id) != WasmResult.Ok) return;
  stream.onGrpcClose(token, status);
}
