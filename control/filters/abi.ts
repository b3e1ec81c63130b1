// What a proxy-wasm module may import and must export to run in Envoy. The
// lists follow proxy-wasm-cpp-host's registerCallbacks/getFunctions (the code
// Envoy runs), so a module that passes here links there.

/** Host functions in module "env" for ABI 0.2.0 and 0.2.1. */
const COMMON_HOST_FUNCTIONS = [
  'log', 'get_status', 'set_property', 'get_property', 'send_local_response',
  'get_shared_data', 'set_shared_data',
  'register_shared_queue', 'resolve_shared_queue', 'dequeue_shared_queue', 'enqueue_shared_queue',
  'get_header_map_value', 'add_header_map_value', 'replace_header_map_value', 'remove_header_map_value',
  'get_header_map_pairs', 'set_header_map_pairs', 'get_header_map_size',
  'get_buffer_status', 'get_buffer_bytes', 'set_buffer_bytes',
  'http_call', 'grpc_call', 'grpc_stream', 'grpc_close', 'grpc_cancel', 'grpc_send',
  'set_tick_period_milliseconds', 'get_current_time_nanoseconds',
  'define_metric', 'increment_metric', 'record_metric', 'get_metric',
  'set_effective_context', 'done', 'call_foreign_function',
  'continue_stream', 'close_stream',
].map((n) => `proxy_${n}`);

export const ABI_VERSIONS = ['0.2.0', '0.2.1'] as const;
export type AbiVersion = (typeof ABI_VERSIONS)[number];

export const HOST_FUNCTIONS: Record<AbiVersion, ReadonlySet<string>> = {
  '0.2.0': new Set(COMMON_HOST_FUNCTIONS),
  '0.2.1': new Set([...COMMON_HOST_FUNCTIONS, 'proxy_get_log_level']),
};

/** The WASI calls Envoy provides, under both module names it registers. */
export const WASI_MODULES: ReadonlySet<string> = new Set(['wasi_snapshot_preview1', 'wasi_unstable']);
export const WASI_FUNCTIONS: ReadonlySet<string> = new Set([
  'fd_write', 'fd_read', 'fd_seek', 'fd_close', 'fd_fdstat_get', 'environ_get', 'environ_sizes_get',
  'args_get', 'args_sizes_get', 'clock_time_get', 'random_get', 'proc_exit',
]);

/** Export naming the ABI, e.g. proxy_abi_version_0_2_1. */
export function abiExportName(v: AbiVersion): string {
  return `proxy_abi_version_${v.replaceAll('.', '_')}`;
}
