// Compiles an AssemblyScript proxy-wasm filter with the flags every weft
// filter needs (docs/writing-filters.md explains each). Shared by the
// built-in filters' build (scripts/build-filters.ts), the example filter's,
// and `weft filter build` for a filter project anywhere on disk.
//
// A project outside the weft checkout imports the SDK as
// `weft/filters/sdk/...`. asc looks such a package up in node_modules; the
// lookup is answered from this checkout whether or not the project has weft
// installed, so the SDK the filter compiles against is the one of the weft
// that builds it.

import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const weftRoot = fileURLToPath(new URL('../../', import.meta.url));

/** Flags that make an AssemblyScript module loadable by Envoy and the weft sidecar. */
export const FILTER_ASC_FLAGS: readonly string[] = [
  // minimal = TLSF + mark/sweep without a shadow stack; the SDK collects at
  // the end of host callbacks (filters/sdk/exports.ts).
  '--runtime', 'minimal',
  '--optimizeLevel', '3', '--shrinkLevel', '2',
  '--noAssert',
  // the host calls _initialize before the root context exists
  '--exportStart', '_initialize',
];

/** The SDK's abort handler (no env.abort import: aborts log through proxy_log and trap), as a project outside the checkout names it. */
export const PACKAGE_ABORT = '~lib/weft/filters/sdk/memory/abortHandler';

/** A path asc asks for under node_modules/weft/, answered from this checkout. */
function fromWeft(path: string): string {
  const m = /^.*[\\/]node_modules[\\/]weft[\\/](.*)$/.exec(path);
  return m ? join(weftRoot, m[1]!) : path;
}

export interface CompileOptions {
  /**
   * Directory asc compiles from: the entry's path under it names the module's functions, and its node_modules
   * (and those above) are where packages are looked up. Default: the nearest directory above the entry with a
   * package.json (the filter's project), else the entry's own, so one source builds to one module wherever
   * `weft filter build` runs (from the process's directory, a CI build and a laptop build differed).
   */
  baseDir?: string;
  /** The abort handler element for `--use abort=` (default PACKAGE_ABORT). */
  abort?: string;
}

/**
 * An entry that imports the SDK by a relative path (the examples and
 * built-ins in this checkout do) names its abort handler by that path, from
 * the directory above the SDK's `filters/`: where to compile it from and what
 * to `--use`. Undefined for an entry that imports `weft/filters/sdk/...`.
 */
function relativeSdk(entryPath: string): { baseDir: string; abort: string } | undefined {
  let source: string;
  try {
    source = readFileSync(entryPath, 'utf8');
  } catch {
    return undefined;
  }
  const m = /from\s+['"]((?:\.\.?\/)+(?:[^'"]*\/)?filters\/sdk)\/[^'"]*['"]/.exec(source);
  if (!m) return undefined;
  const sdk = resolve(dirname(entryPath), m[1]!);
  const root = dirname(dirname(sdk));
  if (relative(root, entryPath).startsWith('..')) return undefined;
  return { baseDir: root, abort: `${relative(root, sdk).split(sep).join('/')}/memory/abortHandler` };
}

/** The nearest directory holding `entryPath` with a package.json, else the entry's own. */
function projectDir(entryPath: string): string {
  for (let dir = dirname(entryPath); ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    if (dirname(dir) === dir) return dirname(entryPath);
  }
}

/** Compiles one entry file; throws with asc's diagnostics. */
export async function compileFilter(entry: string, options: CompileOptions = {}): Promise<Uint8Array> {
  if (options.abort === undefined) {
    const local = relativeSdk(resolve(options.baseDir ?? process.cwd(), entry));
    if (local) return compileFilter(resolve(options.baseDir ?? process.cwd(), entry), local);
  }
  const entryPath = resolve(options.baseDir ?? process.cwd(), entry);
  const baseDir = options.baseDir ?? projectDir(entryPath);
  const file = relative(baseDir, entryPath);
  // Loaded on demand: asc takes seconds to import, and a cached build never needs it.
  const { default: asc } = await import('assemblyscript/asc');
  let binary: Uint8Array | undefined;
  const stderr: string[] = [];
  const { error } = await asc.main([file, '--baseDir', baseDir, '--outFile', 'module.wasm', ...FILTER_ASC_FLAGS, '--use', `abort=${options.abort ?? PACKAGE_ABORT}`], {
    stdout: { write: () => true } as never,
    stderr: { write: (s: string | Uint8Array) => (stderr.push(String(s)), true) } as never,
    writeFile: (name: string, contents: Uint8Array | string) => {
      if (name.endsWith('.wasm')) binary = contents as Uint8Array;
    },
    readFile: (name: string, dir: string) => {
      const path = fromWeft(resolve(dir, name));
      return existsSync(path) ? readFileSync(path, 'utf8') : null;
    },
    listFiles: (name: string, dir: string) => {
      const path = fromWeft(resolve(dir, name));
      return existsSync(path) ? readdirSync(path).filter((f) => f.endsWith('.ts')) : null;
    },
  } as never);
  if (error || binary === undefined) throw new Error(`asc failed for ${file}:\n${stderr.join('')}${error?.message ?? ''}`);
  return binary;
}
