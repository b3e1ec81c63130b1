// Builds the example filter with asc into build/api-key.wasm. The flags are
// the ones every weft filter needs (docs/writing-filters.md explains each);
// a build whose sources and flags are unchanged is reused.
//
// Usage: npx tsx examples/filters/api-key/build.ts

import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = fileURLToPath(new URL('.', import.meta.url));
const root = fileURLToPath(new URL('../../../', import.meta.url));
export const wasmPath = join(here, 'build', 'api-key.wasm');

const flags = [
  '--runtime', 'minimal',
  '--optimizeLevel', '3', '--shrinkLevel', '2',
  '--noAssert',
  '--exportStart', '_initialize',
  '--use', 'abort=filters/sdk/memory/abortHandler',
];

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
  const { default: asc } = await import('assemblyscript/asc');
  let binary: Uint8Array | undefined;
  const stderr: string[] = [];
  const { error } = await asc.main([relative(root, join(here, 'assembly', 'index.ts')), '--outFile', 'api-key.wasm', ...flags], {
    stdout: { write: () => true } as never,
    stderr: { write: (s: string | Uint8Array) => (stderr.push(String(s)), true) } as never,
    writeFile: (file: string, contents: Uint8Array | string) => {
      if (file.endsWith('.wasm')) binary = contents as Uint8Array;
    },
    readFile: (file: string, baseDir: string) => {
      const path = join(baseDir, file);
      return existsSync(path) ? readFileSync(path, 'utf8') : null;
    },
    listFiles: (dir: string, baseDir: string) => {
      const path = join(baseDir, dir);
      return existsSync(path) ? readdirSync(path).filter((f) => f.endsWith('.ts')) : null;
    },
  } as never);
  if (error || binary === undefined) throw new Error(`asc failed for the api-key example:\n${stderr.join('')}${error?.message ?? ''}`);
  mkdirSync(join(here, 'build'), { recursive: true });
  writeFileSync(wasmPath, binary);
  writeFileSync(stamp, hash);
  return binary;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  process.chdir(root);
  const bytes = await buildApiKeyFilter();
  console.log(`${relative(root, wasmPath)}: ${bytes.length} bytes`);
}
