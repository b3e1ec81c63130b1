// Builds the example filter with asc into build/api-key.wasm. The flags are
// the ones every weft filter needs (docs/writing-filters.md explains each);
// a build whose sources and flags are unchanged is reused.
//
// Usage: npx tsx examples/filters/api-key/build.ts

import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { compileFilter, FILTER_ASC_FLAGS } from '../../../control/filters/compile.ts';

const here = fileURLToPath(new URL('.', import.meta.url));
const root = fileURLToPath(new URL('../../../', import.meta.url));
export const wasmPath = join(here, 'build', 'api-key.wasm');

/** The example imports the SDK by relative path, so its abort handler is named from the checkout's root. */
const abort = 'filters/sdk/memory/abortHandler';
const flags = [...FILTER_ASC_FLAGS, '--use', `abort=${abort}`];

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
  ).sort();
}

function sourceHash(): string {
  const hash = createHash('sha256').update(flags.join(' '));
  for (const file of [...sources(join(root, 'filters', 'sdk')), ...sources(join(here, 'assembly'))]) {
    hash.update(relative(root, file)).update(readFileSync(file));
  }
  return hash.digest('hex');
}

/** Returns the module's bytes, compiling only when the sources changed. */
export async function buildApiKeyFilter(): Promise<Uint8Array> {
  const hash = sourceHash();
  const stamp = `${wasmPath}.sha256`;
  if (existsSync(wasmPath) && existsSync(stamp) && readFileSync(stamp, 'utf8') === hash) return readFileSync(wasmPath);
  const binary = await compileFilter(join(here, 'assembly', 'index.ts'), { baseDir: root, abort });
  mkdirSync(join(here, 'build'), { recursive: true });
  writeFileSync(wasmPath, binary);
  writeFileSync(stamp, hash);
  return binary;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const bytes = await buildApiKeyFilter();
  console.log(`${relative(root, wasmPath)}: ${bytes.length} bytes`);
}
