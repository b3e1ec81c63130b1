// The filter catalog: the built-in filters (filters/dist/manifest.json,
// written by `npm run build:filters`) merged with modules users uploaded,
// which are checked exactly like the built-ins, stored content-addressed and
// listed in `<dataDir>/wasm/catalog.json`. Bindable by name either way.

import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FilterModule } from '../model/types.ts';
import { mkdirDurable, removeLeftoverTemps, writeFileAtomic } from '../store/atomic-file.ts';
import { checkModule } from './check.ts';
import { checkConfigSchema, validateConfig } from './config-schema.ts';
import { ConfigureSandbox, DEFAULT_CONFIGURE_TIMEOUT_MS } from './configure-sandbox.ts';
import { wasmApi, type WasmModule } from '../../sidecar/wasm/wasm-api.ts';
import type { ConfigError } from './config-schema.ts';
import { ModuleStore, sha256Hex } from './module-store.ts';

export const DEFAULT_MANIFEST = fileURLToPath(new URL('../../filters/dist/manifest.json', import.meta.url));
const FILTER_NAME = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

export type UploadResult = { ok: true; module: FilterModule } | { ok: false; errors: ConfigError[] };

/** Built-in filters from a build manifest; [] when the filters were never built. */
export function builtinFilters(manifestPath: string = DEFAULT_MANIFEST): FilterModule[] {
  let raw: string;
  try {
    raw = readFileSync(manifestPath, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  const manifest = JSON.parse(raw) as { filters?: (FilterModule & { sourceHash?: string })[] };
  return (manifest.filters ?? []).map(({ name, sha256, size, abiVersion, configSchema }) =>
    configSchema === undefined ? { name, sha256, size, abiVersion } : { name, sha256, size, abiVersion, configSchema },
  );
}

export class FilterCatalog {
  readonly store: ModuleStore;
  private readonly manifestPath: string;
  private readonly indexPath: string;
  private writes: Promise<unknown> = Promise.resolve();
  /** Compiled modules by sha256, for the configure check. */
  private readonly modules = new Map<string, Promise<WasmModule | undefined>>();

  /** Runs modules' proxy_on_configure off the main thread, with a deadline. */
  private readonly sandbox: ConfigureSandbox;

  private readonly warn: (line: string) => void;
  private damagedIndexReported = false;

  /** `warn` gets what the operator should hear of (a damaged index); default process.emitWarning. */
  constructor(options: { dataDir: string; manifestPath?: string; configureTimeoutMs?: number; warn?: (line: string) => void }) {
    this.warn = options.warn ?? ((line) => process.emitWarning(line));
    this.sandbox = new ConfigureSandbox(options.configureTimeoutMs ?? DEFAULT_CONFIGURE_TIMEOUT_MS);
    this.store = new ModuleStore(options.dataDir);
    this.manifestPath = options.manifestPath ?? DEFAULT_MANIFEST;
    this.indexPath = join(this.store.dir, 'catalog.json');
    // Made by the control plane holding the data dir's lock: the temp files a crash left while writing the
    // index or a module (up to 16 MiB each) are a dead process's, and nothing else would remove them.
    removeLeftoverTemps(this.store.dir, (name) => name === 'catalog.json' || /^[0-9a-f]{64}\.wasm$/.test(name));
  }

  builtins(): FilterModule[] {
    return builtinFilters(this.manifestPath);
  }

  private async uploaded(): Promise<FilterModule[]> {
    let text: string;
    try {
      text = await readFile(this.indexPath, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
    let problem: string;
    try {
      const filters = (JSON.parse(text) as { filters?: unknown } | null)?.filters;
      if (Array.isArray(filters)) return filters as FilterModule[];
      problem = 'no "filters" array';
    } catch (e) {
      problem = (e as Error).message;
    }
    // Only a secondary index: the control plane's store holds the catalog (FilterModule objects) that
    // bindings, checks and serving read. A damaged one must not refuse every later upload.
    if (!this.damagedIndexReported) {
      this.damagedIndexReported = true;
      this.warn(`warning: filter index ${this.indexPath} is damaged (${problem}): ignored, and rewritten by the next filter upload or removal (the store's catalog is unaffected)`);
    }
    return [];
  }

  /** Every bindable filter, built-ins first, then uploads by name. */
  async list(): Promise<FilterModule[]> {
    const uploaded = (await this.uploaded()).sort((a, b) => a.name.localeCompare(b.name));
    return [...this.builtins(), ...uploaded];
  }

  async get(name: string): Promise<FilterModule | undefined> {
    return (await this.list()).find((f) => f.name === name);
  }

  /**
   * Checks and stores a user's module under `name` (replacing an earlier
   * upload of that name). Refused with every reason when the module fails a
   * check, the name is taken by a built-in, or the schema does not compile.
   */
  async upload(name: string, bytes: Uint8Array, configSchema?: unknown): Promise<UploadResult> {
    const errors: ConfigError[] = [];
    if (!FILTER_NAME.test(name)) errors.push({ path: 'name', message: 'must be 1-63 lower-case letters, digits or "-", starting and ending with a letter or digit' });
    else if (this.builtins().some((f) => f.name === name)) errors.push({ path: 'name', message: `"${name}" is a built-in filter` });
    const check = checkModule(bytes);
    if (!check.ok) errors.push(...check.reasons.map((message) => ({ path: 'wasm', message })));
    if (configSchema !== undefined) errors.push(...checkConfigSchema(configSchema).map((e) => ({ path: 'configSchema', message: e.message })));
    if (errors.length > 0 || !check.ok) return { ok: false, errors };

    const sha256 = await this.store.put(bytes);
    const module: FilterModule = { name, sha256, size: bytes.byteLength, abiVersion: check.abiVersion };
    if (configSchema !== undefined) module.configSchema = configSchema;
    await this.updateIndex((filters) => [...filters.filter((f) => f.name !== name), module]);
    return { ok: true, module };
  }

  async remove(name: string): Promise<boolean> {
    let removed = false;
    await this.updateIndex((filters) => {
      const kept = filters.filter((f) => f.name !== name);
      removed = kept.length !== filters.length;
      return kept;
    });
    return removed;
  }

  /** Module bytes by sha256: uploads from the store, built-ins from the build output. */
  async read(sha256: string): Promise<Uint8Array | undefined> {
    const stored = await this.store.get(sha256);
    if (stored) return stored;
    const builtin = this.builtins().find((f) => f.sha256 === sha256);
    if (!builtin) return undefined;
    try {
      const bytes = new Uint8Array(await readFile(join(this.manifestPath, '..', `${builtin.name}.wasm`)));
      return sha256Hex(bytes) === sha256 ? bytes : undefined;
    } catch {
      return undefined;
    }
  }

  /** Errors of a binding's config against the filter's schema (paths relative to the config). */
  validateConfig(filter: FilterModule, config: unknown): ConfigError[] {
    return validateConfig(filter.configSchema, config);
  }

  /** Whether the module's own proxy_on_configure accepts a plugin configuration (see configure-check.ts). */
  async configureErrors(filter: FilterModule, plugin: { name: string; rootId: string; configuration: string }): Promise<ConfigError[]> {
    const module = await this.compiled(filter.sha256);
    if (!module) return [{ path: '', message: `the bytes of filter "${filter.name}" (sha256 ${filter.sha256.slice(0, 12)}) are missing from the data dir` }];
    return this.sandbox.check(module, plugin);
  }

  /** Stops the configure check's worker (it never keeps the process alive; this is for tidy shutdowns). */
  close(): Promise<void> {
    return this.sandbox.close();
  }

  /** A module read and compiled once per build (content-addressed, so never stale): an apply with many bindings of one filter compiles it once. */
  private compiled(sha256: string): Promise<WasmModule | undefined> {
    let p = this.modules.get(sha256);
    if (!p) {
      p = this.read(sha256).then((bytes) => (bytes ? wasmApi.compile(bytes) : undefined));
      this.modules.set(sha256, p);
      p.then((m) => m === undefined && this.modules.delete(sha256), () => this.modules.delete(sha256));
    }
    return p;
  }

  // Read-modify-write of catalog.json, serialized within the process and
  // replaced atomically on disk.
  private updateIndex(change: (filters: FilterModule[]) => FilterModule[]): Promise<void> {
    const next = this.writes.then(async () => {
      const filters = change(await this.uploaded());
      mkdirDurable(this.store.dir);
      await writeFileAtomic(this.indexPath, `${JSON.stringify({ filters }, null, 2)}\n`, 0o644);
      this.damagedIndexReported = false;
    });
    this.writes = next.catch(() => undefined);
    return next;
  }
}
