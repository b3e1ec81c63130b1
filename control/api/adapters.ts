// Adapters from the control plane's real parts to the API's ports
// (deps.ts). control/main.ts uses them to wire `weft control`; tests use the
// same functions with in-memory parts, so what is tested is what runs.
import type { Registry as PromRegistry } from 'prom-client';
import { checkReferences } from '../model/references.ts';
import type { AuthorizationPolicy, DestinationPolicy, FilterBinding, Instance, MeshModel, PeerAuthentication, ProxyRef, Route, Service } from '../model/types.ts';
import { buildModel } from '../registry/build-model.ts';
import type { Registry } from '../registry/registry.ts';
import type { Store, StoredObject } from '../store/store.ts';
import { translateEndpoints, translateProxy, type TranslateOptions } from '../translate/index.ts';
import { TypeUrl } from '../envoy/type-urls.ts';
import type { ApiDeps, ConfigType, FilterCatalogPort, JoinTokenPort, ProxyResources, ProxyStatusPort, ProxyView, RegistryPort } from './deps.ts';
import { memoryAuditJournal, type AuditJournal } from './audit-journal.ts';
import type { TokenStore } from './tokens.ts';

const INSTANCE_KIND = 'Instance';

export function registryPort(store: Store, registry: Registry): RegistryPort {
  const view = (i: Instance) => {
    const seen = registry.lastSeen(i.id);
    return { ...i, live: registry.isLive(i.id), ...(seen === undefined ? {} : { lastHeartbeat: new Date(seen).toISOString() }) };
  };
  return {
    // The registry records its own actor ("registry") on the revisions it
    // makes; the instance routes journal the operator's token beside them.
    register: (service, namespace, input) => registry.register(service, namespace, input),
    heartbeat: (id) => registry.heartbeat(id) !== undefined,
    deregister: (id) => registry.deregister(id),
    setHealth: async (id, health) => (await registry.setHealth(id, health)) !== undefined,
    instances() {
      return store.list(INSTANCE_KIND).map((o) => view(registry.get(o.name) ?? (o.spec as Instance)));
    },
    // Every heartbeat, health change and deregistration looks its instance up: listing (and sorting) them all
    // for that made one heartbeat cost 42 ms at 1,000 instances and 260 ms at 5,000 (a scale review), so a mesh
    // on 10 s heartbeats fell behind past ~300 instances and its TTLs lapsed.
    instance(id) {
      const i = registry.get(id);
      return i === undefined ? undefined : view(i);
    },
  };
}

/** The store's read side over a fixed list of objects (a hypothetical state), for buildModel. */
function stateView(store: Store, objects: StoredObject[]): Store {
  const sorted = [...objects];
  return {
    ...store,
    revision: () => store.revision(),
    get: (kind, namespace, name) => sorted.find((o) => o.kind === kind && o.namespace === namespace && o.name === name),
    list: (kind) => (kind === undefined ? sorted : sorted.filter((o) => o.kind === kind)),
  };
}

/** Proxy status when no xDS server runs in this process (API-only tests and tools). */
export const noProxies: ProxyStatusPort = {
  list: () => [],
  get: () => undefined,
  config: () => undefined,
  ref: () => undefined,
};

/** What the API reads from control/xds's ProxyStatusBook. */
export interface XdsStatusSource {
  list(): XdsProxyStatus[];
  get(id: string): XdsProxyStatus | undefined;
  ref(id: string): ProxyRef | undefined;
  config(id: string): Record<string, { version: string; resources: { name: string; resource: unknown }[] }> | undefined;
  /** Why the control plane refused the snapshot of the proxy's group, if it did (the controller's errors for it). */
  refused?(id: string): { resource: string; path: string; message: string; revision: number }[];
}

interface XdsProxyStatus {
  id: string;
  service: string;
  namespace: string;
  kind: string;
  stream: string;
  connectedSince: string;
  lastAckAt?: string;
  status: ProxyView['status'];
  ackedVersions: Record<string, string>;
  lastNacks: Record<string, { typeUrl: string; message: string; version: string; time: string; revision?: number }>;
  convergenceMs?: number;
}

const TYPE_OF_URL: Record<string, ConfigType> = {
  [TypeUrl.Listener]: 'listeners',
  [TypeUrl.RouteConfiguration]: 'routes',
  [TypeUrl.Cluster]: 'clusters',
  [TypeUrl.ClusterLoadAssignment]: 'endpoints',
  [TypeUrl.ExtensionConfig]: 'extension-configs',
};
const URL_OF_TYPE = Object.fromEntries(Object.entries(TYPE_OF_URL).map(([url, type]) => [type, url])) as Record<ConfigType, string>;

function proxyView(s: XdsProxyStatus, refused: { resource: string; path: string; message: string; revision: number }[] = []): ProxyView {
  const versions: ProxyView['versions'] = {};
  for (const [url, version] of Object.entries(s.ackedVersions)) {
    const type = TYPE_OF_URL[url];
    if (type) versions[type] = version;
  }
  const view: ProxyView = {
    id: s.id,
    service: s.service,
    namespace: s.namespace,
    kind: s.kind,
    // A proxy whose config the control plane refuses to build gets nothing new: it showed SYNCED (nothing pending,
    // nothing NACKed) while it ran an old config, or waited unready with none, and only the control plane's log said why.
    status: s.status !== 'DISCONNECTED' && refused.length > 0 ? 'NOT_SENT' : s.status,
    stream: s.stream,
    connectedSince: s.connectedSince,
    versions,
    nacks: Object.values(s.lastNacks).map((n) => ({ type: TYPE_OF_URL[n.typeUrl] ?? n.typeUrl, message: n.message, version: n.version, time: n.time, ...(n.revision === undefined ? {} : { revision: n.revision }) })),
  };
  if (s.convergenceMs !== undefined) view.convergenceMs = s.convergenceMs;
  if (s.lastAckAt !== undefined) view.lastAckAt = s.lastAckAt;
  if (refused.length > 0) view.refused = refused.map((e) => ({ path: e.resource ? `${e.resource}: ${e.path}` : e.path, message: e.message, revision: e.revision }));
  return view;
}

export function proxyStatusPort(source: XdsStatusSource): ProxyStatusPort {
  return {
    list: () => source.list().map((s) => proxyView(s, source.refused?.(s.id))),
    get: (id) => {
      const s = source.get(id);
      return s ? proxyView(s, source.refused?.(id)) : undefined;
    },
    ref: (id) => source.ref(id),
    config: (id, type) => {
      const byType = source.config(id);
      if (!byType) return undefined;
      return (byType[URL_OF_TYPE[type]]?.resources ?? [])
        .map((r) => ({ name: r.name, value: r.resource }))
        .sort((a, b) => a.name.localeCompare(b.name));
    },
  };
}

export function translatePort(options: TranslateOptions): (model: MeshModel, proxy: ProxyRef) => ProxyResources {
  return (model, proxy) => {
    const out = translateProxy(model, proxy, options);
    const eds = translateEndpoints(model, out.endpointNames);
    const located = [...out.errors, ...eds.errors].map((e) => ({ path: e.resource ? `${e.resource}: ${e.path}` : e.path, message: e.message }));
    return {
      listeners: out.listeners,
      routes: out.routes,
      clusters: out.clusters,
      endpoints: eds.endpoints,
      'extension-configs': out.extensionConfigs,
      errors: located,
    };
  };
}

export interface ApiParts {
  store: Store;
  registry: Registry;
  tokens: TokenStore;
  filters: FilterCatalogPort;
  metrics: PromRegistry[];
  translateOptions: TranslateOptions;
  proxies?: ProxyStatusPort;
  audit?: AuditJournal;
  ready?: () => boolean;
  joinTokens?: JoinTokenPort;
}

export function createApiDeps(parts: ApiParts): ApiDeps {
  const { store, registry } = parts;
  return {
    store,
    registry: registryPort(store, registry),
    tokens: parts.tokens,
    audit: parts.audit ?? memoryAuditJournal(),
    proxies: parts.proxies ?? noProxies,
    filters: parts.filters,
    metrics: parts.metrics,
    // `objects` is a whole state (every kind, as desired-state.ts computes it).
    buildModel: (objects) => buildModel(objects ? stateView(store, objects) : store, registry),
    translate: translatePort(parts.translateOptions),
    checkReferences(objects) {
      const specs = <T>(kind: string) => objects.filter((o) => o.kind === kind).map((o) => o.spec as T);
      return checkReferences({
        services: specs<Service>('Service'),
        routes: specs<Route>('Route'),
        destinationPolicies: specs<DestinationPolicy>('DestinationPolicy'),
        filterBindings: specs<FilterBinding>('FilterBinding'),
        peerAuthentications: specs<PeerAuthentication>('PeerAuthentication'),
        authorizationPolicies: specs<AuthorizationPolicy>('AuthorizationPolicy'),
      });
    },
    ready: parts.ready ?? (() => true),
    ...(parts.joinTokens ? { joinTokens: parts.joinTokens } : {}),
  };
}
