// Builds small proxy-wasm modules from WAT for the ABI conformance tests.
// Every module gets a memory, a bump `malloc` and (unless told otherwise) the
// 0.2.1 ABI marker; host functions are imported by name with their ABI
// signatures; `strings` are laid out in a data segment and spliced into the
// body as `(i32.const ptr) (i32.const len)` pairs.

import { parse } from '@bytecodealliance/jco';

const signatures: Record<string, string> = {
  proxy_log: '(param i32 i32 i32) (result i32)',
  proxy_get_log_level: '(param i32) (result i32)',
  proxy_get_current_time_nanoseconds: '(param i32) (result i32)',
  proxy_set_tick_period_milliseconds: '(param i32) (result i32)',
  proxy_set_effective_context: '(param i32) (result i32)',
  proxy_done: '(result i32)',
  proxy_call_foreign_function: '(param i32 i32 i32 i32 i32 i32) (result i32)',
  proxy_get_property: '(param i32 i32 i32 i32) (result i32)',
  proxy_set_property: '(param i32 i32 i32 i32) (result i32)',
  proxy_get_status: '(param i32 i32 i32) (result i32)',
  proxy_continue_stream: '(param i32) (result i32)',
  proxy_close_stream: '(param i32) (result i32)',
  proxy_send_local_response: '(param i32 i32 i32 i32 i32 i32 i32 i32) (result i32)',
  proxy_get_header_map_value: '(param i32 i32 i32 i32 i32) (result i32)',
  proxy_add_header_map_value: '(param i32 i32 i32 i32 i32) (result i32)',
  proxy_replace_header_map_value: '(param i32 i32 i32 i32 i32) (result i32)',
  proxy_remove_header_map_value: '(param i32 i32 i32) (result i32)',
  proxy_get_header_map_pairs: '(param i32 i32 i32) (result i32)',
  proxy_set_header_map_pairs: '(param i32 i32 i32) (result i32)',
  proxy_get_header_map_size: '(param i32 i32) (result i32)',
  proxy_get_buffer_bytes: '(param i32 i32 i32 i32 i32) (result i32)',
  proxy_get_buffer_status: '(param i32 i32 i32) (result i32)',
  proxy_set_buffer_bytes: '(param i32 i32 i32 i32 i32) (result i32)',
  proxy_get_shared_data: '(param i32 i32 i32 i32 i32) (result i32)',
  proxy_set_shared_data: '(param i32 i32 i32 i32 i32) (result i32)',
  proxy_register_shared_queue: '(param i32 i32 i32) (result i32)',
  proxy_resolve_shared_queue: '(param i32 i32 i32 i32 i32) (result i32)',
  proxy_dequeue_shared_queue: '(param i32 i32 i32) (result i32)',
  proxy_enqueue_shared_queue: '(param i32 i32 i32) (result i32)',
  proxy_define_metric: '(param i32 i32 i32 i32) (result i32)',
  proxy_increment_metric: '(param i32 i64) (result i32)',
  proxy_record_metric: '(param i32 i64) (result i32)',
  proxy_get_metric: '(param i32 i32) (result i32)',
  proxy_http_call: '(param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32)',
  proxy_grpc_call: '(param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32)',
  proxy_grpc_stream: '(param i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32)',
  proxy_grpc_send: '(param i32 i32 i32 i32) (result i32)',
  proxy_grpc_cancel: '(param i32) (result i32)',
  proxy_grpc_close: '(param i32) (result i32)',
  proxy_get_configuration: '(param i32 i32) (result i32)',
  proxy_continue_request: '(result i32)',
  proxy_continue_response: '(result i32)',
  proxy_clear_route_cache: '(result i32)',
};

export interface WatSpec {
  /** Host functions to import from env, called as `$name`. */
  imports?: string[];
  /** Raw extra import lines, e.g. WASI. */
  rawImports?: string;
  strings?: Record<string, string>;
  /** Module body (functions, exports); gets `s.name` for every string. */
  body: (s: Record<string, string>) => string;
  /** ABI marker export name; null for none. Default proxy_abi_version_0_2_1. */
  abi?: string | null;
  /** Omit the malloc export. */
  noMalloc?: boolean;
}

/**
 * Helpers every module gets (proxy_log is always imported):
 *   (call $report (code))  logs "#" + char(48 + code), read back with `codes()`;
 *   (call $log_returned)   logs the (ptr, size) a host function wrote at 0 / 4.
 */
const helpers = `
  (func $report (param $code i32)
    (i32.store8 (i32.const 900) (i32.const 35))
    (i32.store8 (i32.const 901) (i32.add (i32.const 48) (local.get $code)))
    (drop (call $proxy_log (i32.const 2) (i32.const 900) (i32.const 2))))
  (func $log_returned
    (drop (call $proxy_log (i32.const 2) (i32.load (i32.const 0)) (i32.load (i32.const 4)))))`;

/** Scratch area tests use for return pointers: 0..1023. Strings start at 1024, the heap at 64 KiB. */
export async function wat(spec: WatSpec): Promise<Uint8Array> {
  const refs: Record<string, string> = {};
  const data: string[] = [];
  let at = 1024;
  for (const [name, text] of Object.entries(spec.strings ?? {})) {
    const bytes = Buffer.from(text);
    refs[name] = `(i32.const ${at}) (i32.const ${bytes.length})`;
    data.push(`(data (i32.const ${at}) "${[...bytes].map((b) => '\\' + b.toString(16).padStart(2, '0')).join('')}")`);
    at += bytes.length + 1;
  }
  const imports = [...new Set(['proxy_log', ...(spec.imports ?? [])])].map((name) => {
    const sig = signatures[name];
    if (sig === undefined) throw new Error(`wat: no signature for ${name}`);
    return `(import "env" "${name}" (func $${name} ${sig}))`;
  });
  const text = `(module
  ${imports.join('\n  ')}
  ${spec.rawImports ?? ''}
  (memory (export "memory") 4)
  (global $heap (mut i32) (i32.const 65536))
  ${spec.noMalloc ? '' : `(func (export "malloc") (param $size i32) (result i32)
    (local $p i32)
    (local.set $p (global.get $heap))
    (global.set $heap (i32.add (global.get $heap) (i32.add (local.get $size) (i32.const 8))))
    (local.get $p))`}
  ${spec.abi === null ? '' : `(func (export "${spec.abi ?? 'proxy_abi_version_0_2_1'}"))`}
  ${data.join('\n  ')}
  ${helpers}
  ${spec.body(refs)}
)`;
  return parse(text);
}

/** Status codes the module reported with $report, in order. */
export function codes(logs: { message: string }[]): number[] {
  return logs.filter((l) => l.message.startsWith('#') && l.message.length === 2).map((l) => l.message.charCodeAt(1) - 48);
}

/** Log lines other than reported codes. */
export function texts(logs: { message: string }[]): string[] {
  return logs.filter((l) => !(l.message.startsWith('#') && l.message.length === 2)).map((l) => l.message);
}

/** Reads the (ptr, size) pair a host function wrote at `ptrPtr` / `ptrPtr + 4`. */
export function readReturned(memory: ArrayBuffer, ptrPtr: number): Uint8Array {
  const view = new DataView(memory);
  const ptr = view.getUint32(ptrPtr, true);
  const size = view.getUint32(ptrPtr + 4, true);
  return new Uint8Array(memory, ptr, size).slice();
}
