// A proxy-wasm module that makes a unary gRPC call (proxy_grpc_call) from its
// request headers and holds the request until the answer: on
// proxy_on_grpc_receive it logs the response message and continues the
// request; on proxy_on_grpc_close it reports the status code, logs the status
// message (proxy_get_status) and answers 403 `denied`. A call the host
// refuses is reported (its WasmResult) and the request continues.

import { serializePairs } from '../../sidecar/wasm/headers.ts';
import { wat } from './wat.ts';

export interface GrpcCallerOptions {
  /** The grpc_service argument: a cluster name, or a serialized GrpcService. */
  service: string | Uint8Array;
  /** Fully qualified service name and method. */
  serviceName?: string;
  method?: string;
  message?: string;
  metadata?: [string, string][];
  timeoutMs?: number;
  /** Cancel the call right after making it (proxy_grpc_cancel; its result reported) and continue. */
  cancel?: boolean;
}

export function grpcCaller({ service, serviceName = 'weft.test.Authz', method = 'Check', message = 'hello', metadata = [['x-token', 'abc']], timeoutMs = 1000, cancel = false }: GrpcCallerOptions): Promise<Uint8Array> {
  const serviceText = typeof service === 'string' ? service : String.fromCharCode(...service);
  return wat({
    imports: ['proxy_grpc_call', 'proxy_grpc_cancel', 'proxy_get_buffer_bytes', 'proxy_get_status', 'proxy_set_effective_context', 'proxy_continue_stream', 'proxy_send_local_response'],
    strings: { service: serviceText, svc: serviceName, method, message, metadata: String.fromCharCode(...serializePairs(metadata)), details: 'grpc denied', denied: 'denied' },
    body: (s) => `
  (global $stream (mut i32) (i32.const 0))
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_request_headers") (param $id i32) (param i32 i32) (result i32)
    (local $r i32)
    (global.set $stream (local.get $id))
    (local.set $r (call $proxy_grpc_call ${s.service} ${s.svc} ${s.method} ${s.metadata} ${s.message} (i32.const ${timeoutMs}) (i32.const 16)))
    (if (local.get $r) (then (call $report (local.get $r)) (return (i32.const 0))))
    ${cancel ? '(call $report (call $proxy_grpc_cancel (i32.load (i32.const 16)))) (return (i32.const 0))' : ''}
    (i32.const 1))
  (func (export "proxy_on_grpc_receive") (param i32) (param $token i32) (param $size i32)
    (drop (call $proxy_get_buffer_bytes (i32.const 5) (i32.const 0) (local.get $size) (i32.const 0) (i32.const 4)))
    (call $log_returned)
    (drop (call $proxy_set_effective_context (global.get $stream)))
    (drop (call $proxy_continue_stream (i32.const 0))))
  (func (export "proxy_on_grpc_close") (param i32) (param $token i32) (param $code i32)
    (call $report (local.get $code))
    (drop (call $proxy_get_status (i32.const 8) (i32.const 0) (i32.const 4)))
    (call $log_returned)
    (drop (call $proxy_set_effective_context (global.get $stream)))
    (drop (call $proxy_send_local_response (i32.const 403) ${s.details} ${s.denied} (i32.const 0) (i32.const 0) (i32.const -1))))`,
  });
}

/** envoy.config.core.v3.GrpcService{envoy_grpc{cluster_name, authority}} in protobuf wire format. */
export function grpcServiceBytes(cluster: string, authority?: string): Uint8Array {
  const field = (n: number, bytes: Uint8Array) => [(n << 3) | 2, bytes.length, ...bytes];
  const text = (v: string) => new TextEncoder().encode(v);
  const inner = Uint8Array.from([...field(1, text(cluster)), ...(authority === undefined ? [] : field(2, text(authority)))]);
  return Uint8Array.from(field(1, inner));
}
