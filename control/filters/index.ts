// Public surface of control/filters: module checks, the catalog of built-in
// and uploaded filters, content-addressed module storage and binding config
// validation. Used by the API (POST /api/v1/filters, `weft filter push`).

export { checkModule, type ModuleCheck, type ModuleImport, type ModuleExport, type CheckOptions } from './check.ts';
export { ABI_VERSIONS, HOST_FUNCTIONS, WASI_FUNCTIONS, WASI_MODULES, type AbiVersion } from './abi.ts';
export { FilterCatalog, builtinFilters, DEFAULT_MANIFEST, type UploadResult } from './catalog.ts';
export { ModuleStore, sha256Hex } from './module-store.ts';
export { validateConfig, checkConfigSchema, type ConfigError } from './config-schema.ts';
