// The Envoy attributes a wasm filter reads of its downstream connection and of
// how its response ended, worked out as Envoy's stream info holds them:
// connection-level values once per connection (source/destination address,
// connection.id, the SNI), response.flags and response.code_details once per
// stream, when it finished (for on_log).

import type { LocalReply } from './local-reply.ts';

/** What every stream of one downstream connection reads the same. */
export interface ConnectionAttributes {
  'source.address': string;
  'destination.address': string;
  'destination.port': number;
  /** Unique per downstream connection in this process, as Envoy's connection id (a uint64 counter). */
  'connection.id': number;
  /** The SNI the client sent in its TLS handshake; '' on plaintext or without SNI, as Envoy's requestedServerName. */
  'connection.requested_server_name': string;
}

interface SocketLike {
  remoteAddress?: string;
  remotePort?: number;
  localAddress?: string;
  localPort?: number;
  servername?: string | false | null;
}

let nextConnectionId = 0;
const connections = new WeakMap<object, ConnectionAttributes>();

/**
 * `ip:port`, an IPv6 address in brackets, as Envoy's Address::Ipv6Instance::asString.
 * An IPv4 peer of a dual-stack listener (node's `::ffff:10.0.0.1`) is IPv4,
 * as Envoy reads a v4-mapped address on a listener with ipv4_compat.
 */
export function addressString(ip: string, port: number): string {
  if (ip.startsWith('::ffff:') && ip.includes('.')) return `${ip.slice(7)}:${port}`;
  return ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`;
}

/**
 * The attributes of the downstream connection `connection` (the HTTP/1.x
 * socket, or the HTTP/2 session), made on its first request and kept for the
 * others; `socket` is where its addresses are read.
 */
export function connectionAttributes(connection: object, socket: SocketLike | undefined): ConnectionAttributes {
  let found = connections.get(connection);
  if (found !== undefined) return found;
  const localPort = socket?.localPort ?? 0;
  const sni = socket?.servername;
  found = {
    'source.address': addressString(socket?.remoteAddress ?? '', socket?.remotePort ?? 0),
    'destination.address': addressString(socket?.localAddress ?? '', localPort),
    'destination.port': localPort,
    'connection.id': nextConnectionId++,
    'connection.requested_server_name': typeof sni === 'string' ? sni : '',
  };
  connections.set(connection, found);
  return found;
}

/**
 * Envoy's CoreResponseFlag enum in order (envoy/stream_info/stream_info.h):
 * a flag's index is its bit in response.flags (StreamInfo::legacyResponseFlags).
 * The access log prints them in this order too (ResponseFlagUtils).
 */
export const RESPONSE_FLAGS = ['LH', 'UH', 'UT', 'LR', 'UR', 'UF', 'UC', 'UO', 'NR', 'DI', 'FI', 'RL', 'UAEX', 'RLSE', 'DC', 'URX', 'SI', 'IH', 'DPE', 'UMSDR', 'RFCF', 'NFCF', 'DT', 'UPE', 'NC', 'OM', 'DF', 'DO'];

const flagBits = new Map<string, number>([['-', 0]]);

/**
 * response.flags for an access log's response_flags ("-", "UH", "UF,URX"):
 * the OR of each flag's bit. The sidecar's own flags (RBAC, WF) are none of
 * Envoy's and set no bit, as Envoy's RBAC filter sets none.
 */
export function responseFlagBits(flags: string): number {
  let bits = flagBits.get(flags);
  if (bits !== undefined) return bits;
  bits = 0;
  for (const flag of flags.split(',')) {
    const at = RESPONSE_FLAGS.indexOf(flag);
    if (at >= 0) bits += 2 ** at;
  }
  // The combinations the sidecar logs are few; the cache stays small.
  if (flagBits.size < 256) flagBits.set(flags, bits);
  return bits;
}

/**
 * Envoy's response code details for a local reply made without them, by its
 * response flag (a reply built elsewhere, a stream timeout's). The sidecar's
 * own replies carry theirs (LocalReply.details, local-reply.ts); this is the
 * fallback for those that only say their flag.
 */
const localReplyDetails: Record<string, string> = {
  NR: 'route_not_found',
  UH: 'no_healthy_upstream',
  NC: 'cluster_not_found',
  OM: 'overload',
  SI: 'stream_idle_timeout',
  DT: 'max_duration_timeout',
  FI: 'fault_filter_abort',
  UT: 'response_timeout',
};

/**
 * response.code_details of a finished stream, as Envoy's stream info has it
 * (and %RESPONSE_CODE_DETAILS% logs it): `ended` when the stream ended
 * another way than it answered (the router's reset or timeout after the
 * response started, the client leaving: the detail set where the sidecar
 * decided its flag); else the local reply's (a wasm filter's own,
 * direct_response, the router's, RBAC's), when the stream ended with it;
 * via_upstream for a response proxied whole from the upstream (`flag` '-',
 * the access log's flag before retry and delay flags); undefined where the
 * sidecar cannot say what Envoy would.
 */
export function responseCodeDetails(status: number, flag: string, reply: LocalReply | undefined, ended?: string): string | undefined {
  if (ended !== undefined) return ended;
  if (reply !== undefined) return flag === reply.flag ? reply.details ?? localReplyDetails[flag] : undefined;
  return status > 0 && flag === '-' ? 'via_upstream' : undefined;
}
