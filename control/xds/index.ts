// control/xds public surface: the snapshot cache, the ADS server (SotW and
// Delta), the model -> xDS controller, proxy status and metrics, wired by
// createXdsServer. `weft control` and the REST API use only this file.
import { encodeResource } from '../envoy/index.ts';
import type { MeshModel, ProxyRef } from '../model/types.ts';
import type { TranslateOptions } from '../translate/index.ts';
import { translateEndpoints, translateProxy } from '../translate/index.ts';
import type { ResourceEncoder } from './cache.ts';
import { SnapshotCache } from './cache.ts';
import type { ControllerError, ModelSource, SecretSource, Translator } from './controller.ts';
import { XdsController } from './controller.ts';
import { createXdsMetrics } from './metrics.ts';
import type { Authenticate } from './server.ts';
import { AdsServer, combineHooks } from './server.ts';
import { ProxyStatusBook } from './status.ts';
import type { XdsHooks } from './stream.ts';

export { SnapshotCache, contentHash, versionOf } from './cache.ts';
export type { ChangeStamp, EncodedResource, GroupSnapshot, ResourceEncoder, ResourceInput, SnapshotError } from './cache.ts';
export { XdsController, serviceOfCluster } from './controller.ts';
export type { ControllerError, ModelChange, ModelSource, SecretSource, Translator } from './controller.ts';
export { storeModelSource } from './model-source.ts';
export { TypeUrl, PUSH_ORDER } from './discovery.ts';
export { AdsServer, combineHooks } from './server.ts';
export type { Authenticate, AuthResult } from './server.ts';
export { CONFIG_KINDS, ProxyStatusBook } from './status.ts';
export type { NackRecord, ProxyStatus, ProxySyncStatus } from './status.ts';
export { createXdsMetrics, shortType } from './metrics.ts';
export type { XdsMetrics } from './metrics.ts';
export { groupKey, proxyFromNode, nodeMetadata } from './node.ts';
export type { ResponseInfo, StreamInfo, StreamType, TypeConfig, XdsHooks } from './stream.ts';

export interface XdsServerOptions {
  /** The mesh model and its changes (storeModelSource(store, registry) in production). */
  source: ModelSource;
  /** Defaults to control/translate with translateOptions. */
  translator?: Translator;
  translateOptions?: TranslateOptions;
  /** Defaults to control/envoy's validating encoder. */
  encode?: ResourceEncoder;
  /** Stream admission (identity, issue 7). Default: every well-formed node is accepted. */
  authenticate?: Authenticate;
  /** SDS Secrets per proxy identity (issue 7). Default: none served. */
  secrets?: SecretSource;
  /** Extra lifecycle observers (benchmarks, logs). */
  hooks?: XdsHooks;
  /** Push after no change has arrived for this long (default 100 ms)... */
  debounceMs?: number;
  /** ... or this long after the first change not yet pushed, whichever is sooner (default 1 s). */
  debounceMaxMs?: number;
  /** A stream whose proxy reads nothing for this long is reset so it resyncs (default 60 s). */
  maxBlockedMs?: number;
  /** How long LDS and RDS wait for the answer to a CDS response that added clusters (default 15 s; 0: they do not wait, as Istio's). */
  routesWaitMs?: number;
  /** How long disconnected proxies stay in the status list (default 10 min). */
  retainDisconnectedMs?: number;
  onErrors?(kind: 'group' | 'endpoints', errors: ControllerError[]): void;
}

export interface XdsServer {
  /** Binds host:port (0 = ephemeral), starts the controller; resolves with the bound port. Plaintext unless given TLS credentials (tls.ts). */
  listen(host: string, port: number, credentials?: import('@grpc/grpc-js').ServerCredentials): Promise<number>;
  /** Stops the controller and the server; ends every stream. */
  close(): Promise<void>;
  status: ProxyStatusBook;
  /** prom-client Registry with the weft_xds_* metrics, for /metrics. */
  metrics: import('prom-client').Registry;
  cache: SnapshotCache;
  controller: XdsController;
  ads: AdsServer;
  /** Errors of snapshots currently refused (resource, field path, revision). */
  errors(): ControllerError[];
}

/** The translator over control/translate, with the wasm module options bound. */
export function defaultTranslator(options: TranslateOptions): Translator {
  return {
    translateProxy: (model: MeshModel, proxy: ProxyRef) => translateProxy(model, proxy, options),
    translateEndpoints: (model: MeshModel, names: Iterable<string>) => translateEndpoints(model, names),
  };
}

/**
 * The xDS control plane in one object: cache, controller, ADS server,
 * status and metrics. Nothing listens until listen() is called.
 */
export function createXdsServer(options: XdsServerOptions): XdsServer {
  const cache = new SnapshotCache(options.encode ?? encodeResource);
  const metrics = createXdsMetrics();
  const status = new ProxyStatusBook({ retainDisconnectedMs: options.retainDisconnectedMs });
  const translator = options.translator ?? defaultTranslator(options.translateOptions ?? { wasmBaseUrl: 'http://127.0.0.1:8080', wasmClusterName: 'weft-control' });
  // The controller asks the server (made after it) which EDS names proxies watch.
  let ads: AdsServer;
  const controller = new XdsController({
    cache,
    source: options.source,
    translator,
    secrets: options.secrets,
    debounceMs: options.debounceMs,
    debounceMaxMs: options.debounceMaxMs,
    watchedEndpoints: () => ads.watchedEndpoints(),
    onErrors: (kind, errors) => {
      metrics.snapshotErrors.inc({ kind });
      options.onErrors?.(kind, errors);
    },
  });
  ads = new AdsServer({
    cache,
    hooks: combineHooks(status, metrics.hooks, options.hooks),
    authenticate: options.authenticate,
    lookupService: controller.lookupService,
    onProxyConnected: (proxy, group) => controller.ensureGroup(proxy, group),
    onGroupIdle: (group) => controller.dropGroup(group),
    maxBlockedMs: options.maxBlockedMs,
    routesWaitMs: options.routesWaitMs,
  });
  status.setConfigSource((id) => ads.stream(id)?.config());
  return {
    async listen(host, port, credentials) {
      controller.start();
      return ads.listen(host, port, credentials);
    },
    async close() {
      controller.stop();
      await ads.close();
    },
    status,
    metrics: metrics.registry,
    cache,
    controller,
    ads,
    errors: () => controller.errors(),
  };
}
