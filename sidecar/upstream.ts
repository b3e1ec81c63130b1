// Connections to one upstream host: keep-alive sockets for HTTP/1.1 (h1-client.ts),
// or multiplexed HTTP/2 (prior knowledge) sessions for http2/gRPC clusters (h2-client.ts).
// Failures come back as UpstreamFailure with Envoy's reset reasons.

import net from 'node:net';
import tls from 'node:tls';
import { uriSans } from './peer-identity.ts';
import { Readable } from 'node:stream';
import { Http1Pool } from './h1-client.ts';
import { Http2Pool } from './h2-client.ts';

export type HeaderPairs = [string, string][];

/**
 * Envoy's stream reset reasons; `protocol_error` is an upstream response that is not valid HTTP (flag UPE);
 * `remote_reset` and `remote_refused_stream_reset` an HTTP/2 upstream's RST_STREAM (REFUSED_STREAM for the
 * latter, which retry_on `refused-stream` retries), flag UR.
 */
export type ResetReason = 'connection_failure' | 'connection_termination' | 'timeout' | 'overflow' | 'reset' | 'protocol_error' | 'remote_reset' | 'remote_refused_stream_reset';

export class UpstreamFailure extends Error {
  readonly reason: ResetReason;
  /** Why the transport socket failed (a TLS handshake), as Envoy's "transport failure reason". */
  readonly transport: string | undefined;
  constructor(reason: ResetReason, message: string, transport?: string) {
    super(message);
    this.reason = reason;
    this.transport = transport;
  }
}

/** Error codes of a TLS handshake that failed (node's and OpenSSL's), for the transport failure reason. */
function isTlsError(code: string): boolean {
  return tlsFailure(code) !== undefined;
}

/** Envoy's ssl.* outcome counters of a TLS handshake (listener.<address>.ssl.* and cluster.<name>.ssl.*). */
export type TlsOutcome = 'handshake' | 'connection_error' | 'fail_verify_error' | 'fail_verify_san' | 'fail_verify_no_cert';

/**
 * The ssl.* counter a failed handshake goes under, from node's error code: the peer's certificate not verified by the
 * trust bundle (fail_verify_error), not the expected SPIFFE ID (fail_verify_san), missing where one is required
 * (fail_verify_no_cert), or another TLS error (connection_error); undefined for a connection that went away
 * mid-handshake (ECONNRESET), which Envoy does not count as a TLS error either.
 */
export function tlsFailure(code: string | undefined): TlsOutcome | undefined {
  if (code === undefined) return undefined;
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID' || code === 'HOSTNAME_MISMATCH') return 'fail_verify_san';
  if (code === 'ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE') return 'fail_verify_no_cert';
  if (/^(CERT_|UNABLE_TO_|DEPTH_ZERO_SELF_SIGNED_CERT|SELF_SIGNED_CERT_IN_CHAIN|INVALID_CA|PATH_LENGTH_EXCEEDED|INVALID_PURPOSE)/.test(code)) return 'fail_verify_error';
  return /^(ERR_TLS_|ERR_SSL_)/.test(code) ? 'connection_error' : undefined;
}

/**
 * A connection that could not be made (flag UF). A failed TLS handshake says
 * why, as Envoy's "transport failure reason: TLS_error:...": the first thing
 * an operator reads when mutual TLS between two proxies breaks.
 */
export function connectFailure(err: unknown): UpstreamFailure {
  const e = err as { code?: string; message?: string };
  const code = e.code ?? '';
  const transport = isTlsError(code) || /SSL|TLS|certificate/i.test(e.message ?? '') ? `TLS_error:${code || 'handshake'}:${e.message ?? ''}` : undefined;
  return new UpstreamFailure('connection_failure', `connection failure (${code || e.message})`, transport);
}

/** A body a filter had to see whole was longer than the buffer limit. */
export class BodyTooLarge extends Error {
  constructor(readonly limit: number) {
    super(`body over the ${limit} byte buffer limit`);
  }
}

export interface UpstreamRequest {
  method: string;
  /** Path and query. */
  path: string;
  authority: string;
  headers: HeaderPairs;
  body: Buffer | Readable | null;
  /** Called per chunk of a streamed body once it flows upstream (stream idle tracking). */
  onBodyData?: (chunk: Buffer) => void;
  /**
   * Called once the whole request went to the upstream connection (Envoy's lastUpstreamTxByteSent), with that
   * connection's local address and socket (for its TLS facts); only set when an access log reads them.
   */
  onSent?: (localAddress: string | undefined, socket: object | undefined) => void;
  /** Where the request's trailers are read as its body ends (HTTP/2 downstreams only; see TrailerSource). */
  trailers?: TrailerSource;
}

/**
 * A request's trailers (after the filters), read once its body ended: those
 * of a streamed body come at its end, so an HTTP/2 upstream stream reads
 * them as node asks for them ('wantTrailers'). Undefined or empty: none.
 */
export interface TrailerSource {
  readonly requestTrailers: HeaderPairs | undefined;
}

/** A socket's local address as Envoy prints one: `ip:port`, `[v6]:port`. */
export function localAddressOf(socket: { localAddress?: string | undefined; localPort?: number | undefined } | undefined): string | undefined {
  const ip = socket?.localAddress;
  if (!ip) return undefined;
  return ip.includes(':') ? `[${ip}]:${socket!.localPort}` : `${ip}:${socket!.localPort}`;
}

/** Where a response body goes: data() returning false pauses the source until resume(). */
export interface BodySink {
  data(chunk: Buffer): boolean;
  /** The body ended; HTTP/2 and chunked HTTP/1.1 may carry trailers. */
  end(trailers: HeaderPairs): void;
  error(err: Error): void;
}

/**
 * A response body on its way from the upstream connection. Chunks that
 * arrive before anyone reads (a small response usually comes in the same
 * packet as its headers) are held, up to a bound, rather than pausing the
 * connection; a Readable per response cost more than the rest of the
 * upstream exchange.
 */
export class UpstreamBody {
  #held: Buffer[] = [];
  #heldBytes = 0;
  #ended = false;
  #trailers: HeaderPairs = [];
  #error: Error | undefined;
  #sink: BodySink | undefined;
  #sourcePaused = false;
  #done = false;
  /** Set by the source: resumes reading from the connection. */
  resumeSource: (() => void) | undefined;
  /** Set by the source: stops the exchange (reset the stream or drop the connection). */
  abortSource: ((err: Error) => void) | undefined;

  static readonly HOLD_BYTES = 64 * 1024;

  /** Source side: one chunk; false asks the source to pause. */
  push(chunk: Buffer): boolean {
    if (this.#done) return false;
    if (this.#sink && this.#held.length === 0) {
      if (this.#sink.data(chunk)) return true;
      this.#sourcePaused = true;
      return false;
    }
    this.#held.push(chunk);
    this.#heldBytes += chunk.length;
    if (this.#heldBytes < UpstreamBody.HOLD_BYTES) return true;
    this.#sourcePaused = true;
    return false;
  }

  /** Source side: the body ended. */
  end(trailers: HeaderPairs = []): void {
    if (this.#done || this.#ended) return;
    this.#ended = true;
    this.#trailers = trailers;
    if (this.#sink && this.#held.length === 0) this.#finish();
  }

  /** Source side: the exchange failed after the headers. */
  fail(err: Error): void {
    if (this.#done) return;
    this.#error = err;
    this.#held = [];
    if (this.#sink) {
      this.#done = true;
      this.#sink.error(err);
    }
  }

  /** Starts delivering to the sink (held chunks first). */
  pipe(sink: BodySink): void {
    this.#sink = sink;
    if (this.#error) {
      this.#done = true;
      sink.error(this.#error);
      return;
    }
    this.resume();
  }

  /** The sink can take more (after a data() that returned false). */
  resume(): void {
    const sink = this.#sink;
    if (!sink || this.#done) return;
    while (this.#held.length > 0) {
      const c = this.#held.shift()!;
      this.#heldBytes -= c.length;
      if (!sink.data(c)) return;
    }
    if (this.#ended) return this.#finish();
    if (this.#sourcePaused) {
      this.#sourcePaused = false;
      this.resumeSource?.();
    }
  }

  #finish(): void {
    this.#done = true;
    this.#sink!.end(this.#trailers);
  }

  /** The whole body, for filters that see it at once; past `limit` bytes the exchange stops and this rejects with BodyTooLarge. */
  collect(limit = Infinity): Promise<{ body: Buffer; trailers: HeaderPairs }> {
    return new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      let size = 0;
      const body = this;
      this.pipe({
        data(c) {
          size += c.length;
          if (size > limit) {
            // Rejected first: the abort also fails the body, with the source's own reason.
            const e = new BodyTooLarge(limit);
            reject(e);
            body.abort(e);
            return false;
          }
          chunks.push(c);
          return true;
        },
        end(trailers) {
          resolve({ body: chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks), trailers });
        },
        error: reject,
      });
    });
  }

  /** Reads and drops the rest (a retried attempt, a mirror): the connection stays reusable. */
  dump(onDone?: () => void): void {
    this.pipe({
      data() {
        return true;
      },
      end() {
        onDone?.();
      },
      error() {
        onDone?.();
      },
    });
  }

  /** Stops the exchange (route timeout mid-body): the source is aborted and the sink, if any, gets `err`. */
  abort(err: Error): void {
    if (this.#done) return;
    this.abortSource?.(err);
    this.fail(err);
  }

  /** Stops the exchange: the downstream went away. */
  destroy(): void {
    this.abort(new Error('downstream closed'));
  }
}

export interface UpstreamResponse {
  status: number;
  headers: HeaderPairs;
  body: UpstreamBody;
  /** HTTP/2: the headers ended the stream (a gRPC trailers-only response): they go on the same way. */
  endStream?: boolean;
}

/** One request in flight: its response once headers arrive, and a way to stop it before then. */
export interface Exchange {
  response: Promise<UpstreamResponse>;
  /** Stops the exchange; a pending response rejects with UpstreamFailure(reason). */
  abort(reason: ResetReason): void;
}

export interface UpstreamPool {
  start(req: UpstreamRequest): Exchange;
  close(): Promise<void>;
}

/**
 * An upgrade's (a WebSocket's) admission in an HTTP/1.1 pool: `admitted` resolves to a function the upgrade calls
 * once its connection closed (it held a connection place and a max_requests place until then), or to the
 * UpstreamFailure that refused it ('overflow': the circuit breaker). `cancel` gives up a place still waited for.
 */
export interface UpgradeAdmission {
  admitted: Promise<(() => void) | UpstreamFailure>;
  cancel(): void;
}

/**
 * Mutual TLS to the host, asked per new connection so a rotated certificate
 * is used from the next connection on; undefined while the SDS secrets have
 * not arrived (the connection fails, as an Envoy cluster would stay warming).
 */
export type UpstreamTls = () => { secureContext: tls.SecureContext; uriSans: string[] } | undefined;

/**
 * Connections a pool makes at most per event (a request queued, a connection ready or closed), as Envoy's
 * tryCreateNewConnections caps them (conn_pool_base.cc): a backlog of pending requests that finds room (other
 * hosts' connections closed) is not met by a burst of connections at once; more are made as those come up.
 */
export const MAX_CONNECTIONS_PER_EVENT = 3;

export interface PoolOptions {
  address: string;
  port: number;
  /** The cluster's max_connections (of the pool's routing priority). */
  connections: number;
  /**
   * The cluster's connections as max_connections counts them (every host's pool of the same priority, and
   * upgrades), raised as a connection is made and lowered as it closes; without it a pool counts its own.
   */
  connectionsOpen?: { value: number; changed(): void };
  /**
   * Whether one more connection may be made now (Envoy's HostImpl::canCreateConnection: per_host_thresholds, then the
   * cluster's max_connections with its runtime key); without it, connectionsOpen under `connections`.
   */
  canConnect?: () => boolean;
  connectTimeoutMs: number;
  idleTimeoutMs: number;
  /** Requests (HTTP/2: streams) per connection before it is closed once idle; 0 or unset: no limit. */
  maxRequestsPerConnection?: number;
  tls?: UpstreamTls;
  /** HTTP/2: streams one connection carries at once (http2_protocol_options.max_concurrent_streams), before the peer's SETTINGS lower it. */
  maxConcurrentStreams?: number;
  /**
   * A request that finds no connection free (HTTP/2: none with room) takes a place among the cluster's
   * max_pending_requests: a function giving it back, or undefined when none is left (overflow).
   */
  pending?: () => (() => void) | undefined;
  /**
   * A place among the cluster's max_requests, taken as a request is given a connection (HTTP/2: a stream) and held
   * until its exchange ends: a function giving it back, or undefined when none is left (overflow).
   */
  request?: () => (() => void) | undefined;
  /** A request waiting for a connection (pending) was given up: upstream_rq_cancelled. */
  cancelled?: () => void;
  /** A request was given a connection (HTTP/2: a stream): upstream_rq_total. */
  attached?: () => void;
  /**
   * HTTP/1.1: http_protocol_options.enable_trailers. Request trailers go out
   * as chunked trailers only with it (and only on a chunked body), as Envoy's
   * codec encodes them (http1/codec_impl.cc, encodeTrailersBase); without it
   * they are dropped.
   */
  enableTrailers?: boolean;
  /** The cluster's connection stats: every connection this opens is counted (countConnection). */
  cx?: ConnectionStats;
  /** max_connections kept a waiting request from a new connection (upstream_cx_overflow). */
  cxOverflow?: () => void;
  /**
   * A request that ended unfinished, as Envoy's pools count it: failed by its connection (a pending one as the
   * connection it waited for failed; HTTP/2: a stream as its connection closed under it), upstream_rq_pending_failure_eject;
   * an HTTP/2 stream the upstream reset (RST_STREAM other than REFUSED_STREAM), upstream_rq_rx_reset; one the sidecar
   * reset (a timeout, the client gone, an early response), upstream_rq_tx_reset.
   */
  unfinished?: (how: UnfinishedRequest) => void;
}

export type UnfinishedRequest = 'failure_eject' | 'rx_reset' | 'tx_reset';

/** What a cluster counts of its upstream connections, as Envoy's pools count them (its ActiveClient's life). */
export interface ConnectionStats {
  /** upstream_cx_total and upstream_cx_active. */
  total: { value: number };
  active: { value: number };
  /** upstream_cx_http1_total / upstream_cx_http2_total. */
  http1Total: { value: number };
  http2Total: { value: number };
  /** Closed before it was up (upstream_cx_connect_fail; upstream_cx_connect_timeout as well when the connect timeout closed it). */
  connectFailed(timedOut: boolean): void;
  /**
   * Closed (upstream_cx_destroy, and _remote when the upstream closed or reset it, else _local; the _with_active_rq
   * variants when a request was on it), after `lengthMs` open (upstream_cx_length_ms); the bytes `socket` moved are
   * counted a last time (upstream_cx_rx_bytes_total / _tx_bytes_total).
   */
  destroyed(byPeer: boolean, close: { activeRq: boolean; lengthMs: number; socket: net.Socket }): void;
  /** A connection's socket, whose bytes are counted while it is open (whenever stats are read) and as it closes. */
  opened?(socket: net.Socket): void;
  /** Up (TCP, or the TLS handshake done) `ms` after it was started (upstream_cx_connect_ms). */
  connectMs?(ms: number): void;
  /** What the upstream sent on it was not valid HTTP (upstream_cx_protocol_error); it is then closed. */
  protocolError?(): void;
  /** A TLS connection's handshake: done, or failed and why (cluster.<name>.ssl.*). */
  tls?(outcome: TlsOutcome): void;
  /** Closed by the idle timeout (upstream_cx_idle_timeout). */
  idleTimeout(): void;
  /** Given its max_requests_per_connection-th request: it takes no more (upstream_cx_max_requests). */
  maxRequests(): void;
  /** `active` changed (a connection opened or closed). */
  changed?(): void;
}

/** A connection counted by countConnection: the connect timeout marks it, so its close counts as a connect timeout. */
export interface CountedConnection {
  timedOut(): void;
}

/** What countConnection reads of a connection as it closes: its socket's byte counts, and whether a request was on it. */
export interface ConnectionProbe {
  /** The socket under it (an HTTP/2 session's): its bytesRead / bytesWritten. */
  socket: net.Socket;
  /** A request (HTTP/2: a stream) in progress on it. */
  busy: () => boolean;
  /** Who closed it, where the socket's events do not say (an HTTP/2 session, whose GOAWAY does). */
  byPeer?: () => boolean;
}

/**
 * Counts a new upstream connection in its cluster's stats as Envoy's pool does: opened (cx_total, by protocol),
 * open (cx_active) until it closes; a close before `connectEvent` is a connect failure; a close after the upstream
 * ended, reset or refused it is a remote destroy, else a local one (`probe.byPeer` decides instead where given).
 */
export function countConnection(o: PoolOptions, conn: { once(event: string, fn: (...args: unknown[]) => void): unknown; on(event: string, fn: (...args: unknown[]) => void): unknown }, protocol: 'http1' | 'http2' | 'tcp', connectEvent: string, probe: ConnectionProbe): CountedConnection {
  const cx = o.cx;
  let timedOut = false;
  const counted = { timedOut: () => void (timedOut = true) };
  if (!cx) return counted;
  const started = performance.now();
  cx.opened?.(probe.socket);
  cx.total.value++;
  if (protocol !== 'tcp') (protocol === 'http1' ? cx.http1Total : cx.http2Total).value++;
  cx.active.value++;
  cx.changed?.();
  let connected = false;
  let peer = false;
  conn.once(connectEvent, () => {
    connected = true;
    cx.connectMs?.(performance.now() - started);
  });
  // Whether a request was on it, read as its socket first ends, errs or closes: an HTTP/2 session's streams close
  // (asynchronously) once the session tears down, before the session's own close.
  const { socket } = probe;
  let busy: boolean | undefined;
  const snapshot = () => void (busy ??= connected && probe.busy());
  socket.once('end', snapshot);
  socket.once('error', snapshot);
  socket.once('close', snapshot);
  if (o.tls && cx.tls) {
    const tlsStats = cx.tls;
    socket.once('secureConnect', () => tlsStats('handshake'));
    socket.once('error', (e: Error & { code?: string }) => {
      const failure = connected ? undefined : tlsFailure(e.code);
      if (failure) tlsStats(failure);
    });
  }
  const byPeer = probe.byPeer;
  if (!byPeer) {
    conn.once('end', () => (peer = true));
    conn.on('error', () => (peer = true));
  }
  conn.once('close', () => {
    cx.active.value--;
    cx.changed?.();
    if (!connected) cx.connectFailed(timedOut);
    snapshot();
    cx.destroyed(!timedOut && (byPeer ? byPeer() : peer), { activeRq: busy === true, lengthMs: performance.now() - started, socket });
  });
  return counted;
}

/**
 * A TLS connection presenting the workload certificate, verifying the
 * server's chain against the trust bundle and its URI SAN against the
 * destination's SPIFFE ID (SNI is not used: identities are URIs).
 */
export function connectTls(o: PoolOptions, alpn: string | undefined): tls.TLSSocket {
  const current = o.tls!();
  if (!current) {
    const s = new tls.TLSSocket(new net.Socket());
    process.nextTick(() => s.destroy(Object.assign(new Error('no workload certificate from SDS yet'), { code: 'ECONNREFUSED' })));
    return s;
  }
  return tls.connect({
    host: o.address,
    port: o.port,
    secureContext: current.secureContext,
    ...(alpn ? { ALPNProtocols: [alpn] } : {}),
    rejectUnauthorized: true,
    checkServerIdentity: (_host, cert) => {
      const sans = uriSans(cert);
      if (current.uriSans.length === 0 || sans.some((s) => current.uriSans.includes(s))) return undefined;
      return Object.assign(new Error(`server certificate SAN ${sans.join(', ') || '(none)'} is not ${current.uriSans.join(' or ')}`), { code: 'ERR_TLS_CERT_ALTNAME_INVALID' });
    },
  });
}

export function pairsFromObject(h: Record<string, string | string[] | undefined>): HeaderPairs {
  const out: HeaderPairs = [];
  for (const [k, v] of Object.entries(h)) {
    if (v === undefined) continue;
    if (Array.isArray(v)) for (const x of v) out.push([k, x]);
    else out.push([k, v]);
  }
  return out;
}

export function classify(err: unknown): UpstreamFailure {
  if (err instanceof UpstreamFailure) return err;
  const e = err as { code?: string; message?: string; cause?: { code?: string } };
  const code = e.code ?? e.cause?.code ?? '';
  if (['ECONNREFUSED', 'UND_ERR_CONNECT_TIMEOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN'].includes(code) || isTlsError(code)) {
    return connectFailure(err);
  }
  return new UpstreamFailure('connection_termination', `connection termination (${code || e.message})`);
}

export function createPool(o: PoolOptions, http2Upstream: boolean): UpstreamPool {
  return http2Upstream ? new Http2Pool(o) : new Http1Pool(o);
}

export { Http2Pool, Readable };
