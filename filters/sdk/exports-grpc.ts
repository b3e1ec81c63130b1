// The host's gRPC callbacks, for filters that make gRPC calls (grpc.ts):
// re-export this from the filter's entry file beside './exports'. Each answer
// goes back to the stream that made the call, made effective first; an
// answer for a stream that has ended (the host refuses to make it effective) is dropped.
// A filter that also opens gRPC streams re-exports './exports-grpc-stream' instead.

import { grpcCaller } from './grpc';

export function proxy_on_grpc_receive(rootId: u32, token: u32, size: usize): void {
  const stream = grpcCaller(token);
  if (stream !== null) stream.onGrpcReceive(token, size);
}

export function proxy_on_grpc_close(rootId: u32, token: u32, status: u32): void {
  const stream = grpcCaller(token);
  if (stream !== null) stream.onGrpcClose(token, status);
}
