// The signature of every host function a proxy-wasm module may import, as
// proxy-wasm-cpp-host declares them (include/proxy-wasm/exports.h: Word is
// i32 in wasm32, int64_t/uint64_t are i64), and a reader for the module's own
// import types. Envoy refuses a module whose import has the right name and
// the wrong type ("Failed to load Wasm module due to an import type
// mismatch"); JavaScript host functions accept any, so without this check a
// module could pass weft's tests and the control plane's upload gate and then
// fail to load in Envoy.

import { WasmLoadError } from './abi-version.ts';

const I32 = 'i32';
const I64 = 'i64';
type Sig = readonly [params: readonly string[], results: readonly string[]];
const words = (n: number): Sig => [Array<string>(n).fill(I32), [I32]];

const ENV: Record<string, Sig> = {
  proxy_log: words(3),
  proxy_get_log_level: words(1),
  proxy_get_status: words(3),
  proxy_get_current_time_nanoseconds: words(1),
  proxy_set_tick_period_milliseconds: words(1),
  proxy_set_effective_context: words(1),
  proxy_done: words(0),
  proxy_call_foreign_function: words(6),
  proxy_get_property: words(4),
  proxy_set_property: words(4),
  proxy_get_configuration: words(2),
  proxy_continue_request: words(0),
  proxy_continue_response: words(0),
  proxy_clear_route_cache: words(0),
  proxy_continue_stream: words(1),
  proxy_close_stream: words(1),
  proxy_send_local_response: words(8),
  proxy_get_header_map_value: words(5),
  proxy_add_header_map_value: words(5),
  proxy_replace_header_map_value: words(5),
  proxy_remove_header_map_value: words(3),
  proxy_get_header_map_pairs: words(3),
  proxy_set_header_map_pairs: words(3),
  proxy_get_header_map_size: words(2),
  proxy_get_buffer_bytes: words(5),
  proxy_get_buffer_status: words(3),
  proxy_set_buffer_bytes: words(5),
  proxy_get_shared_data: words(5),
  proxy_set_shared_data: words(5),
  proxy_register_shared_queue: words(3),
  proxy_resolve_shared_queue: words(5),
  proxy_dequeue_shared_queue: words(3),
  proxy_enqueue_shared_queue: words(3),
  proxy_define_metric: words(4),
  proxy_increment_metric: [[I32, I64], [I32]],
  proxy_record_metric: [[I32, I64], [I32]],
  proxy_get_metric: words(2),
  proxy_http_call: words(10),
  proxy_grpc_call: words(12),
  proxy_grpc_stream: words(9),
  proxy_grpc_send: words(4),
  proxy_grpc_cancel: words(1),
  proxy_grpc_close: words(1),
};

/** WASI preview1 (and wasi_unstable, the same signatures for these calls). */
const WASI: Record<string, Sig> = {
  fd_write: words(4),
  fd_read: words(4),
  fd_seek: [[I32, I64, I32, I32], [I32]],
  fd_close: words(1),
  fd_fdstat_get: words(2),
  fd_fdstat_set_flags: words(2),
  fd_prestat_get: words(2),
  fd_prestat_dir_name: words(3),
  path_open: [[I32, I32, I32, I32, I32, I64, I64, I32, I32], [I32]],
  environ_get: words(2),
  environ_sizes_get: words(2),
  args_get: words(2),
  args_sizes_get: words(2),
  clock_time_get: [[I32, I64, I32], [I32]],
  clock_res_get: words(2),
  random_get: words(2),
  poll_oneoff: words(4),
  sched_yield: words(0),
  proc_exit: [[I32], []],
};

const EXPECTED: Record<string, Record<string, Sig>> = { env: ENV, wasi_snapshot_preview1: WASI, wasi_unstable: WASI };

const VALTYPES: Record<number, string> = { 0x7f: 'i32', 0x7e: 'i64', 0x7d: 'f32', 0x7c: 'f64', 0x7b: 'v128', 0x70: 'funcref', 0x6f: 'externref' };

export interface FunctionImport {
  module: string;
  name: string;
  params: string[];
  results: string[];
}

/**
 * The function imports of a module with their types, read from its type and
 * import sections. Undefined when the bytes are not a module this reader
 * follows (the caller's own validation reports those).
 */
export function functionImports(bytes: Uint8Array): FunctionImport[] | undefined {
  let at = 8;
  const u32 = (): number => {
    let result = 0;
    let shift = 0;
    for (;;) {
      if (at >= bytes.length) throw new RangeError('truncated');
      const b = bytes[at++]!;
      result += (b & 0x7f) * 2 ** shift;
      if ((b & 0x80) === 0) return result;
      shift += 7;
      if (shift > 63) throw new RangeError('LEB128 too long');
    }
  };
  const name = (): string => {
    const n = u32();
    const s = Buffer.from(bytes.buffer, bytes.byteOffset + at, n).toString('utf8');
    at += n;
    return s;
  };
  const limits = (): void => {
    const flags = u32();
    u32();
    if (flags & 1) u32();
  };
  try {
    if (bytes.length < 8 || bytes[0] !== 0 || bytes[1] !== 0x61 || bytes[2] !== 0x73 || bytes[3] !== 0x6d) return undefined;
    const types: Sig[] = [];
    const out: FunctionImport[] = [];
    while (at < bytes.length) {
      const id = bytes[at++]!;
      const size = u32();
      const end = at + size;
      if (id === 1) {
        for (let i = 0, n = u32(); i < n; i++) {
          if (bytes[at++] !== 0x60) return undefined;
          const params = Array.from({ length: u32() }, () => VALTYPES[bytes[at++]!] ?? '?');
          const results = Array.from({ length: u32() }, () => VALTYPES[bytes[at++]!] ?? '?');
          types.push([params, results]);
        }
      } else if (id === 2) {
        for (let i = 0, n = u32(); i < n; i++) {
          const module = name();
          const field = name();
          const kind = bytes[at++];
          if (kind === 0x00) {
            const t = types[u32()];
            if (t === undefined) return undefined;
            out.push({ module, name: field, params: [...t[0]], results: [...t[1]] });
          } else if (kind === 0x01) {
            at++; // reftype
            limits();
          } else if (kind === 0x02) limits();
          else if (kind === 0x03) at += 2; // valtype, mutability
          else if (kind === 0x04) {
            at++; // tag: an attribute byte, then its type index
            u32();
          }
          else return undefined;
        }
        return out;
      }
      at = end;
    }
    return out;
  } catch {
    return undefined;
  }
}

const show = ([params, results]: Sig) => `(${params.join(', ')}) -> ${results.length === 0 ? '()' : results.join(', ')}`;

/** Each function import whose type is not the host's, with the reason, naming it as Envoy would refuse it. */
export function importTypeMismatches(bytes: Uint8Array): { module: string; name: string; reason: string }[] {
  const out: { module: string; name: string; reason: string }[] = [];
  for (const imp of functionImports(bytes) ?? []) {
    const want = EXPECTED[imp.module]?.[imp.name];
    if (want === undefined) continue;
    const same = want[0].length === imp.params.length && want[1].length === imp.results.length && want[0].every((t, i) => t === imp.params[i]) && want[1].every((t, i) => t === imp.results[i]);
    if (!same) out.push({ module: imp.module, name: imp.name, reason: `import ${imp.module}.${imp.name}: type ${show([imp.params, imp.results])}, but the host's is ${show(want)} (Envoy refuses to load it: import type mismatch)` });
  }
  return out;
}

/** Refuses bytes whose imports Envoy would refuse by type: a WasmLoadError at `imports`, every mismatch named. */
export function checkImportTypes(bytes: Uint8Array): void {
  const mismatches = importTypeMismatches(bytes);
  if (mismatches.length > 0) throw new WasmLoadError('imports', mismatches.map((m) => m.reason).join('; '));
}
