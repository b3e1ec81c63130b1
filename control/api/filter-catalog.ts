// The filter catalog as the API sees it: catalog entries are store objects
// (kind FilterModule, so the model, every revision and the audit log see
// them); module bytes live content-addressed beside the store. The module
// checks and config-schema validation are control/filters'.
import { createHash } from 'node:crypto';
import { mkdir, open, readFile, rename } from 'node:fs/promises';
import { join } from 'node:path';
import type { FilterModule } from '../model/types.ts';
import type { Store } from '../store/store.ts';
import { FILTER_MODULE_KIND, type FilterCatalogPort, type ModuleCheck } from './deps.ts';
import type { FieldError } from './errors.ts';

/** Where module bytes live, by sha256 hex. */
export interface ModuleBytes {
  put(sha256: string, bytes: Uint8Array): Promise<void>;
  get(sha256: string): Promise<Uint8Array | undefined>;
}

export type CheckModule = (bytes: Uint8Array) => { ok: true; abiVersion: '0.2.0' | '0.2.1' } | { ok: false; reasons: string[] };
export type ValidateConfig = (schema: unknown, config: unknown) => FieldError[];

export function memoryModuleBytes(): ModuleBytes {
  const modules = new Map<string, Uint8Array>();
  return {
    put: async (sha, bytes) => void modules.set(sha, bytes),
    get: async (sha) => modules.get(sha),
  };
}

export function filterCatalog(store: Store, bytes: ModuleBytes, check: CheckModule, validate: ValidateConfig): FilterCatalogPort {
  return {
    list: async () => store.list(FILTER_MODULE_KIND).map((o) => o.spec as FilterModule),
    async upload(name, moduleBytes, configSchema): Promise<ModuleCheck> {
      const result = check(moduleBytes);
      if (!result.ok) return { ok: false, errors: result.reasons.map((message) => ({ path: 'wasm', message })) };
      const sha256 = createHash('sha256').update(moduleBytes).digest('hex');
      await bytes.put(sha256, moduleBytes);
      const module: FilterModule = { name, sha256, size: moduleBytes.length, abiVersion: result.abiVersion };
      if (configSchema !== undefined) module.configSchema = configSchema;
      return { ok: true, module };
    },
    read: (sha256) => bytes.get(sha256),
    validateConfig: (filter, config) => (filter.configSchema === undefined ? [] : validate(filter.configSchema, config)),
  };
}

/** Module bytes as `<dir>/<sha256>.wasm`, written atomically (temp + fsync + rename). */
export function fileModuleBytes(dir: string): ModuleBytes {
  return {
    async put(sha256, moduleBytes) {
      await mkdir(dir, { recursive: true });
      const path = join(dir, `${sha256}.wasm`);
      const tmp = `${path}.tmp-${process.pid}`;
      const handle = await open(tmp, 'w', 0o644);
      try {
        await handle.writeFile(moduleBytes);
        await handle.sync();
      } finally {
        await handle.close();
      }
      await rename(tmp, path);
    },
    async get(sha256) {
      try {
        return new Uint8Array(await readFile(join(dir, `${sha256}.wasm`)));
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
        throw err;
      }
    },
  };
}
