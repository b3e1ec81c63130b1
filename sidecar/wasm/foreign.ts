// Foreign functions every filter can call (proxy_call_foreign_function) in
// Envoy without extra configuration, those that need nothing of Envoy's
// internals: zlib `compress` / `uncompress` and `clear_route_cache`
// (source/extensions/common/wasm/foreign.cc). An embedder's own functions
// (HostEnv.foreignFunctions) are looked up first.

import { deflateSync, inflateSync } from 'node:zlib';
import { WasmResult, type WasmResultCode } from './abi.ts';

export type ForeignResult = { result: WasmResultCode; value?: Uint8Array };

export const builtinForeignFunctions: Record<string, (args: Uint8Array) => ForeignResult> = {
  // zlib's compress(): the zlib format at the default level; a failure is SERIALIZATION_FAILURE.
  compress: (args) => {
    try {
      return { result: WasmResult.Ok, value: deflateSync(args) };
    } catch {
      return { result: WasmResult.SerializationFailure };
    }
  },
  uncompress: (args) => {
    try {
      return { result: WasmResult.Ok, value: inflateSync(args) };
    } catch {
      return { result: WasmResult.SerializationFailure };
    }
  },
  // The sidecar chooses the route again whenever a filter changed the request headers.
  clear_route_cache: () => ({ result: WasmResult.Ok }),
};
