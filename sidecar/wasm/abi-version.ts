// Which proxy-wasm ABI a module speaks, read from its `proxy_abi_version_*`
// export, and whether this host can link it: every import must be a host
// function or WASI call this host provides, as Envoy refuses a module with an
// unknown import at load rather than at first use.

import { supportedAbiVersions, type AbiVersion } from './abi.ts';
import { wasmApi, type WasmModule } from './wasm-api.ts';

export class WasmLoadError extends Error {
  constructor(
    /** Where the problem is: `abi_version`, `imports[2]`, `exports.memory`, ... */
    readonly path: string,
    message: string,
  ) {
    super(`${path}: ${message}`);
    this.name = 'WasmLoadError';
  }
}

export function detectAbiVersion(module: WasmModule): AbiVersion {
  const declared = wasmApi.Module.exports(module)
    .map((e) => e.name)
    .filter((name) => name.startsWith('proxy_abi_version_'))
    .map((name) => name.slice('proxy_abi_version_'.length).replace(/_/g, '.'));
  if (declared.length === 0) {
    throw new WasmLoadError('abi_version', `module exports no proxy_abi_version_* function; this host runs ABI ${supportedAbiVersions.join(' and ')}`);
  }
  const supported = declared.filter((v): v is AbiVersion => (supportedAbiVersions as readonly string[]).includes(v));
  if (supported.length === 0) {
    throw new WasmLoadError('abi_version', `module declares proxy-wasm ABI ${declared.join(', ')}, which this host does not support (supported: ${supportedAbiVersions.join(', ')})`);
  }
  return supported.includes('0.2.1') ? '0.2.1' : supported[0]!;
}

export function checkImports(module: WasmModule, provided: Record<string, Set<string>>): void {
  wasmApi.Module.imports(module).forEach((imp, i) => {
    const names = provided[imp.module];
    if (names === undefined || !names.has(imp.name) || imp.kind !== 'function') {
      throw new WasmLoadError(`imports[${i}]`, `module imports ${imp.kind} ${imp.module}.${imp.name}, which the proxy-wasm host does not provide`);
    }
  });
}
