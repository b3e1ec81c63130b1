// Wasm plugins for the HTTP filter chain: module bytes fetched over HTTP (or
// taken inline / from a file), verified against the sha256 in the config,
// compiled once per digest and loaded once per distinct plugin config. A
// module that cannot be fetched, verified or started makes the resource that
// named it NACKed, so the previous filter keeps running.

import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { request } from 'undici';
import type { WasmPluginConfig } from './config.ts';
import { WasmPlugin } from './wasm/index.ts';
import { logLevelNames } from './wasm/abi.ts';
import type { HostEnv } from './wasm/index.ts';
import { checkImportTypes } from './wasm/import-signatures.ts';
import { wasmApi } from './wasm/wasm-api.ts';
import type { WasmModule } from './wasm/wasm-api.ts';

function pluginKey(c: WasmPluginConfig): string {
  const code = c.code.kind === 'remote' ? `sha256:${c.code.sha256}` : c.code.kind === 'file' ? `file:${c.code.path}` : `inline:${createHash('sha256').update(c.code.bytes).digest('hex')}`;
  return JSON.stringify([c.name, c.rootId, c.vmId, Buffer.from(c.configuration).toString('base64'), code, c.failOpen]);
}

/** proxy-wasm's level names by number, and off. */
const LOG_LEVEL_NAMES = [...logLevelNames, 'off'] as const;

export class WasmFilterLoader {
  readonly #modules = new Map<string, Promise<WasmModule>>();
  readonly #plugins = new Map<string, Promise<WasmPlugin>>();
  readonly #env: HostEnv;
  /** Set by setLogLevel: what every plugin, loaded or to come, drops below. */
  #logLevel: number | undefined;

  constructor(env: HostEnv) {
    this.#env = env;
  }

  /** The wasm logger's level (0 trace .. 5 critical, 6 off) for every plugin loaded and every one loaded later. */
  setLogLevel(level: number): void {
    this.#logLevel = level;
    for (const p of this.#plugins.values()) void p.then((plugin) => plugin.setLogLevel(level), () => undefined);
  }

  /** The running plugin for a config, loading it first if needed; rejects with a message naming the problem. */
  load(config: WasmPluginConfig): Promise<WasmPlugin> {
    const key = pluginKey(config);
    let p = this.#plugins.get(key);
    if (!p) {
      p = this.#module(config).then((module) =>
        WasmPlugin.load(module, {
          name: config.name || 'wasm',
          rootId: config.rootId,
          vmId: config.vmId,
          configuration: config.configuration,
          failurePolicy: config.failOpen ? 'fail_open' : 'fail_closed',
        }, this.#logLevel === undefined ? this.#env : { ...this.#env, logLevel: LOG_LEVEL_NAMES[this.#logLevel] }),
      );
      this.#plugins.set(key, p);
      // A failed load is retried by the next config push, not cached forever.
      p.catch(() => this.#plugins.delete(key));
    }
    return p;
  }

  /** Already loaded (for the request path, which never waits on a fetch). */
  async loaded(config: WasmPluginConfig): Promise<WasmPlugin | undefined> {
    return this.#plugins.get(pluginKey(config));
  }

  #module(config: WasmPluginConfig): Promise<WasmModule> {
    const code = config.code;
    const cacheKey = code.kind === 'remote' ? code.sha256 : code.kind === 'file' ? `file:${code.path}` : '';
    const cached = cacheKey ? this.#modules.get(cacheKey) : undefined;
    if (cached) return cached;
    const p = (async () => {
      let bytes: Uint8Array;
      if (code.kind === 'remote') {
        const res = await request(code.uri, { signal: AbortSignal.timeout(code.timeoutMs) }).catch((e: Error) => {
          throw new Error(`fetching ${code.uri}: ${e.message}`);
        });
        if (res.statusCode !== 200) {
          await res.body.dump();
          throw new Error(`fetching ${code.uri}: HTTP ${res.statusCode}`);
        }
        bytes = new Uint8Array(await res.body.arrayBuffer());
        const digest = createHash('sha256').update(bytes).digest('hex');
        if (digest !== code.sha256) throw new Error(`module from ${code.uri} has sha256 ${digest}, config says ${code.sha256}`);
      } else if (code.kind === 'file') {
        bytes = await readFile(code.path);
      } else bytes = code.bytes;
      checkImportTypes(bytes);
      return wasmApi.compile(bytes);
    })();
    if (cacheKey) {
      this.#modules.set(cacheKey, p);
      p.catch(() => this.#modules.delete(cacheKey));
    }
    return p;
  }

  async close(): Promise<void> {
    const plugins = await Promise.allSettled([...this.#plugins.values()]);
    await Promise.all(plugins.map((r) => (r.status === 'fulfilled' ? r.value.close(200) : undefined)));
    this.#plugins.clear();
  }
}
