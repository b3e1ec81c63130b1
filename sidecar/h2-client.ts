// HTTP/2 (prior knowledge, or h2 over mutual TLS) to one upstream host, as
// Envoy's HTTP/2 connection pool: a connection carries up to its stream
// limit at once (the cluster's http2_protocol_options.max_concurrent_streams,
// lowered by the peer's SETTINGS_MAX_CONCURRENT_STREAMS once it arrives);
// when every connection is full, the pool opens another while the cluster's
// max_connections allows (one at least, whatever the cluster's count), and a
// request that finds no room waits as pending, among max_pending_requests.
// A connection that has carried max_requests_per_connection streams, or got
// GOAWAY, takes no more and closes once its streams have ended.

import http2 from 'node:http2';
import net from 'node:net';
import type { Exchange, HeaderPairs, PoolOptions, TrailerSource, UnfinishedRequest, UpstreamPool, UpstreamRequest, UpstreamResponse } from './upstream.ts';
import type { UpgradeAttempt, UpgradeOutcome } from './upgrade.ts';
import { objectFromPairs } from './headers.ts';
import { MAX_CONNECTIONS_PER_EVENT, UpstreamBody, UpstreamFailure, classify, connectTls, countConnection, localAddressOf, pairsFromObject } from './upstream.ts';

/** Envoy's default http2_protocol_options.max_concurrent_streams (2^31 - 1). */
export const DEFAULT_MAX_CONCURRENT_STREAMS = 2 ** 31 - 1;

/** Fields HTTP/2 forbids in a header block (RFC 9113 8.2.2), which node refuses to send. */
const CONNECTION_SPECIFIC = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te', 'host']);

/** Where an upstream stream waiting for trailers reads them (a property, so the listener below is one shared function). */
const kTrailers = Symbol('requestTrailers');
type TrailingStream = http2.ClientHttp2Stream & { [kTrailers]?: TrailerSource };
const NO_TRAILERS: http2.OutgoingHttpHeaders = Object.freeze({});
const EMPTY = Buffer.alloc(0);
/** Methods whose empty body gets no content-length (as the proxy frames other whole bodies). */
const NO_BODY_METHODS = new Set(['GET', 'HEAD', 'DELETE', 'OPTIONS']);

/**
 * As node asks for them (the body went out; `this` is the stream): the
 * request's trailers, in one HEADERS frame with END_STREAM; none: node ends
 * the stream with an empty DATA frame. Pseudo-headers and
 * connection-specific fields are left out.
 */
function sendRequestTrailers(this: TrailingStream): void {
  if (this.destroyed || this.closed) return;
  const pairs = this[kTrailers]?.requestTrailers;
  let out = NO_TRAILERS;
  if (pairs !== undefined && pairs.length > 0) {
    out = {};
    for (const [k, v] of pairs) {
      if (k.charCodeAt(0) === 58 /* : */ || CONNECTION_SPECIFIC.has(k)) continue;
      const prev = out[k];
      out[k] = prev === undefined ? v : ([] as string[]).concat(prev as string | string[], v);
    }
  }
  try {
    this.sendTrailers(out);
  } catch {
    resetStream(this);
  }
}

function origin(o: PoolOptions): string {
  return `${o.tls ? 'https' : 'http'}://${o.address.includes(':') ? `[${o.address}]` : o.address}:${o.port}`;
}

/** An HTTP/2 upstream reset the stream with `code` (Envoy's RemoteReset / RemoteRefusedStreamReset). */
function remoteReset(code: number): UpstreamFailure {
  return code === http2.constants.NGHTTP2_REFUSED_STREAM
    ? new UpstreamFailure('remote_refused_stream_reset', 'stream refused by the upstream (REFUSED_STREAM)')
    : new UpstreamFailure('remote_reset', `stream reset by the upstream (code ${code})`);
}

/**
 * Resets an upstream h2 stream as Envoy does, with RST_STREAM (CANCEL) alone.
 * node's close() first ends the writable side, so the peer gets END_STREAM,
 * i.e. what looks like a complete request (a client-streaming call whose
 * caller went away would read as finished), and the reset only after. The
 * stream's native handle (node's internal kHandle) resets it at once; close()
 * then tidies up. Without the handle (a future node, a stream not yet opened)
 * close() alone.
 */
function resetStream(s: http2.ClientHttp2Stream): void {
  const code = http2.constants.NGHTTP2_CANCEL;
  // Envoy's LocalReset, counted as the stream closes (upstream_rq_tx_reset): only a stream still open gets a RST_STREAM.
  if (!s.closed && !s.destroyed) (s as ResettableStream)[kResetHere] = true;
  const key = Object.getOwnPropertySymbols(s).find((k) => k.description === 'kHandle');
  const handle = key === undefined ? undefined : (s as unknown as Record<symbol, { rstStream?: (code: number) => void } | undefined>)[key];
  // Only once the stream has an id (its HEADERS are queued): a reset for a stream the peer never saw opened is a protocol error.
  if (!s.closed && !s.pending && typeof handle?.rstStream === 'function') handle.rstStream(code);
  s.close(code);
}

/** Set on a stream the sidecar reset (resetStream), before it closes. */
const kResetHere = Symbol('resetHere');
type ResettableStream = http2.ClientHttp2Stream & { [kResetHere]?: true };

/**
 * How a stream that closed before it finished ended, as Envoy's HTTP/2 pool tells them apart
 * (MultiplexedActiveClientBase::onStreamReset): the sidecar reset it (LocalReset: tx_reset), its connection went
 * under it (ConnectionTermination: pending_failure_eject), or the upstream reset it (RemoteReset: rx_reset; a
 * REFUSED_STREAM, which a retry may resend, is none of them). `complete`: its response had ended.
 */
function unfinishedHow(s: http2.ClientHttp2Stream, session: http2.ClientHttp2Session, complete: boolean): UnfinishedRequest | undefined {
  if ((s as ResettableStream)[kResetHere]) return 'tx_reset';
  if (complete) return undefined;
  if (session.destroyed) return 'failure_eject';
  const code = s.rstCode;
  if (code === undefined || code === http2.constants.NGHTTP2_NO_ERROR || code === http2.constants.NGHTTP2_REFUSED_STREAM) return undefined;
  return 'rx_reset';
}

/** Without a circuit breaker (a pool made on its own): max_requests takes nothing. */
const NO_SLOT = (): void => undefined;

/** One connection of the pool. */
interface H2Connection {
  readonly session: http2.ClientHttp2Session;
  /** Connected (until then it counts as connecting capacity). */
  connected: boolean;
  /** Streams open now. */
  streams: number;
  /** Streams it has carried (max_requests_per_connection). */
  opened: number;
  /** The peer's SETTINGS_MAX_CONCURRENT_STREAMS once its SETTINGS came; until then the host's last known one. */
  peerLimit: number;
  /** Takes no new stream: GOAWAY received, max_requests_per_connection reached, or closing. */
  draining: boolean;
  /** The upstream ended it (GOAWAY, or the connection failed): a remote destroy. */
  byPeer: boolean;
  /** Runs while no stream is open: Envoy's idle_timeout counts only that time. */
  idle?: NodeJS.Timeout;
}

/** A request waiting for room on a connection. */
interface Waiter {
  attach(c: H2Connection): void;
  fail(f: UpstreamFailure): void;
  /** Gives back its place among the cluster's max_pending_requests. */
  release(): void;
}

export class Http2Pool implements UpstreamPool {
  readonly #o: PoolOptions;
  readonly #conns = new Set<H2Connection>();
  readonly #waiting: Waiter[] = [];
  /** Streams one connection may have open, before the peer's SETTINGS say otherwise (Envoy's initial stream limit). */
  readonly #streamLimit: number;
  /**
   * The host's SETTINGS_MAX_CONCURRENT_STREAMS as last seen, the limit of a new connection until its own SETTINGS
   * come (Envoy keeps it in its HTTP server properties cache where one is configured): streams sent past it before
   * then would be refused by the upstream.
   */
  #knownPeerLimit = Infinity;
  #closed = false;

  constructor(o: PoolOptions) {
    this.#o = o;
    const max = o.maxRequestsPerConnection ?? 0;
    const configured = o.maxConcurrentStreams ?? DEFAULT_MAX_CONCURRENT_STREAMS;
    this.#streamLimit = Math.max(1, max > 0 ? Math.min(configured, max) : configured);
  }

  /** Streams `c` may open now. */
  #room(c: H2Connection): number {
    if (!c.connected || c.draining || c.session.closed || c.session.destroyed) return 0;
    const max = this.#o.maxRequestsPerConnection ?? 0;
    let room = Math.min(this.#streamLimit, c.peerLimit) - c.streams;
    if (max > 0) room = Math.min(room, max - c.opened);
    return room;
  }

  /** The first connection with room for a stream (Envoy fills its ready clients in order). */
  #ready(): H2Connection | undefined {
    for (const c of this.#conns) if (this.#room(c) > 0) return c;
    return undefined;
  }

  /**
   * Streams the connections being made will take once up: at least one each, so an upstream that last advertised
   * 0 (refusing streams for now) gets one more connection per waiting request, not as many as max_connections allows.
   */
  #connectingCapacity(): number {
    let n = 0;
    for (const c of this.#conns) if (!c.connected && !c.draining) n += Math.max(1, Math.min(this.#streamLimit, c.peerLimit));
    return n;
  }

  /** Whether the cluster's max_connections allows one more connection (counted over the cluster, its priority's pools, as Envoy's). */
  #canConnect(): boolean {
    const can = this.#o.canConnect;
    if (can) {
      if (can()) return true;
    } else {
      const open = this.#o.connectionsOpen ? this.#o.connectionsOpen.value : this.#conns.size;
      if (open < this.#o.connections) return true;
    }
    // As Envoy: a host with no connection at all gets one, so its pending requests are not stranded by other hosts' connections.
    for (const c of this.#conns) if (!c.draining) return false;
    return true;
  }

  /**
   * Opens connections while the requests waiting outnumber what the connections being made will take, at most
   * MAX_CONNECTIONS_PER_EVENT per call (Envoy's tryCreateNewConnections); each connection that comes up dispatches and
   * grows again.
   */
  #grow(newRequest = false): void {
    for (let made = 0; made < MAX_CONNECTIONS_PER_EVENT && !this.#closed && this.#waiting.length > this.#connectingCapacity(); made++) {
      if (!this.#canConnect()) {
        // As Envoy's pool, which tries for a connection as a request is queued: max_connections refused it
        // (upstream_cx_overflow, once per request that asked); the requests keep waiting.
        if (newRequest) this.#o.cxOverflow?.();
        return;
      }
      this.#open();
    }
  }

  /** Gives waiting requests the room there is, then opens what more they need. */
  #dispatch(): void {
    while (this.#waiting.length > 0) {
      const c = this.#ready();
      if (!c) break;
      const w = this.#waiting.shift()!;
      w.release();
      w.attach(c);
    }
    this.#grow();
  }

  /** No stream open on `c`: it closes after the idle timeout unless one opens first. */
  #idle(c: H2Connection): void {
    const ms = this.#o.idleTimeoutMs;
    if (ms <= 0 || c.session.closed || c.session.destroyed) return;
    clearTimeout(c.idle);
    c.idle = setTimeout(() => {
      if (c.streams !== 0) return;
      this.#o.cx?.idleTimeout();
      this.#retire(c);
    }, ms);
    c.idle.unref();
  }

  /** `c` takes no new stream, and closes (GOAWAY) once its streams have ended. */
  #retire(c: H2Connection): void {
    c.draining = true;
    // node's close() would cut a stream whose HEADERS are still queued: only once none is open.
    if (c.streams === 0 && !c.session.closed) c.session.close();
  }

  #open(): void {
    const o = this.#o;
    // The socket is made here, so its byte counts can be read once the session has let go of it.
    const socket = o.tls ? connectTls(o, 'h2') : net.connect({ host: o.address, port: o.port, noDelay: true });
    const session = http2.connect(origin(o), { createConnection: () => socket });
    const c: H2Connection = { session, connected: false, streams: 0, opened: 0, peerLimit: Math.max(1, this.#knownPeerLimit), draining: false, byPeer: false };
    this.#conns.add(c);
    // Held in the cluster's max_connections count (of the pool's priority) until it closes, as Envoy's ActiveClient.
    const counter = o.connectionsOpen;
    if (counter) {
      counter.value++;
      counter.changed();
    }
    // Closed by the upstream: its GOAWAY, a failure of the connection, or a close the pool did not start (retire).
    const counted = countConnection(o, session, 'http2', 'connect', { socket, busy: () => c.streams > 0, byPeer: () => c.byPeer || !c.draining });
    let failure: UpstreamFailure | undefined;
    const timer = setTimeout(() => {
      failure = new UpstreamFailure('connection_failure', 'connection failure (connect timeout)');
      counted.timedOut();
      session.destroy();
    }, o.connectTimeoutMs);
    session.once('connect', () => {
      clearTimeout(timer);
      c.connected = true;
      if (this.#closed) return this.#retire(c);
      this.#idle(c);
      this.#dispatch();
    });
    session.on('remoteSettings', (settings) => {
      c.peerLimit = settings.maxConcurrentStreams ?? Infinity;
      this.#knownPeerLimit = c.peerLimit;
      this.#dispatch();
    });
    // The upstream is going away: no new stream here (node closes the session itself); the streams past its
    // last stream id fail as refused (REFUSED_STREAM), which retry_on refused-stream retries.
    session.on('goaway', () => {
      c.byPeer = true;
      this.#retire(c);
      this.#grow();
    });
    // on, not once: an error after the first (a session already failing) must not go unhandled and end the process.
    session.on('error', (err) => {
      c.byPeer = true;
      failure ??= classify(err);
    });
    session.once('close', () => {
      clearTimeout(timer);
      clearTimeout(c.idle);
      this.#conns.delete(c);
      if (counter) {
        counter.value--;
        counter.changed();
      }
      if (!c.connected) {
        // As Envoy's pool on a connect failure: every pending request fails (UF), and the router decides about retries.
        const f = failure?.reason === 'connection_failure' ? failure : new UpstreamFailure('connection_failure', `connection failure (${failure?.message ?? 'closed while connecting'})`);
        for (const w of this.#waiting.splice(0)) {
          w.release();
          this.#o.unfinished?.('failure_eject');
          w.fail(f);
        }
        return;
      }
      this.#dispatch();
    });
  }

  start(req: UpstreamRequest): Exchange {
    let stream: http2.ClientHttp2Stream | undefined;
    let aborted: UpstreamFailure | undefined;
    let resolveResponse!: (r: UpstreamResponse) => void;
    let rejectResponse!: (e: Error) => void;
    const body = new UpstreamBody();
    const response = new Promise<UpstreamResponse>((resolve, reject) => {
      resolveResponse = resolve;
      rejectResponse = reject;
    });
    const attach = (c: H2Connection): void => {
      if (aborted) return;
      // As Envoy's attachStreamToClient: max_requests is taken here, by the stream, not while the request waited.
      const slot = this.#o.request ? this.#o.request() : NO_SLOT;
      if (!slot) return rejectResponse(new UpstreamFailure('overflow', 'max requests overflow'));
      try {
        stream = this.#stream(c, req, body, () => aborted, resolveResponse, rejectResponse, slot);
      } catch (e) {
        slot();
        throw e;
      }
    };
    const cancel = this.#admit(attach, rejectResponse);
    return {
      response,
      abort: (reason) => {
        if (aborted) return;
        aborted = new UpstreamFailure(reason, reason === 'timeout' ? 'upstream request timeout' : `stream reset (${reason})`);
        cancel();
        if (stream) resetStream(stream);
        rejectResponse(aborted);
        body.fail(aborted);
      },
    };
  }

  /**
   * Room for one stream: `attach` at once on a connection with room, else the request waits as pending (among the
   * cluster's max_pending_requests) while the pool grows. The function returned takes a waiting request back.
   */
  #admit(attach: (c: H2Connection) => void, fail: (f: UpstreamFailure) => void): () => void {
    if (this.#closed) {
      fail(new UpstreamFailure('connection_failure', 'connection pool closed'));
      return () => undefined;
    }
    const c = this.#ready();
    if (c) {
      attach(c);
      return () => undefined;
    }
    const release = this.#o.pending ? this.#o.pending() : () => undefined;
    if (!release) {
      fail(new UpstreamFailure('overflow', 'pending request overflow'));
      return () => undefined;
    }
    const waiter: Waiter = { attach, fail, release };
    this.#waiting.push(waiter);
    this.#grow(true);
    return () => {
      const i = this.#waiting.indexOf(waiter);
      if (i < 0) return;
      this.#waiting.splice(i, 1);
      waiter.release();
      this.#o.cancelled?.();
    };
  }

  /** A stream opens on `c`: counted against it (max_requests_per_connection, the idle timer). */
  #opening(c: H2Connection): void {
    this.#o.attached?.();
    c.opened++;
    c.streams++;
    clearTimeout(c.idle);
    const max = this.#o.maxRequestsPerConnection ?? 0;
    // Its last stream: later requests get another connection, and this one closes once its streams end.
    if (max > 0 && c.opened >= max && !c.draining) {
      c.draining = true;
      this.#o.cx?.maxRequests();
    }
  }

  /** A stream on `c` closed: its max_requests place back, and `c` idles, retires or takes a waiting request. */
  #closing(c: H2Connection, slot: () => void): void {
    slot();
    c.streams--;
    if (c.draining) this.#retire(c);
    else if (c.streams === 0) this.#idle(c);
    this.#dispatch();
  }

  /**
   * A WebSocket (or other) upgrade as Envoy's HTTP/2 client codec sends one (transformUpgradeRequestFromH1toH2): an
   * RFC 8441 extended CONNECT stream, `:protocol` the upgrade, admitted as any request (a stream of a pooled
   * connection, a max_requests place while it lasts). A 200 is the upgrade taken: the stream is the tunnel. Any other
   * answer is read whole (up to `bodyLimit`). An upstream that does not allow extended CONNECT resets the stream.
   */
  tunnel(req: { protocol: string; path: string; authority: string; headers: HeaderPairs }, bodyLimit: number): UpgradeAttempt {
    let settle!: (r: UpgradeOutcome) => void;
    let done = false;
    /** The upgrade was taken: the stream is the tunnel now, and how it ends is not counted here. */
    let switched = false;
    const outcome = new Promise<UpgradeOutcome>((r) => (settle = r));
    let stream: http2.ClientHttp2Stream | undefined;
    const finish = (r: UpgradeOutcome): void => {
      if (done) return;
      done = true;
      if (r.kind === 'switched') switched = true;
      else if (stream) resetStream(stream);
      settle(r);
    };
    const fail = (f: UpstreamFailure): void => finish({ kind: 'failure', reason: f.reason, message: f.message });
    const attach = (c: H2Connection): void => {
      if (done) return;
      const slot = this.#o.request ? this.#o.request() : NO_SLOT;
      if (!slot) return fail(new UpstreamFailure('overflow', 'max requests overflow'));
      this.#opening(c);
      // As Envoy's transform: an empty body's content-length is dropped (nghttp2 refuses one on a CONNECT).
      const kept = req.headers.filter(([k, v]) => !k.startsWith(':') && !CONNECTION_SPECIFIC.has(k) && !(k === 'content-length' && v === '0'));
      const headers: http2.OutgoingHttpHeaders = { ':method': 'CONNECT', ':protocol': req.protocol, ':path': req.path, ':authority': req.authority, ':scheme': 'http', ...objectFromPairs(kept) };
      let s: http2.ClientHttp2Stream;
      try {
        s = stream = c.session.request(headers, { endStream: false });
      } catch (e) {
        this.#closing(c, slot);
        return fail(new UpstreamFailure('protocol_error', `upstream extended CONNECT refused (${(e as Error).message})`));
      }
      s.once('close', () => {
        this.#closing(c, slot);
        // Before the upgrade was taken (or refused); the tunnel after it is upgrade.ts's.
        const how = switched ? undefined : unfinishedHow(s, c.session, false);
        if (how !== undefined) this.#o.unfinished?.(how);
        if (!done) fail(s.rstCode && s.rstCode !== http2.constants.NGHTTP2_NO_ERROR ? remoteReset(s.rstCode) : new UpstreamFailure('connection_termination', 'connection termination'));
      });
      s.on('error', (err) => {
        if (done) return;
        const remote = (err as { code?: string }).code === 'ERR_HTTP2_STREAM_ERROR' && s.rstCode !== undefined && s.rstCode !== http2.constants.NGHTTP2_NO_ERROR;
        fail(remote ? remoteReset(s.rstCode!) : classify(err));
      });
      s.once('response', (h, flags) => {
        const status = Number(h[':status']);
        const headers = pairsFromObject(h as Record<string, string>).filter(([k]) => !k.startsWith(':'));
        if (status === 200 && (flags & http2.constants.NGHTTP2_FLAG_END_STREAM) === 0) {
          s.pause();
          return finish({ kind: 'switched', socket: s, headers, head: EMPTY });
        }
        // Refused: the answer is read whole, then the stream is done.
        const body: Buffer[] = [];
        let size = 0;
        s.on('data', (d: Buffer) => {
          size += d.length;
          if (size > bodyLimit) return fail(new UpstreamFailure('reset', 'upgrade refusal body over the buffer limit'));
          body.push(d);
        });
        s.once('end', () => finish({ kind: 'response', status, headers, body: Buffer.concat(body) }));
      });
    };
    const cancel = this.#admit(attach, fail);
    return {
      outcome,
      abort: () => {
        cancel();
        fail(new UpstreamFailure('reset', 'aborted'));
      },
    };
  }

  /** Opens the request's stream on `c`. */
  #stream(c: H2Connection, req: UpstreamRequest, body: UpstreamBody, aborted: () => UpstreamFailure | undefined, resolve: (r: UpstreamResponse) => void, reject: (e: Error) => void, slot: () => void): http2.ClientHttp2Stream {
    const session = c.session;
    this.#opening(c);
    const headers: http2.OutgoingHttpHeaders = { ':method': req.method, ':path': req.path, ':authority': req.authority, ':scheme': 'http' };
    for (const [k, v] of req.headers) {
      if (k === 'host' || k.startsWith(':')) continue;
      const prev = headers[k];
      headers[k] = prev === undefined ? v : ([] as string[]).concat(prev as string | string[], v);
    }
    // Request trailers (an HTTP/2 downstream's): a whole body's are known now; a streamed body's come at its end, so
    // node is asked to wait for them (with none, the stream then ends with an empty DATA frame).
    const buffered = req.body === null || Buffer.isBuffer(req.body);
    const trailing = req.trailers !== undefined && (!buffered || (req.trailers.requestTrailers?.length ?? 0) > 0);
    // A whole body with trailers carries its content-length as other whole bodies do (the proxy leaves it out for
    // an HTTP/1.1 upstream's chunked trailers), as Envoy's buffer filter sets it at the trailers too
    // (source/extensions/filters/http/buffer/buffer_filter.cc, decodeTrailers -> maybeAddContentLength).
    if (trailing && Buffer.isBuffer(req.body) && headers['content-length'] === undefined && (req.body.length > 0 || !NO_BODY_METHODS.has(req.method))) headers['content-length'] = String(req.body.length);
    const s = session.request(headers, { endStream: !trailing && (req.body === null || (Buffer.isBuffer(req.body) && req.body.length === 0)), waitForTrailers: trailing });
    if (trailing) {
      (s as TrailingStream)[kTrailers] = req.trailers;
      s.once('wantTrailers', sendRequestTrailers);
    }
    let responded = false;
    /** The response ended: a reset after it (ours, below) fails nothing. */
    let complete = false;
    let trailers: HeaderPairs = [];
    body.resumeSource = () => s.resume();
    body.abortSource = () => resetStream(s);
    s.on('trailers', (t) => (trailers = pairsFromObject(t as Record<string, string>)));
    s.once('response', (h, flags) => {
      responded = true;
      const status = Number(h[':status']);
      const pairs = pairsFromObject(h as Record<string, string>).filter(([k]) => !k.startsWith(':'));
      resolve({ status, headers: pairs, body, endStream: (flags & http2.constants.NGHTTP2_FLAG_END_STREAM) !== 0 });
    });
    s.on('data', (chunk: Buffer) => {
      if (!body.push(chunk)) s.pause();
    });
    s.on('end', () => {
      // No response: node ends the readable side of a stream its session's teardown destroyed ('close' says why).
      if (!responded) return;
      complete = true;
      body.end(trailers);
      // The response is complete while the request body still streams (an early answer to an upload or a
      // client-streaming call): the stream is reset, as Envoy's router resets it then, never ended (an
      // END_STREAM would make the part sent so far look like the whole request). CANCEL, as every upstream
      // reset here: a node server cannot tell a NO_ERROR reset (Envoy's code) from the request's end.
      if (!s.writableEnded) resetStream(s);
    });
    s.on('error', (err) => {
      if (complete) return;
      // The upstream's RST_STREAM (node: ERR_HTTP2_STREAM_ERROR, the code in rstCode); anything else is the connection's.
      const remote = (err as { code?: string }).code === 'ERR_HTTP2_STREAM_ERROR' && s.rstCode !== undefined && s.rstCode !== http2.constants.NGHTTP2_NO_ERROR;
      const f = aborted() ?? (remote ? remoteReset(s.rstCode!) : classify(err));
      if (responded) body.fail(f);
      else reject(f);
    });
    s.once('close', () => {
      this.#closing(c, slot);
      const how = unfinishedHow(s, session, complete);
      if (how !== undefined) this.#o.unfinished?.(how);
      if (complete) return;
      // The connection went under the stream (the upstream closed its socket without GOAWAY; node cancels the
      // stream itself, with no error): Envoy's `connection termination`, a 503 before the response and a reset
      // after. Until 2026-11-29 a request whose upstream died this way before answering hung.
      if (session.destroyed) {
        const f = aborted() ?? new UpstreamFailure('connection_termination', 'connection termination (upstream closed)');
        if (responded) body.fail(f);
        else reject(f);
      } else if (s.rstCode && s.rstCode !== http2.constants.NGHTTP2_NO_ERROR) {
        const f = aborted() ?? remoteReset(s.rstCode);
        if (responded) body.fail(f);
        else reject(f);
      } else if (responded) body.end(trailers);
    });
    if (Buffer.isBuffer(req.body)) {
      if (req.body.length > 0) s.end(req.body);
      else if (trailing) s.end();
    } else if (req.body === null) {
      if (trailing) s.end();
    } else {
      req.body.pipe(s);
      // Listening only once piped: an earlier 'data' listener would start the flow with nowhere to go.
      if (req.onBodyData) req.body.on('data', req.onBodyData);
    }
    const onSent = req.onSent;
    if (onSent !== undefined) {
      const sent = () => onSent(localAddressOf(session.socket), session.socket);
      if (req.body === null || Buffer.isBuffer(req.body)) sent();
      else req.body.once('end', sent);
    }
    return s;
  }

  async close(): Promise<void> {
    this.#closed = true;
    for (const w of this.#waiting.splice(0)) {
      w.release();
      w.fail(new UpstreamFailure('connection_failure', 'connection pool closed'));
    }
    for (const c of this.#conns) {
      this.#retire(c);
      if (!c.connected) c.session.close();
    }
  }
}
