// Is a proxy running what the control plane means it to run? (istioctl's
// `proxy-status POD`.) The proxy's own /config_dump (Envoy's ConfigDump, which
// Envoy and the weft sidecar both serve) is compared, resource by resource,
// with the control plane's translation for that proxy now and with what the
// xDS server believes the proxy holds. Both sides go through Envoy's protos
// (JSON -> bytes -> JSON), so spelling differences (`5s` against `5.000s`,
// key order, defaults) never count as drift: only a different message does.
// Endpoints are compared by their addresses and priorities (see endpointSet).
//
// What each state means, in the order an operator would ask:
//   SYNCED   the proxy runs exactly the desired resource
//   WARMING  it holds the desired resource but has not activated it yet
//            (a cluster waiting for its endpoints, a listener for its routes)
//   NACKED   it refused the desired version (its error_state says why) and
//            keeps serving the version it had, if any
//   PENDING  it runs what the control plane last sent, and a newer version
//            is still to be pushed or ACKed (debounce, push in flight)
//   MISSING  the proxy does not hold it: not pushed yet, lost, or never
//            requested (a listener or cluster that names it was refused)
//   EXTRA    the proxy holds it, the control plane no longer sends it
//   DIFFERS  the proxy runs something the control plane never sent it
//            (another control plane, or a proxy bug): the diff says what
import { decodeResource, encodeResource, TypeUrl } from '../envoy/index.ts';
import { canonical } from './desired-state.ts';
import { CONFIG_TYPES, type ConfigType, type ProxyResources } from './deps.ts';

export type SyncState = 'SYNCED' | 'WARMING' | 'NACKED' | 'PENDING' | 'MISSING' | 'EXTRA' | 'DIFFERS';

/** One resource as the proxy's config dump shows it. */
export interface RunningResource {
  type: ConfigType;
  name: string;
  /** The resource in use (absent when it was never accepted). */
  value?: unknown;
  version?: string;
  lastUpdated?: string;
  /** Held but not yet active (Envoy's dynamic_warming_clusters, a listener's warming_state). */
  warming?: boolean;
  /** The proxy's record of its last refused update of this resource. */
  error?: { details: string; version?: string; time?: string };
}

export interface ResourceSync {
  type: ConfigType;
  name: string;
  state: SyncState;
  /** The version the proxy runs, as its config dump says. */
  runningVersion?: string;
  lastUpdated?: string;
  error?: RunningResource['error'];
  /** For every state but SYNCED and WARMING: both sides, canonical Envoy JSON (absent where that side has none). */
  desired?: unknown;
  running?: unknown;
}

export interface ProxySync {
  proxy: string;
  service: string;
  /** Where the running config was read. */
  source: string;
  inSync: boolean;
  /** Per type: how many resources are in each state. */
  summary: Record<ConfigType, Partial<Record<SyncState, number>>>;
  /** Every resource of either side, by type then name. */
  resources: ResourceSync[];
  /** The control plane refuses to build this proxy's config (ProxyView.refused): it is not in sync, whatever it runs. */
  refused?: { path: string; message: string; revision: number }[];
}

/** The xDS type URL of each config type the API names. */
export const TYPE_URL: Record<ConfigType, string> = {
  listeners: TypeUrl.Listener,
  routes: TypeUrl.RouteConfiguration,
  clusters: TypeUrl.Cluster,
  endpoints: TypeUrl.ClusterLoadAssignment,
  'extension-configs': TypeUrl.ExtensionConfig,
};

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);

/** How each ConfigDump message lists its dynamic resources (Envoy's admin/v3 protos). */
const DUMPS: Record<string, { type: ConfigType; lists: { field: string; warming?: boolean; resource: string | ((item: Json) => { value?: Json; version?: string; lastUpdated?: string; warming?: boolean }) }[]; nameOf: (r: Json) => unknown }> = {
  'type.googleapis.com/envoy.admin.v3.ClustersConfigDump': {
    type: 'clusters',
    lists: [
      { field: 'dynamic_active_clusters', resource: 'cluster' },
      { field: 'dynamic_warming_clusters', resource: 'cluster', warming: true },
    ],
    nameOf: (r) => r.name,
  },
  'type.googleapis.com/envoy.admin.v3.ListenersConfigDump': {
    type: 'listeners',
    lists: [
      {
        field: 'dynamic_listeners',
        // active_state, else warming_state; draining_state is a listener on its way out
        resource: (item) => {
          const state = isObject(item.active_state) ? item.active_state : isObject(item.warming_state) ? item.warming_state : undefined;
          if (!state) return {};
          return { value: isObject(state.listener) ? state.listener : undefined, version: str(state.version_info), lastUpdated: str(state.last_updated), warming: state === item.warming_state };
        },
      },
    ],
    nameOf: (r) => r.name,
  },
  'type.googleapis.com/envoy.admin.v3.RoutesConfigDump': {
    type: 'routes',
    lists: [{ field: 'dynamic_route_configs', resource: 'route_config' }],
    nameOf: (r) => r.name,
  },
  'type.googleapis.com/envoy.admin.v3.EndpointsConfigDump': {
    type: 'endpoints',
    lists: [{ field: 'dynamic_endpoint_configs', resource: 'endpoint_config' }],
    nameOf: (r) => r.cluster_name,
  },
  'type.googleapis.com/envoy.admin.v3.EcdsConfigDump': {
    type: 'extension-configs',
    lists: [{ field: 'ecds_filters', resource: 'ecds_filter' }],
    nameOf: (r) => r.name,
  },
};

/** What is wrong with a config dump, and where (a JSON path). */
export class ConfigDumpError extends Error {
  constructor(
    readonly path: string,
    readonly reason: string,
  ) {
    super(`${path}: ${reason}`);
  }
}

/**
 * The dynamic resources of an Envoy ConfigDump (`/config_dump?include_eds`).
 * Static resources (the bootstrap's) are not the control plane's and are
 * left out, as are secrets (the dump redacts them). Throws with the JSON path
 * when the dump is not a ConfigDump (ConfigDumpError).
 */
export function parseConfigDump(dump: unknown): RunningResource[] {
  if (!isObject(dump) || !Array.isArray(dump.configs)) throw new ConfigDumpError('configs', 'not an Envoy ConfigDump (no "configs" list)');
  const out: RunningResource[] = [];
  dump.configs.forEach((config, i) => {
    if (!isObject(config)) throw new ConfigDumpError(`configs[${i}]`, 'not an object');
    const kind = DUMPS[str(config['@type']) ?? ''];
    if (!kind) return;
    for (const list of kind.lists) {
      const items = config[list.field] ?? [];
      if (!Array.isArray(items)) throw new ConfigDumpError(`configs[${i}].${list.field}`, 'not a list');
      items.forEach((item, j) => {
        const at = `configs[${i}].${list.field}[${j}]`;
        if (!isObject(item)) throw new ConfigDumpError(at, 'not an object');
        const held =
          typeof list.resource === 'string'
            ? { value: isObject(item[list.resource]) ? (item[list.resource] as Json) : undefined, version: str(item.version_info), lastUpdated: str(item.last_updated), warming: list.warming }
            : list.resource(item);
        const failure = isObject(item.error_state) ? item.error_state : undefined;
        const failed = failure && isObject(failure.failed_configuration) ? failure.failed_configuration : undefined;
        const name = str(item.name) ?? str(held.value && kind.nameOf(held.value)) ?? str(failed && kind.nameOf(failed));
        if (name === undefined) throw new ConfigDumpError(at, 'a resource without a name');
        const r: RunningResource = { type: kind.type, name };
        if (held.value) r.value = held.value;
        if (held.version !== undefined) r.version = held.version;
        if (held.lastUpdated !== undefined) r.lastUpdated = held.lastUpdated;
        if (held.warming) r.warming = true;
        if (failure) r.error = { details: str(failure.details) ?? '', version: str(failure.version_info), time: str(failure.last_update_attempt) };
        out.push(r);
      });
    }
  });
  return out;
}

/**
 * A resource in one spelling: through Envoy's protos and back, keys sorted.
 * A resource the protos refuse (which a proxy should never hold) is compared
 * as it is, so it shows as different rather than throwing.
 */
function normalise(type: ConfigType, json: unknown): { text: string; value: unknown } {
  const { '@type': _type, ...rest } = isObject(json) ? json : {};
  const encoded = encodeResource(TYPE_URL[type], isObject(json) ? rest : json);
  const value = 'bytes' in encoded ? decodeResource(TYPE_URL[type], encoded.bytes) : json;
  return { text: canonical(type === 'endpoints' ? endpointSet(value) : value), value };
}

/**
 * What of a ClusterLoadAssignment is compared: which addresses, at which
 * priority. Envoy does not dump EDS as received but rebuilds it from its
 * host sets (adding the default weights, the overprovisioning factor and the
 * health it observed), so the rest would differ on every Envoy without any
 * drift.
 */
function endpointSet(cla: unknown): unknown {
  if (!isObject(cla)) return cla;
  const hosts: string[] = [];
  for (const group of Array.isArray(cla.endpoints) ? cla.endpoints : []) {
    if (!isObject(group)) continue;
    for (const lb of Array.isArray(group.lb_endpoints) ? group.lb_endpoints : []) {
      const socket = isObject(lb) && isObject(lb.endpoint) && isObject(lb.endpoint.address) ? lb.endpoint.address.socket_address : undefined;
      hosts.push(`${group.priority ?? 0}/${isObject(socket) ? `${String(socket.address)}:${String(socket.port_value)}` : canonical(lb)}`);
    }
  }
  return { cluster_name: cla.cluster_name, hosts: hosts.sort() };
}

/**
 * An EDS cluster whose assignment has not arrived: Envoy's include_eds dump (and the weft sidecar's) still has an
 * entry for the cluster, with no hosts and no version. That is a resource the proxy does not hold yet, not one it runs.
 */
function awaitingAssignment(type: ConfigType, r: RunningResource): boolean {
  if (type !== 'endpoints' || r.version !== undefined || !isObject(r.value)) return false;
  const groups = Array.isArray(r.value.endpoints) ? r.value.endpoints : [];
  return groups.every((g) => !isObject(g) || !Array.isArray(g.lb_endpoints) || g.lb_endpoints.length === 0);
}

/**
 * Compares what a proxy runs with what the control plane wants it to run
 * (`desired`, the translation for it now) and with what the xDS server
 * believes it holds (`sent`; a null value is a version the server no longer
 * has the body of, which means a newer one is due).
 */
export function compareConfig(
  desired: Pick<ProxyResources, ConfigType>,
  sent: Partial<Record<ConfigType, { name: string; value: unknown }[]>>,
  running: RunningResource[],
): Pick<ProxySync, 'inSync' | 'summary' | 'resources'> {
  const resources: ResourceSync[] = [];
  const summary = Object.fromEntries(CONFIG_TYPES.map((t) => [t, {}])) as ProxySync['summary'];
  // Envoy's include_eds dump has an assignment for every cluster, STATIC and DNS ones too, under the cluster's name:
  // those are no EDS resource, so not the control plane's to send (unless it sends one by that name).
  const notEds = new Set(
    [...desired.clusters, ...running.filter((r) => r.type === 'clusters')].flatMap((r) => (isObject(r.value) && r.value.type !== 'EDS' && typeof r.value.name === 'string' ? [r.value.name] : [])),
  );
  for (const type of CONFIG_TYPES) {
    const want = new Map(desired[type].map((r) => [r.name, normalise(type, r.value)]));
    const told = new Map((sent[type] ?? []).map((r) => [r.name, r.value === null ? null : normalise(type, r.value)]));
    const ownAssignment = (r: RunningResource) => type === 'endpoints' && notEds.has(r.name) && !want.has(r.name) && !told.has(r.name);
    const have = new Map(running.filter((r) => r.type === type && !ownAssignment(r)).map((r) => [r.name, { ...r, normal: r.value === undefined ? undefined : normalise(type, r.value) }]));
    for (const name of [...new Set([...want.keys(), ...have.keys()])].sort()) {
      const d = want.get(name);
      const r = have.get(name);
      const s = told.get(name);
      let state: SyncState;
      if (d && r?.normal && r.normal.text === d.text) state = r.warming ? 'WARMING' : 'SYNCED';
      else if (r?.error && d) state = 'NACKED';
      else if (d && (!r?.normal || awaitingAssignment(type, r))) state = 'MISSING';
      else if (s === null) state = 'PENDING'; // the server knows the proxy holds an older version
      else if (s && r?.normal && s.text === r.normal.text) state = 'PENDING'; // runs what was sent; a newer one (or its removal) is due
      else if (!d) state = 'EXTRA';
      else state = 'DIFFERS';
      const item: ResourceSync = { type, name, state };
      if (r?.version !== undefined) item.runningVersion = r.version;
      if (r?.lastUpdated !== undefined) item.lastUpdated = r.lastUpdated;
      if (r?.error) item.error = r.error;
      if (state !== 'SYNCED' && state !== 'WARMING') {
        if (d) item.desired = d.value;
        if (r?.normal) item.running = r.normal.value;
      }
      summary[type][state] = (summary[type][state] ?? 0) + 1;
      resources.push(item);
    }
  }
  return { inSync: resources.every((r) => r.state === 'SYNCED'), summary, resources };
}
