// Stream and plugin attributes served through proxy_get_property, with
// Envoy's encodings: strings raw, integers 8-byte little-endian, booleans one
// byte, timestamps and durations as int64 nanoseconds, maps as header pairs.
// Paths arrive NUL-separated (`request\0path`); a trailing segment below a
// map looks a key up in it (`request\0headers\0user-agent`).

import { HeaderMap, serializePairs, type HeaderPairs } from './headers.ts';
import { encodeUtf8 } from './memory.ts';

export type PropertyValue = string | number | bigint | boolean | Date | Uint8Array | HeaderPairs | { durationMs: number };

/**
 * Attributes of one stream, by dotted path. Anything the host cannot derive
 * from headers comes from here, e.g. `connection.uri_san_peer_certificate`,
 * `source.address`, `xds.cluster_name`, `upstream.address`.
 */
export type StreamProperties = Record<string, PropertyValue>;

export function encodeProperty(value: PropertyValue): Uint8Array {
  if (typeof value === 'string') return encodeUtf8(value);
  if (typeof value === 'boolean') return Uint8Array.of(value ? 1 : 0);
  if (typeof value === 'bigint') return int64(value);
  if (typeof value === 'number') {
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

function int64(value: bigint): Uint8Array {
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigInt64(0, BigInt.asIntN(64, value), true);
  return out;
}

export interface PropertySources {
  plugin: { name: string; rootId: string; vmId: string };
  /** Attributes given when the stream (or plugin, for root contexts) was created. */
  given: StreamProperties;
  /** Values the filter stored with proxy_set_property. */
  filterState: Map<string, Uint8Array>;
  requestHeaders?: HeaderMap;
  requestTrailers?: HeaderMap;
  responseHeaders?: HeaderMap;
  responseTrailers?: HeaderMap;
  requestBodySize?: number;
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

/** Returns the encoded value at `path`, or undefined (NOT_FOUND). */
export function lookupProperty(path: string, sources: PropertySources): Uint8Array | undefined {
  const stored = sources.filterState.get(path);
  if (stored !== undefined) return stored;
  // Called for every property a filter reads on every request: the dotted
  // prefixes are cut from one joined string, and a name without an alias is
  // resolved once, not twice.
  const segments = path.split('\0');
  const full = segments.join('.');
  let end = full.length;
  for (let depth = segments.length; depth >= 1; depth--) {
    if (depth < segments.length) end -= segments[depth]!.length + 1;
    const dotted = end === full.length ? full : full.slice(0, end);
    const alias = aliased(dotted);
    const value = resolve(dotted, sources) ?? (alias === dotted ? undefined : resolve(alias, sources));
    if (value === undefined) continue;
    const rest = segments.slice(depth);
    if (rest.length === 0) return encodeProperty(value);
    if (rest.length === 1 && Array.isArray(value)) {
      const found = new HeaderMap(value).get(rest[0]!);
      return found === undefined ? undefined : encodeUtf8(found);
    }
    return undefined;
  }
  return undefined;
}

function resolve(name: string, s: PropertySources): PropertyValue | undefined {
  if (name in s.given) return s.given[name];
  const rq = s.requestHeaders;
  const rs = s.responseHeaders;
  switch (name) {
    case 'plugin_name':
      return s.plugin.name;
    case 'plugin_root_id':
      return s.plugin.rootId;
    case 'plugin_vm_id':
      return s.plugin.vmId;
    case 'request.path':
      return rq?.get(':path');
    case 'request.url_path': {
      const path = rq?.get(':path');
      return path === undefined ? undefined : path.split('?')[0];
    }
    case 'request.query': {
      const path = rq?.get(':path');
      if (path === undefined) return undefined;
      const at = path.indexOf('?');
      return at < 0 ? '' : path.slice(at + 1);
    }
    case 'request.host':
      return rq?.get(':authority') ?? rq?.get('host');
    case 'request.scheme':
      return rq?.get(':scheme');
    case 'request.method':
      return rq?.get(':method');
    case 'request.headers':
      return rq?.pairs();
    case 'request.trailers':
      return s.requestTrailers?.pairs();
    case 'request.referer':
      return rq?.get('referer');
    case 'request.useragent':
      return rq?.get('user-agent');
    case 'request.id':
      return rq?.get('x-request-id');
    case 'request.size':
      return s.requestBodySize;
    case 'response.code': {
      const status = rs?.get(':status');
      return status === undefined ? undefined : Number.parseInt(status, 10);
    }
    case 'response.headers':
      return rs?.pairs();
    case 'response.trailers':
      return s.responseTrailers?.pairs();
    case 'response.grpc_status': {
      const grpc = s.responseTrailers?.get('grpc-status') ?? rs?.get('grpc-status');
      return grpc === undefined ? undefined : Number.parseInt(grpc, 10);
    }
    case 'response.size':
      return s.responseBodySize;
    case 'connection.mtls':
      return 'connection.uri_san_peer_certificate' in s.given;
    default:
      return undefined;
  }
}
