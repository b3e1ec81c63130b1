// Envoy's /config_dump query parameters over the dump DataPlane.configDump
// writes: ?resource= (one repeated field's items, each its own config),
// ?mask= (a FieldMask on each config, or on each item with resource) and
// ?name_regex= (only resources whose name fully matches, as RE2 does).
// Pure: the dump in, the shaped dump or an error naming the parameter out. Mask
// paths are checked against Envoy's protos (envoyRoot, read once and already
// loaded by the xDS client) and the admin messages below.

import protobuf from 'protobufjs';
import { envoyRoot, messageNameOf, typeUrlOf } from '../control/envoy/index.ts';
import { TYPE_URLS } from './fidelity.ts';

export type ConfigDumpQuery = {
  /** ?include_eds: the dump carries EndpointsConfigDump (DataPlane.configDump's includeEds). */
  includeEds?: boolean;
  resource?: string;
  mask?: string;
  nameRegex?: string;
};

type Json = Record<string, unknown>;

/** What a mask path may do at a field: end there, or go on into `type` (singular messages only). */
interface FieldShape {
  repeated: boolean;
  /** The message a path goes on into; for a repeated field, its items' message. */
  type?: string;
}

const A = 'envoy.admin.v3.';
const leaf: FieldShape = { repeated: false };
const one = (type: string): FieldShape => ({ repeated: false, type });
const many = (type: string): FieldShape => ({ repeated: true, type });
// The resources' messages, as the sidecar receives them.
const CLUSTER = messageNameOf(TYPE_URLS.cluster);
const LISTENER = messageNameOf(TYPE_URLS.listener);
const ROUTE = messageNameOf(TYPE_URLS.route);
const SECRET = messageNameOf(TYPE_URLS.secret);
const EXTENSION = messageNameOf(TYPE_URLS.extension);
const ENDPOINTS = messageNameOf(TYPE_URLS.endpoint);

/**
 * The admin messages DataPlane.configDump writes, from envoy/admin/v3/config_dump.proto and
 * config_dump_shared.proto. Timestamps, enums and an Any other than an item's own resource
 * are leaves; an item's own Any goes on into the resource it holds, as Envoy's
 * trimResourceMessage unpacks it (a DynamicListener has none: its listener is in active_state).
 */
const ADMIN: Record<string, Record<string, FieldShape>> = {
  [`${A}BootstrapConfigDump`]: { bootstrap: one('envoy.config.bootstrap.v3.Bootstrap'), last_updated: leaf },
  [`${A}UpdateFailureState`]: { failed_configuration: leaf, last_update_attempt: leaf, details: leaf, version_info: leaf },
  [`${A}ClustersConfigDump`]: {
    version_info: leaf,
    static_clusters: many(`${A}ClustersConfigDump.StaticCluster`),
    dynamic_active_clusters: many(`${A}ClustersConfigDump.DynamicCluster`),
    dynamic_warming_clusters: many(`${A}ClustersConfigDump.DynamicCluster`),
  },
  [`${A}ClustersConfigDump.StaticCluster`]: { cluster: one(CLUSTER), last_updated: leaf },
  [`${A}ClustersConfigDump.DynamicCluster`]: { version_info: leaf, cluster: one(CLUSTER), last_updated: leaf, error_state: one(`${A}UpdateFailureState`), client_status: leaf },
  [`${A}ListenersConfigDump`]: { version_info: leaf, static_listeners: many(`${A}ListenersConfigDump.StaticListener`), dynamic_listeners: many(`${A}ListenersConfigDump.DynamicListener`) },
  [`${A}ListenersConfigDump.StaticListener`]: { listener: one(LISTENER), last_updated: leaf },
  [`${A}ListenersConfigDump.DynamicListener`]: {
    name: leaf,
    active_state: one(`${A}ListenersConfigDump.DynamicListenerState`),
    warming_state: one(`${A}ListenersConfigDump.DynamicListenerState`),
    draining_state: one(`${A}ListenersConfigDump.DynamicListenerState`),
    error_state: one(`${A}UpdateFailureState`),
    client_status: leaf,
  },
  [`${A}ListenersConfigDump.DynamicListenerState`]: { version_info: leaf, listener: leaf, last_updated: leaf },
  [`${A}RoutesConfigDump`]: { static_route_configs: many(`${A}RoutesConfigDump.StaticRouteConfig`), dynamic_route_configs: many(`${A}RoutesConfigDump.DynamicRouteConfig`) },
  [`${A}RoutesConfigDump.StaticRouteConfig`]: { route_config: one(ROUTE), last_updated: leaf },
  [`${A}RoutesConfigDump.DynamicRouteConfig`]: { version_info: leaf, route_config: one(ROUTE), last_updated: leaf, error_state: one(`${A}UpdateFailureState`), client_status: leaf },
  [`${A}SecretsConfigDump`]: {
    static_secrets: many(`${A}SecretsConfigDump.StaticSecret`),
    dynamic_active_secrets: many(`${A}SecretsConfigDump.DynamicSecret`),
    dynamic_warming_secrets: many(`${A}SecretsConfigDump.DynamicSecret`),
  },
  [`${A}SecretsConfigDump.StaticSecret`]: { name: leaf, last_updated: leaf, secret: one(SECRET) },
  [`${A}SecretsConfigDump.DynamicSecret`]: { name: leaf, version_info: leaf, last_updated: leaf, secret: one(SECRET), error_state: one(`${A}UpdateFailureState`), client_status: leaf },
  [`${A}EcdsConfigDump`]: { ecds_filters: many(`${A}EcdsConfigDump.EcdsFilterConfig`) },
  [`${A}EcdsConfigDump.EcdsFilterConfig`]: { version_info: leaf, ecds_filter: one(EXTENSION), last_updated: leaf, error_state: one(`${A}UpdateFailureState`), client_status: leaf },
  [`${A}EndpointsConfigDump`]: { static_endpoint_configs: many(`${A}EndpointsConfigDump.StaticEndpointConfig`), dynamic_endpoint_configs: many(`${A}EndpointsConfigDump.DynamicEndpointConfig`) },
  [`${A}EndpointsConfigDump.StaticEndpointConfig`]: { endpoint_config: one(ENDPOINTS), last_updated: leaf },
  [`${A}EndpointsConfigDump.DynamicEndpointConfig`]: { version_info: leaf, endpoint_config: one(ENDPOINTS), last_updated: leaf, error_state: one(`${A}UpdateFailureState`), client_status: leaf },
};

/** Where each item's name is for name_regex: the fields Envoy's admin docs list per resource. */
const ITEM_NAME: Record<string, readonly string[]> = {
  [`${A}ClustersConfigDump.StaticCluster`]: ['cluster', 'name'],
  [`${A}ClustersConfigDump.DynamicCluster`]: ['cluster', 'name'],
  [`${A}ListenersConfigDump.StaticListener`]: ['listener', 'name'],
  [`${A}ListenersConfigDump.DynamicListener`]: ['name'],
  [`${A}RoutesConfigDump.StaticRouteConfig`]: ['route_config', 'name'],
  [`${A}RoutesConfigDump.DynamicRouteConfig`]: ['route_config', 'name'],
  [`${A}SecretsConfigDump.StaticSecret`]: ['name'],
  [`${A}SecretsConfigDump.DynamicSecret`]: ['name'],
  [`${A}EcdsConfigDump.EcdsFilterConfig`]: ['ecds_filter', 'name'],
  [`${A}EndpointsConfigDump.StaticEndpointConfig`]: ['endpoint_config', 'cluster_name'],
  [`${A}EndpointsConfigDump.DynamicEndpointConfig`]: ['endpoint_config', 'cluster_name'],
};

const PARAMETERS = ['resource', 'mask', 'name_regex', 'include_eds'];

/**
 * The /config_dump query, or the first bad parameter (the admin answers 400).
 * An empty resource or mask counts as absent, an empty name_regex matches every name, as in
 * Envoy; unlike Envoy, which ignores them, an unknown parameter is an error.
 */
export function parseConfigDumpQuery(params: URLSearchParams): ConfigDumpQuery | { error: string } {
  for (const key of params.keys()) {
    if (!PARAMETERS.includes(key)) return { error: `${key}: unknown parameter (config_dump takes ${PARAMETERS.join(', ')})` };
  }
  const query: ConfigDumpQuery = { includeEds: params.has('include_eds') };
  const resource = params.get('resource');
  const mask = params.get('mask');
  const nameRegex = params.get('name_regex');
  if (resource) query.resource = resource;
  if (mask) query.mask = mask;
  if (nameRegex) {
    const names = nameMatcher(nameRegex);
    if ('error' in names) return names;
    query.nameRegex = nameRegex;
  }
  return query;
}

/**
 * `dump` (DataPlane.configDump's) as Envoy answers the query. Without resource, name_regex
 * filters every config's items and mask trims each config, keeping only the configs every
 * path fits (none: 400). With resource, the configs are that repeated field's items, each
 * with its message's @type, filtered by name, then trimmed by mask (a bad path: 400); a
 * resource no config has is 404, a field that is not repeated 400.
 */
export function shapeConfigDump(dump: { configs: Record<string, unknown>[] }, q: ConfigDumpQuery): { configs: unknown[] } | { status: number; error: string } {
  const names = nameMatcher(q.nameRegex);
  if ('error' in names) return { status: 400, error: names.error };
  // As protobuf's FieldMaskUtil::FromString: empty paths are dropped.
  const paths = (q.mask ?? '').split(',').filter((p) => p !== '');
  if (q.resource) return resourceItems(dump.configs, q.resource, paths, names.match);
  const configs = dump.configs.map((c) => withNamesMatching(c, names.match));
  if (paths.length === 0) return { configs };
  const fitting = configs.filter((c) => paths.every((p) => pathError(typeOf(c), p) === undefined));
  if (fitting.length === 0) return { status: 400, error: unfitMask(configs, paths) };
  const tree = maskTree(paths);
  return { configs: fitting.map((c) => trim(c, tree)) };
}

function resourceItems(configs: Json[], resource: string, paths: string[], match: (name: string) => boolean): { configs: unknown[] } | { status: number; error: string } {
  // As Envoy: the first config with a field of that name answers.
  for (const config of configs) {
    const type = typeOf(config);
    const field = adminField(type, resource);
    if (!field) continue;
    if (!field.repeated || !field.type) return { status: 400, error: `resource: ${resource} is not a repeated field of ${type}; use mask=${resource} to get only this field` };
    const item = field.type;
    for (const p of paths) {
      const error = pathError(item, p);
      if (error) return { status: 400, error: `mask: ${JSON.stringify(p)} does not fit ${resource}: ${error}` };
    }
    const tree = paths.length ? maskTree(paths) : undefined;
    const items = asItems(config[resource]).filter((i) => match(nameOf(item, i)));
    return { configs: items.map((i) => ({ '@type': typeUrlOf(item), ...(tree ? trim(i, tree) : i) })) };
  }
  const present = new Set(configs.map(typeOf));
  if (!present.has(`${A}EndpointsConfigDump`) && adminField(`${A}EndpointsConfigDump`, resource)?.repeated) {
    return { status: 404, error: `resource: ${resource} is in the dump only with include_eds` };
  }
  const allowed = [...present].flatMap((t) => Object.entries(ADMIN[t] ?? {}).flatMap(([name, f]) => (f.repeated ? [name] : [])));
  return { status: 404, error: `resource: ${JSON.stringify(resource)} is not a repeated field of any config in the dump; one of ${allowed.join(', ')}` };
}

function nameMatcher(source: string | undefined): { match: (name: string) => boolean } | { error: string } {
  if (!source) return { match: () => true };
  try {
    // Checked alone first: wrapped in a group, "a)(b" would parse.
    new RegExp(source);
  } catch (e) {
    return { error: `name_regex: not a regular expression: ${(e as Error).message}` };
  }
  // Envoy matches with RE2::FullMatch: the whole name, not a part of it.
  const whole = new RegExp(`^(?:${source})$`);
  return { match: (name) => whole.test(name) };
}

function withNamesMatching(config: Json, match: (name: string) => boolean): Json {
  const fields = ADMIN[typeOf(config)];
  if (!fields) return config;
  const out: Json = { ...config };
  for (const [name, f] of Object.entries(fields)) {
    if (f.repeated && f.type && Array.isArray(config[name])) out[name] = asItems(config[name]).filter((i) => match(nameOf(f.type!, i)));
  }
  return out;
}

function nameOf(item: string, json: Json): string {
  let at: unknown = json;
  for (const key of ITEM_NAME[item] ?? ['name']) at = isObject(at) ? at[key] : undefined;
  return typeof at === 'string' ? at : '';
}

function typeOf(config: Json): string {
  return messageNameOf(String(config['@type']));
}

function adminField(type: string, name: string): FieldShape | undefined {
  const fields = ADMIN[type];
  return fields && Object.hasOwn(fields, name) ? fields[name] : undefined;
}

/** A field of `type` as a mask path sees it: the admin messages above, the resources from Envoy's protos. */
function fieldShape(type: string, name: string): FieldShape | undefined {
  if (ADMIN[type]) return adminField(type, name);
  const message = envoyRoot().lookup(type);
  if (!(message instanceof protobuf.Type) || !Object.hasOwn(message.fields, name)) return undefined;
  const field = message.fields[name]!;
  const repeated = field.repeated || field.map;
  const inner = field.resolvedType;
  // Well-known types print as JSON scalars (Duration, wrappers) or free JSON (Struct, Any): a path ends there.
  const into = !repeated && inner instanceof protobuf.Type && !inner.fullName.startsWith('.google.protobuf.') ? inner.fullName.slice(1) : undefined;
  return { repeated, type: into };
}

/** Why `path` is no field path of `type` (protobuf's FieldMaskUtil::GetFieldDescriptors), or undefined. */
function pathError(type: string, path: string): string | undefined {
  const parts = path.split('.');
  let at = type;
  for (let i = 0; i < parts.length; i++) {
    const field = fieldShape(at, parts[i]!);
    if (!field) return `${at} has no field ${JSON.stringify(parts[i])}`;
    if (i === parts.length - 1) return undefined;
    const prefix = parts.slice(0, i + 1).join('.');
    if (field.repeated) return `${prefix} is a repeated field, where a mask path must end`;
    if (!field.type) return `${prefix} is a scalar, an enum, a well-known type or a nested Any, where a mask path must end`;
    at = field.type;
  }
  return undefined;
}

/** Why no config fits: a path no config has (with the reason from the config that has its first field), or paths in different configs. */
function unfitMask(configs: Json[], paths: string[]): string {
  const types = configs.map(typeOf);
  const short = (t: string) => t.slice(t.lastIndexOf('.') + 1);
  const fits = paths.map((p) => ({ p, in: types.filter((t) => pathError(t, p) === undefined).map(short) }));
  const lost = fits.find((f) => f.in.length === 0);
  if (lost) {
    const first = lost.p.split('.')[0]!;
    const owner = types.find((t) => fieldShape(t, first));
    if (!owner) return `mask: ${JSON.stringify(lost.p)} fits no config in the dump: none of ${types.map(short).join(', ')} has a field ${JSON.stringify(first)}`;
    const hint = fieldShape(owner, first)!.repeated ? `; to mask each of its items, use resource=${first}&mask=${lost.p.slice(first.length + 1)}` : '';
    return `mask: ${JSON.stringify(lost.p)} fits no config in the dump (${short(owner)}: ${pathError(owner, lost.p)})${hint}`;
  }
  return `mask: no config has every path (${fits.map((f) => `${f.p} is in ${f.in.join(', ')}`).join('; ')}); without resource a config is dumped only if all paths fit it`;
}

/** protobuf's FieldMaskTree: `true` keeps the whole field; a shorter path covers the longer ones under it. */
type MaskTree = Map<string, MaskTree | true>;

function maskTree(paths: readonly string[]): MaskTree {
  const root: MaskTree = new Map();
  for (const path of paths) {
    let node = root;
    const parts = path.split('.');
    for (let i = 0; i < parts.length; i++) {
      const child = node.get(parts[i]!);
      if (child === true) break;
      if (i === parts.length - 1) {
        node.set(parts[i]!, true);
        break;
      }
      const next: MaskTree = child ?? new Map();
      node.set(parts[i]!, next);
      node = next;
    }
  }
  return root;
}

/** The fields of `json` the tree names, in their order; an Any's @type stays, as packing keeps it. */
function trim(json: Json, tree: MaskTree): Json {
  const out: Json = {};
  for (const [key, value] of Object.entries(json)) {
    const sub = key === '@type' ? true : tree.get(key);
    if (sub === undefined) continue;
    out[key] = sub === true || !isObject(value) ? value : trim(value, sub);
  }
  return out;
}

function asItems(value: unknown): Json[] {
  return Array.isArray(value) ? value.filter(isObject) : [];
}

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
