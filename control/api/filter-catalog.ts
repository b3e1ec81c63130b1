// The filter catalog as the API sees it. control/filters checks modules,
// stores their bytes content-addressed and validates binding configs; the
// API additionally keeps every catalog entry as a store object (kind
// FilterModule), so the mesh model, the revision history and the audit log
// see filters like any other change.
import type { FilterModule } from '../model/types.ts';
import type { Store } from '../store/store.ts';
import { FILTER_MODULE_KIND, type FilterCatalogPort, type ModuleCheck } from './deps.ts';
import type { FieldError } from './errors.ts';

/** What the API uses of control/filters' FilterCatalog. */
export interface FilterCatalogSource {
  upload(name: string, bytes: Uint8Array, configSchema?: unknown): Promise<{ ok: true; module: FilterModule } | { ok: false; errors: FieldError[] }>;
  read(sha256: string): Promise<Uint8Array | undefined>;
  validateConfig(filter: FilterModule, config: unknown): FieldError[];
  configureErrors(filter: FilterModule, plugin: { name: string; rootId: string; configuration: string }): Promise<FieldError[]>;
  builtins(): FilterModule[];
}

export function filterCatalogPort(store: Store, catalog: FilterCatalogSource): FilterCatalogPort {
  return {
    list: async () => store.list(FILTER_MODULE_KIND).map((o) => o.spec as FilterModule),
    upload: async (name, bytes, configSchema): Promise<ModuleCheck> => {
      const result = await catalog.upload(name, bytes, configSchema);
      return result.ok ? { ok: true, module: result.module } : { ok: false, errors: result.errors };
    },
    read: (sha256) => catalog.read(sha256),
    validateConfig: (filter, config) => catalog.validateConfig(filter, config),
    configureErrors: (filter, plugin) => catalog.configureErrors(filter, plugin),
    isBuiltin: (name) => catalog.builtins().some((f) => f.name === name),
  };
}

/**
 * Makes the store's catalog entries match the built-in filters of this
 * build (filters/dist/manifest.json): one revision when they changed, none
 * otherwise, so a restart of the same build changes nothing.
 */
export async function syncBuiltinFilters(store: Store, catalog: FilterCatalogSource, actor: string): Promise<{ revision: number; changed: boolean }> {
  const changes = catalog.builtins().map((module) => ({ op: 'put' as const, kind: FILTER_MODULE_KIND, namespace: 'default', name: module.name, spec: module }));
  if (changes.length === 0) return { revision: store.revision(), changed: false };
  return store.commit(changes, { actor, summary: `built-in filters: ${changes.map((c) => c.name).join(', ')}` });
}
