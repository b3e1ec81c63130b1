// Stream and plugin attributes served through proxy_get_property, with
// Envoy's encodings: strings raw, integers 8-byte little-endian, booleans one
// byte, timestamps and durations as int64 nanoseconds, maps as header pairs.
// Paths arrive NUL-separated (`request\0path`); a trailing segment below a
// map looks a key up in it (`request\0headers\0user-agent`).

import { HeaderMap, serializePairs, type HeaderPairs } from './headers.ts';

export type PropertyValue = string | number | bigint | boolean | Date | Uint8Array | HeaderPairs | { durationMs: number };

/**
 * Attributes of one stream, by dotted path. Anything the host cannot derive
 * from headers comes from here, e.g. `connection.uri_san_peer_certificate`,
 * `source.address`, `xds.cluster_name`, `upstream.address`.
 */
export type StreamProperties = Record<string, PropertyValue>;

/** A property's wire form: bytes, or text the host writes into the module as UTF-8 (no intermediate copy). */
export type EncodedProperty = Uint8Array | string;

export function encodeProperty(value: PropertyValue): EncodedProperty {
  if (typeof value === 'string') return value;
  if (typeof value === 'boolean') return Uint8Array.of(value ? 1 : 0);
  if (typeof value === 'bigint') return int64(value);
  if (typeof value === 'number') {
    if (Number.isSafeInteger(value)) return safeInt64(value);
    if (Number.isInteger(value)) return int64(BigInt(value));
    const out = new Uint8Array(8);
    new DataView(out.buffer).setFloat64(0, value, true);
    return out;
  }
  if (value instanceof Date) return int64(BigInt(value.getTime()) * 1_000_000n);
  if (value instanceof Uint8Array) return value;
  if (Array.isArray(value)) return serializePairs(value);
  return int64(BigInt(Math.round(value.durationMs * 1e6)));
}

/** int64 little-endian without a BigInt or a DataView: response.code and sizes are read on every request. */
function safeInt64(value: number): Uint8Array {
  const out = new Uint8Array(8);
  let low = value % 0x100000000 >>> 0;
  let high = Math.floor(value / 0x100000000) | 0;
  for (let i = 0; i < 4; i++, low >>>= 8) out[i] = low & 0xff;
  for (let i = 4; i < 8; i++, high >>= 8) out[i] = high & 0xff;
  return out;
}

function int64(value: bigint): Uint8Array {
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigInt64(0, BigInt.asIntN(64, value), true);
  return out;
}

export interface PropertySources {
  plugin: { name: string; rootId: string; vmId: string };
  /** Attributes given when the stream (or plugin, for root contexts) was created. */
  given: StreamProperties;
  /** Plugin-level attributes a stream sees under its own (looked up, not copied per stream). */
  defaults?: StreamProperties;
  /** When the stream started, ms since the epoch: `request.time`. */
  startMs?: number;
  /** Values stored with proxy_set_property; by default the filter state of `given` (filterStateOf). */
  filterState?: Map<string, Uint8Array>;
  requestHeaders?: HeaderMap;
  requestTrailers?: HeaderMap;
  responseHeaders?: HeaderMap;
  responseTrailers?: HeaderMap;
  /** The stream's response status, whichever phase it is in. */
  responseStatus?: string;
  /** Request body bytes received so far. */
  requestBytesReceived?: number;
  /** Set in proxy_on_log, once the request is complete: ms from its start. */
  durationMs?: number;
  responseBodySize?: number;
}

/** Envoy's top-level names that alias the `xds` attributes. */
const aliases: Record<string, string> = {
  node: 'xds.node',
  cluster_name: 'xds.cluster_name',
  cluster_metadata: 'xds.cluster_metadata',
  route_name: 'xds.route_name',
  route_metadata: 'xds.route_metadata',
  listener_direction: 'xds.listener_direction',
  listener_metadata: 'xds.listener_metadata',
  upstream_host_metadata: 'xds.upstream_host_metadata',
};

/** `node.cluster` -> `xds.node.cluster`: Envoy's short names for the xds attributes. */
function aliased(dotted: string): string {
  const dot = dotted.indexOf('.');
  const first = dot < 0 ? dotted : dotted.slice(0, dot);
  const target = aliases[first];
  return target === undefined ? dotted : target + dotted.slice(first.length);
}

/** One way to read a path: the attribute names to try at this depth, and the map key below it (if any). */
interface Step {
  names: string[];
  rest: string[];
}

/**
 * How each path resolves, worked out once per distinct path: filters read
 * the same handful of properties on every request, and splitting, joining
 * and aliasing them each time was most of a property read's cost.
 */
const plans = new Map<string, Step[]>();
const MAX_PLANS = 4096;

function planFor(path: string): Step[] {
  let plan = plans.get(path);
  if (plan !== undefined) return plan;
  const segments = path.split('\0');
  plan = [];
  for (let depth = segments.length; depth >= 1; depth--) {
    const dotted = segments.slice(0, depth).join('.');
    const alias = aliased(dotted);
    plan.push({ names: alias === dotted ? [dotted] : [dotted, alias], rest: segments.slice(depth) });
  }
  if (plans.size >= MAX_PLANS) plans.clear();
  plans.set(path, plan);
  return plan;
}

const filterStates = new WeakMap<StreamProperties, Map<string, Uint8Array>>();

/**
 * The filter state of the stream whose attributes these are: Envoy keeps
 * set_property values in the stream's filter state, so every filter of one
 * request (the embedder gives them one attributes object) reads what another
 * set.
 */
export function filterStateOf(given: StreamProperties): Map<string, Uint8Array> {
  let state = filterStates.get(given);
  if (state === undefined) {
    state = new Map();
    filterStates.set(given, state);
  }
  return state;
}

/** The filter state of the stream whose attributes these are, if a filter set anything (nothing is made). */
export function filterStateIfSet(given: StreamProperties): ReadonlyMap<string, Uint8Array> | undefined {
  return filterStates.get(given);
}

/** Returns the encoded value at `path`, or undefined (NOT_FOUND). */
export function lookupProperty(path: string, sources: PropertySources): EncodedProperty | undefined {
  const found = lookupAttribute(path, sources);
  if (found !== undefined) return found;
  // As Envoy, after the attributes: the filter state, by a path of one segment (a deeper
  // path indexes into the stored bytes, which hold no keys).
  if (path.includes('\0')) return undefined;
  return (sources.filterState ?? filterStates.get(sources.given))?.get(path);
}

function lookupAttribute(path: string, sources: PropertySources): EncodedProperty | undefined {
  for (const step of planFor(path)) {
    let value: PropertyValue | undefined;
    for (const name of step.names) {
      value = resolve(name, sources);
      if (value !== undefined) break;
    }
    if (value === undefined) continue;
    const rest = step.rest;
    if (rest.length === 0) return encodeProperty(value);
    if (rest.length === 1 && Array.isArray(value)) {
      // Envoy's header wrapper joins a repeated header's values with ',' (getAllOfHeaderAsString).
      const values = new HeaderMap(value).getAll(rest[0]!);
      return values.length === 0 ? undefined : values.join(',');
    }
    return undefined;
  }
  return undefined;
}

type Resolver = (s: PropertySources) => PropertyValue | undefined;

const resolvers = new Map<string, Resolver>([
  ['plugin_name', (s) => s.plugin.name],
  ['plugin_root_id', (s) => s.plugin.rootId],
  ['plugin_vm_id', (s) => s.plugin.vmId],
  ['request.path', (s) => s.requestHeaders?.get(':path')],
  [
    'request.url_path',
    (s) => {
      const path = s.requestHeaders?.get(':path');
      return path === undefined ? undefined : path.split('?')[0];
    },
  ],
  [
    'request.query',
    (s) => {
      const path = s.requestHeaders?.get(':path');
      if (path === undefined) return undefined;
      const at = path.indexOf('?');
      return at < 0 ? '' : path.slice(at + 1);
    },
  ],
  ['request.host', (s) => s.requestHeaders?.get(':authority') ?? s.requestHeaders?.get('host')],
  ['request.scheme', (s) => s.requestHeaders?.get(':scheme')],
  ['request.method', (s) => s.requestHeaders?.get(':method')],
  ['request.headers', (s) => s.requestHeaders?.pairs()],
  ['request.trailers', (s) => s.requestTrailers?.pairs()],
  ['request.referer', (s) => s.requestHeaders?.get('referer')],
  ['request.useragent', (s) => s.requestHeaders?.get('user-agent')],
  ['request.id', (s) => s.requestHeaders?.get('x-request-id')],
  [
    'request.size',
    // Envoy's: the request's content-length (NOT_FOUND when not a number), else the body bytes received so far.
    (s) => {
      const length = s.requestHeaders?.get('content-length');
      if (length !== undefined) return /^\d{1,15}$/.test(length) ? Number(length) : undefined;
      return s.requestBytesReceived;
    },
  ],
  [
    'response.code',
    (s) => {
      const status = s.responseStatus ?? s.responseHeaders?.get(':status');
      return status === undefined ? undefined : Number.parseInt(status, 10);
    },
  ],
  ['response.headers', (s) => s.responseHeaders?.pairs()],
  ['response.trailers', (s) => s.responseTrailers?.pairs()],
  [
    'response.grpc_status',
    (s) => {
      const grpc = s.responseTrailers?.get('grpc-status') ?? s.responseHeaders?.get('grpc-status');
      return grpc === undefined ? undefined : Number.parseInt(grpc, 10);
    },
  ],
  ['response.size', (s) => s.responseBodySize],
  // Envoy's request.total_size: the body bytes received plus the request headers' byte size.
  ['request.total_size', (s) => (s.requestBytesReceived ?? 0) + (s.requestHeaders?.byteSize ?? 0)],
  ['request.duration', (s) => (s.durationMs === undefined ? undefined : { durationMs: s.durationMs })],
  [
    'source.port',
    // The port of source.address (`ip:port`, `[v6]:port`) when the embedder gave only that.
    (s) => {
      const address = s.given['source.address'];
      if (typeof address !== 'string') return undefined;
      const port = /:(\d{1,5})$/.exec(address);
      return port === null ? undefined : Number(port[1]);
    },
  ],
  ['connection.mtls', (s) => 'connection.uri_san_peer_certificate' in s.given],
  ['request.time', (s) => (s.startMs === undefined ? undefined : new Date(s.startMs))],
]);

function resolve(name: string, s: PropertySources): PropertyValue | undefined {
  if (Object.hasOwn(s.given, name)) return s.given[name];
  const defaults = s.defaults;
  if (defaults !== undefined && Object.hasOwn(defaults, name)) return defaults[name];
  return resolvers.get(name)?.(s);
}
