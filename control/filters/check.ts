// checkModule: the gate every proxy-wasm module passes before weft stores or
// serves it (built-ins at build time, users' modules at upload). It answers
// with every reason at once, never throws on bad bytes.

import { ABI_VERSIONS, abiExportName, HOST_FUNCTIONS, WASI_FUNCTIONS, WASI_MODULES } from './abi.ts';
import type { AbiVersion } from './abi.ts';
import { importTypeMismatches } from '../../sidecar/wasm/import-signatures.ts';

// The project compiles without the DOM lib, where TypeScript declares
// WebAssembly; this is the part the check needs.
interface WebAssemblyChecks {
  validate(bytes: Uint8Array): boolean;
  Module: {
    new (bytes: Uint8Array): object;
    imports(module: object): { module: string; name: string; kind: string }[];
    exports(module: object): { name: string; kind: string }[];
  };
}
const wasm = (globalThis as unknown as { WebAssembly: WebAssemblyChecks }).WebAssembly;

export interface ModuleImport { module: string; name: string; kind: string }
export interface ModuleExport { name: string; kind: string }

export type ModuleCheck =
  | { ok: true; abiVersion: AbiVersion; imports: ModuleImport[]; exports: ModuleExport[] }
  | { ok: false; reasons: string[] };

export interface CheckOptions {
  /**
   * Built-in filters are held to the build's contract as well: ABI 0.2.1,
   * `_initialize`, both `malloc` and `proxy_on_memory_allocate`, no
   * `proc_exit` import, and a size budget.
   */
  strict?: boolean;
  maxBytes?: number;
}

export function checkModule(bytes: Uint8Array, options: CheckOptions = {}): ModuleCheck {
  if (!wasm.validate(bytes)) {
    return { ok: false, reasons: [wasmMagic(bytes) ? 'module does not validate as WebAssembly' : 'not a WebAssembly module (bad magic or version)'] };
  }
  const mod = new wasm.Module(bytes);
  // Names alone are not enough: Envoy also refuses an import whose type is not the host's.
  const typeMismatches = importTypeMismatches(bytes);
  const imports = wasm.Module.imports(mod).map((i) => ({ module: i.module, name: i.name, kind: i.kind as string }));
  const exports = wasm.Module.exports(mod).map((e) => ({ name: e.name, kind: e.kind as string }));
  const reasons: string[] = [];
  const exported = new Map(exports.map((e) => [e.name, e.kind]));

  const versions = ABI_VERSIONS.filter((v) => exported.get(abiExportName(v)) === 'function');
  if (versions.length === 0) {
    reasons.push(`exports no supported proxy-wasm ABI version (need one of ${ABI_VERSIONS.map(abiExportName).join(', ')})`);
  } else if (versions.length > 1) {
    reasons.push(`exports more than one ABI version (${versions.join(', ')})`);
  }
  const abiVersion: AbiVersion = versions.at(-1) ?? '0.2.1';
  if (options.strict && abiVersion !== '0.2.1') reasons.push('built-in filters must export proxy_abi_version_0_2_1');

  const hostFunctions = HOST_FUNCTIONS[abiVersion];
  const refusedByName = new Set<string>();
  for (const imp of imports) {
    const where = `import ${imp.module}.${imp.name}`;
    const before = reasons.length;
    if (imp.kind !== 'function') reasons.push(`${where}: imports a ${imp.kind}; the host provides functions only`);
    else if (imp.module === 'env') {
      if (!hostFunctions.has(imp.name)) reasons.push(`${where}: not a proxy-wasm ABI ${abiVersion} host function`);
    } else if (WASI_MODULES.has(imp.module)) {
      if (!WASI_FUNCTIONS.has(imp.name)) reasons.push(`${where}: not a WASI call Envoy provides`);
      else if (options.strict && imp.name === 'proc_exit') reasons.push(`${where}: built-in filters must not exit the VM`);
    } else reasons.push(`${where}: unknown import module "${imp.module}"`);
    if (reasons.length > before) refusedByName.add(`${imp.module}.${imp.name}`);
  }

  // A type is checked only for an import the host has by name (the reason above says enough otherwise).
  for (const m of typeMismatches) if (!refusedByName.has(`${m.module}.${m.name}`)) reasons.push(m.reason);
  if (exported.get('memory') !== 'memory') reasons.push('does not export its memory as "memory"');
  const hasMalloc = exported.get('malloc') === 'function';
  const hasAllocate = exported.get('proxy_on_memory_allocate') === 'function';
  if (options.strict) {
    if (!hasMalloc) reasons.push('does not export malloc');
    if (!hasAllocate) reasons.push('does not export proxy_on_memory_allocate');
    if (exported.get('_initialize') !== 'function') reasons.push('does not export _initialize');
  } else if (!hasMalloc && !hasAllocate) {
    reasons.push('exports neither malloc nor proxy_on_memory_allocate, so the host cannot pass it data');
  }
  if (options.maxBytes !== undefined && bytes.byteLength >= options.maxBytes) {
    reasons.push(`module is ${bytes.byteLength} bytes; the budget is under ${options.maxBytes}`);
  }

  if (reasons.length > 0) return { ok: false, reasons };
  return { ok: true, abiVersion, imports, exports };
}

function wasmMagic(bytes: Uint8Array): boolean {
  return bytes.length >= 8 && bytes[0] === 0 && bytes[1] === 0x61 && bytes[2] === 0x73 && bytes[3] === 0x6d;
}
