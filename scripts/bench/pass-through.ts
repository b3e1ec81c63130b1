// The smallest proxy-wasm module weft's host accepts: every callback
// continues and nothing is read or written. bench:wasm times the host with it;
// bench:dataplane runs it in a sidecar's filter chain, so the host's share of a
// filter's cost is measured apart from the filter's own work.

import { parse } from '@bytecodealliance/jco';

export function passThroughWasm(): Promise<Uint8Array> {
  return parse(`(module
    (memory (export "memory") 1)
    (global $heap (mut i32) (i32.const 1024))
    (func (export "malloc") (param i32) (result i32) (global.get $heap))
    (func (export "proxy_abi_version_0_2_1"))
    (func (export "proxy_on_context_create") (param i32 i32))
    (func (export "proxy_on_vm_start") (param i32 i32) (result i32) (i32.const 1))
    (func (export "proxy_on_configure") (param i32 i32) (result i32) (i32.const 1))
    (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32) (i32.const 0))
    (func (export "proxy_on_response_headers") (param i32 i32 i32) (result i32) (i32.const 0))
    (func (export "proxy_on_done") (param i32) (result i32) (i32.const 1))
    (func (export "proxy_on_log") (param i32))
    (func (export "proxy_on_delete") (param i32)))`);
}
