// Wasm plugins for the HTTP filter chain: module bytes fetched over HTTP (or
// taken inline / from a file), verified against the sha256 in the config,
// compiled once per digest and loaded once per distinct plugin config. A
// module that cannot be fetched, verified or started makes the resource that
// named it NACKed, so the previous filter keeps running.

import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { request } from 'undici';
import type { WasmPluginConfig } from './config.ts';
import { MetricStore, WasmPlugin } from './wasm/index.ts';
import { logLevelNames } from './wasm/abi.ts';
import type { HostEnv } from './wasm/index.ts';
import { checkImportTypes } from './wasm/import-signatures.ts';
import { wasmApi } from './wasm/wasm-api.ts';
import type { WasmModule } from './wasm/wasm-api.ts';

/** Where a config's compiled module is cached: its sha256 or file; '' for inline bytes (not cached). */
function moduleKey(c: WasmPluginConfig): string {
  return c.code.kind === 'remote' ? c.code.sha256 : c.code.kind === 'file' ? `file:${c.code.path}` : '';
}

function pluginKey(c: WasmPluginConfig): string {
  const code = c.code.kind === 'remote' ? `sha256:${c.code.sha256}` : c.code.kind === 'file' ? `file:${c.code.path}` : `inline:${createHash('sha256').update(c.code.bytes).digest('hex')}`;
  return JSON.stringify([c.name, c.rootId, c.vmId, Buffer.from(c.configuration).toString('base64'), code, c.failOpen]);
}

/** proxy-wasm's level names by number, and off. */
const LOG_LEVEL_NAMES = [...logLevelNames, 'off'] as const;

export class WasmFilterLoader {
  readonly #modules = new Map<string, Promise<WasmModule>>();
  readonly #plugins = new Map<string, Promise<WasmPlugin>>();
  /** The plugins of #plugins once loaded (their promises settled). */
  readonly #loaded = new Map<string, WasmPlugin>();
  /** What each plugin of #plugins uses: its name's metric store and its compiled module (what retain keeps). */
  readonly #uses = new Map<string, { name: string; module: string }>();
  /** Each plugin name's metric store, handed from a plugin to the one that replaces it (a new module or config). */
  readonly #stores = new Map<string, MetricStore>();
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
    // A plugin whose VM failed is not handed to a config pushed again, even an identical one: as Envoy's
    // (proxy-wasm's getOrCreateThreadLocalWasm skips a failed VM), the new config gets a new VM. Until 2026-11-29
    // the failed one was reused, so re-pushing a module after a crash left every request failing.
    if (p && this.#loaded.get(key)?.failed) {
      this.#forget(key);
      p = undefined;
    }
    if (!p) {
      const name = config.name || 'wasm';
      let metrics = this.#stores.get(name);
      if (!metrics) this.#stores.set(name, (metrics = new MetricStore()));
      const loading = this.#module(config).then((module) =>
        WasmPlugin.load(module, {
          name,
          rootId: config.rootId,
          vmId: config.vmId,
          configuration: config.configuration,
          failurePolicy: config.failOpen ? 'fail_open' : 'fail_closed',
          metrics,
        }, this.#logLevel === undefined ? this.#env : { ...this.#env, logLevel: LOG_LEVEL_NAMES[this.#logLevel] }),
      );
      p = loading;
      this.#plugins.set(key, loading);
      this.#uses.set(key, { name, module: moduleKey(config) });
      loading.then(
        (plugin) => {
          if (this.#plugins.get(key) === loading) this.#loaded.set(key, plugin);
        },
        // A failed load is retried by the next config push, not cached forever.
        () => {
          if (this.#plugins.get(key) !== loading) return;
          this.#plugins.delete(key);
          this.#uses.delete(key);
        },
      );
    }
    return p;
  }

  /**
   * Keeps the loaded plugins in `live` (those some resource the sidecar holds names) and lets the others go, as
   * Envoy frees a filter config no listener or ECDS resource holds: each is closed (proxy_on_done, proxy_on_delete,
   * its ticks stopped) once no stream is open on it, and a name no live plugin has loses its metrics. Until
   * 2026-11-29 every plugin ever loaded stayed, with its VM: a filter updated N times kept N VMs ticking, and the
   * Prometheus output listed each one's metrics again.
   */
  retain(live: ReadonlySet<WasmPlugin>): void {
    for (const [key, plugin] of [...this.#loaded]) if (!live.has(plugin)) this.#forget(key);
    // What the plugins left (loaded or loading) still use: their names' metric stores, their compiled modules.
    const names = new Set<string>();
    const modules = new Set<string>();
    for (const { name, module } of this.#uses.values()) {
      names.add(name);
      modules.add(module);
    }
    for (const name of this.#stores.keys()) if (!names.has(name)) this.#stores.delete(name);
    for (const key of this.#modules.keys()) if (!modules.has(key)) this.#modules.delete(key);
  }

  #forget(key: string): void {
    const plugin = this.#loaded.get(key);
    this.#plugins.delete(key);
    this.#loaded.delete(key);
    this.#uses.delete(key);
    if (plugin) closeWhenIdle(plugin);
  }

  /** Already loaded (for the request path, which never waits on a fetch). */
  async loaded(config: WasmPluginConfig): Promise<WasmPlugin | undefined> {
    return this.#plugins.get(pluginKey(config));
  }

  #module(config: WasmPluginConfig): Promise<WasmModule> {
    const code = config.code;
    const cacheKey = moduleKey(config);
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
    this.#loaded.clear();
    this.#uses.clear();
  }
}

/** How often a plugin let go of is checked for open streams before it is closed. */
const IDLE_CHECK_MS = 1000;

/** Closes a plugin nothing configures any more once the streams still running on it have ended. */
function closeWhenIdle(plugin: WasmPlugin): void {
  if (plugin.openStreams === 0) return void plugin.close(200).catch(() => undefined);
  setTimeout(closeWhenIdle, IDLE_CHECK_MS, plugin).unref();
}
