// The host's gRPC callbacks for filters that open gRPC streams
// (grpc-stream.ts), and make unary calls (grpc.ts) or not: re-export this
// from the filter's entry file beside './exports', instead of
// './exports-grpc'. A stream's callbacks go to its GrpcStream, its owner
// made effective first; a call's answer goes back to the stream that made it.

import { proxy_set_effective_context } from './imports';
import { grpcCaller } from './grpc';
import { GrpcStream, openGrpcStreams } from './grpc-stream';
import { WasmResult } from './status';

/** The open stream `token`, its owner made the effective context (dropped if it has ended); null if not a stream. */
function openStream(token: u32): GrpcStream | null {
  if (!openGrpcStreams.has(token)) return null;
  const stream = openGrpcStreams.get(token);
  const owner = stream.owner;
  if (owner !== null && proxy_set_effective_context(owner.id) != WasmResult.Ok) stream.owner = null;
  return stream;
}

export function proxy_on_grpc_receive_initial_metadata(rootId: u32, token: u32, numHeaders: u32): void {
  const stream = openStream(token);
  if (stream !== null) stream.onInitialMetadata(numHeaders);
}

export function proxy_on_grpc_receive_trailing_metadata(rootId: u32, token: u32, numTrailers: u32): void {
  const stream = openStream(token);
  if (stream !== null) stream.onTrailingMetadata(numTrailers);
}

export function proxy_on_grpc_receive(rootId: u32, token: u32, size: usize): void {
  const stream = openStream(token);
  if (stream !== null) {
    stream.onMessage(size);
    return;
  }
  const caller = grpcCaller(token);
  if (caller !== null) caller.onGrpcReceive(token, size);
}

export function proxy_on_grpc_close(rootId: u32, token: u32, status: u32): void {
  const stream = openStream(token);
  if (stream !== null) {
    openGrpcStreams.delete(token);
    stream.onClose(status);
    return;
  }
  const caller = grpcCaller(token);
  if (caller !== null) caller.onGrpcClose(token, status);
}
