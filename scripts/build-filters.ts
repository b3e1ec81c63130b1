// Builds the built-in proxy-wasm filters (filters/<name>/index.ts) with asc's
// optimiser, checks each module exactly as the control plane checks uploads
// (strict: ABI 0.2.1, _initialize, malloc + proxy_on_memory_allocate, no
// foreign imports, < 32 KB) and writes filters/dist/<name>.wasm plus
// filters/dist/manifest.json. A filter whose sources and flags are unchanged
// since the last build is not recompiled, so `npm test` stays fast.
//
// Usage: tsx scripts/build-filters.ts [--force] [name ...]

import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { checkModule } from '../control/filters/check.ts';
import { compileFilter as compile, FILTER_ASC_FLAGS } from '../control/filters/compile.ts';
import type { FilterModule } from '../control/model/types.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const filtersDir = join(root, 'filters');
const distDir = join(filtersDir, 'dist');
export const SIZE_BUDGET = 32 * 1024;

/** The built-ins import the SDK by relative path, so its abort handler is named from the checkout's root. */
const ABORT = 'filters/sdk/memory/abortHandler';
/** Every flag the module's bytes depend on (for the source hash). */
const ASC_FLAGS = [...FILTER_ASC_FLAGS, '--use', `abort=${ABORT}`];

export interface BuiltFilter extends FilterModule {
  sourceHash: string;
}

export interface Manifest {
  filters: BuiltFilter[];
}

function filterNames(): string[] {
  return readdirSync(filtersDir)
    .filter((n) => n !== 'sdk' && n !== 'dist' && existsSync(join(filtersDir, n, 'index.ts')))
    .sort();
}

function tsFiles(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir).sort()) {
    const p = join(dir, e);
    if (statSync(p).isDirectory()) out.push(...tsFiles(p));
    else if (e.endsWith('.ts') || e === 'schema.json') out.push(p);
  }
  return out;
}

/** Hash of everything that determines the module's bytes. */
function sourceHash(name: string): string {
  const h = createHash('sha256');
  h.update(ASC_FLAGS.join(' '));
  h.update(JSON.parse(readFileSync(join(root, 'node_modules/assemblyscript/package.json'), 'utf8')).version);
  for (const f of [...tsFiles(join(filtersDir, 'sdk')), ...tsFiles(join(filtersDir, name))]) {
    h.update(relative(root, f));
    h.update(readFileSync(f));
  }
  return h.digest('hex');
}

function readManifest(): Manifest {
  try {
    return JSON.parse(readFileSync(join(distDir, 'manifest.json'), 'utf8')) as Manifest;
  } catch {
    return { filters: [] };
  }
}

function writeAtomic(path: string, data: Uint8Array | string): void {
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, data);
  renameSync(tmp, path);
}

/** Compiles one built-in filter's entry file; throws with asc's diagnostics. */
export function compileFilter(entry: string): Promise<Uint8Array> {
  return compile(entry, { baseDir: root, abort: ABORT });
}

export async function buildFilters(options: { force?: boolean; only?: string[] } = {}): Promise<Manifest> {
  mkdirSync(distDir, { recursive: true });
  const previous = new Map(readManifest().filters.map((f) => [f.name, f]));
  const built: BuiltFilter[] = [];
  const failures: string[] = [];
  for (const name of filterNames()) {
    const hash = sourceHash(name);
    const wasmPath = join(distDir, `${name}.wasm`);
    const prev = previous.get(name);
    const skip = options.only && options.only.length > 0 && !options.only.includes(name);
    if (prev && existsSync(wasmPath) && (skip || (!options.force && prev.sourceHash === hash))) {
      const onDisk = readFileSync(wasmPath);
      // A cached module is re-checked: the checks may have changed since it was built.
      const recheck = checkModule(onDisk, { strict: true, maxBytes: SIZE_BUDGET });
      if (createHash('sha256').update(onDisk).digest('hex') === prev.sha256 && recheck.ok) {
        built.push(prev);
        continue;
      }
    }
    const started = performance.now();
    const bytes = await compileFilter(join(filtersDir, name, 'index.ts'));
    const check = checkModule(bytes, { strict: true, maxBytes: SIZE_BUDGET });
    if (!check.ok) {
      failures.push(`${name}: ${check.reasons.join('; ')}`);
      continue;
    }
    writeAtomic(wasmPath, bytes);
    const schemaPath = join(filtersDir, name, 'schema.json');
    const configSchema = existsSync(schemaPath) ? JSON.parse(readFileSync(schemaPath, 'utf8')) : undefined;
    built.push({
      name,
      sha256: createHash('sha256').update(bytes).digest('hex'),
      size: bytes.byteLength,
      abiVersion: check.abiVersion,
      configSchema,
      sourceHash: hash,
    });
    console.log(`${name}: ${bytes.byteLength} bytes in ${Math.round(performance.now() - started)} ms`);
  }
  if (failures.length > 0) throw new Error(`filter build failed:\n  ${failures.join('\n  ')}`);
  const manifest: Manifest = { filters: built };
  writeAtomic(join(distDir, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`);
  return manifest;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const args = process.argv.slice(2);
  const started = performance.now();
  buildFilters({ force: args.includes('--force'), only: args.filter((a) => !a.startsWith('--')) })
    .then((m) => {
      console.log(`filters built: ${m.filters.map((f) => `${f.name} ${f.size} B`).join(', ')} (${Math.round(performance.now() - started)} ms)`);
    })
    .catch((err: Error) => {
      console.error(err.message);
      process.exit(1);
    });
}
