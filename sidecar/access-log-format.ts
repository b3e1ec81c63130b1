// Envoy's stdout access logger with a json_format (or a text format), as the
// weft sidecar honours it: a connection manager logs a line per request only
// when its access_log names the stdout logger, with exactly the keys its
// format gives and each value's command operators substituted as Envoy's
// formatter does (source/common/formatter/substitution_formatter.cc,
// stream_info_formatter.cc, http_specific_formatter.cc):
//
// - a JSON value that is one operator alone keeps the operator's type (a
//   number for %RESPONSE_CODE%, %DURATION%, %BYTES_*%, a string otherwise)
//   and is null when the stream has no such value (omitted under
//   omit_empty_values); text around operators makes a string, where a
//   missing value is `-` ('' under omit_empty_values);
// - a number in json_format is itself; nested objects and lists are
//   formatted the same way; json_format_options.sort_properties sorts the
//   keys (otherwise Envoy promises no order: the sidecar keeps the config's);
// - %REQ(A?B):N reads header A, else B, truncated to N characters.
//
// A format is compiled once, when its listener is accepted: per request the
// line is built by walking precompiled parts (no parsing, no regex), and an
// operator the sidecar does not implement is NACKed with its field path.

import { hostname } from 'node:os';
import type { Fields } from './fidelity/fields.ts';
import { join, typeName } from './fidelity/fields.ts';
import { compileLogFilter, type LogFilter } from './access-log-filter.ts';
import { getHeader } from './headers.ts';
import type { LocalReply } from './local-reply.ts';
import type { ConnectionAttributes } from './stream-attributes.ts';
import { responseCodeDetails } from './stream-attributes.ts';
import { compileTimeFormat } from './time-format.ts';
import type { TlsInfo } from './tls-info.ts';
import type { HeaderPairs } from './upstream.ts';

/** The sidecar's own fields of one request (what /tap shows, and what the access log formats read). */
export interface AccessLogEntry {
  start_time: string;
  listener: string;
  method: string;
  path: string;
  authority: string;
  protocol: string;
  response_code: number;
  response_flags: string;
  route_name: string;
  upstream_cluster: string;
  upstream_host: string;
  attempts: number;
  bytes_received: number;
  bytes_sent: number;
  duration_ms: number;
  request_id: string;
  /** Envoy's %RESPONSE_CODE_DETAILS% (why the answer is what it is), set for tap sessions only: the access log's format reads it itself. */
  response_code_details?: string;
}

/** What a format reads of a finished request (proxy.ts's Stream, or a codec reply's stand-in). */
export interface LogSource {
  readonly log: AccessLogEntry;
  /** Date.now() when the request started. */
  readonly started: number;
  /** The request headers as they are at the end: after the filters, the route's mutations and the router's (no pseudo-headers). */
  readonly logRequestHeaders: HeaderPairs | undefined;
  /** :path and :authority as the router sent them upstream (after rewrites); undefined when nothing went upstream. */
  readonly upstreamPath: string | undefined;
  readonly upstreamAuthority: string | undefined;
  /** The response headers as sent (no :status); undefined when none were. */
  readonly logResponseHeaders: HeaderPairs | undefined;
  /** The downstream connection's addresses and id; undefined when not known (a codec reply). */
  readonly logConnection: ConnectionAttributes | undefined;
  /** The local reply the stream answered with and the flag it ended with (for %RESPONSE_CODE_DETAILS%). */
  readonly replied: LocalReply | undefined;
  readonly endFlag: string;
  /** The details the stream ended with when no local reply gives them (a reset or timeout after the response started, the client leaving). */
  readonly endDetails: string | undefined;
  /** The router's suppress_envoy_headers (whether Envoy would have set x-envoy-original-path on a rewrite). */
  readonly suppressEnvoyHeaders: boolean;
  /** The response trailers the stream ended with (the upstream's, after the filters); undefined when none. */
  readonly logResponseTrailers: HeaderPairs | undefined;
  /**
   * Date.now() at Envoy's downstream and upstream timing points (StreamInfo's downstreamTiming and upstreamTiming),
   * 0 when the stream did not reach it. Recorded only for a connection manager whose access logs read them
   * (AccessLogFormat.needsTimes): the last request byte received, the last byte sent upstream, the first byte of the
   * upstream's response, the last response byte sent.
   */
  readonly requestDoneAt: number;
  readonly upstreamSentAt: number;
  readonly upstreamFirstRxAt: number;
  readonly responseDoneAt: number;
  /** The upstream connection's local address (ip:port) of the last attempt; undefined when none was made (or not recorded). */
  readonly upstreamLocalAddress: string | undefined;
  /** The downstream connection's TLS facts; undefined on plaintext, or when no format reads them (AccessLogFormat.needsDownstreamTls). */
  readonly logDownstreamTls: TlsInfo | undefined;
  /** The last attempt's upstream connection's TLS facts; undefined on plaintext, when none was made, or when no format reads them. */
  readonly upstreamTls: TlsInfo | undefined;
  /** The upstream cluster's observability name (alt_stat_name, else its name), read only by %UPSTREAM_CLUSTER%; undefined when none was chosen. */
  readonly upstreamObservabilityName: string | undefined;
  /** What the stream's wasm filters stored with proxy_set_property (Envoy's filter state, keys without `wasm.`); undefined when nothing. */
  readonly logFilterState: ReadonlyMap<string, Uint8Array> | undefined;
  /** The stream's dynamic metadata by namespace (the RBAC filter's shadow result); undefined when none was set. */
  readonly logDynamicMetadata: Readonly<Record<string, Readonly<Record<string, string>>>> | undefined;
  /** A health_check filter took the request for a health check (Envoy's StreamInfo::healthCheck). */
  readonly healthCheck: boolean;
}

/** One access logger of a connection manager, compiled. */
export interface AccessLogFormat {
  /** The line for one request (without its newline). */
  format(s: LogSource): string;
  /** The format reads the downstream connection (addresses, %CONNECTION_ID%): proxy.ts looks it up only then. */
  readonly needsConnection: boolean;
  /** The format reads the stream's timing points or upstream local address (%REQUEST_DURATION%, ...): proxy.ts records them only then. */
  readonly needsTimes: boolean;
  /** The format reads the downstream connection's TLS (%DOWNSTREAM_PEER_URI_SAN%, ...): proxy.ts reads it only then. */
  readonly needsDownstreamTls?: boolean;
  /** The format reads the upstream connection's TLS (%UPSTREAM_PEER_SUBJECT%, ...): proxy.ts reads it (with the timing points) only then. */
  readonly needsUpstreamTls?: boolean;
  /** The access_log entry's filter (sidecar/access-log-filter.ts): the line is written only when it passes. */
  readonly filter?: LogFilter;
}

type Value = string | number | undefined;
type Operator = (s: LogSource) => Value;

/** A compiled operator, and what it needs of the stream. */
interface CompiledOperator {
  get: Operator;
  /**
   * Its value alone as a json_format value, as JSON text, where that is not `get`'s string or number (Envoy's
   * formatValue giving a struct: %FILTER_STATE()% TYPED); undefined: none (null).
   */
  json?: (s: LogSource) => string | undefined;
  connection: boolean;
  /** Reads LogSource's timing points or upstream local address. */
  times?: boolean;
  /** Reads LogSource.logDownstreamTls. */
  downstreamTls?: boolean;
  /** Reads LogSource.upstreamTls (recorded with the timing points, so `times` too). */
  upstreamTls?: boolean;
}

const STDOUT_LOG_TYPE = 'envoy.extensions.access_loggers.stream.v3.StdoutAccessLog';

/** The first value of header `name` (lowercase), as Envoy's HeaderFormatter::findHeader reads header[0]; undefined when absent. */
function headerValue(headers: HeaderPairs | undefined, name: string): string | undefined {
  return headers === undefined ? undefined : getHeader(headers, name);
}

const orNone = (v: string): string | undefined => (v === '' ? undefined : v);

/** A request header as %REQ()% reads it (the header filter reads the pseudo-headers through it too). */
export function requestHeader(s: LogSource, name: string): string | undefined {
  // Envoy's request header map holds the pseudo-headers; the router rewrites :path and :authority in it.
  switch (name) {
    // '' is a codec error's before the request line or headers were parsed: no such header.
    case ':method':
      return orNone(s.log.method);
    case ':path':
      return s.upstreamPath ?? orNone(s.log.path);
    case ':authority':
      return s.upstreamAuthority ?? orNone(s.log.authority);
    case 'x-envoy-original-path': {
      const v = headerValue(s.logRequestHeaders, name);
      if (v !== undefined) return v;
      // The router sets it when it rewrites the path, unless suppress_envoy_headers (RouteEntryImplBase::finalizePathHeader).
      return s.upstreamPath !== undefined && s.upstreamPath !== s.log.path && !s.suppressEnvoyHeaders ? s.log.path : undefined;
    }
    default:
      return name.charCodeAt(0) === 58 /* : */ ? undefined : headerValue(s.logRequestHeaders, name);
  }
}

/** %TRAILER(X)%: the first value of response trailer X. */
function responseTrailer(s: LogSource, name: string): string | undefined {
  return headerValue(s.logResponseTrailers, name);
}

function responseHeader(s: LogSource, name: string): string | undefined {
  if (name === ':status') return s.logResponseHeaders === undefined ? undefined : String(s.log.response_code);
  return headerValue(s.logResponseHeaders, name);
}

/** Operators without arguments, and what each gives (stream_info_formatter.cc). */
const SIMPLE: Record<string, CompiledOperator> = {
  PROTOCOL: { get: (s) => orNone(s.log.protocol), connection: false },
  // responseCode().value_or(0): 0 when no response was sent.
  RESPONSE_CODE: { get: (s) => s.log.response_code, connection: false },
  RESPONSE_FLAGS: { get: (s) => s.log.response_flags, connection: false },
  RESPONSE_CODE_DETAILS: { get: (s) => details(s, false), connection: false },
  BYTES_RECEIVED: { get: (s) => s.log.bytes_received, connection: false },
  BYTES_SENT: { get: (s) => s.log.bytes_sent, connection: false },
  DURATION: { get: (s) => s.log.duration_ms, connection: false },
  UPSTREAM_HOST: { get: (s) => orNone(s.log.upstream_host), connection: false },
  // The cluster's observabilityName(): its alt_stat_name when it has one (until 2026-11-28 always its name).
  UPSTREAM_CLUSTER: { get: (s) => s.upstreamObservabilityName, connection: false },
  UPSTREAM_CLUSTER_RAW: { get: (s) => orNone(s.log.upstream_cluster), connection: false },
  // The upstream connection's remote address: the host's, as the sidecar connects to the address EDS gives.
  UPSTREAM_REMOTE_ADDRESS: { get: (s) => orNone(s.log.upstream_host), connection: false },
  UPSTREAM_REMOTE_ADDRESS_WITHOUT_PORT: { get: (s) => withoutPort(s.log.upstream_host), connection: false },
  UPSTREAM_REMOTE_PORT: { get: (s) => portOf(s.log.upstream_host), connection: false },
  RESPONSE_FLAGS_LONG: { get: (s) => longFlags(s.log.response_flags), connection: false },
  // Set by network filters (RBAC, ext_authz) that close a connection; the sidecar runs none before the connection manager.
  CONNECTION_TERMINATION_DETAILS: { get: () => undefined, connection: false },
  ROUTE_NAME: { get: (s) => orNone(s.log.route_name), connection: false },
  // attemptCount().value_or(0).
  UPSTREAM_REQUEST_ATTEMPT_COUNT: { get: (s) => s.log.attempts, connection: false },
  DOWNSTREAM_REMOTE_ADDRESS: { get: (s) => orNone(s.logConnection?.['source.address'] ?? ''), connection: true },
  DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT: { get: (s) => withoutPort(s.logConnection?.['source.address']), connection: true },
  DOWNSTREAM_REMOTE_PORT: { get: (s) => portOf(s.logConnection?.['source.address']), connection: true },
  // No PROXY protocol and no x-forwarded-for trust in the sidecar: the direct peer is the remote address.
  DOWNSTREAM_DIRECT_REMOTE_ADDRESS: { get: (s) => orNone(s.logConnection?.['source.address'] ?? ''), connection: true },
  DOWNSTREAM_DIRECT_REMOTE_ADDRESS_WITHOUT_PORT: { get: (s) => withoutPort(s.logConnection?.['source.address']), connection: true },
  DOWNSTREAM_DIRECT_REMOTE_PORT: { get: (s) => portOf(s.logConnection?.['source.address']), connection: true },
  // No original_dst or PROXY protocol either: the direct local address is the local address.
  DOWNSTREAM_DIRECT_LOCAL_ADDRESS: { get: (s) => orNone(s.logConnection?.['destination.address'] ?? ''), connection: true },
  DOWNSTREAM_DIRECT_LOCAL_ADDRESS_WITHOUT_PORT: { get: (s) => withoutPort(s.logConnection?.['destination.address']), connection: true },
  DOWNSTREAM_DIRECT_LOCAL_PORT: { get: (s) => s.logConnection?.['destination.port'], connection: true },
  DOWNSTREAM_LOCAL_ADDRESS: { get: (s) => orNone(s.logConnection?.['destination.address'] ?? ''), connection: true },
  DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT: { get: (s) => withoutPort(s.logConnection?.['destination.address']), connection: true },
  DOWNSTREAM_LOCAL_PORT: { get: (s) => s.logConnection?.['destination.port'], connection: true },
  // The downstream connection's id (connectionID().value_or(0)).
  CONNECTION_ID: { get: (s) => s.logConnection?.['connection.id'] ?? 0, connection: true },
  REQUESTED_SERVER_NAME: { get: (s) => orNone(s.logConnection?.['connection.requested_server_name'] ?? ''), connection: true },
  // StreamInfoDurationFormatterProvider: whole milliseconds from the stream's start, none when not reached.
  REQUEST_DURATION: { get: (s) => since(s, s.requestDoneAt), connection: false, times: true },
  REQUEST_TX_DURATION: { get: (s) => since(s, s.upstreamSentAt), connection: false, times: true },
  RESPONSE_DURATION: { get: (s) => since(s, s.upstreamFirstRxAt), connection: false, times: true },
  // lastDownstreamTxByteSent - firstUpstreamRxByteReceived, when both were reached.
  RESPONSE_TX_DURATION: { get: (s) => (s.responseDoneAt === 0 || s.upstreamFirstRxAt === 0 ? undefined : Math.max(0, s.responseDoneAt - s.upstreamFirstRxAt)), connection: false, times: true },
  // The last attempt's transport failure (a TLS handshake to the upstream) that the router answered for: the
  // reason as node's TLS gives it (TLS_error:CODE:message), which is not BoringSSL's text.
  // Spaces become '_', as Envoy's formatter writes it (until 2026-11-28 they were kept).
  UPSTREAM_TRANSPORT_FAILURE_REASON: { get: (s) => underscored(s.replied?.transport), connection: false },
  UPSTREAM_LOCAL_ADDRESS: { get: (s) => s.upstreamLocalAddress, connection: false, times: true },
  UPSTREAM_LOCAL_ADDRESS_WITHOUT_PORT: { get: (s) => withoutPort(s.upstreamLocalAddress), connection: false, times: true },
  UPSTREAM_LOCAL_PORT: { get: (s) => portOf(s.upstreamLocalAddress), connection: false, times: true },
  // Ssl::ConnectionInfo of the downstream connection (StreamInfoSslConnectionInfoFormatterProvider): none on
  // plaintext, and none where the value is empty.
  DOWNSTREAM_PEER_URI_SAN: downstreamTls((t) => t.peerUriSan),
  DOWNSTREAM_PEER_DNS_SAN: downstreamTls((t) => t.peerDnsSan),
  DOWNSTREAM_PEER_IP_SAN: downstreamTls((t) => t.peerIpSan),
  DOWNSTREAM_PEER_EMAIL_SAN: downstreamTls((t) => t.peerEmailSan),
  DOWNSTREAM_LOCAL_URI_SAN: downstreamTls((t) => t.localUriSan),
  DOWNSTREAM_LOCAL_DNS_SAN: downstreamTls((t) => t.localDnsSan),
  DOWNSTREAM_LOCAL_IP_SAN: downstreamTls((t) => t.localIpSan),
  DOWNSTREAM_LOCAL_EMAIL_SAN: downstreamTls((t) => t.localEmailSan),
  DOWNSTREAM_PEER_SUBJECT: downstreamTls((t) => t.peerSubject),
  DOWNSTREAM_LOCAL_SUBJECT: downstreamTls((t) => t.localSubject),
  DOWNSTREAM_PEER_ISSUER: downstreamTls((t) => t.peerIssuer),
  DOWNSTREAM_TLS_VERSION: downstreamTls((t) => t.version),
  DOWNSTREAM_TLS_CIPHER: downstreamTls((t) => t.cipher),
  DOWNSTREAM_PEER_FINGERPRINT_256: downstreamTls((t) => t.peerSha256),
  DOWNSTREAM_PEER_FINGERPRINT_1: downstreamTls((t) => t.peerSha1),
  DOWNSTREAM_PEER_SERIAL: downstreamTls((t) => t.peerSerial),
  // The peer certificate as PEM, percent-encoded (urlEncodedPemEncodedPeerCertificate).
  DOWNSTREAM_PEER_CERT: downstreamTls((t) => t.peerCertEncoded),
  // The same of the last attempt's upstream connection (StreamInfoUpstreamSslConnectionInfoFormatterProvider).
  UPSTREAM_PEER_URI_SAN: upstreamTls((t) => t.peerUriSan),
  UPSTREAM_PEER_DNS_SAN: upstreamTls((t) => t.peerDnsSan),
  UPSTREAM_PEER_IP_SAN: upstreamTls((t) => t.peerIpSan),
  UPSTREAM_LOCAL_URI_SAN: upstreamTls((t) => t.localUriSan),
  UPSTREAM_LOCAL_DNS_SAN: upstreamTls((t) => t.localDnsSan),
  UPSTREAM_LOCAL_IP_SAN: upstreamTls((t) => t.localIpSan),
  UPSTREAM_PEER_SUBJECT: upstreamTls((t) => t.peerSubject),
  UPSTREAM_PEER_ISSUER: upstreamTls((t) => t.peerIssuer),
  UPSTREAM_TLS_VERSION: upstreamTls((t) => t.version),
  UPSTREAM_TLS_CIPHER: upstreamTls((t) => t.cipher),
  UPSTREAM_PEER_CERT: upstreamTls((t) => t.peerCertEncoded),
};

/**
 * The operators that give a time (SystemTimeFormatter): with no format (or an empty one), Envoy's default,
 * %Y-%m-%dT%H:%M:%E3SZ (ISO 8601 in UTC with milliseconds); with one, that format (sidecar/time-format.ts; until
 * 2026-11-29 a format was NACKed). What each reads: the stream's start, or a TLS peer certificate's validity.
 */
const TIMES: Record<string, { time: (s: LogSource) => number | undefined; needs: Omit<CompiledOperator, 'get'> }> = {
  START_TIME: { time: (s) => s.started, needs: { connection: false } },
  DOWNSTREAM_PEER_CERT_V_START: { time: (s) => s.logDownstreamTls?.peerValidFrom, needs: { connection: false, downstreamTls: true } },
  DOWNSTREAM_PEER_CERT_V_END: { time: (s) => s.logDownstreamTls?.peerValidTo, needs: { connection: false, downstreamTls: true } },
  UPSTREAM_PEER_CERT_V_START: { time: (s) => s.upstreamTls?.peerValidFrom, needs: { connection: false, times: true, upstreamTls: true } },
  UPSTREAM_PEER_CERT_V_END: { time: (s) => s.upstreamTls?.peerValidTo, needs: { connection: false, times: true, upstreamTls: true } },
};

/** A time operator compiled with its format (undefined or '': Envoy's default), or why not. */
function timeOperator(token: string, name: string, format: string | undefined): CompiledOperator | string {
  const t = TIMES[name]!;
  const read = t.time;
  if (!format) return { ...t.needs, get: (s) => isoTime(read(s)) };
  const f = compileTimeFormat(format);
  if (typeof f === 'string') return `%${token}%: ${f}`;
  return { ...t.needs, get: (s) => { const ms = read(s); return ms === undefined ? undefined : f(ms); } };
}

function isoTime(ms: number | undefined): string | undefined {
  return ms === undefined ? undefined : new Date(ms).toISOString();
}

function downstreamTls(pick: (t: TlsInfo) => string): CompiledOperator {
  return { get: (s) => (s.logDownstreamTls === undefined ? undefined : orNone(pick(s.logDownstreamTls))), connection: false, downstreamTls: true };
}

function upstreamTls(pick: (t: TlsInfo) => string): CompiledOperator {
  return { get: (s) => (s.upstreamTls === undefined ? undefined : orNone(pick(s.upstreamTls))), connection: false, times: true, upstreamTls: true };
}

function underscored(v: string | undefined): string | undefined {
  return v === undefined || !v.includes(' ') ? v : v.replaceAll(' ', '_');
}

/** ResponseFlagUtils' long (PascalCase) names, by short flag (stream_info/utility.h). */
const LONG_FLAGS: Record<string, string> = {
  LH: 'FailedLocalHealthCheck', UH: 'NoHealthyUpstream', UT: 'UpstreamRequestTimeout', LR: 'LocalReset', UR: 'UpstreamRemoteReset',
  UF: 'UpstreamConnectionFailure', UC: 'UpstreamConnectionTermination', UO: 'UpstreamOverflow', NR: 'NoRouteFound', DI: 'DelayInjected',
  FI: 'FaultInjected', RL: 'RateLimited', UAEX: 'UnauthorizedExternalService', RLSE: 'RateLimitServiceError', DC: 'DownstreamConnectionTermination',
  URX: 'UpstreamRetryLimitExceeded', SI: 'StreamIdleTimeout', IH: 'InvalidEnvoyRequestHeaders', DPE: 'DownstreamProtocolError',
  UMSDR: 'UpstreamMaxStreamDurationReached', RFCF: 'ResponseFromCacheFilter', NFCF: 'NoFilterConfigFound', DT: 'DurationTimeout',
  UPE: 'UpstreamProtocolError', NC: 'NoClusterFound', OM: 'OverloadManagerTerminated', DF: 'DnsResolutionFailed', DO: 'DropOverload',
};
const longFlagsSeen = new Map<string, string>();

/** %RESPONSE_FLAGS_LONG%: each flag by its long name, comma-separated as the short ones; '-' for none. */
function longFlags(flags: string): string {
  let long = longFlagsSeen.get(flags);
  if (long !== undefined) return long;
  long = flags === '-' ? '-' : flags.split(',').map((f) => LONG_FLAGS[f] ?? f).join(',');
  // The combinations the sidecar logs are few; the cache stays small.
  if (longFlagsSeen.size < 256) longFlagsSeen.set(flags, long);
  return long;
}

/** Milliseconds from the stream's start to a timing point; undefined when the stream did not reach it. */
function since(s: LogSource, at: number): number | undefined {
  return at === 0 ? undefined : Math.max(0, at - s.started);
}

/** The port of `ip:port` as a number. */
function portOf(address: string | undefined): number | undefined {
  if (!address) return undefined;
  const port = Number(address.slice(address.lastIndexOf(':') + 1));
  return Number.isInteger(port) ? port : undefined;
}

/** `ip:port` or `[v6]:port` without its port. */
function withoutPort(address: string | undefined): string | undefined {
  if (!address) return undefined;
  const colon = address.lastIndexOf(':');
  const ip = address.slice(0, colon);
  return ip.charCodeAt(0) === 91 /* [ */ ? ip.slice(1, -1) : ip;
}

/** %RESPONSE_CODE_DETAILS%: whitespace replaced by '_' (StringUtil::replaceAllEmptySpace) unless ALLOW_WHITESPACES. */
function details(s: LogSource, allowWhitespace: boolean): string | undefined {
  const d = responseCodeDetails(s.log.response_code, s.endFlag, s.replied, s.endDetails);
  if (d === undefined || allowWhitespace) return d;
  return /\s/.test(d) ? d.replace(/\s/g, '_') : d;
}

const hostName = hostname();

/**
 * The operator `%...%` (without its percent signs) compiled, or a message
 * saying why not. `REQ(A?B):N`, `RESP(A?B):N`, `START_TIME`,
 * `RESPONSE_CODE_DETAILS(ALLOW_WHITESPACES)`, `HOSTNAME`, and SIMPLE.
 */
function compileOperator(token: string): CompiledOperator | string {
  const open = token.indexOf('(');
  const name = open < 0 ? token : token.slice(0, open);
  let arg: string | undefined;
  let maxLength: number | undefined;
  if (open >= 0) {
    const close = token.indexOf(')', open);
    if (close < 0) return `closing bracket is missing in %${token}%`;
    arg = token.slice(open + 1, close);
    const rest = token.slice(close + 1);
    if (rest !== '') {
      if (rest[0] !== ':' || !/^:\d+$/.test(rest)) return `incorrect position of ')' in %${token}% (a length limit is ):N)`;
      maxLength = Number(rest.slice(1));
    }
  } else {
    const colon = token.indexOf(':');
    if (colon >= 0) return `%${token}% takes no length limit`;
  }
  if (name === 'REQ' || name === 'RESP' || name === 'TRAILER') {
    if (!arg) return `%${name}(...)% needs a header name`;
    const parts = arg.split('?');
    if (parts.length > 2) return `more than 1 alternative header in %${token}%`;
    const main = parts[0]!.toLowerCase();
    const alt = parts[1]?.toLowerCase();
    if (main === '' || alt === '') return `empty header name in %${token}%`;
    const read = name === 'REQ' ? requestHeader : name === 'RESP' ? responseHeader : responseTrailer;
    const get: Operator =
      alt === undefined
        ? maxLength === undefined
          ? (s) => read(s, main)
          : (s) => read(s, main)?.slice(0, maxLength)
        : (s) => {
            const v = read(s, main) ?? read(s, alt);
            return maxLength === undefined ? v : v?.slice(0, maxLength);
          };
    return { get, connection: false };
  }
  if (name === 'FILTER_STATE') return filterStateOperator(token, arg, maxLength);
  if (name === 'DYNAMIC_METADATA') return dynamicMetadataOperator(token, arg, maxLength);
  if (maxLength !== undefined) return `%${token}%: the weft sidecar supports a length limit only on %REQ()%, %RESP()%, %TRAILER()%, %FILTER_STATE()% and %DYNAMIC_METADATA()%`;
  if (TIMES[name] !== undefined) return timeOperator(token, name, arg);
  if (name === 'RESPONSE_CODE_DETAILS' && arg !== undefined) {
    if (arg !== 'ALLOW_WHITESPACES') return `%${token}%: the only argument is ALLOW_WHITESPACES`;
    return { get: (s) => details(s, true), connection: false };
  }
  if (name === 'HOSTNAME' && arg === undefined) return { get: () => hostName, connection: false };
  const simple = SIMPLE[name];
  if (simple !== undefined && arg === undefined) return simple;
  return `%${token}% is not supported by the weft sidecar`;
}

/** Envoy's key prefix for what a wasm filter stores with set_property (CelStateKeyPrefix). */
const WASM_STATE_PREFIX = 'wasm.';
const BYTES_VALUE_TYPE = 'type.googleapis.com/google.protobuf.BytesValue';

/**
 * %FILTER_STATE(KEY:F):Z% as Envoy's FilterStateFormatter reads the filter state. The only objects in the sidecar's
 * are what wasm filters store with proxy_set_property, under `wasm.<path>`: Envoy's CelState of the default
 * prototype (bytes). PLAIN is its serializeAsString (the bytes as they are); TYPED (the default) its
 * serializeAsProto, an Any holding a BytesValue, printed as protobuf's JSON, and in a json_format the same object
 * as a value (formatValue). Z truncates the text (not TYPED's value in a json_format, as in Envoy). A key nothing
 * was stored under: no value. FIELD (an object's field) is NACKed: a CelState has no fields.
 */
function filterStateOperator(token: string, arg: string | undefined, maxLength: number | undefined): CompiledOperator | string {
  if (!arg) return `%${token}%: FILTER_STATE needs a key`;
  const [key, form = 'TYPED', ...more] = arg.split(':');
  if (key === '' || more.length > 0 || (form !== 'PLAIN' && form !== 'TYPED')) {
    if (form === 'FIELD') return `%${token}%: FIELD is not supported by the weft sidecar (a wasm filter's value has no fields)`;
    return `%${token}%: the form is PLAIN or TYPED (FILTER_STATE(KEY:PLAIN))`;
  }
  const stored = (s: LogSource): Uint8Array | undefined => (key!.startsWith(WASM_STATE_PREFIX) ? s.logFilterState?.get(key!.slice(WASM_STATE_PREFIX.length)) : undefined);
  const cut = (v: string): string => (maxLength === undefined ? v : v.slice(0, maxLength));
  if (form === 'PLAIN') {
    return {
      get: (s) => {
        const v = stored(s);
        return v === undefined ? undefined : cut(Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('utf8'));
      },
      connection: false,
    };
  }
  const typed = (s: LogSource): string | undefined => {
    const v = stored(s);
    return v === undefined ? undefined : `{"@type":"${BYTES_VALUE_TYPE}","value":"${Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64')}"}`;
  };
  return {
    get: (s) => {
      const v = typed(s);
      return v === undefined ? undefined : cut(v);
    },
    json: typed,
    connection: false,
  };
}

/**
 * %DYNAMIC_METADATA(NAMESPACE:KEY*):Z% as Envoy's MetadataFormatter reads the stream's dynamic metadata. The
 * sidecar's holds what its RBAC filters' shadow rules decided (namespace envoy.filters.http.rbac, string values).
 * With keys: the value there, a string as it is; without: the whole namespace, as JSON (keys sorted), and in a
 * json_format as an object. Z truncates the text (a string value only, in a json_format). Nothing there: no value.
 */
function dynamicMetadataOperator(token: string, arg: string | undefined, maxLength: number | undefined): CompiledOperator | string {
  if (!arg) return `%${token}%: DYNAMIC_METADATA needs a namespace`;
  const [namespace, ...path] = arg.split(':');
  if (namespace === '' || path.some((k) => k === '')) return `%${token}%: an empty namespace or key`;
  const cut = (v: string): string => (maxLength === undefined ? v : v.slice(0, maxLength));
  const whole = (fields: Readonly<Record<string, string>>): string => `{${Object.keys(fields).sort().map((k) => `${JSON.stringify(k)}:${JSON.stringify(fields[k])}`).join(',')}}`;
  if (path.length === 0) {
    const json = (s: LogSource): string | undefined => {
      const fields = s.logDynamicMetadata?.[namespace!];
      return fields === undefined ? undefined : whole(fields);
    };
    return {
      get: (s) => {
        const v = json(s);
        return v === undefined ? undefined : cut(v);
      },
      json,
      connection: false,
    };
  }
  // Every value the sidecar records is a string: a key under one is nothing.
  const key = path.length === 1 ? path[0]! : undefined;
  return {
    get: (s) => {
      const v = key === undefined ? undefined : s.logDynamicMetadata?.[namespace!]?.[key];
      return v === undefined ? undefined : cut(v);
    },
    connection: false,
  };
}

const OPERATOR = /%([A-Z][A-Z0-9_]*(?:\([^)]*\))?(?::\d+)?)%/y;

/** A format string's parts: literal text, and operators. */
type Part = string | CompiledOperator;

/**
 * A format string split as Envoy's SubstitutionFormatParser splits it:
 * `%%` is a literal `%`, `%NAME...%` an operator; a `%` that starts no
 * operator is an error (Envoy refuses the format).
 */
function parseFormat(format: string, fail: (message: string) => void): Part[] | undefined {
  const parts: Part[] = [];
  let literal = '';
  let i = 0;
  let ok = true;
  while (i < format.length) {
    const c = format[i]!;
    if (c !== '%') {
      literal += c;
      i++;
      continue;
    }
    if (format[i + 1] === '%') {
      literal += '%';
      i += 2;
      continue;
    }
    // As Envoy's parser: %NAME%, %NAME(anything but ')')%, either with :N before the closing %.
    OPERATOR.lastIndex = i;
    const m = OPERATOR.exec(format);
    const token = m ? m[1]! : '';
    const end = m ? i + m[0].length - 1 : -1;
    if (!m) {
      fail(`${JSON.stringify(format)}: not a command operator at position ${i} (an operator is %NAME%, %NAME(arg)% or %NAME(arg):N%; %% is a literal %)`);
      return undefined;
    }
    const op = compileOperator(token);
    if (typeof op === 'string') {
      fail(op);
      ok = false;
    } else {
      if (literal) parts.push(literal);
      literal = '';
      parts.push(op);
    }
    i = end + 1;
  }
  if (literal) parts.push(literal);
  return ok ? parts : undefined;
}

/** Text of parts, a missing value as `empty` (Envoy's '-' or, under omit_empty_values, ''). */
function textOf(parts: Part[], empty: string): (s: LogSource) => string {
  if (parts.length === 1 && typeof parts[0] !== 'string') {
    const get = parts[0]!.get;
    return (s) => {
      const v = get(s);
      return v === undefined ? empty : typeof v === 'number' ? String(v) : v;
    };
  }
  return (s) => {
    let out = '';
    for (let i = 0; i < parts.length; i++) {
      const p = parts[i]!;
      if (typeof p === 'string') out += p;
      else {
        const v = p.get(s);
        out += v === undefined ? empty : v;
      }
    }
    return out;
  };
}

/** A JSON value's text for one request; undefined: omitted (omit_empty_values and no value). */
type JsonPart = (s: LogSource) => string | undefined;

interface JsonOptions {
  omitEmpty: boolean;
  sort: boolean;
  connection: boolean;
  times: boolean;
  downstreamTls: boolean;
  upstreamTls: boolean;
}

function compileJsonValue(v: unknown, path: string, errors: { path: string; message: string }[], o: JsonOptions): JsonPart | undefined {
  if (typeof v === 'number') {
    const text = JSON.stringify(v);
    return () => text;
  }
  if (typeof v === 'string') {
    const parts = parseFormat(v, (message) => errors.push({ path, message }));
    if (parts === undefined) return undefined;
    for (const p of parts) {
      if (typeof p === 'string') continue;
      if (p.connection) o.connection = true;
      if (p.times) o.times = true;
      if (p.downstreamTls) o.downstreamTls = true;
      if (p.upstreamTls) o.upstreamTls = true;
    }
    if (parts.length === 0) return () => '""';
    if (parts.every((p) => typeof p === 'string')) {
      const text = JSON.stringify(parts.join(''));
      return () => text;
    }
    if (parts.length === 1) {
      // One operator alone keeps its type (formatValue): null when the stream has no value.
      const { get, json } = parts[0] as CompiledOperator;
      const none = o.omitEmpty ? undefined : 'null';
      if (json !== undefined) return (s) => json(s) ?? none;
      return (s) => {
        const x = get(s);
        return x === undefined ? none : typeof x === 'number' ? String(x) : JSON.stringify(x);
      };
    }
    // Text around operators: a string, a missing value as '-' ('' under omit_empty_values).
    const text = textOf(parts, o.omitEmpty ? '' : '-');
    return (s) => JSON.stringify(text(s));
  }
  if (Array.isArray(v)) {
    const items: JsonPart[] = [];
    let ok = true;
    v.forEach((x, i) => {
      const c = compileJsonValue(x, `${path}[${i}]`, errors, o);
      if (c) items.push(c);
      else ok = false;
    });
    if (!ok) return undefined;
    return (s) => {
      let out = '[';
      let first = true;
      for (let i = 0; i < items.length; i++) {
        const x = items[i]!(s);
        if (x === undefined) continue;
        out += first ? x : `,${x}`;
        first = false;
      }
      return out + ']';
    };
  }
  if (v !== null && typeof v === 'object') return compileJsonObject(v as Record<string, unknown>, path, errors, o);
  errors.push({ path, message: 'only strings, numbers, nested objects and lists are supported in a structured access log format (as Envoy)' });
  return undefined;
}

function compileJsonObject(obj: Record<string, unknown>, path: string, errors: { path: string; message: string }[], o: JsonOptions): JsonPart | undefined {
  let keys = Object.keys(obj);
  if (o.sort) keys = [...keys].sort();
  const entries: { key: string; value: JsonPart }[] = [];
  let ok = true;
  for (const k of keys) {
    const c = compileJsonValue(obj[k], join(path, k), errors, o);
    if (c) entries.push({ key: `${JSON.stringify(k)}:`, value: c });
    else ok = false;
  }
  if (!ok) return undefined;
  return (s) => {
    let out = '{';
    let first = true;
    for (let i = 0; i < entries.length; i++) {
      const e = entries[i]!;
      const x = e.value(s);
      if (x === undefined) continue;
      out += first ? e.key + x : `,${e.key}${x}`;
      first = false;
    }
    return out + '}';
  };
}

/**
 * The access_log entries of a connection manager, checked and compiled: only
 * the stdout logger, with a json_format, text_format or text_format_source
 * (inline) log format, or none (Envoy's default text format), and its
 * filter (access-log-filter.ts); formatter extensions are NACKed. Undefined
 * when there is none.
 */
export function decodeAccessLogs(logs: Fields[]): AccessLogFormat[] | undefined {
  const out: AccessLogFormat[] = [];
  for (const log of logs) {
    log.ignore('name');
    const tc = log.obj('typed_config');
    // The entry's filter (sidecar/access-log-filter.ts), compiled once here; one the sidecar does not implement is NACKed.
    const filterFields = log.obj('filter');
    const filter = filterFields ? compileLogFilter(filterFields) : undefined;
    // Anything else is reported by done(): not implemented.
    log.done();
    if (!tc) {
      log.fail('typed_config', 'required: the stdout access logger (envoy.extensions.access_loggers.stream.v3.StdoutAccessLog)');
      continue;
    }
    if (typeName(tc) !== STDOUT_LOG_TYPE) {
      tc.fail('@type', 'only the stdout access logger (envoy.extensions.access_loggers.stream.v3.StdoutAccessLog) is supported by the weft sidecar');
      continue;
    }
    const format = tc.obj('log_format');
    tc.done();
    const compiled = format ? compileLogFormat(format) : compileText(DEFAULT_FORMAT, `${tc.path}.log_format`, tc.errors, false);
    if (compiled) out.push(filter ? { ...compiled, filter } : compiled);
  }
  return out.length > 0 ? out : undefined;
}

/** Envoy's default format (SubstitutionFormatUtils::DEFAULT_FORMAT) for a logger without log_format. */
const DEFAULT_FORMAT =
  '[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" ' +
  '%RESPONSE_CODE% %RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT% %DURATION% ' +
  '%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%" "%REQ(X-REQUEST-ID)%" ' +
  '"%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%"\n';

/** A SubstitutionFormatString (log_format), compiled. */
function compileLogFormat(format: Fields): AccessLogFormat | undefined {
  const omitEmpty = format.bool('omit_empty_values') ?? false;
  const which = ['json_format', 'text_format', 'text_format_source'].filter((k) => format.has(k));
  if (which.length > 1) format.fail(which[1]!, `only one of json_format, text_format, text_format_source may be set (${which[0]} is)`);
  // content_type only matters to local replies; the stdout logger ignores it.
  format.ignore('content_type');
  let compiled: AccessLogFormat | undefined;
  if (which[0] === 'json_format') {
    const json = format.raw('json_format');
    const options = format.obj('json_format_options');
    const sort = options?.bool('sort_properties') ?? false;
    options?.done();
    if (json === null || typeof json !== 'object' || Array.isArray(json)) format.fail('json_format', 'expected an object (a Struct)');
    else {
      const o: JsonOptions = { omitEmpty, sort, connection: false, times: false, downstreamTls: false, upstreamTls: false };
      const errors = format.errors;
      const before = errors.length;
      const root = compileJsonObject(json as Record<string, unknown>, `${format.path}.json_format`, errors, o);
      if (root && errors.length === before) compiled = { format: (s) => root(s)!, needsConnection: o.connection, needsTimes: o.times, needsDownstreamTls: o.downstreamTls, needsUpstreamTls: o.upstreamTls };
    }
  } else if (which[0] === 'text_format') {
    const text = format.str('text_format');
    if (text !== undefined) compiled = compileText(text, `${format.path}.text_format`, format.errors, omitEmpty);
  } else if (which[0] === 'text_format_source') {
    const source = format.obj('text_format_source');
    const inline = source?.str('inline_string');
    source?.done();
    if (source && inline === undefined) source.fail('inline_string', 'required: the weft sidecar reads a text format only inline (not from a file or environment variable)');
    if (inline !== undefined) compiled = compileText(inline, `${format.path}.text_format_source.inline_string`, format.errors, omitEmpty);
  } else format.fail('json_format', 'required: one of json_format, text_format, text_format_source');
  // formatters (formatter extensions) and anything else: not implemented.
  format.done();
  return compiled;
}

/** A text format: every operator as text, a missing value `-` ('' under omit_empty_values); the line without its trailing newline (the writer adds one). */
function compileText(text: string, path: string, errors: { path: string; message: string }[], omitEmpty: boolean): AccessLogFormat | undefined {
  const parts = parseFormat(text, (message) => errors.push({ path, message }));
  if (parts === undefined) return undefined;
  const render = textOf(parts, omitEmpty ? '' : '-');
  const connection = parts.some((p) => typeof p !== 'string' && p.connection);
  // Envoy writes what the format gives; the sidecar's writer ends every line with one newline.
  return {
    format: (s) => {
      const line = render(s);
      return line.charCodeAt(line.length - 1) === 10 ? line.slice(0, -1) : line;
    },
    needsConnection: connection,
    needsTimes: parts.some((p) => typeof p !== 'string' && p.times === true),
    needsDownstreamTls: parts.some((p) => typeof p !== 'string' && p.downstreamTls === true),
    needsUpstreamTls: parts.some((p) => typeof p !== 'string' && p.upstreamTls === true),
  };
}
