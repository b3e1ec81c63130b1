// One downstream HTTP request through an HTTP connection manager: route
// selection, filters, header mutations, rewrites, mirroring, forwarding, and
// the response back, with an access log line and Envoy's counters at the end.

import { constants as http2constants, type Http2ServerRequest, type Http2ServerResponse } from 'node:http2';
import { Readable, Transform, type Duplex } from 'node:stream';
import type { AccessLogEntry, LogSource } from './access-log-format.ts';
import type { ClusterManager } from './clusters.ts';
import type { HeaderMutationConfig, HttpConnectionManagerConfig, RouteActionConfig, RouteConfig, RouteEntry, RoutingPriority, TracingConfig, VirtualHostConfig } from './config.ts';
import type { DataResult, FilterResolver, ResponseStart } from './filter-chain.ts';
import { NO_ROUTE, RequestFilters } from './filter-chain.ts';
import { normalizeRequestPath } from './path-normalize.ts';
import { Downstream, forward } from './forward.ts';
import type { CodecReply, H1Request, H1Response } from './http1.ts';
import { DownstreamProtocolError } from './http1.ts';
import { headerError } from './llhttp.ts';
import { applyMutation, flatFromPairs, getHeader, objectFromPairs, pairsFromRaw, removeHeader, setHeader, withoutHopByHop, withoutPseudo } from './headers.ts';
import { requestHash } from './lb/hash-policy.ts';
import type { LocalReply } from './local-reply.ts';
import { isGrpc, localReplies, renderLocalReply, resetFlag, upstreamResetDetails } from './local-reply.ts';
import { forwardedClientCert, peerCertificate, peerProperties } from './peer-identity.ts';
import { tlsInfo, type TlsInfo } from './tls-info.ts';
import { requestId as newRequestId } from './request-id.ts';
import { headerMatches, pickWeighted, selectRoute, selectVirtualHost, type RouteRequest, type StreamRandom } from './router.ts';
import { applyRouterHeaders } from './router-headers.ts';
import type { HcmSeries, SidecarStats } from './stats.ts';
import { connectionAttributes, responseCodeDetails, type ConnectionAttributes } from './stream-attributes.ts';
import type { TlsContexts } from './tls-contexts.ts';
import { finishSpan, startSpan, type Span, type Tracer } from './tracing.ts';
import type { OverloadManager } from './overload.ts';
import type { Tap } from './tap.ts';
import type { Runtime } from './runtime.ts';
import type { BodySink, HeaderPairs, TrailerSource, UpgradeAdmission, UpstreamPool, UpstreamResponse } from './upstream.ts';
import { UpstreamFailure } from './upstream.ts';
import type { Http2Pool } from './h2-client.ts';
import { join, openUpgrade, type UpgradeRequest } from './upgrade.ts';
import type { StreamProperties } from './wasm/index.ts';
import { StreamRateLimiter } from './rate-limiter.ts';

export type { AccessLogEntry } from './access-log-format.ts';

export interface ProxyEnv {
  clusters: ClusterManager;
  routeConfig(name: string): RouteConfig | undefined;
  filters: FilterResolver;
  stats: SidecarStats;
  /** Where access log lines go (stdout, batched); absent (WEFT_ACCESS_LOG=off): no connection manager logs. */
  accessLog?: (line: string) => void;
  random: () => number;
  /** Certificates from SDS, for listeners with mutual TLS. */
  tls?: TlsContexts;
  /** This proxy's node id (the spans' node_id tag). */
  nodeId?: string;
  /** Its node's cluster (Envoy's local cluster name, --service-cluster): the health_check filter's x-envoy-upstream-healthchecked-cluster. */
  nodeCluster?: string;
  /** The OpenTelemetry tracer a connection manager's tracing exports to. */
  tracer?: (config: TracingConfig) => Tracer | undefined;
  /** Envoy's overload manager (weft sidecar --max-heap-mb, --max-downstream-connections); absent when not configured. */
  overload?: OverloadManager;
  /** Admin GET /tap's sessions (sidecar/tap.ts). */
  tap?: Tap;
  /** Envoy's layered runtime (sidecar/runtime.ts): mirrors' runtime_key, the fault filter's and tracing's keys. Absent: none. */
  runtime?: Runtime;
}

/**
 * A mirror's chance: Envoy's shouldShadow, the runtime's value of its runtime_fraction.runtime_key over default_value,
 * against the stream's random value (Envoy's router passes callbacks_->streamId(), the route match's too).
 */
function mirrorFraction(env: ProxyEnv, mirror: { fraction: number; runtimeKey?: string }): number {
  return mirror.runtimeKey && env.runtime ? env.runtime.fraction(mirror.runtimeKey, mirror.fraction) : mirror.fraction;
}

type Req = H1Request | Http2ServerRequest;
type Res = H1Response | Http2ServerResponse;

const EMPTY = Buffer.alloc(0);
/** What a request held by a filter ends with when its client goes away first (logged as Envoy's DC). */
const ABANDONED: LocalReply = Object.freeze({ status: 0, body: '', headers: [], flag: 'DC' });
const NO_BODY_METHODS = new Set(['GET', 'HEAD', 'DELETE', 'OPTIONS']);
/** What an authority may hold (nghttp2_check_authority, which Envoy's header validation uses): no '/', '?', '#' or space. */
const VALID_AUTHORITY = /^[A-Za-z0-9\-._~!$&'()*+,;=:@%[\]]*$/;

/** The order in which Envoy prints the response flags it joins (ResponseFlagUtils), for those the sidecar sets. */
const FLAG_ORDER = ['LH', 'UH', 'UT', 'LR', 'UR', 'UF', 'UC', 'UO', 'NR', 'DI', 'FI', 'RL', 'UAEX', 'RLSE', 'DC', 'URX', 'SI', 'IH', 'DPE', 'UMSDR', 'RFCF', 'NFCF', 'DT', 'UPE', 'NC', 'OM'];

/** `flags` (an access log's response_flags, '-' for none) with `add` too, in Envoy's order: `UF,URX`. */
export function withFlag(flags: string, add: string): string {
  if (flags === '-' || flags === add) return add;
  const rank = (f: string) => {
    const i = FLAG_ORDER.indexOf(f);
    return i < 0 ? FLAG_ORDER.length : i;
  };
  return [...new Set([...flags.split(','), add])].sort((a, b) => rank(a) - rank(b)).join(',');
}

/** What readBody needs of either request kind (HTTP/1.x from sidecar/http1.ts, or an h2 stream). */
interface BodySource {
  on(event: 'data', fn: (chunk: Buffer) => void): unknown;
  on(event: 'end' | 'close', fn: () => void): unknown;
  on(event: 'error', fn: (err: Error) => void): unknown;
  destroy(): void;
}

function pauseBody(req: Req): void {
  if ('pauseBody' in req) req.pauseBody();
  else req.pause();
}

function resumeBody(req: Req): void {
  if ('resumeBody' in req) req.resumeBody();
  else req.resume();
}

/**
 * The request body: whole, when it ends within `limit` bytes; otherwise, as
 * soon as it passes the limit, a Readable of what came so far and the rest as
 * it arrives (the client is paused while the upstream side is behind).
 */
function readBody(source: Req, limit: number, stream: Stream): Promise<Buffer | Readable> {
  const req = source as BodySource;
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let ended = false;
    let rest: Readable | undefined;
    req.on('data', (c: Buffer) => {
      stream.received(c.length);
      if (rest) {
        // Nobody reads a destroyed stream (the exchange ended early): the bytes are dropped.
        if (!rest.destroyed && !rest.push(c)) pauseBody(source);
        return;
      }
      size += c.length;
      chunks.push(c);
      if (size > limit) {
        rest = new Readable({
          read() {
            resumeBody(source);
          },
        });
        // The body's failure (the client left mid-body) is its reader's business; with no reader left (the
        // upstream exchange already ended), it must not surface as an unhandled error.
        rest.on('error', ignoreError);
        for (const x of chunks) rest.push(x);
        chunks.length = 0;
        pauseBody(source);
        resolve(rest);
      }
    });
    req.on('end', () => {
      // node ends an h2 request its client reset too ('aborted' first): that is a body cut short, as a close.
      if ((source as Http2ServerRequest).aborted === true) return;
      ended = true;
      stream.decoded();
      if (rest) rest.push(null);
      else resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks));
    });
    req.on('error', (err) => {
      if (rest) {
        // A malformed body past the buffer limit: the exchange under way stops, and the stream answers the error.
        stream.bodyFailed(err);
        rest.destroy(err);
      } else reject(err);
    });
    // The client went away mid-body (or a timeout closed the connection): settle, so nothing waits forever.
    req.on('close', () => {
      if (ended) return;
      const err = new Error('downstream closed before the request body ended');
      if (rest) rest.destroy(err);
      else reject(err);
    });
  });
}

/**
 * What went upstream of a streamed gRPC body, kept (up to the buffer limit)
 * so a retry can resend it and keep streaming, as Envoy's router keeps a
 * streamed body in its buffer; it also feeds the call's shadows as it
 * streams. Nothing is kept once it outgrew the limit.
 */
class BodyCopy {
  #chunks: Buffer[] = [];
  #size = 0;
  #over = false;
  #ended = false;
  /** A retry under way while the body still streams: what came so far, then the rest as it arrives. */
  #live: Readable | undefined;
  /** Shadows streaming with the call (each dropped if it falls more than the limit behind). */
  #tees: { out: Readable; dropped: () => void }[] | undefined;
  readonly #source: Readable;

  constructor(
    body: Readable,
    readonly limit: number,
    readonly stream: Stream,
  ) {
    this.#source = body;
    body.once('end', () => {
      // node ends a call its client reset too ('aborted' first): that body is not whole, and is not mirrored.
      if (stream.downstream.aborted) {
        this.#live?.destroy();
        for (const t of this.#tees ?? []) t.out.destroy();
        return;
      }
      this.#ended = true;
      this.#live?.push(null);
      for (const t of this.#tees ?? []) t.out.push(null);
    });
  }

  /** A chunk on its way upstream (also activity for stream_idle_timeout). */
  add(chunk: Buffer): void {
    if (this.stream.idleTimeout) this.stream.touch();
    // A retry that is streaming gets every chunk, past the limit too (only a further retry becomes impossible).
    if (this.#live && !this.#live.push(chunk)) this.#source.pause();
    // A shadow never slows the call down: one that cannot keep up is dropped instead.
    if (this.#tees) {
      for (const t of this.#tees) {
        t.out.push(chunk);
        if (t.out.readableLength > this.limit) {
          t.out.destroy();
          t.dropped();
        }
      }
      this.#tees = this.#tees.filter((t) => !t.out.destroyed);
    }
    if (this.#over) return;
    this.#size += chunk.length;
    if (this.#size > this.limit) {
      this.#over = true;
      this.#chunks = [];
    } else this.#chunks.push(chunk);
  }

  whole(): Buffer | undefined {
    if (!this.#ended || this.#over) return undefined;
    return this.#chunks.length === 1 ? this.#chunks[0]! : Buffer.concat(this.#chunks);
  }

  /**
   * A shadow of the call as it streams (Envoy's streaming shadows): the
   * body from its start, then the rest as it arrives; `dropped` if it falls
   * more than the buffer limit behind (the shadow is reset then). Undefined
   * once the body outgrew the limit before the shadow began.
   */
  tee(dropped: () => void): Readable | undefined {
    if (this.#over) return undefined;
    const out = new Readable({ read: () => undefined });
    for (const c of this.#chunks) out.push(c);
    if (this.#ended) out.push(null);
    else (this.#tees ??= []).push({ out, dropped });
    return out;
  }

  /**
   * What a retry sends, as Envoy's router resends what it buffered and keeps
   * streaming: the whole body once it ended within the limit; while it still
   * comes, a stream of the part so far followed by the rest as it arrives
   * (the body itself if nothing was read from it yet); undefined once it
   * outgrew the limit.
   */
  replay(): Buffer | Readable | undefined {
    if (this.#over) return undefined;
    if (this.#ended) return this.whole();
    const source = this.#source;
    if (source.readableFlowing === null) return source;
    // The attempt before this one is over: its pipe goes now (its close, later, would pause the body under the retry),
    // and only the newest retry is fed.
    source.unpipe();
    this.#live?.destroy();
    const live = new Readable({ read: () => source.resume() });
    for (const c of this.#chunks) live.push(c);
    this.#live = live;
    return live;
  }
}

/** What a gRPC body's chunks do on their way upstream: counted (bytes_received) when straight from the client, kept for a retry or mirror, activity for stream_idle_timeout. */
function gatherBody(stream: Stream, copy: BodyCopy | undefined, direct: boolean): (chunk: Buffer) => void {
  return (c) => {
    if (direct) stream.log.bytes_received += c.length;
    if (copy) copy.add(c);
    else if (stream.idleTimeout) stream.touch();
  };
}

/** The rest of a streamed body is not wanted (the exchange ended without it): what still arrives is dropped. */
function discardBody(req: Req, streamed: Readable): void {
  if (streamed !== req) streamed.destroy();
  req.resume();
  if ('resumeBody' in req) req.resumeBody();
}

function ignoreError(): void {}

/** Envoy's answer to a request body its codec could not parse: the status, no body, and the connection closes (flag DPE). */
function badRequestBody(err: DownstreamProtocolError): LocalReply {
  return { status: err.status, body: '', headers: [['connection', 'close']], flag: 'DPE' };
}

/**
 * The trailers an HTTP/2 request ended with (node keeps them on the request
 * as they arrive, before its end), without pseudo-headers or hop-by-hop
 * fields; undefined for none, with nothing allocated.
 */
function downstreamTrailers(req: Req | undefined): HeaderPairs | undefined {
  if (req === undefined || req.httpVersionMajor !== 2) return undefined;
  const raw = (req as Http2ServerRequest).rawTrailers;
  return raw === undefined || raw.length === 0 ? undefined : pairsFromRaw(raw);
}

/** Whether the request has arrived whole. */
function requestEnded(req: Req): boolean {
  return 'received' in req ? req.received : req.complete;
}

/** True when the request has no body at all, so reading one would only cost a promise and three listeners. */
function bodiless(req: Req, h2: boolean): boolean {
  if (h2) return (req as Http2ServerRequest).stream?.endAfterHeaders === true;
  const h = req.headers;
  return h['transfer-encoding'] === undefined && (h['content-length'] === undefined || h['content-length'] === '0');
}

/** The response head, with the connection manager's `server` header as Envoy sets it (server_name, server_header_transformation). */
/** The connection manager's `server` header on a response (server_name under server_header_transformation). */
function serverHeader(stream: Stream, headers: HeaderPairs): void {
  const server = stream.hcm.server;
  if (server.transformation === 'OVERWRITE') {
    removeHeader(headers, 'server');
    headers.push(['server', server.name]);
  } else if (server.transformation === 'APPEND_IF_ABSENT' && getHeader(headers, 'server') === undefined) headers.push(['server', server.name]);
}

/**
 * The response head. `last`: nothing follows it (no body, no trailers); on
 * HTTP/2 the HEADERS frame then carries END_STREAM, as Envoy encodes headers
 * with end_stream. gRPC depends on it: a response whose headers do not end
 * the stream is not trailers-only, so grpc-js and other clients read its
 * grpc-status as metadata and fail the call with INTERNAL ("Call ended
 * without gRPC status") when no trailers follow. The caller still calls end().
 */
function writeHead(stream: Stream, status: number, headers: HeaderPairs, last = false): void {
  try {
    writeHeadNow(stream, status, headers, last);
  } catch (e) {
    // A pair node refuses to write (a wasm filter's value with a control character, or a character past latin1):
    // nothing was committed, so the head goes without it rather than the request failing or the proxy throwing.
    const writable = headers.filter(([k, v]) => headerError(k, v) === undefined && !/[^\u0000-\u00ff]/.test(v));
    if (stream.res.headersSent || writable.length === headers.length) throw e;
    writeHeadNow(stream, status, writable, last);
  }
}

function writeHeadNow(stream: Stream, status: number, headers: HeaderPairs, last: boolean): void {
  serverHeader(stream, headers);
  // The health_check filter's encodeHeaders: a health check's answer names the local cluster, when it has one.
  if (stream.healthCheck && stream.env.nodeCluster) setHeader(headers, 'x-envoy-upstream-healthchecked-cluster', stream.env.nodeCluster);
  stream.logResponseHeaders = headers;
  if (stream.tapRequest) stream.tapResponse = [[':status', String(status)], ...headers];
  const res = stream.res;
  if ((res as Http2ServerResponse).stream !== undefined) {
    const h2res = res as Http2ServerResponse;
    if (!h2res.stream.endAfterHeaders && !h2res.req.complete) stream.hs.rqResponseBeforeRqComplete.value++;
    if (last) {
      // node's compat response sends END_STREAM with the headers only when end() sends them.
      for (const [k, v] of Object.entries(objectFromPairs(headers))) h2res.setHeader(k, v);
      h2res.statusCode = status;
      stream.headersOnly = true;
      h2res.end();
    } else h2res.writeHead(status, objectFromPairs(headers));
  } else {
    // Before the request arrived whole: the response says connection: close and the connection closes (http1.ts).
    if (!(res as H1Response).requestReceived) stream.hs.rqResponseBeforeRqComplete.value++;
    (res as H1Response).writeHead(status, flatFromPairs(headers));
  }
}

/** Envoy's redirect path: path_redirect keeps the request's query unless it has one of its own; without it, the request's path. */
function redirectPath(pathRedirect: string | undefined, path: string): string {
  if (pathRedirect === undefined) return path;
  const q = path.indexOf('?');
  return pathRedirect.includes('?') || q < 0 ? pathRedirect : pathRedirect + path.slice(q);
}

function rewritePath(route: RouteEntry, action: RouteActionConfig, path: string): string {
  if (action.prefixRewrite === undefined && !action.regexRewrite) return path;
  const q = path.indexOf('?');
  const [p, query] = q < 0 ? [path, ''] : [path.slice(0, q), path.slice(q)];
  if (action.prefixRewrite !== undefined && (route.match.path.kind === 'prefix' || route.match.path.kind === 'separated_prefix')) {
    const prefix = route.match.path.value;
    return action.prefixRewrite + p.slice(prefix.length) + query;
  }
  if (action.prefixRewrite !== undefined && route.match.path.kind === 'exact') return action.prefixRewrite + query;
  if (action.regexRewrite) return p.replace(action.regexRewrite.regex, action.regexRewrite.replace) + query;
  return path;
}

/** Whether the chain has anything besides the router (most listeners do not). */
function overLimits(raw: readonly string[], hcm: HttpConnectionManagerConfig): boolean {
  if (raw.length / 2 > hcm.maxHeadersCount) return true;
  let bytes = 0;
  for (let i = 0; i < raw.length; i++) bytes += raw[i]!.length;
  return bytes > hcm.maxRequestHeadersBytes;
}

/** The first route of `vh` the request matches (none without a virtual host); a runtime_fraction reads the stream's random value. */
function routeIn(vh: VirtualHostConfig | undefined, authority: string, path: string, method: string, headers: HeaderPairs, stream: Stream): RouteEntry | undefined {
  if (!vh) return undefined;
  return selectRoute(vh, {
    authority,
    path,
    method,
    header(n) {
      return getHeader(headers, n);
    },
    runtime: stream.env.runtime,
    random: stream,
  });
}

function hasHttpFilters(hcm: HttpConnectionManagerConfig): boolean {
  for (const f of hcm.httpFilters) if (f.kind !== 'router' && f.kind !== 'health_check') return true;
  return false;
}

/**
 * The health_check filters (pass-through) in the chain the route leaves enabled: is the request a health check?
 * Every matcher of one filter must match (none: every request), as a route's header matchers match.
 */
function isHealthCheck(hcm: HttpConnectionManagerConfig, route: RouteEntry | undefined, req: Pick<RouteRequest, 'authority' | 'path' | 'method' | 'header'>): boolean {
  for (const f of hcm.httpFilters) {
    if (f.kind !== 'health_check' || route?.disabledFilters.has(f.name)) continue;
    if (f.headers.every((m) => headerMatches(m, req))) return true;
  }
  return false;
}

/**
 * One request's bookkeeping: its HCM timers, its access log entry and the
 * one finish. Methods rather than per-request closures: under tsx every
 * named closure is created with a defineProperty (esbuild's keepNames), which
 * cost more than the closure's work (docs/sidecar.md, Performance).
 */
class Stream implements LogSource, StreamRandom, TrailerSource {
  finished = false;
  /** Counted in downstream_cx_upgrades_total and _active (an accepted upgrade): given back from _active at the end. */
  upgradeCounted = false;
  /**
   * The request's trailers after the filters, once a body with trailers went
   * through them (or, without wasm filters, as the client sent them); until
   * then a streamed HTTP/2 body's are read from its request as it ends.
   */
  filteredTrailers: HeaderPairs | undefined = undefined;
  /** What the connection manager's access logs read (LogSource): the request headers as they end up, what went upstream, the response headers sent, the connection. */
  logRequestHeaders: HeaderPairs | undefined = undefined;
  upstreamPath: string | undefined = undefined;
  upstreamAuthority: string | undefined = undefined;
  logResponseHeaders: HeaderPairs | undefined = undefined;
  logConnection: ConnectionAttributes | undefined = undefined;
  logResponseTrailers: HeaderPairs | undefined = undefined;
  /** What the wasm filters stored with proxy_set_property (LogSource), read by %FILTER_STATE()%. */
  get logFilterState(): ReadonlyMap<string, Uint8Array> | undefined {
    return this.filters?.filterState;
  }
  /** The dynamic metadata its filters set (LogSource), read by %DYNAMIC_METADATA()%. */
  get logDynamicMetadata(): Readonly<Record<string, Readonly<Record<string, string>>>> | undefined {
    return this.filters?.dynamicMetadata;
  }
  /** Timing points (LogSource), recorded only when the connection manager's access logs read them (accessLogsReadTimes). */
  requestDoneAt = 0;
  upstreamSentAt = 0;
  upstreamFirstRxAt = 0;
  responseDoneAt = 0;
  upstreamLocalAddress: string | undefined = undefined;
  /** TLS facts of the downstream and of the last attempt's upstream connection (LogSource), read only when an access log reads them. */
  logDownstreamTls: TlsInfo | undefined = undefined;
  upstreamTls: TlsInfo | undefined = undefined;
  endFlag = '-';
  endDetails: string | undefined = undefined;
  /** A health_check filter took the request for a health check (LogSource; Envoy's StreamInfo::healthCheck). */
  healthCheck = false;
  /** The downstream response closed before it was ended: the client left. */
  clientGone = false;
  filters: RequestFilters | undefined;
  /** A wasm filter's local reply from a streamed request body (the exchange is aborted for it). */
  filterReply: LocalReply | undefined;
  /**
   * Response headers entered the filters' response side (an upstream's, or a
   * local reply's): a local reply from now on is written directly, as Envoy's
   * sendDirectLocalReply once the response headers exist. Before, reply()
   * sends it through the filters, as Envoy's sendLocalReplyViaFilterChain.
   */
  encoding = false;
  /** The virtual host's include_attempt_count_in_response. */
  attemptCountInResponse = false;
  /**
   * The route chosen (with its virtual host and configuration): every local
   * reply from then on carries their response header mutations, as Envoy's
   * filter manager finalizes a local reply with the stream's route
   * (always_apply_route_header_rules, long the only behaviour).
   */
  route: RouteEntry | undefined;
  vhost: VirtualHostConfig | undefined;
  routeConfig: RouteConfig | undefined;
  /** Why the router stopped retrying (URX, UO): logged with the stream's own flag, as Envoy's router sets it beside. */
  retryFlag: string | undefined = undefined;
  /** The local reply the stream answered with, with filters (their response.code_details). */
  replied: LocalReply | undefined = undefined;
  /** Set once a WebSocket upgrade joined the connections: ends the session (with the access log's response flag). */
  upgraded: ((flag: string) => void) | undefined;
  /** The connection manager's span when it traces (sidecar/tracing.ts): finished and exported with the access log. */
  span: Span | undefined;
  /** While admin /tap is open: the request's headers as they came and as sent upstream, and the response's as sent. */
  tapRequest: readonly string[] | undefined;
  tapUpstream: HeaderPairs | undefined;
  tapResponse: HeaderPairs | undefined;
  /** HTTP/2: the response went out as one HEADERS frame with END_STREAM (writeHead's `last`). */
  headersOnly = false;
  /** A request body that streams upstream (past the buffer limit, or gRPC), and its request: dropped if the stream ends before it does. */
  streamedBody: Readable | undefined;
  streamedReq: Req | undefined;
  /** The whole request arrived (Envoy's remoteDecodeComplete): a timeout answers 504 rather than 408. */
  decodeComplete = false;
  #idle: NodeJS.Timeout | undefined;
  #requestTimer: NodeJS.Timeout | undefined;
  #durationTimer: NodeJS.Timeout | undefined;
  /** routeRandom()'s value once drawn (-1: not yet). */
  #routeRandom = -1;

  constructor(
    readonly env: ProxyEnv,
    readonly hs: HcmSeries,
    readonly hcm: HttpConnectionManagerConfig,
    readonly res: Res,
    readonly log: AccessLogEntry,
    readonly started: number,
    readonly grpc: boolean,
    readonly h2: boolean,
    readonly downstream: Downstream,
  ) {
    // stream_idle_timeout: no bytes either way for that long ends the stream;
    // request_timeout: the whole request must arrive within it. Both answer 408
    // while nothing was sent (Envoy's "stream timeout" / "request timeout") and
    // reset the stream after; the upstream exchange is abandoned either way.
    if (hcm.streamIdleTimeoutMs > 0) this.#idle = setTimeout(expire, hcm.streamIdleTimeoutMs, this, 'stream timeout', 'SI');
    if (hcm.requestTimeoutMs > 0) this.#requestTimer = setTimeout(expire, hcm.requestTimeoutMs, this, 'request timeout', 'DPE');
  }

  /**
   * Envoy's stream_id_ as the route table reads it (ConnectionManagerImpl's refreshCachedRoute passes it as the
   * random value): one value per stream, drawn when first needed, that decides every route's runtime_fraction and
   * the weighted cluster pick, and decides them the same way when the route is chosen again after a filter.
   */
  routeRandom(): number {
    if (this.#routeRandom < 0) this.#routeRandom = this.env.random();
    return this.#routeRandom;
  }

  /** The cluster the stream's route sends it to (Envoy's route->routeEntry()->clusterName()): none for no route, a direct response or a redirect. */
  routeCluster(): string | undefined {
    const action = this.route?.action;
    if (action === undefined || action.kind !== 'route') return undefined;
    return action.clusters.length === 1 ? action.clusters[0]!.name : pickWeighted(action.clusters, action.totalWeight, this.routeRandom())!.name;
  }

  /** TrailerSource: what goes upstream after the body (HTTP/2 downstreams; HTTP/1.x request trailers are dropped, as Envoy without enable_trailers). */
  get requestTrailers(): HeaderPairs | undefined {
    return this.filteredTrailers ?? downstreamTrailers(this.streamedReq);
  }

  get suppressEnvoyHeaders(): boolean {
    return this.hcm.suppressEnvoyHeaders;
  }

  get idleTimeout(): boolean {
    return this.#idle !== undefined;
  }

  /** Bytes moved: the idle timer starts over. */
  touch(): void {
    this.#idle?.refresh();
  }

  /** A chunk of the request body arrived. */
  received(bytes: number): void {
    this.#idle?.refresh();
    this.log.bytes_received += bytes;
  }

  /** The streamed request body failed: a malformed one is answered (400, and the connection closes) in place of the exchange. */
  bodyFailed(err: Error): void {
    if (this.finished || !(err instanceof DownstreamProtocolError)) return;
    this.filterReply = badRequestBody(err);
    this.downstream.abort();
  }

  /** The whole request arrived: Envoy's remoteDecodeComplete and, for the access log, lastDownstreamRxByteReceived (not when the stream ended first). */
  decoded(): void {
    if (!this.decodeComplete && !this.finished && this.hcm.accessLogsReadTimes === true) this.requestDoneAt = Date.now();
    this.decodeComplete = true;
  }

  requestReceived(): void {
    this.decoded();
    clearTimeout(this.#requestTimer);
    this.#requestTimer = undefined;
  }

  /**
   * A stream timeout's status, as Envoy's maybeRequestTimeoutCode
   * (source/common/http/utility.cc, used by conn_manager_impl.cc's
   * onIdleTimeout and onStreamMaxDurationReached): 504 once the whole
   * request arrived, else 408, after which an HTTP/1.x connection closes.
   */
  timeoutReply(body: string, flag: string, grpcHeaders: HeaderPairs = []): LocalReply {
    // The connection manager's details: onIdleTimeout, onRequestTimeout, onStreamMaxDurationReached.
    const details = flag === 'SI' ? 'stream_idle_timeout' : flag === 'DT' ? 'max_duration_timeout' : 'request_overall_timeout';
    if (this.decodeComplete) return { status: 504, body, headers: grpcHeaders, flag, details };
    return { status: 408, body, headers: this.h2 ? grpcHeaders : [...grpcHeaders, ['connection', 'close']], flag, details };
  }

  expire(body: string, flag: string): void {
    if (this.finished) return;
    // As Envoy's onIdleTimeout and onRequestTimeout (downstream_rq_idle_timeout, downstream_rq_timeout).
    if (flag === 'SI') this.hs.rqIdleTimeout.value++;
    else this.hs.rqTimeout.value++;
    if (this.upgraded) return this.upgraded(flag);
    this.downstream.abort();
    this.reply(this.timeoutReply(body, flag));
  }

  /** The route's idle_timeout in place of the connection manager's stream_idle_timeout (0: none). */
  idleFor(ms: number): void {
    clearTimeout(this.#idle);
    this.#idle = ms > 0 ? setTimeout(expire, ms, this, 'stream timeout', 'SI') : undefined;
  }

  /** The route's max_stream_duration: the stream may last `ms` from its start. */
  limitDuration(ms: number): void {
    this.#durationTimer = setTimeout(durationReached, Math.max(0, ms - (Date.now() - this.started)), this);
  }

  /** The whole request went upstream (ForwardRequest.onSent): Envoy's lastUpstreamTxByteSent and the upstream local address. */
  sentUpstream(localAddress: string | undefined, socket: object | undefined): void {
    if (this.finished) return;
    this.upstreamSentAt = Date.now();
    this.upstreamLocalAddress = localAddress;
    if (this.hcm.accessLogsReadUpstreamTls === true) this.upstreamTls = tlsInfo(socket);
  }

  /** %UPSTREAM_CLUSTER%: the chosen cluster's observability name (alt_stat_name, else its name), looked up only when a format reads it. */
  get upstreamObservabilityName(): string | undefined {
    const name = this.log.upstream_cluster;
    if (name === '') return undefined;
    return this.env.clusters.get(name)?.config.altStatName ?? name;
  }

  /** As Envoy's connection manager: 408 `downstream duration timeout` (gRPC: DEADLINE_EXCEEDED) while nothing was sent, a reset after; flag DT. */
  durationReached(): void {
    if (this.finished) return;
    this.hs.rqMaxDurationReached.value++;
    if (this.upgraded) return this.upgraded('DT');
    this.downstream.abort();
    this.reply(this.timeoutReply('downstream duration timeout', 'DT', this.grpc ? [['grpc-status', '4']] : []));
  }

  /** The access log's response flags: the stream's own with the router's retry flag and the fault filter's DI. */
  flagsWith(flag: string): string {
    const flags = this.retryFlag === undefined ? flag : withFlag(flag, this.retryFlag);
    return this.filters?.delayInjected ? withFlag(flags, 'DI') : flags;
  }

  /**
   * The stream is over: `flag` the access log's response flag, `details`
   * Envoy's response code details where the stream ended another way than
   * its local reply or the upstream's whole response says (see
   * responseCodeDetails): a reset or timeout after the response started.
   */
  finish(status: number, flag = '-', details?: string): void {
    if (this.finished) return;
    this.finished = true;
    this.hs.rqActive.value--;
    if (this.upgradeCounted) this.hs.cxUpgradesActive.value--;
    // A filter still holding part of the stream (one that stopped and may continue it) is not waited for now.
    this.filters?.abandon(ABANDONED);
    clearTimeout(this.#idle);
    clearTimeout(this.#durationTimer);
    this.requestReceived();
    const log = this.log;
    log.response_code = status;
    const flags = this.flagsWith(flag);
    log.response_flags = flags;
    // on_log reads the response as sent (response.code, .size, .flags, .code_details), also in filters that never saw it.
    // The client left (DC): Envoy's connection manager says so over any detail set before (downstream_remote_disconnect
    // once the connection closed; an HTTP/2 client's RST_STREAM is its codec's http2.remote_reset).
    if (flag === 'DC') details = this.disconnectDetails();
    this.filters?.ended(status, log.bytes_sent, flags, responseCodeDetails(status, flag, this.replied, details));
    const now = Date.now();
    log.duration_ms = now - this.started;
    // Envoy's lastDownstreamTxByteSent: the response went out whole (not after a reset or the client leaving).
    if (this.hcm.accessLogsReadTimes === true && status !== 0 && responseEnded(this.res)) this.responseDoneAt = now;
    const cls = Math.floor(status / 100);
    (this.hs.rqXx[cls] ?? this.hs.rqXx[0]!).value++;
    // Envoy's downstream_rq_completed (onCodecEncodeComplete): the response went out whole. Otherwise the stream was
    // reset: Envoy's onResetStream counts every reset in downstream_rq_rx_reset (the client's RST_STREAM or closed
    // connection, and its own), and one it sent, its response unfinished, in downstream_rq_tx_reset too. An upgraded
    // stream's end (its connections closing) is neither.
    if (responseEnded(this.res)) {
      if (status !== 0) this.hs.rqCompleted.value++;
    } else if (!this.upgradeCounted || status !== 101) {
      this.hs.rqRxReset.value++;
      if (flag !== 'DC') this.hs.rqTxReset.value++;
    }
    this.hs.rqTime.observe(log.duration_ms);
    this.endFlag = flag;
    this.endDetails = details;
    const accessLogs = this.hcm.accessLogs;
    if (accessLogs !== undefined && this.env.accessLog) {
      for (let i = 0; i < accessLogs.length; i++) {
        const al = accessLogs[i]!;
        if (al.filter === undefined || al.filter(this, this.env)) this.env.accessLog(al.format(this));
      }
    }
    if (this.tapRequest) {
      log.start_time = new Date(this.started).toISOString();
      // Why the sidecar answered as it did (wasm_fail_stream, no_healthy_upstream, direct_response...): a 503 with no flag said nothing.
      const why = responseCodeDetails(status, flag, this.replied, details);
      if (why !== undefined) log.response_code_details = why;
      this.env.tap!.emit(log, this.tapRequest, this.tapUpstream, this.tapResponse);
    }
    if (this.span) finishSpan(this.span, this.hcm.tracing!, log);
    // The response is over before the request body (an early answer to an upload): its rest is read and dropped,
    // not left paused for a reader that will never come.
    if (this.streamedBody !== undefined && !requestEnded(this.streamedReq!)) discardBody(this.streamedReq!, this.streamedBody);
    // HTTP/2: a response complete before its request is followed by RST_STREAM(NO_ERROR), as Envoy's connection
    // manager resets such a stream (doEndStream) and RFC 9113 8.1 allows, so the client stops sending a body nobody reads.
    if (this.h2 && status !== 0 && responseEnded(this.res)) resetAfterResponse(this.res as Http2ServerResponse, this.headersOnly);
    // The filters' on_done, on_log and on_delete run at the end of this event-loop turn, with every other
    // stream that ended in it, as Envoy destroys streams from its dispatcher's deferred-delete list: the
    // response is already written, and one filter's log code runs for several streams back to back.
    if (this.filters && ending.push(this.filters) === 1) setImmediate(completeEnded);
  }

  /** Why the client's side ended, as Envoy's details: its connection closed, or (HTTP/2) it reset the stream alone. */
  disconnectDetails(): string {
    const session = this.h2 ? (this.res as Http2ServerResponse).stream?.session : undefined;
    return session !== undefined && !session.closed && !session.destroyed ? 'http2.remote_reset' : 'downstream_remote_disconnect';
  }

  /**
   * A local reply. Before the response started it goes through the response
   * phases of the wasm filters whose request headers ran (a promise while
   * one of them waits on an http_call), as Envoy encodes a local reply
   * through its filter chain: a filter sees it in on_response_headers and
   * on_response_body and may change it. Once response headers went through
   * the filters it is written as it is; once they were sent the stream is reset.
   */
  reply(r: LocalReply, extra: HeaderPairs = [], cluster?: HeaderMutationConfig): void | Promise<void> {
    if (this.finished) return;
    // Its details are the stream's response code details (on_log, the access log), with filters or without.
    this.replied = r;
    const out = renderLocalReply(r, this.grpc);
    const res = this.res;
    if (!res.headersSent) {
      // suppress_envoy_headers: the router's x-envoy-overloaded goes too.
      let headers = this.hcm.suppressEnvoyHeaders ? out.headers.filter(([k]) => k !== 'x-envoy-overloaded') : out.headers;
      if (extra.length) headers = [...headers, ...extra];
      // Once a route is chosen, a local reply carries its response_headers_to_add/remove (most specific first:
      // the weighted cluster's, for the router's own replies, then route, virtual host, configuration).
      const route = this.route;
      if (route) {
        if (headers === out.headers) headers = [...headers];
        if (cluster) applyMutation(headers, cluster);
        applyMutation(headers, route.responseHeaders);
        applyMutation(headers, this.vhost!.responseHeaders);
        applyMutation(headers, this.routeConfig!.responseHeaders);
      }
      const filters = this.filters;
      if (!this.encoding && filters !== undefined && filters.encodesLocalReply) {
        this.encoding = true;
        return this.replyFiltered(filters, out.status, headers, out.body, r);
      }
      writeHead(this, out.status, headers, out.body === '');
      res.end(out.body);
    } else res.destroy();
    this.log.bytes_sent = Buffer.byteLength(out.body);
    this.finish(out.status, r.flag);
  }

  /** The local reply through the filters' response phases (see reply), then written as they left it. */
  async replyFiltered(filters: RequestFilters, status: number, headers: HeaderPairs, text: string, r: LocalReply): Promise<void> {
    const body: Buffer = text === '' ? EMPTY : Buffer.from(text);
    let finalHeaders: HeaderPairs;
    let sent: Buffer = body;
    /** Trailers a filter added in its last body call (Envoy's addEncodedTrailers): an HTTP/2 client gets them. */
    let trailers: HeaderPairs | undefined;
    try {
      filters.responding(this.flagsWith(r.flag), responseCodeDetails(status, r.flag, r));
      // Filters see Envoy's response header map, :status first; end_of_stream with the headers when there is no body.
      let start = filters.localReplyHeaders([[':status', String(status)], ...headers], body.length === 0);
      if (start instanceof Promise) start = await start;
      if (this.finished) return;
      // A filter's own local reply from its response phase replaces this one, written directly.
      if (start.kind === 'reply') return this.reply(start.reply);
      if (start.kind === 'stream') {
        finalHeaders = start.headers;
        if (body.length > 0) {
          let d = filters.localReplyData(body);
          if (d instanceof Promise) d = await d;
          if (this.finished) return;
          if (d.kind === 'reply') return this.reply(d.reply);
          if (d.kind !== 'data') {
            // A reset, or more held than the buffer limit: as for an upstream response (ResponseSink).
            this.res.destroy();
            return this.finish(status, 'LR');
          }
          sent = d.data;
          trailers = d.trailers;
        }
      } else {
        // A filter stopped the headers: it gets the whole body before anything is sent, as with an upstream response.
        const whole = await filters.responseBuffered(start.headers, start.from, body);
        if (this.finished) return;
        if (whole.kind === 'reply') return whole.reply === ABANDONED ? this.finish(0, 'DC') : this.reply(whole.reply);
        finalHeaders = whole.headers;
        sent = whole.body;
        if (whole.trailers.length > 0) trailers = whole.trailers;
      }
      if (this.clientGone) return this.finish(0, 'DC');
      const sentStatus = filteredStatus(finalHeaders, status);
      const out = withoutPseudo(finalHeaders);
      if (sent.length !== body.length) {
        removeHeader(out, 'content-length');
        out.push(['content-length', String(sent.length)]);
      }
      // HTTP/1.x trailers are dropped on the way to the client, as those of an upstream response.
      const h2Trailers = this.h2 && trailers !== undefined ? trailers : undefined;
      writeHead(this, sentStatus, out, sent.length === 0 && h2Trailers === undefined);
      if (trailers !== undefined) this.logResponseTrailers = trailers;
      if (h2Trailers !== undefined) (this.res as Http2ServerResponse).addTrailers(objectFromPairs(h2Trailers));
      this.res.end(sent);
      this.log.bytes_sent = sent.length;
      this.finish(sentStatus, r.flag);
    } catch {
      // The filters' headers could not be written (a value that is not one): the reply as it was made.
      if (this.finished || this.res.headersSent) return;
      writeHead(this, status, headers, body.length === 0);
      this.res.end(body);
      this.log.bytes_sent = body.length;
      this.finish(status, r.flag);
    }
  }
}

/**
 * RST_STREAM(NO_ERROR) on an h2 stream whose response was ended while its
 * client still sends (a stream the client already ended is left alone). The
 * reset waits until the response is out: unless its headers ended it, the
 * compat response asks for trailers, and node asks for them ('wantTrailers')
 * once the last DATA left flow control; a turn later the trailers are
 * written, and node sends what is pending before a RST_STREAM. A reset sooner
 * would drop what was still queued.
 */
function resetAfterResponse(res: Http2ServerResponse, headersOnly: boolean): void {
  const s = res.stream;
  if (s.closed || s.destroyed || res.req.complete || s.state.remoteClose) return;
  const reset = (): void => void setImmediate(resetNow, s);
  // A HEADERS frame with END_STREAM is queued already (no trailers will be asked for).
  if (headersOnly || s.sentTrailers !== undefined) reset();
  else s.once('wantTrailers', reset);
}

function resetNow(s: Http2ServerResponse['stream']): void {
  if (!s.closed && !s.destroyed && !s.state.remoteClose) s.close(http2constants.NGHTTP2_NO_ERROR);
}

/** Filter chains whose streams finished in this event-loop turn (Stream.finish). */
let ending: RequestFilters[] = [];

function completeEnded(): void {
  const batch = ending;
  ending = [];
  for (const f of batch) f.complete();
}

function expire(stream: Stream, body: string, flag: string): void {
  stream.expire(body, flag);
}

function durationReached(stream: Stream): void {
  stream.durationReached();
}

/** A grpc-timeout header (gRPC over HTTP/2: up to 8 digits and a unit) in ms, or undefined when absent or malformed. */
export function grpcTimeoutMs(value: string | string[] | undefined): number | undefined {
  if (typeof value !== 'string') return undefined;
  const m = /^(\d{1,8})([HMSmun])$/.exec(value);
  if (!m) return undefined;
  const n = Number(m[1]);
  const unit = m[2];
  return unit === 'H' ? n * 3_600_000 : unit === 'M' ? n * 60_000 : unit === 'S' ? n * 1000 : unit === 'm' ? n : unit === 'u' ? Math.floor(n / 1000) : Math.floor(n / 1_000_000);
}

/**
 * Whether the proxy ended the response (end() was called). node's HTTP/2
 * compat response reads writableFinished from its stream, which is true once
 * the stream was reset: for HTTP/2 the question is writableEnded.
 */
function responseEnded(res: Res): boolean {
  return (res as Http2ServerResponse).stream !== undefined ? (res as Http2ServerResponse).writableEnded : res.writableFinished;
}

/**
 * One of the HTTP/1 codec's own answers (400, 431, 501 with flag DPE; 403
 * `upgrade failed`): an access log line (and a /tap line) and the connection
 * manager's counters, as Envoy's connection manager logs and counts a codec
 * error's local reply (downstream_rq_total, downstream_rq_4xx/5xx,
 * downstream_rq_time). No route or filter was chosen for it, so no filter
 * sees it.
 */
export function codecReply(env: ProxyEnv, listenerName: string, hcm: HttpConnectionManagerConfig, r: CodecReply): void {
  const hs = env.stats.hcm(hcm.statPrefix);
  hs.rq.value++;
  // The HTTP/1 codec's own answer: an HTTP/1.x request, its response sent whole.
  hs.rqHttp1Total.value++;
  hs.rqCompleted.value++;
  (hs.rqXx[Math.floor(r.status / 100)] ?? hs.rqXx[0]!).value++;
  hs.rqTime.observe(0);
  const accessLogs = env.accessLog ? hcm.accessLogs : undefined;
  if (accessLogs === undefined && !env.tap?.active) return;
  const started = Date.now();
  const log: AccessLogEntry = {
    start_time: new Date(started).toISOString(),
    listener: listenerName,
    method: r.method,
    path: r.path,
    authority: r.authority,
    protocol: r.protocol,
    response_code: r.status,
    response_flags: r.flag,
    route_name: '',
    upstream_cluster: '',
    upstream_host: '',
    attempts: 0,
    bytes_received: r.bytesReceived,
    bytes_sent: r.bytesSent,
    duration_ms: 0,
    request_id: '',
  };
  if (accessLogs !== undefined) {
    // What the codec parsed is all there is: no headers (Envoy logs a codec error's request headers only when it got them).
    const source: LogSource = {
      log,
      started,
      logRequestHeaders: undefined,
      upstreamPath: undefined,
      upstreamAuthority: undefined,
      logResponseHeaders: undefined,
      logConnection: undefined,
      replied: undefined,
      endFlag: r.flag,
      endDetails: undefined,
      suppressEnvoyHeaders: hcm.suppressEnvoyHeaders,
      logResponseTrailers: undefined,
      requestDoneAt: 0,
      upstreamSentAt: 0,
      upstreamFirstRxAt: 0,
      responseDoneAt: 0,
      upstreamLocalAddress: undefined,
      logDownstreamTls: undefined,
      upstreamTls: undefined,
      upstreamObservabilityName: undefined,
      logFilterState: undefined,
      logDynamicMetadata: undefined,
      healthCheck: false,
    };
    for (const f of accessLogs) if (f.filter === undefined || f.filter(source, env)) env.accessLog!(f.format(source));
  }
  if (env.tap?.active) env.tap.emit(log, [], undefined, undefined);
}

/**
 * A request phase of the filters that waits (a filter on an http_call, or
 * holding the request until it continues it itself from a tick): the client
 * leaving, or a timeout answering, ends the wait.
 */
async function whileHeld<T>(pending: Promise<T>, downstream: Downstream, filters: RequestFilters): Promise<T> {
  downstream.onAbort = () => filters.cancelHeld(ABANDONED);
  try {
    return await pending;
  } finally {
    downstream.onAbort = undefined;
  }
}

/**
 * A filter holds the request headers: as Envoy's filter manager, the body is
 * read into the buffer meanwhile (handleDataIfStopAll in filter_manager.cc).
 * Held with 1 or 4 (StopAllIterationAndWatermark) reading pauses at the
 * buffer limit (backpressure); held with 3 (StopAllIterationAndBuffer), past
 * the limit the request gets 413 (downstream_rq_too_large), through the
 * filters (requestDataTooLarge). The body read, or a Readable of it past the
 * limit, is the request's body once the filters let go.
 */
function readWhileHeld(req: Req, filters: RequestFilters, stream: Stream): Promise<Buffer | Readable> {
  const reading = readBody(req, stream.hcm.bufferLimitBytes, stream);
  reading.then((read) => {
    if (Buffer.isBuffer(read) || filters.heldHeaders('request') !== 'buffer') return;
    discardBody(req, read);
    stream.hs.rqTooLarge.value++;
    filters.cancelHeld(localReplies.payloadTooLarge());
  }, ignoreError);
  return reading;
}

/**
 * A gRPC call (h2) whose headers a wasm filter holds: its body is read into a
 * buffer meanwhile, as Envoy's filter manager buffers the data of a filter
 * that stopped all iteration (handleDataIfStopAll, filter_manager.cc), where
 * the sidecar used to leave it unread. Held with 1 or 4
 * (StopAllIterationAndWatermark) reading pauses past the buffer limit
 * (backpressure); held with 3 (StopAllIterationAndBuffer), past the limit the
 * call gets 413 (requestDataTooLarge: trailers-only, grpc-status 2 UNKNOWN by
 * httpToGrpcStatus, grpc-message `Payload Too Large`). A call's body never
 * has to end to go on (a stream may wait for an answer first): once the
 * filter continues, `release()` is the body: what was held, as one chunk,
 * then the rest as it arrives.
 */
class HeldGrpcBody {
  #chunks: Buffer[] = [];
  #size = 0;
  #out: Readable | undefined;
  #ended = false;
  #tooLarge = false;

  constructor(
    readonly req: Req,
    readonly filters: RequestFilters,
    readonly stream: Stream,
  ) {
    const source = req as BodySource;
    source.on('data', (c: Buffer) => this.#data(c));
    source.on('end', () => {
      // node ends an h2 request its client reset too ('aborted' first): not a body that ended.
      if ((req as Http2ServerRequest).aborted === true) return void this.#out?.destroy();
      this.#ended = true;
      this.#out?.push(null);
    });
    source.on('close', () => {
      if (!this.#ended) this.#out?.destroy(new Error('downstream closed before the request body ended'));
    });
  }

  #data(c: Buffer): void {
    // Counted as it comes (bytes_received, and activity for stream_idle_timeout), whoever reads it later.
    this.stream.received(c.length);
    const out = this.#out;
    if (out !== undefined) {
      if (!out.destroyed && !out.push(c)) pauseBody(this.req);
      return;
    }
    // Answered 413 already: the rest is dropped as it comes.
    if (this.#tooLarge) return;
    this.#chunks.push(c);
    this.#size += c.length;
    if (this.#size <= this.stream.hcm.bufferLimitBytes) return;
    if (this.filters.heldHeaders('request') !== 'buffer') return pauseBody(this.req);
    this.#tooLarge = true;
    this.#chunks = [];
    this.stream.hs.rqTooLarge.value++;
    this.filters.cancelHeld(localReplies.payloadTooLarge());
  }

  /** The body once the filter let the headers go: the held bytes as one chunk, then the rest (backpressure both ways). */
  release(): Readable {
    const req = this.req;
    const out = new Readable({
      read() {
        resumeBody(req);
      },
    });
    out.on('error', ignoreError);
    this.#out = out;
    if (this.#size > 0) out.push(this.#chunks.length === 1 ? this.#chunks[0]! : Buffer.concat(this.#chunks));
    this.#chunks = [];
    if (this.#ended) out.push(null);
    return out;
  }
}

/** A request phase of the filters ended the request: their reply, or (the wait was abandoned) the one a body stop left, or DC. */
function filtersReplied(stream: Stream, reply: LocalReply): void | Promise<void> {
  if (reply !== ABANDONED) return stream.reply(reply);
  return stream.filterReply ? stream.reply(stream.filterReply) : stream.finish(0, 'DC');
}

/**
 * One request from headers to the end of its response. Written for the
 * common case first: a bodiless request with no filters goes from the parsed
 * headers to the upstream connection without a promise, an AbortController
 * or a stream of its own (see docs/sidecar.md, Performance).
 */
export async function handleRequest(env: ProxyEnv, listenerName: string, hcm: HttpConnectionManagerConfig, req: Req, res: Res): Promise<void> {
  // HTTP/2 heads under max_request_headers_kb and max_headers_count, pseudo-headers counted, as Envoy's codec
  // applies them: past either the stream is reset (HTTP/1.x got its 431 in http1.ts).
  if (req.httpVersionMajor === 2 && overLimits(req.rawHeaders, hcm)) return void (res as Http2ServerResponse).stream.close(http2constants.NGHTTP2_INTERNAL_ERROR);
  const started = Date.now();
  const hs = env.stats.hcm(hcm.statPrefix);
  hs.rq.value++;
  hs.rqActive.value++;
  const h2 = req.httpVersionMajor === 2;
  (h2 ? hs.rqHttp2Total : hs.rqHttp1Total).value++;
  let authority = (h2 ? (req.headers[':authority'] as string | undefined) : req.headers.host) ?? '';
  let path = (h2 ? (req.headers[':path'] as string | undefined) : req.url) ?? '/';
  if (path.charCodeAt(0) !== 47 /* / */) {
    // HTTP-proxy style absolute URI (HTTP_PROXY=http://127.0.0.1:<outbound>).
    try {
      const u = new URL(path);
      authority = u.host;
      path = u.pathname + u.search;
    } catch {
      path = '/' + path;
    }
  }
  // An HTTP/2 CONNECT. With :protocol (RFC 8441 extended CONNECT, which the client may send only once
  // http2_protocol_options.allow_connect advertised it), Envoy's codec turns it into the HTTP/1.1 upgrade it stands
  // for (transformUpgradeRequestFromH2toH1: GET, Upgrade: <:protocol>) before the connection manager sees it.
  const h2Connect = h2 && req.method === 'CONNECT';
  const method = h2Connect ? 'GET' : req.method ?? 'GET';
  const headers = pairsFromRaw(req.rawHeaders);
  // forward_client_cert_details SANITIZE (Envoy's default): a caller's x-forwarded-client-cert is dropped before
  // the filters and the upstream, so it cannot vouch for a forged identity. SANITIZE_SET then sets it from what the
  // mutual TLS handshake verified (nothing on plaintext), so the app learns its caller as Istio's apps do.
  if (req.headers['x-forwarded-client-cert'] !== undefined) removeHeader(headers, 'x-forwarded-client-cert');
  if (hcm.xfcc) {
    const peer = peerCertificate(req.socket);
    if (peer) headers.push(['x-forwarded-client-cert', forwardedClientCert(peer, hcm.xfcc)]);
  }
  if (!h2) setHeader(headers, 'host', authority);
  const grpc = isGrpc(req.headers['content-type']);
  // A WebSocket upgrade: routed and filtered as any request, then upgradeTo. HTTP/1.1 (http1.ts refuses other
  // upgrades), or an HTTP/2 extended CONNECT; a CONNECT without :protocol, or for anything but websocket, gets 403 below.
  const upgrade = h2 ? h2Connect : (req as H1Request).upgrade === true;
  const upgradeType = !upgrade ? undefined : h2 ? (req.headers[':protocol'] as string | undefined) : (req.headers.upgrade as string | undefined);
  let requestId = req.headers['x-request-id'] as string | undefined;
  if (!requestId && hcm.generateRequestId) {
    requestId = newRequestId();
    headers.push(['x-request-id', requestId]);
  }
  // As Envoy when the caller sent none: the scheme of the downstream connection (mutual TLS on an inbound listener).
  if (req.headers['x-forwarded-proto'] === undefined) headers.push(['x-forwarded-proto', (req.socket as { encrypted?: boolean } | undefined)?.encrypted === true ? 'https' : 'http']);
  const log: AccessLogEntry = {
    start_time: '',
    listener: listenerName,
    method,
    path,
    authority,
    protocol: h2 ? 'HTTP/2' : req.httpVersion === '1.1' ? 'HTTP/1.1' : `HTTP/${req.httpVersion}`,
    response_code: 0,
    response_flags: '-',
    route_name: '',
    upstream_cluster: '',
    upstream_host: '',
    attempts: 0,
    bytes_received: 0,
    bytes_sent: 0,
    duration_ms: 0,
    request_id: requestId ?? '',
  };
  const downstream = new Downstream();
  const stream = new Stream(env, hs, hcm, res, log, started, grpc, h2, downstream);
  // As Envoy's createUpgradeFilterChain: an upgrade upgrade_configs allows is counted as it is accepted, whatever the
  // route and the upstream then make of it, and stays active until its stream ends.
  if (upgrade && hcm.websocket && upgradeType?.toLowerCase() === 'websocket') {
    hs.cxUpgradesTotal.value++;
    hs.cxUpgradesActive.value++;
    stream.upgradeCounted = true;
  }
  if (env.tap?.active) stream.tapRequest = req.rawHeaders;
  stream.logRequestHeaders = headers;
  if (hcm.accessLogsReadConnection === true && env.accessLog) stream.logConnection = connectionAttributes(h2 ? (req as Http2ServerRequest).stream.session ?? req.socket : req.socket, req.socket);
  if (hcm.accessLogsReadDownstreamTls === true && env.accessLog) stream.logDownstreamTls = tlsInfo(req.socket);
  res.on('close', () => {
    // Closed before the response was ended: the client left.
    if (responseEnded(res)) return;
    stream.clientGone = true;
    downstream.abort();
    // A filter holding the stream is not waited for any more.
    stream.filters?.abandon(ABANDONED);
  });
  let filters: RequestFilters | undefined;
  // Envoy starts the connection manager's span here, before the filters, from the headers as they came.
  const tracing = hcm.tracing;
  if (tracing) {
    const tracer = env.tracer?.(tracing);
    if (tracer) {
      const peerAddress = `${req.socket?.remoteAddress ?? ''}:${req.socket?.remotePort ?? 0}`;
      stream.span = startSpan(tracing, tracer, env.stats.tracing(hcm.statPrefix), env.nodeId ?? '', { headers: req.headers, authority, path, peerAddress, grpc }, env.random, env.runtime);
    }
  }

  try {
    // The overload manager's stop_accepting_requests: answered before routing, as Envoy's connection manager does.
    if (env.overload?.stopAcceptingRequests) {
      env.stats.downstreamRqOverloadClose.inc({ envoy_http_conn_manager_prefix: hcm.statPrefix });
      req.resume();
      return stream.reply(localReplies.overloaded());
    }
    // As Envoy's connection manager, before routing: HTTP/1.0 gets 426 Upgrade Required unless
    // http_protocol_options.accept_http_10; HTTP/1.1 without Host gets 400; so does an authority that is not one.
    if (!h2 && req.httpVersion !== '1.1') {
      const http10 = hcm.http10;
      if (!http10?.accept) {
        req.resume();
        return stream.reply({ status: 426, body: '', headers: [['connection', 'close']], flag: '-', details: 'low_version' });
      }
      if (req.headers.host === undefined && authority === '' && http10.defaultHost !== '') {
        authority = log.authority = http10.defaultHost;
        setHeader(headers, 'host', authority);
      }
    }
    if (!h2 && authority === '' && req.headers.host === undefined) {
      req.resume();
      return stream.reply({ status: 400, body: '', headers: [], flag: '-', details: 'missing_host_header' });
    }
    if (!VALID_AUTHORITY.test(authority)) {
      req.resume();
      return stream.reply({ status: 400, body: '', headers: h2 ? [] : [['connection', 'close']], flag: 'DPE' });
    }
    // A #fragment is never part of a request target: Envoy's connection manager rejects the path before any
    // filter or route reads it (http_reject_path_with_fragment, on by default), so an RBAC rule on an exact
    // path or a suffix cannot be stepped around with "/admin#x", which an app's URL parser reads as /admin.
    if (path.includes('#')) {
      hs.rqFailedPathNormalization.value++;
      req.resume();
      return stream.reply({ status: 400, body: '', headers: [], flag: '-', details: 'path_normalization_failed' });
    }
    // normalize_path / merge_slashes, before routing, RBAC and the filters (Envoy: maybeNormalizePath); the
    // normalized path is what goes upstream and into the access log.
    if (hcm.normalizePath || hcm.mergeSlashes) {
      const normalized = normalizeRequestPath(path, hcm.normalizePath === true, hcm.mergeSlashes === true);
      if (normalized === undefined) {
        hs.rqFailedPathNormalization.value++;
        req.resume();
        return stream.reply({ status: 400, body: '', headers: [], flag: '-', details: 'path_normalization_failed' });
      }
      if (normalized !== path) path = log.path = normalized;
    }
    const config = hcm.routeConfig ?? (hcm.rds ? env.routeConfig(hcm.rds) : undefined);
    let vh = config ? selectVirtualHost(config, authority) : undefined;
    const route = routeIn(vh, authority, path, method, headers, stream);
    // The health_check filter comes first in the chain, so it has marked a health check before the router's 404 too.
    if (isHealthCheck(hcm, route, { authority, path, method, header: (n) => getHeader(headers, n) })) {
      stream.healthCheck = true;
      // As Envoy's filter (activeSpan().setSampled(false)): the span and those it parents upstream are not sampled.
      if (stream.span) stream.span.sampled = false;
    }
    const withFilters = hasHttpFilters(hcm);
    if (!config || !vh || !route) {
      // The 404 is the router's, the last filter: with other filters in the chain they run first (an auth
      // filter's 401 comes before it, a telemetry filter logs it), and may rewrite the request onto a route.
      if (!config || !withFilters) {
        env.stats.noRoute.inc({ envoy_http_conn_manager_prefix: hcm.statPrefix });
        req.resume();
        return stream.reply(localReplies.noRoute());
      }
    } else {
      log.route_name = route.name;
      stream.attemptCountInResponse = vh.attemptCountResponse;
      stream.route = route;
      stream.vhost = vh;
      stream.routeConfig = config;
    }
    // As Envoy without an upgrade_configs entry for websocket: 403, and the connection closes.
    if (upgrade && (!hcm.websocket || upgradeType?.toLowerCase() !== 'websocket')) return stream.reply({ status: 403, body: 'upgrade failed', headers: [], flag: '-', details: 'upgrade_failed' });
    const remote = req.socket?.remoteAddress ?? '';
    // What wasm filters read as Envoy's attributes; the upstream ones are added once the request is forwarded.
    let attributes: StreamProperties | undefined;
    if (withFilters) {
      // The connection's own attributes are made on its first request (h2: one session, many streams).
      const connection = connectionAttributes(h2 ? (req as Http2ServerRequest).stream.session ?? req.socket : req.socket, req.socket);
      attributes = {
        'source.address': connection['source.address'],
        'destination.address': connection['destination.address'],
        'destination.port': connection['destination.port'],
        'connection.id': connection['connection.id'],
        'connection.requested_server_name': connection['connection.requested_server_name'],
        'request.protocol': log.protocol,
        'request.id': requestId ?? '',
        'xds.route_name': route?.name ?? '',
        'xds.listener_direction': listenerName === 'inbound' ? 1 : 2,
        ...peerProperties(req.socket),
      };
      stream.filters = filters = new RequestFilters(hcm.httpFilters, route ?? NO_ROUTE, env.filters, attributes, env.stats, env.random, hcm.bufferLimitBytes, peerCertificate(req.socket), env.runtime, hcm.statPrefix, stream);
    }

    // gRPC streams pass through unbuffered (through the wasm filters' body phase chunk by chunk). Other bodies are
    // buffered up to the buffer limit (the listener's per_connection_buffer_limit_bytes, 1 MiB by default) so a
    // retry or a mirror can replay them and wasm filters see them whole; a larger one streams from there, with
    // retries and mirroring off, as Envoy's router does when a body overflows its buffer.
    let streamed: Readable | undefined = grpc && h2 ? (req as Http2ServerRequest) : undefined;
    /** The request headers as the filters left them (pseudo-headers included), once their headers phase ran. */
    let filteredHeaders: HeaderPairs | undefined;
    // A stream reset by its client (no END_STREAM) still ends node's h2 request, just after 'aborted': the exchange
    // stops there, so neither the filters nor the upstream take the part that came for a finished request.
    if (streamed) streamed.once('aborted', () => downstream.abort());
    // No body to come: the headers end the request (the filters see end_of_stream with them).
    // An upgrade's bytes come after the switch (an HTTP/2 extended CONNECT's DATA frames too), never as a body.
    const noBody = upgrade || (streamed === undefined && bodiless(req, h2));
    if (noBody) stream.decoded();
    let body: Buffer | null = noBody ? EMPTY : null;

    /** The body, read while a filter held the headers (readWhileHeld). */
    let reading: Promise<Buffer | Readable> | undefined;
    /** A gRPC call's body, read while a filter held the headers. */
    let heldGrpc: HeldGrpcBody | undefined;
    let upstreamHeaders = headers;
    let routeNow = route;
    if (filters?.hasFilters) {
      // Filters see Envoy's request header map, pseudo-headers included, and may rewrite any of it. They run as
      // the headers arrive, before the body is read (Envoy's decodeHeaders): an auth filter's 401 does not wait
      // for an upload, and a filter holding the headers holds the body back too (backpressure).
      const filterHeaders: HeaderPairs = [[':authority', authority], [':path', path], [':method', method], [':scheme', 'http'], ...headers];
      if (!noBody && !streamed) filters.requestHeld = () => (reading ??= readWhileHeld(req, filters!, stream));
      // A gRPC call's body is read into a buffer while a filter holds its headers too (HeldGrpcBody).
      else if (streamed) filters.requestHeld = () => (heldGrpc ??= new HeldGrpcBody(req, filters!, stream));
      let req1 = filters.requestHeaders(filterHeaders, noBody);
      if (req1 instanceof Promise) req1 = await whileHeld(req1, downstream, filters);
      if (req1.kind === 'reply') {
        // The body no one will read is dropped as it comes.
        if (!noBody && !streamed) req.resume();
        // Read while held: past the limit, the rest is dropped too.
        void reading?.then((r) => Buffer.isBuffer(r) || discardBody(req, r), ignoreError);
        // A gRPC call's body held meanwhile, and the rest of it, are dropped.
        heldGrpc?.release().destroy();
        if (streamed && (req1.reply === ABANDONED || heldGrpc)) discardBody(req, streamed);
        return filtersReplied(stream, req1.reply);
      }
      // The filter let go of a gRPC call's headers: its body is what came meanwhile, then the rest.
      if (heldGrpc) streamed = heldGrpc.release();
      filteredHeaders = req1.headers;
      if (filteredHeaders !== filterHeaders) {
        upstreamHeaders = withoutPseudo(filteredHeaders);
        // A filter touched the headers: as Envoy does, the route cache is cleared and the route chosen again
        // (the virtual host too: the filter may have changed the authority).
        authority = getHeader(filteredHeaders, ':authority') ?? authority;
        path = getHeader(filteredHeaders, ':path') ?? path;
        if (!h2) setHeader(upstreamHeaders, 'host', authority);
        vh = selectVirtualHost(config, authority);
        routeNow = routeIn(vh, authority, path, method, upstreamHeaders, stream);
        if (vh && routeNow) {
          log.route_name = routeNow.name;
          stream.attemptCountInResponse = vh.attemptCountResponse;
          stream.route = routeNow;
          stream.vhost = vh;
          stream.routeConfig = config;
        } else stream.route = undefined;
      }
    }
    if (!streamed && !noBody) {
      const read = await (reading ?? readBody(req, hcm.bufferLimitBytes, stream));
      if (Buffer.isBuffer(read)) {
        body = read;
        // An HTTP/2 request that ended with trailers (HTTP/1.x trailers are dropped, as Envoy without enable_trailers).
        if (h2) stream.filteredTrailers = downstreamTrailers(req);
      } else streamed = read;
    }
    if (stream.finished) {
      if (streamed) discardBody(req, streamed);
      return;
    }
    if (streamed) {
      // A gRPC call that ended while a filter held its headers has had its 'end'.
      if (heldGrpc && requestEnded(req)) stream.requestReceived();
      else req.once('end', () => stream.requestReceived());
      stream.streamedBody = streamed;
      stream.streamedReq = req;
    } else stream.requestReceived();
    if (filters?.hasWasm && filteredHeaders && !noBody && body !== null) {
      // The body read whole (within the buffer limit) through the wasm filters' body phase, with end_of_stream;
      // with trailers, without it, then proxy_on_request_trailers (which may change the trailers).
      const trailers = stream.filteredTrailers;
      let req2 = trailers === undefined ? filters.requestBody(filteredHeaders, body) : filters.requestBodyAndTrailers(filteredHeaders, body, trailers);
      if (req2 instanceof Promise) req2 = await whileHeld(req2, downstream, filters);
      if (req2.kind === 'reply') return filtersReplied(stream, req2.reply);
      // The client's after the filters, or trailers a filter added in its last body call (Envoy's addDecodedTrailers).
      if (req2.trailers !== undefined) stream.filteredTrailers = req2.trailers;
      body = req2.body;
      if (req2.headers !== filteredHeaders) {
        // Headers changed in the body phase go upstream; the route stays the one chosen after the headers phase.
        upstreamHeaders = withoutPseudo(req2.headers);
        if (!h2) setHeader(upstreamHeaders, 'host', authority);
      }
    }
    if (!vh || !routeNow) {
      // No route, before the filters or after they changed the request: the router's 404, through the filters.
      env.stats.noRoute.inc({ envoy_http_conn_manager_prefix: hcm.statPrefix });
      if (streamed) discardBody(req, streamed);
      return stream.reply(localReplies.noRoute());
    }
    const action = routeNow.action;

    if (action.kind === 'direct_response') {
      return stream.reply({ status: action.status, body: action.body, headers: [], flag: '-', details: 'direct_response' });
    }
    if (action.kind === 'redirect') {
      const location = `http://${action.hostRedirect ?? authority}${redirectPath(action.pathRedirect, path)}`;
      return stream.reply({ status: action.status, body: '', headers: [['location', location]], flag: '-', details: 'direct_response' });
    }

    // The route's own stream timeouts: idle_timeout in place of the HCM's, and max_stream_duration (which, as in
    // Envoy, replaces the route timeout; with grpc_timeout_header_max a gRPC call's grpc-timeout sets it).
    if (action.idleTimeoutMs !== undefined) stream.idleFor(action.idleTimeoutMs);
    let timeoutMs = action.timeoutMs;
    const sd = action.streamDuration;
    if (sd) {
      timeoutMs = 0;
      const fromHeader = sd.grpcHeaderMaxMs !== undefined && grpc ? grpcTimeoutMs(req.headers['grpc-timeout']) : undefined;
      const limit = fromHeader === undefined ? sd.maxMs : sd.grpcHeaderMaxMs! > 0 ? Math.min(fromHeader, sd.grpcHeaderMaxMs!) : fromHeader;
      if (limit > 0) stream.limitDuration(limit);
    }
    const chosen = action.clusters.length === 1 ? action.clusters[0]! : pickWeighted(action.clusters, action.totalWeight, stream.routeRandom())!;
    log.upstream_cluster = chosen.name;
    // Most specific first: weighted cluster, route, virtual host, route configuration.
    applyMutation(upstreamHeaders, chosen.requestHeaders);
    applyMutation(upstreamHeaders, routeNow.requestHeaders);
    applyMutation(upstreamHeaders, vh.requestHeaders);
    applyMutation(upstreamHeaders, config.requestHeaders);
    const upstreamPath = rewritePath(routeNow, action, path);
    // As Envoy's router (RouteEntryImplBase::finalizePathHeader): a route that rewrites the path sends the one the
    // client asked for in x-envoy-original-path, unless suppress_envoy_headers.
    if ((action.prefixRewrite !== undefined || action.regexRewrite !== undefined) && !hcm.suppressEnvoyHeaders) setHeader(upstreamHeaders, 'x-envoy-original-path', path);
    let upstreamAuthority = authority;
    if (action.hostRewrite) {
      upstreamAuthority = action.hostRewrite;
      if (!h2) setHeader(upstreamHeaders, 'host', upstreamAuthority);
    }
    if (body !== null && (body !== EMPTY || filters?.hasFilters)) {
      removeHeader(upstreamHeaders, 'content-length');
      // A body with trailers keeps the framing the client gave it: no content-length unless it sent one (so that an
      // HTTP/1.1 upstream with enable_trailers gets it chunked, with the trailers, as from Envoy).
      if ((body.length > 0 || !NO_BODY_METHODS.has(method)) && (stream.filteredTrailers === undefined || req.headers['content-length'] !== undefined)) upstreamHeaders.push(['content-length', String(body.length)]);
    }
    // A streamed body may change in the wasm filters: its length is the upstream framing's business then.
    if (streamed && filters?.hasWasm) removeHeader(upstreamHeaders, 'content-length');
    const setCookies: HeaderPairs = [];
    const hash = action.hashPolicy.length ? requestHash(action.hashPolicy, { headers: upstreamHeaders, path, sourceIp: remote }, setCookies) : undefined;

    // Envoy's router changes the request's own header map: the access log reads :path and :authority as sent upstream.
    stream.upstreamPath = upstreamPath;
    stream.upstreamAuthority = upstreamAuthority;
    stream.logRequestHeaders = upstreamHeaders;
    if (upgrade) {
      stream.span?.inject(upstreamHeaders);
      // The hop-by-hop headers that ask for the upgrade go on to the upstream, as Envoy forwards them for an allowed upgrade.
      const type = upgradeType ?? 'websocket';
      upstreamHeaders.push(['connection', 'upgrade'], ['upgrade', type]);
      const mutations = [chosen.responseHeaders, routeNow.responseHeaders, vh.responseHeaders, config.responseHeaders];
      return await upgradeTo(stream, chosen.name, { method, path: upstreamPath, authority: upstreamAuthority, headers: upstreamHeaders, type }, hash, mutations, setCookies, attributes, action.priority);
    }
    // A body past the buffer limit cannot be replayed: no retries (forward sees a stream) and no mirrors, as in Envoy.
    // The request's own x-envoy-* router headers (timeouts, retries), taken off it; x-envoy-expected-rq-timeout-ms set.
    const decided = applyRouterHeaders(upstreamHeaders, timeoutMs, action.retry ?? vh.retry, !hcm.suppressEnvoyHeaders, hcm.respectExpectedRqTimeout);
    timeoutMs = decided.timeoutMs;
    const retry = decided.retry;
    // As Envoy's router: the upstream request's trace context is this proxy's span (a filter's traceparent is replaced).
    stream.span?.inject(upstreamHeaders);
    // What a tap shows went upstream: after the filters, the route's rewrites and mutations, and the router's headers.
    if (stream.tapRequest) stream.tapUpstream = [[':method', method], [':path', upstreamPath], [':authority', upstreamAuthority], ...upstreamHeaders];
    /** A gRPC call's body (straight from the client, or through HeldGrpcBody): it streams, and a retry or a mirror may replay it. */
    const grpcBody = streamed !== undefined && (streamed === req || heldGrpc !== undefined);
    if (streamed && !grpcBody && (retry || action.mirrors.length > 0)) env.stats.retryOrShadowAbandoned.inc(env.stats.clusterLabel(chosen.name));
    if (!streamed) for (const mirror of action.mirrors) {
      if (stream.routeRandom() >= mirrorFraction(env, mirror)) continue;
      void mirrorTo(env, mirror.cluster, method, upstreamPath, upstreamAuthority, upstreamHeaders, body, timeoutMs, h2 || filters?.hasWasm ? stream : undefined);
    }

    const upstreamBody = streamed ? (filters?.hasWasm ? filteredRequestBody(streamed, filters, stream) : streamed) : body;
    // A gRPC call's body streams, and a copy is kept (up to the buffer limit) so a retry can resend it and a
    // mirror gets the call once the client has ended it (as Envoy shadows a request whose body it buffered).
    let copy: BodyCopy | undefined;
    if (grpcBody && (retry || action.mirrors.length > 0)) {
      copy = new BodyCopy(upstreamBody as Readable, hcm.bufferLimitBytes, stream);
      for (const mirror of action.mirrors) {
        if (stream.routeRandom() >= mirrorFraction(env, mirror)) continue;
        // The shadow streams with the call, as Envoy's streaming shadows do.
        const shadowBody = copy.tee(() => env.stats.retryOrShadowAbandoned.inc(env.stats.clusterLabel(chosen.name)));
        if (shadowBody) void mirrorTo(env, mirror.cluster, method, upstreamPath, upstreamAuthority, upstreamHeaders, shadowBody, timeoutMs, h2 || filters?.hasWasm ? stream : undefined);
      }
    }
    const result = await forward(env.clusters, chosen.name, {
      method,
      path: upstreamPath,
      authority: upstreamAuthority,
      headers: upstreamHeaders,
      body: upstreamBody,
      hash,
      timeoutMs,
      retry,
      downstream,
      // A body read through readBody already counts as activity as it arrives (Stream.received), and its bytes;
      // a gRPC body's are counted here (through the wasm filters, in filteredRequestBody) as it goes upstream.
      onBodyData: copy || streamed === req ? gatherBody(stream, copy, upstreamBody === req) : undefined,
      replay: copy ? () => copy.replay() : undefined,
      // HTTP/2 request trailers, read as the body ends (the filters' for a filtered body): every attempt and shadow sends them.
      // An HTTP/1.x request has none of its own, but a wasm filter may add them in its last body call.
      trailers: h2 || filters?.hasWasm ? stream : undefined,
      attemptCount: vh.attemptCountUpstream,
      expectedTimeout: !hcm.suppressEnvoyHeaders,
      onSent: hcm.accessLogsReadTimes === true ? (address, socket) => stream.sentUpstream(address, socket) : undefined,
      priority: action.priority,
    }, env.stats);
    // Envoy's firstUpstreamRxByteReceived: the (last attempt's) response headers arrived.
    if (hcm.accessLogsReadTimes === true && result.kind === 'response') stream.upstreamFirstRxAt = Date.now();
    log.attempts = result.attempts;
    if (result.kind !== 'abandoned' && result.retryFlag) stream.retryFlag = result.retryFlag;
    if (result.host) log.upstream_host = result.host.key;
    if (attributes) {
      // Seen by the response phases and on_log (the telemetry filter's access line), as in Envoy.
      attributes['xds.cluster_name'] = chosen.name;
      if (result.host) attributes['upstream.address'] = result.host.key;
    }
    if (result.kind === 'abandoned') {
      if (streamed) discardBody(req, streamed);
      // Stopped for a filter's reply from the streamed body (or its 413), or for a stream timeout that already
      // answered; otherwise the client left: Envoy's DC, no response code.
      if (stream.filterReply) return stream.reply(stream.filterReply);
      return stream.finish(0, 'DC');
    }
    if (result.kind === 'local') {
      if (streamed) discardBody(req, streamed);
      // A filter that answered from the streamed request body stopped the exchange: its reply, not the abort's.
      if (stream.filterReply) return stream.reply(stream.filterReply);
      if (result.reply.flag === 'NC') env.stats.noCluster.inc({ envoy_http_conn_manager_prefix: hcm.statPrefix });
      // x-envoy-upstream-rq-timeout-alt-response: the router answers a timeout 204, without a body.
      const reply = decided.timeoutAltResponse && result.reply.flag === 'UT' ? { ...result.reply, status: 204, body: '' } : result.reply;
      // The router's own reply (a timeout, a reset, overflow) says how many attempts it made, as Envoy's does.
      return stream.reply(reply, stream.attemptCountInResponse && result.attempts > 0 ? [['x-envoy-attempt-count', String(result.attempts)]] : [], chosen.responseHeaders);
    }
    const mutations = [chosen.responseHeaders, routeNow.responseHeaders, vh.responseHeaders, config.responseHeaders];
    // The stream is finished once the response is (respond, ResponseSink).
    if (filters?.hasWasm) {
      const pending = respondFiltered(stream, result.response, filters, mutations, setCookies, result.finish);
      if (pending) await pending;
    } else {
      const response = result.response;
      respond(stream, response, response.status, responseHeaders(response, mutations, setCookies, stream), result.finish);
    }
  } catch (err) {
    if (!res.headersSent) stream.reply(err instanceof DownstreamProtocolError ? badRequestBody(err) : { status: 500, body: `weft sidecar error: ${(err as Error).message}`, headers: [], flag: 'DPE' });
    else {
      res.destroy();
      stream.finish(log.response_code || 500, 'UPE');
    }
  }
}

/**
 * A WebSocket upgrade to one host of the cluster. To an HTTP/1.1 host it goes
 * on a connection of its own (upgrade.ts); to an HTTP/2 host as an RFC 8441
 * extended CONNECT stream of a pooled connection (Http2Pool.tunnel), as
 * Envoy's HTTP/2 codec sends any upgrade, its 200 read as the 101 it stands
 * for. The circuit breaker, the host choice and outlier detection work as for
 * any request, without retries. On the switch the response headers go through
 * the wasm filters and the mutations, then the client's side (its connection,
 * or its own extended CONNECT stream, answered 200) and the host's are joined
 * until either side closes or the stream idles out; the access log line
 * (status 101, the bytes each way) is written at the close. Any other answer
 * goes back as it came, and an HTTP/1.1 client's connection closes after it.
 */
async function upgradeTo(stream: Stream, clusterName: string, request: UpgradeRequest & { type: string }, hash: bigint | undefined, mutations: HeaderMutationConfig[], setCookies: HeaderPairs, attributes: StreamProperties | undefined, priority: RoutingPriority): Promise<void> {
  const { env, log, downstream, filters } = stream;
  const cluster = env.clusters.get(clusterName);
  if (!cluster) return stream.reply(localReplies.clusterNotFound());
  const host = cluster.pick({ hash });
  if (!host) {
    env.stats.noHealthyUpstream.inc(env.stats.clusterLabel(clusterName));
    return stream.reply(localReplies.noHealthyUpstream());
  }
  const pool = cluster.poolFor(host, priority);
  let release: () => void = noop;
  if (!cluster.config.http2) {
    // Admitted by the host's pool as Envoy's admits the upgrade request: a connection place (or pending for one) and a
    // max_requests place, held until the upgraded connection closes. (An HTTP/2 stream is admitted as it opens.)
    const admission = (pool as UpstreamPool & { upgrade(): UpgradeAdmission }).upgrade();
    downstream.onAbort = () => admission.cancel();
    const admitted = await admission.admitted;
    downstream.onAbort = undefined;
    if (downstream.aborted) {
      if (typeof admitted === 'function') admitted();
      return stream.finish(0, 'DC');
    }
    // An overflow was counted (upstream_rq_pending_overflow) where the circuit breaker refused it.
    if (typeof admitted !== 'function') return stream.reply(admitted.reason === 'overflow' ? localReplies.overflow() : localReplies.reset(admitted.reason));
    release = admitted;
  }
  const cs = env.stats.cluster(clusterName);
  cs.rq.value++;
  host.activeRequests++;
  host.counters.rqTotal++;
  cluster.hadTraffic = true;
  log.attempts = 1;
  log.upstream_host = host.key;
  if (attributes) {
    attributes['xds.cluster_name'] = clusterName;
    attributes['upstream.address'] = host.key;
  }
  let released = false;
  const done = (): void => {
    if (released) return;
    released = true;
    host.activeRequests--;
    release();
  };
  const attempt = cluster.config.http2
    ? (pool as Http2Pool).tunnel({ protocol: request.type, path: request.path, authority: request.authority, headers: request.headers }, stream.hcm.bufferLimitBytes)
    : openUpgrade(cluster.connectOptions(host, priority), request, stream.hcm.bufferLimitBytes);
  downstream.onAbort = () => attempt.abort();
  const outcome = await attempt.outcome;
  downstream.onAbort = undefined;
  if (outcome.kind === 'failure') {
    done();
    if (downstream.aborted) return stream.finish(0, 'DC');
    if (outcome.reason === 'overflow') return stream.reply(localReplies.overflow());
    cluster.recordResult(host, 0);
    return stream.reply(localReplies.reset(outcome.reason));
  }
  const status = outcome.kind === 'switched' ? 101 : outcome.status;
  env.stats.upstreamResponse(cs, clusterName, status);
  cluster.recordResult(host, status);
  let headers = mutatedResponseHeaders(outcome.headers, mutations, setCookies);
  if (filters?.hasWasm) {
    stream.encoding = true;
    const empty = outcome.kind === 'response' && outcome.body.length === 0;
    let start = filters.responseHeaders([[':status', String(status)], ...headers], empty);
    if (start instanceof Promise) start = await start;
    // A filter holds the 101 (or the refusal): nothing goes to the client until it continues them.
    while (start.kind === 'buffer') start = await filters.responseContinued(start.from, start.headers, empty);
    if (start.kind === 'reply') {
      done();
      if (outcome.kind === 'switched') outcome.socket.destroy();
      if (start.reply === ABANDONED) return stream.finish(0, 'DC');
      return stream.reply(start.reply);
    }
    headers = withoutPseudo(start.headers);
  }
  if (outcome.kind === 'response') {
    done();
    removeHeader(headers, 'content-length');
    headers.push(['content-length', String(outcome.body.length)]);
    writeHead(stream, status, headers);
    stream.res.end(outcome.body);
    log.bytes_sent = outcome.body.length;
    return stream.finish(status);
  }
  serverHeader(stream, headers);
  let taken: { socket: Duplex; head: Buffer };
  try {
    if (stream.h2) {
      // The client's extended CONNECT is answered 200, without the upgrade's hop-by-hop headers (Envoy's
      // transformUpgradeResponseFromH1toH2); its stream is the client's side of the tunnel.
      const res = stream.res as Http2ServerResponse;
      const head = { ':status': '200', ...objectFromPairs(withoutHopByHop(headers).filter(([k]) => k !== 'content-length')) };
      res.stream.respond(head, { endStream: false });
      taken = { socket: res.stream, head: EMPTY };
    } else {
      // To an HTTP/1.1 client, the upgrade's own hop-by-hop headers: as the host sent them, or (from an HTTP/2 host's
      // 200) as Envoy's transformUpgradeResponseFromH2toH1 sets them.
      const hop = outcome.headers.filter(([k]) => k === 'connection' || k === 'upgrade');
      headers.push(...(hop.length > 0 ? hop : ([['upgrade', request.type], ['connection', 'upgrade']] as HeaderPairs)));
      taken = (stream.res as H1Response).switchProtocols(flatFromPairs(headers));
    }
  } catch {
    done();
    outcome.socket.destroy();
    return stream.reply(localReplies.reset('protocol_error'));
  }
  let flag = '-';
  // A wasm filter that stops the upgraded stream (a local reply, a reset, holding past the buffer limit) ends it, flag LR.
  let stop = (): void => undefined;
  const through = filters?.hasWasm ? { up: upgradeFilter(filters, 'request', () => stop()), down: upgradeFilter(filters, 'response', () => stop()) } : undefined;
  const close = join(
    taken.socket,
    taken.head,
    outcome.socket,
    outcome.head,
    (fromClient, toClient) => {
      stream.touch();
      log.bytes_received += fromClient;
      log.bytes_sent += toClient;
    },
    () => {
      done();
      stream.finish(101, flag);
    },
    through,
  );
  stop = () => {
    flag = 'LR';
    close();
  };
  // The stream's idle timeout, max_stream_duration or the client leaving: both connections close.
  stream.upgraded = (why) => {
    flag = why;
    close();
  };
}

/**
 * One direction of an upgraded stream through the wasm filters' body phases,
 * as Envoy passes a WebSocket's bytes through decodeData / encodeData; the
 * client's or the host's close is the end of stream. `stop` when a filter
 * answers, resets, or holds more than the buffer limit.
 */
function upgradeFilter(filters: RequestFilters, direction: 'request' | 'response', stop: () => void): Transform {
  const through = throughFilters(direction === 'request' ? (chunk, end) => filters.requestData(chunk, end) : (chunk, end) => filters.responseData(chunk, end), stop);
  filters.released[direction] = through.released;
  return through;
}

/**
 * Bytes through the wasm filters' body phase (`phase`): each chunk as it
 * comes, then an empty last one with end_of_stream (unless `skipEnd` says the
 * source ended without finishing). Whatever is not data (a reply, a reset,
 * too much held) goes to `onStop`. `released` takes what a filter lets go of
 * between chunks (RequestFilters.released).
 */
function throughFilters(phase: (chunk: Buffer, end: boolean) => DataResult | Promise<DataResult>, onStop: (r: DataResult) => void, skipEnd?: () => boolean, trailersEnd?: () => Promise<DataResult> | undefined): Transform & { released: (r: DataResult | Promise<DataResult>) => void } {
  /** A filter holds more than the limit with StopIterationAndWatermark: the next chunk waits for what it lets go of. */
  let blocked: (() => void) | undefined;
  const apply = (r: DataResult, done: () => void): void => {
    if (r.kind === 'data') {
      if (r.data.length > 0) out.push(r.data);
      if (r.full) return void (blocked = done);
      return done();
    }
    done();
    onStop(r);
  };
  const step = (chunk: Buffer, end: boolean, done: (err?: Error) => void): void => {
    const r = phase(chunk, end);
    if (r instanceof Promise) r.then((x) => apply(x, done), done);
    else apply(r, done);
  };
  const out: Transform = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      step(chunk, false, done);
    },
    flush(done) {
      if (skipEnd?.()) return done();
      // Trailers end the body (`trailersEnd`): their phase runs in place of an empty last chunk.
      const trailers = trailersEnd?.();
      if (trailers !== undefined) trailers.then((x) => apply(x, done), done);
      else step(EMPTY, true, done);
    },
  });
  const released = (r: DataResult | Promise<DataResult>): void => {
    if (out.destroyed || out.writableFinished) return;
    const unblock = (x: DataResult): void => {
      const done = blocked ?? noop;
      blocked = undefined;
      apply(x, done);
    };
    if (r instanceof Promise) r.then(unblock, ignoreError);
    else unblock(r);
  };
  return Object.assign(out, { released });
}

function noop(): void {}

/** The upstream's response headers as they go downstream: without hop-by-hop headers, with the route's mutations and any cookie a hash policy set. */
function mutatedResponseHeaders(upstream: HeaderPairs, mutations: HeaderMutationConfig[], setCookies: HeaderPairs): HeaderPairs {
  const headers = withoutHopByHop(upstream);
  for (const m of mutations) applyMutation(headers, m);
  for (const c of setCookies) headers.push(c);
  return headers;
}

/**
 * The upstream's response headers as they go downstream, with the router's x-envoy-upstream-service-time and, if
 * asked, x-envoy-attempt-count. Set, not added, as Envoy's router does: the ones the next sidecar put on the
 * response (every call between two sidecars) are replaced by this hop's.
 */
function responseHeaders(upstream: UpstreamResponse, mutations: HeaderMutationConfig[], setCookies: HeaderPairs, stream: Stream): HeaderPairs {
  const headers = mutatedResponseHeaders(upstream.headers, mutations, setCookies);
  if (!stream.hcm.suppressEnvoyHeaders) setHeader(headers, 'x-envoy-upstream-service-time', String(Date.now() - stream.started));
  if (stream.attemptCountInResponse) setHeader(headers, 'x-envoy-attempt-count', String(stream.log.attempts));
  return headers;
}

/**
 * Wasm filters see the response headers, then its body as it streams through
 * (respond, with the filters). When one of them holds the headers until it
 * continues them itself (a tick, an http_call) the body is buffered
 * meanwhile (respondHeld). The stream is finished (or answered with a local
 * reply) when the response is done; a promise only while a filter holds
 * the headers or waits on an http_call.
 */
function respondFiltered(
  stream: Stream,
  upstream: UpstreamResponse,
  filters: RequestFilters,
  mutations: HeaderMutationConfig[],
  setCookies: HeaderPairs,
  release: () => void,
): Promise<void> | undefined {
  const headers = responseHeaders(upstream, mutations, setCookies, stream);
  stream.encoding = true;
  filters.responding(stream.flagsWith('-'), 'via_upstream');
  // Known to have no body: the filters get end_of_stream with the headers.
  const empty = upstream.endStream === true || stream.log.method === 'HEAD' || upstream.status === 204 || upstream.status === 304 || getHeader(upstream.headers, 'content-length') === '0';
  // Filters see Envoy's response header map: :status first; they may change it.
  const start = filters.responseHeaders([[':status', String(upstream.status)], ...headers], empty);
  if (start instanceof Promise) return start.then((s) => respondFilteredFrom(stream, upstream, filters, s, release, empty));
  return respondFilteredFrom(stream, upstream, filters, start, release, empty);
}

/** The response after the filters' response headers phase. */
function respondFilteredFrom(stream: Stream, upstream: UpstreamResponse, filters: RequestFilters, start: ResponseStart, release: () => void, empty: boolean): Promise<void> | undefined {
  if (start.kind === 'reply') {
    upstream.body.dump(release);
    stream.reply(start.reply);
    return undefined;
  }
  if (start.kind === 'stream') {
    respond(stream, upstream, filteredStatus(start.headers, upstream.status), withoutPseudo(start.headers), release, empty ? undefined : filters);
    return undefined;
  }
  return respondHeld(stream, upstream, filters, start, release, empty);
}

/**
 * A filter holds the response headers until it continues them itself. The
 * upstream body is read into a buffer meanwhile, as Envoy's filter manager
 * buffers the data of a filter that stopped all iteration
 * (handleDataIfStopAll, filter_manager.cc): held with 1 or 4
 * (StopAllIterationAndWatermark) up to the buffer limit, then backpressure;
 * held with 3 (StopAllIterationAndBuffer), past the limit the client gets
 * 500 (responseDataTooLarge: sent directly, not through the filters, as the
 * response headers are already in the filter chain). Once the filter
 * continues, the headers go on and the filter gets what was buffered in one
 * body call, then the rest as it streams. The client leaving (or the stream
 * ending otherwise) ends the wait.
 */
async function respondHeld(stream: Stream, upstream: UpstreamResponse, filters: RequestFilters, start: ResponseStart & { kind: 'buffer' }, release: () => void, empty: boolean): Promise<void> {
  const held = empty ? undefined : new HeldBody(stream, filters);
  if (held) upstream.body.pipe(held);
  let next: ResponseStart = start;
  while (next.kind === 'buffer') next = await filters.responseContinued(next.from, next.headers, empty);
  if (next.kind === 'reply' && next.reply === ABANDONED) {
    upstream.body.destroy();
    release();
    return stream.finish(0, 'DC');
  }
  if (next.kind === 'stream') {
    respond(stream, upstream, filteredStatus(next.headers, upstream.status), withoutPseudo(next.headers), release, empty ? undefined : filters, held);
    return undefined;
  }
  return respondFilteredFrom(stream, upstream, filters, next, release, empty);
}

/** The upstream body that arrives while a filter holds the response headers (respondHeld). */
class HeldBody implements BodySink {
  chunks: Buffer[] = [];
  size = 0;
  ended = false;
  trailers: HeaderPairs = [];
  failed: Error | undefined;

  constructor(
    readonly stream: Stream,
    readonly filters: RequestFilters,
  ) {}

  data(c: Buffer): boolean {
    this.stream.touch();
    this.chunks.push(c);
    this.size += c.length;
    const limit = this.stream.hcm.bufferLimitBytes;
    if (this.filters.heldHeaders('response') !== 'buffer') return this.size < limit;
    if (this.size <= limit) return true;
    this.stream.hs.rsTooLarge.value++;
    this.filters.cancelHeld(localReplies.responsePayloadTooLarge());
    return false;
  }

  end(trailers: HeaderPairs): void {
    this.ended = true;
    this.trailers = trailers;
  }

  error(e: Error): void {
    this.failed = e;
  }

  /** What was buffered, handed over (once). */
  take(): Buffer {
    const c = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks);
    this.chunks = [];
    return c;
  }
}

/** The status a filter left in :status, if it is a valid one. */
function filteredStatus(headers: HeaderPairs, upstream: number): number {
  const changed = Number(getHeader(headers, ':status'));
  return Number.isInteger(changed) && changed >= 100 && changed <= 999 ? changed : upstream;
}

/**
 * The response streams through as it arrives, with backpressure both ways,
 * and through the wasm filters' body phase when there are any (a filter that
 * buffers holds its bytes until it continues). The stream is finished with
 * the access log's response flag: '-', or UT (route timeout mid-body), UR
 * (upstream reset mid-body), DC (the downstream went away), LR (a filter
 * reset the stream after the headers were out); in all but DC the downstream
 * stream is reset, as Envoy resets it once headers are out.
 */
function respond(stream: Stream, upstream: UpstreamResponse, status: number, headers: HeaderPairs, release: () => void, filters?: RequestFilters, held?: HeldBody): void {
  const res = stream.res;
  const h2res = (res as Http2ServerResponse).stream !== undefined ? (res as Http2ServerResponse) : undefined;
  // HTTP/1.x sends its head with the first body bytes by itself; on h2 the
  // headers and first chunk are corked into one write.
  const sink = new ResponseSink(stream, upstream, status, release, h2res, filters);
  // An h2 upstream's headers that ended its stream (trailers-only) end this one too.
  const last = h2res !== undefined && upstream.endStream === true && filters === undefined;
  if (last) sink.corked = false;
  // The fault filter's response_rate_limit: the body is paced; the headers go out at once, as Envoy's only pace data.
  const kbps = stream.filters?.responseRateKbps;
  if (kbps !== undefined && !last) {
    sink.limiter = new StreamRateLimiter(kbps, stream.hcm.bufferLimitBytes, (c) => sink.writeOut(c), () => sink.full || upstream.body.resume());
    if (sink.corked) sink.corked = false;
  }
  if (sink.corked) res.cork();
  writeHead(stream, status, headers, last);
  res.on('close', () => sink.closed());
  if (filters) filters.released.response = (r) => sink.released(r);
  if (held && filters) sink.takeHeld(held);
  else upstream.body.pipe(sink);
  // The client left before the response could start (while a filter held its headers): the close was missed.
  if (stream.clientGone) sink.closed();
}

/**
 * Where an upstream response body goes: to the downstream response, through
 * the filters' body phase when there are any. A class rather than an object
 * of closures: one allocation per response, not one per method (see Stream).
 */
class ResponseSink implements BodySink {
  settled = false;
  received = 0;
  endSent: boolean;
  /** Something was written: the head is out (HTTP/1.x holds it for the first body bytes). */
  headOut = false;
  /** A filter is waiting on an http_call: later chunks and the end queue behind it. */
  pending: Promise<void> | undefined;
  /** h2: the headers and the first chunk go out in one write. */
  corked: boolean;
  /** With filters: the chunk that completes a known content-length carries end_of_stream. */
  readonly expected: number;
  /** A filter holds more than the buffer limit with StopIterationAndWatermark: the body waits until it lets go. */
  full = false;
  /** Trailers a wasm filter added in its last body call (Envoy's addEncodedTrailers): they end the response. */
  added: HeaderPairs | undefined = undefined;
  /** The fault filter's response_rate_limit: body bytes go out through it, paced; the end waits until it is empty. */
  limiter: StreamRateLimiter | undefined = undefined;

  constructor(
    readonly stream: Stream,
    readonly upstream: UpstreamResponse,
    readonly status: number,
    readonly release: () => void,
    readonly h2res: Http2ServerResponse | undefined,
    readonly filters: RequestFilters | undefined,
  ) {
    this.endSent = filters === undefined;
    this.corked = h2res !== undefined;
    const length = filters ? getHeader(upstream.headers, 'content-length') : undefined;
    this.expected = length === undefined ? -1 : Number(length);
  }

  settle(flag: string, details?: string): void {
    if (this.settled) return;
    this.settled = true;
    this.limiter?.destroy();
    this.release();
    this.stream.finish(this.status, flag, details);
  }

  /** The downstream response closed: before it finished, the client went away. */
  closed(): void {
    if (responseEnded(this.stream.res)) return;
    this.settle('DC');
    this.upstream.body.destroy();
  }

  data(c: Buffer): boolean {
    this.stream.touch();
    if (this.endSent) return this.write(c);
    this.received += c.length;
    const last = this.received === this.expected;
    if (last) this.endSent = true;
    if (this.pending) return this.queue(() => this.filtered(c, last));
    return this.filtered(c, last);
  }

  /**
   * The body that arrived while a filter held the headers: to the filters in
   * one call (with end_of_stream when it is the whole body), as Envoy hands a
   * filter its buffered body when it continues (commonContinue's doData);
   * then the rest as it comes.
   */
  takeHeld(held: HeldBody): void {
    if (held.failed) return this.error(held.failed);
    // The headers go out as the filter continues them, before the body (HTTP/1.x would hold them for the first bytes).
    if (!this.headOut) this.write(EMPTY);
    const c = held.take();
    if (held.ended && held.trailers.length === 0) {
      this.stream.touch();
      this.received += c.length;
      this.endSent = true;
      this.filtered(c, true);
      return this.end([]);
    }
    if (c.length > 0) this.data(c);
    if (held.ended) this.end(held.trailers);
    else this.upstream.body.pipe(this);
  }

  /** Bytes a filter stopped mid-body and then continued itself (RequestFilters.released): out now, in order with the rest. */
  released(r: DataResult | Promise<DataResult>): void {
    if (this.settled) return;
    // The filter let go: reading goes on (unless the bytes fill another filter).
    this.full = false;
    if (this.pending || r instanceof Promise) this.queue(() => r);
    else if (this.deliver(r) && !this.full) this.upstream.body.resume();
  }

  filtered(c: Buffer, last: boolean): boolean {
    const r = this.filters!.responseData(c, last);
    if (r instanceof Promise) {
      this.queue(() => r);
      return false;
    }
    return this.deliver(r);
  }

  deliver(r: DataResult): boolean {
    // After the headers are out a filter's local reply, or a body it holds past the buffer limit, can only reset the stream, as in Envoy.
    if (r.kind !== 'data') {
      if (r.kind === 'too_large') this.stream.hs.rsTooLarge.value++;
      // As Envoy's filter manager, whose sendLocalReply resets a started response with the reply's details.
      this.settle('LR', r.kind === 'too_large' ? 'response_payload_too_large' : r.kind === 'reply' ? r.reply.details : undefined);
      this.stream.res.destroy();
      this.upstream.body.destroy();
      return false;
    }
    if (r.trailers !== undefined) this.added = r.trailers;
    if (r.full) {
      // StopIterationAndWatermark past the limit: no more of the body is read until the filter lets go (released).
      this.full = true;
      if (!this.headOut) this.write(EMPTY);
      return false;
    }
    if (r.data.length > 0) return this.write(r.data);
    // A filter holds the body: the headers it let through go out now, as Envoy sends them once every filter continued them.
    if (!this.headOut) this.write(EMPTY);
    return true;
  }

  queue(next: () => unknown): false {
    const run = (this.pending ?? Promise.resolve()).then(next).then((r) => {
      if (r !== undefined && typeof r === 'object') this.deliver(r as DataResult);
    });
    const tail = run.then(() => {
      if (this.pending !== tail) return;
      this.pending = undefined;
      if (!this.settled && !this.full) this.upstream.body.resume();
    });
    this.pending = tail;
    return false;
  }

  write(c: Buffer): boolean {
    // Paced by the fault filter's rate limit: the limiter writes it out (writeOut); false above its watermark.
    if (this.limiter !== undefined && c.length > 0) {
      if (!this.headOut) this.writeOut(EMPTY);
      return this.limiter.write(c);
    }
    return this.writeOut(c);
  }

  writeOut(c: Buffer): boolean {
    this.headOut = true;
    this.stream.log.bytes_sent += c.length;
    const res = this.stream.res;
    const ok = (res as H1Response).write(c);
    if (this.corked) {
      this.corked = false;
      process.nextTick(uncork, res);
    }
    // Paced bytes: the limiter decides when the upstream is read again, and keeps the stream from going idle.
    if (this.limiter !== undefined) {
      if (c.length > 0) this.stream.touch();
      return ok;
    }
    if (!ok) res.once('drain', () => this.full || this.upstream.body.resume());
    return ok;
  }

  end(trailers: HeaderPairs): void {
    if (this.pending) this.queue(() => this.endNow(trailers));
    else this.endNow(trailers);
  }

  endNow(trailers: HeaderPairs): void {
    if (!this.endSent && trailers.length > 0) {
      // Trailers end the stream: the filters see them (and let go of any body they held), not an empty last chunk.
      this.endSent = true;
      const r = this.filters!.responseTrailers(trailers);
      this.queue(() => r.then((x) => (x.kind === 'trailers' ? this.withTrailers(x) : this.deliver(x))));
      return;
    }
    if (!this.endSent) {
      // The body ended without a known length (chunked, close-delimited): an empty last chunk, as Envoy sends.
      this.endSent = true;
      const r = this.filters!.responseData(EMPTY, true);
      if (r instanceof Promise) {
        this.queue(() => r.then((x) => (this.deliver(x), this.finishEnd(trailers))));
        return;
      }
      this.deliver(r);
    }
    this.finishEnd(trailers);
  }

  withTrailers(t: { data: Buffer; trailers: HeaderPairs }): void {
    if (t.data.length > 0) this.write(t.data);
    this.finishEnd(t.trailers);
  }

  finishEnd(trailers: HeaderPairs): void {
    if (this.settled) return;
    // The end and the trailers wait for the paced body (StreamRateLimiter::onTrailers, end_stream with the last bytes).
    if (this.limiter !== undefined && this.limiter.buffered > 0) {
      this.limiter.whenDrained(() => this.finishEnd(trailers));
      return;
    }
    if (this.added !== undefined && trailers.length === 0) trailers = this.added;
    if (trailers.length > 0) this.stream.logResponseTrailers = trailers;
    if (this.h2res && trailers.length) this.h2res.addTrailers(objectFromPairs(trailers));
    this.stream.res.end();
    this.settle('-');
  }

  error(e: Error): void {
    const failure = e instanceof UpstreamFailure ? e : undefined;
    const reason = failure?.reason;
    // Envoy's router after the response started: the route timeout's response_timeout (onResponseTimeout), or
    // upstream_reset_after_response_started{reason} (onUpstreamReset) with the reason's flag, as before the
    // response (UC for a closed connection, UR for a reset stream); a reset the sidecar has no reason for is the
    // upstream's remote reset (UR).
    if (reason === 'timeout') this.settle('UT', 'response_timeout');
    else {
      const why = reason === undefined || reason === 'reset' ? 'remote_reset' : reason;
      this.settle(resetFlag(why), upstreamResetDetails(why, failure?.transport, true));
    }
    this.stream.res.destroy();
  }
}

function uncork(res: Res): void {
  res.uncork();
}

/**
 * A streamed request body (gRPC, or one past the buffer limit) through the wasm filters' body phase: each
 * chunk as it arrives, then an empty last one with end_of_stream. A filter's
 * local reply or reset stops the exchange; the reply is sent if nothing was.
 */
function filteredRequestBody(source: Readable, filters: RequestFilters, stream: Stream): Readable {
  const out = throughFilters(
    (chunk, end) => {
      if (!end) return filters.requestData(chunk, end);
      // The last chunk: a filter may add trailers in its last body call (Envoy's addDecodedTrailers); they go upstream.
      const r = filters.requestData(chunk, end);
      if (r instanceof Promise) return r.then((x) => withAddedTrailers(x, stream));
      return withAddedTrailers(r, stream);
    },
    (r) => {
      // Chunks already on their way when the first stop came say it again: the stream ends once.
      if (stream.downstream.aborted) return;
      if (r.kind === 'reply') stream.filterReply = r.reply;
      if (r.kind === 'too_large') {
        // As Envoy's connection manager: 413 and downstream_rq_too_large (a reset if the response already started).
        stream.hs.rqTooLarge.value++;
        stream.filterReply = localReplies.payloadTooLarge();
      }
      stream.downstream.abort();
    },
    // node ends a reset h2 stream too (after 'aborted'): not a finished body for the filters.
    () => stream.downstream.aborted,
    // An HTTP/2 body that ended with trailers: proxy_on_request_trailers instead of an empty last chunk (the
    // trailers after the filters go upstream, read from the stream as the body ends).
    () => {
      const trailers = stream.requestTrailers;
      if (trailers === undefined) return undefined;
      return filters.requestTrailers(trailers).then((r): DataResult => {
        if (r.kind !== 'trailers') return r;
        stream.filteredTrailers = r.trailers;
        return { kind: 'data', data: r.data };
      });
    },
  );
  filters.released.request = out.released;
  source.pipe(out);
  // A gRPC call's body, straight from the client: its bytes as they arrive (readBody counted the others').
  if (source === stream.streamedReq) source.on('data', (c: Buffer) => (stream.log.bytes_received += c.length));
  return out;
}

/** The last chunk of a streamed request body: trailers a wasm filter added with it go upstream after the body. */
function withAddedTrailers(r: DataResult, stream: Stream): DataResult {
  if (r.kind === 'data' && r.trailers !== undefined) stream.filteredTrailers = r.trailers;
  return r;
}

/** Envoy's shadowAppendedHost: -shadow goes before the port, if there is one (an IPv6 literal's colons are not a port). */
export function shadowAuthority(authority: string): string {
  const colon = authority.lastIndexOf(':');
  return colon < 0 || authority.lastIndexOf(']') > colon ? `${authority}-shadow` : `${authority.slice(0, colon)}-shadow${authority.slice(colon)}`;
}

/** Fire-and-forget copy to the mirror cluster with the route's timeout, as Envoy's shadows; Envoy suffixes the authority with -shadow. */
async function mirrorTo(env: ProxyEnv, cluster: string, method: string, path: string, authority: string, headers: HeaderPairs, body: Buffer | Readable | null, timeoutMs: number, trailers: TrailerSource | undefined): Promise<void> {
  const shadow = shadowAuthority(authority);
  const h = headers.map(([k, v]) => [k, k === 'host' ? shadow : v] as [string, string]);
  const downstream = new Downstream();
  // A streamed shadow whose body stops short (the call was reset, or the shadow fell behind) is reset too.
  if (body instanceof Readable) body.once('close', () => body.readableEnded || downstream.abort());
  const result = await forward(env.clusters, cluster, { method, path, authority: shadow, headers: h, body, timeoutMs, downstream, trailers }, env.stats).catch(() => undefined);
  if (result?.kind === 'response') result.response.body.dump(result.finish);
}
