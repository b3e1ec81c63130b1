// Loads the built filters (building them if needed: the build is cached by
// source hash) into weft's proxy-wasm host and drives one request through.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildFilters } from '../../../scripts/build-filters.ts';
import { WasmPlugin } from '../../../sidecar/wasm/index.ts';
import type { HeaderPairs, HostEnv, HttpStream, StreamOutcome, StreamProperties } from '../../../sidecar/wasm/index.ts';

const dist = fileURLToPath(new URL('../../../filters/dist/', import.meta.url));
let built: Promise<unknown> | undefined;

export async function filterBytes(name: string): Promise<Uint8Array> {
  built ??= buildFilters();
  await built;
  return new Uint8Array(readFileSync(join(dist, `${name}.wasm`)));
}

export async function loadFilter(name: string, config: unknown, env: HostEnv = {}): Promise<WasmPlugin> {
  return WasmPlugin.load(await filterBytes(name), { name, configuration: JSON.stringify(config) }, env);
}

export interface Exchange {
  stream: HttpStream;
  request: StreamOutcome;
  response?: StreamOutcome;
}

/** One request (and, if the filter let it through, a response) through the plugin. */
export async function exchange(
  plugin: WasmPlugin,
  headers: Record<string, string> | HeaderPairs,
  options: { properties?: StreamProperties; status?: number; method?: string; path?: string } = {},
): Promise<Exchange> {
  const pairs: HeaderPairs = Array.isArray(headers) ? headers : Object.entries(headers);
  const base: HeaderPairs = [
    [':method', options.method ?? 'GET'],
    [':path', options.path ?? '/'],
    [':authority', 'orders'],
    [':scheme', 'http'],
  ];
  const stream = plugin.newHttpStream(options.properties ?? {});
  const request = await stream.onRequestHeaders([...base, ...pairs], true);
  let response: StreamOutcome | undefined;
  if (request.action === 'continue') response = await stream.onResponseHeaders([[':status', String(options.status ?? 200)]], true);
  stream.complete();
  return { stream, request, response };
}

export function header(pairs: HeaderPairs | undefined, name: string): string | undefined {
  return pairs?.find(([k]) => k === name)?.[1];
}

export function headerValues(pairs: HeaderPairs | undefined, name: string): string[] {
  return (pairs ?? []).filter(([k]) => k === name).map(([, v]) => v);
}

/**
 * The SDK probe filter (filters/test/sdk-probe), compiled with the
 * built-ins' flags and cached in filters/dist/test/ by source hash.
 */
export async function probeBytes(): Promise<Uint8Array> {
  const { createHash } = await import('node:crypto');
  const { existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } = await import('node:fs');
  const { compileFilter } = await import('../../../scripts/build-filters.ts');
  const entry = fileURLToPath(new URL('../../../filters/test/sdk-probe/index.ts', import.meta.url));
  const sdk = fileURLToPath(new URL('../../../filters/sdk/', import.meta.url));
  const h = createHash('sha256').update(readFileSync(entry));
  for (const f of readdirSync(sdk).sort()) h.update(f).update(readFileSync(join(sdk, f)));
  const cached = join(dist, 'test', `sdk-probe-${h.digest('hex').slice(0, 16)}.wasm`);
  if (existsSync(cached)) return new Uint8Array(readFileSync(cached));
  const bytes = await compileFilter(entry);
  mkdirSync(join(dist, 'test'), { recursive: true });
  for (const old of readdirSync(join(dist, 'test'))) if (old.startsWith('sdk-probe-')) rmSync(join(dist, 'test', old), { force: true });
  writeFileSync(cached, bytes);
  return bytes;
}
