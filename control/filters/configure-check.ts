// Does the filter itself accept a binding's config? The config schema catches
// wrong shapes; only the module's own proxy_on_configure knows, say, that an
// RSA key does not parse. A config it refuses would reach every proxy of the
// service, be NACKed there, and leave the listener naming a filter config
// no proxy holds: every request through it fails (as in Envoy). So before a
// binding is stored, the module is started here, in the same proxy-wasm host
// the weft sidecar runs (sidecar/wasm), with the plugin configuration the
// translator will send, and a refusal is an API error naming the binding's
// config, with what the filter logged while refusing it.
//
// The module runs with no clusters (an http_call from on_configure fails as
// it would in a proxy without that cluster) and its own shared data scope.
import { SharedState, WasmLoadError, WasmPlugin } from '../../sidecar/wasm/index.ts';
import type { WasmModule } from '../../sidecar/wasm/wasm-api.ts';
import type { ConfigError } from './config-schema.ts';

/** How much of what the filter logged while refusing a config goes into the error. */
const MAX_LOG_LINES = 5;

/** `module`: the module's bytes, or the module compiled once (a catalog checks many configs against one build). */
export async function configureErrors(module: Uint8Array | WasmModule, plugin: { name: string; rootId: string; configuration: string }): Promise<ConfigError[]> {
  const logged: string[] = [];
  let loaded: WasmPlugin;
  try {
    loaded = await WasmPlugin.load(module, { name: plugin.name, rootId: plugin.rootId, configuration: plugin.configuration }, {
      logLevel: 'warn',
      maxLogEntries: 0,
      shared: new SharedState(),
      hasCluster: () => false,
      onLog: (entry) => {
        if (logged.length < MAX_LOG_LINES) logged.push(entry.message);
      },
    });
  } catch (err) {
    if (!(err instanceof WasmLoadError)) throw err;
    const said = logged.length > 0 ? `; it logged: ${logged.join(' | ')}` : '';
    return [{ path: '', message: `the filter refuses this config (${err.message})${said}` }];
  }
  await loaded.close(100);
  return [];
}
