// A proxy-wasm module that talks to a gRPC server over a bidi stream
// (proxy_grpc_stream) from its request headers, and holds the request until
// the stream is over. It sends two messages (`one`, `two`), the second with
// end_stream (or then proxy_grpc_close, `halfClose: 'close'`), and reports
// what the host returned for each (`#` + code). It logs what the stream
// tells it, all delivered to the root context:
//   proxy_on_grpc_receive_initial_metadata: `initial:` + the header count, then
//     the result and value of the initial metadata's `x-server` (map 4);
//   proxy_on_grpc_receive: the message (buffer 5);
//   proxy_on_grpc_receive_trailing_metadata: `trailing:` + the count, then the
//     result and value of the trailing metadata's `x-trailer` (map 5);
//   proxy_on_grpc_close: the status code, then the status message (proxy_get_status);
// and continues the request. `cancel`: on the first message it cancels the
// stream (proxy_grpc_cancel, result reported) and continues the request.
// A stream the host refuses is reported (its WasmResult) and the request continues.

import { serializePairs } from '../../sidecar/wasm/headers.ts';
import { wat } from './wat.ts';

export interface GrpcStreamerOptions {
  /** The grpc_service argument: a cluster name, or a serialized GrpcService. */
  service: string | Uint8Array;
  serviceName?: string;
  method?: string;
  metadata?: [string, string][];
  /** How the request side ends: end_stream on the second send (default), or proxy_grpc_close after it. */
  halfClose?: 'end_stream' | 'close';
  /** Cancel the stream on the first message received. */
  cancel?: boolean;
  /** Open the stream from the root context on the first tick instead (no request is held). */
  fromTick?: boolean;
}

export function grpcStreamer({ service, serviceName = 'weft.test.Chat', method = 'Talk', metadata = [['x-token', 'abc']], halfClose = 'end_stream', cancel = false, fromTick = false }: GrpcStreamerOptions): Promise<Uint8Array> {
  const serviceText = typeof service === 'string' ? service : String.fromCharCode(...service);
  return wat({
    imports: ['proxy_grpc_stream', 'proxy_grpc_send', 'proxy_grpc_close', 'proxy_grpc_cancel', 'proxy_get_buffer_bytes', 'proxy_get_header_map_value', 'proxy_get_status', 'proxy_set_effective_context', 'proxy_continue_stream', 'proxy_set_tick_period_milliseconds'],
    strings: {
      service: serviceText,
      svc: serviceName,
      method,
      metadata: String.fromCharCode(...serializePairs(metadata)),
      one: 'one',
      two: 'two',
      xServer: 'x-server',
      xTrailer: 'x-trailer',
      initial: 'initial:',
      trailing: 'trailing:',
    },
    body: (s) => `
  (global $stream (mut i32) (i32.const 0))
  (global $token (mut i32) (i32.const 0))
  ;; logs the string at (ptr, len) followed by one digit character for n (0..9, then ':' and on)
  (func $log_count (param $ptr i32) (param $len i32) (param $n i32)
    (memory.copy (i32.const 920) (local.get $ptr) (local.get $len))
    (i32.store8 (i32.add (i32.const 920) (local.get $len)) (i32.add (i32.const 48) (local.get $n)))
    (drop (call $proxy_log (i32.const 2) (i32.const 920) (i32.add (local.get $len) (i32.const 1)))))
  (func $open (result i32)
    (local $r i32)
    (local.set $r (call $proxy_grpc_stream ${s.service} ${s.svc} ${s.method} ${s.metadata} (i32.const 16)))
    (if (local.get $r) (then (call $report (local.get $r)) (return (i32.const 0))))
    (global.set $token (i32.load (i32.const 16)))
    (call $report (call $proxy_grpc_send (global.get $token) ${s.one} (i32.const 0)))
    ${
      halfClose === 'end_stream'
        ? `(call $report (call $proxy_grpc_send (global.get $token) ${s.two} (i32.const 1)))`
        : `(call $report (call $proxy_grpc_send (global.get $token) ${s.two} (i32.const 0)))
    (call $report (call $proxy_grpc_close (global.get $token)))`
    }
    (i32.const 1))
  (func $resume
    (if (global.get $stream) (then
      (drop (call $proxy_set_effective_context (global.get $stream)))
      (drop (call $proxy_continue_stream (i32.const 0))))))
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_configure") (param i32 i32) (result i32)
    ${fromTick ? '(drop (call $proxy_set_tick_period_milliseconds (i32.const 1000)))' : ''}
    (i32.const 1))
  (func (export "proxy_on_tick") (param i32)
    ${fromTick ? '(drop (call $proxy_set_tick_period_milliseconds (i32.const 0))) (drop (call $open))' : ''})
  (func (export "proxy_on_request_headers") (param $id i32) (param i32 i32) (result i32)
    ${fromTick ? '(return (i32.const 0))' : ''}
    (global.set $stream (local.get $id))
    (call $open))
  (func (export "proxy_on_grpc_receive_initial_metadata") (param i32) (param $token i32) (param $n i32)
    (call $log_count ${s.initial} (local.get $n))
    (i64.store (i32.const 0) (i64.const 0))
    (call $report (call $proxy_get_header_map_value (i32.const 4) ${s.xServer} (i32.const 0) (i32.const 4)))
    (call $log_returned))
  (func (export "proxy_on_grpc_receive") (param i32) (param $token i32) (param $size i32)
    (drop (call $proxy_get_buffer_bytes (i32.const 5) (i32.const 0) (local.get $size) (i32.const 0) (i32.const 4)))
    (call $log_returned)
    ${cancel ? '(call $report (call $proxy_grpc_cancel (local.get $token))) (call $resume)' : ''})
  (func (export "proxy_on_grpc_receive_trailing_metadata") (param i32) (param $token i32) (param $n i32)
    (call $log_count ${s.trailing} (local.get $n))
    (i64.store (i32.const 0) (i64.const 0))
    (call $report (call $proxy_get_header_map_value (i32.const 5) ${s.xTrailer} (i32.const 0) (i32.const 4)))
    (call $log_returned))
  (func (export "proxy_on_grpc_close") (param i32) (param $token i32) (param $code i32)
    (call $report (local.get $code))
    (drop (call $proxy_get_status (i32.const 8) (i32.const 0) (i32.const 4)))
    (call $log_returned)
    (call $resume))`,
  });
}
