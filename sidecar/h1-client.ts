// HTTP/1.1 to one upstream host on keep-alive sockets, parsed by Node's
// llhttp binding. It replaced an undici Pool on the request path: undici
// deferred each request write to setImmediate and ran its parser in wasm
// with a JS callback per header field, which on a 1,000 req/s hop cost more
// than the proxying around it (docs/sidecar.md, Performance).
//
// One request at a time per connection (no pipelining), as Envoy's HTTP/1
// pool (source/common/http/http1/conn_pool.cc on conn_pool_base.cc): a
// request takes an idle connection, else it waits as pending (among the
// cluster's max_pending_requests) and the pool opens a connection for it
// while the cluster's max_connections allows (counted over every host); past
// it, upstream_cx_overflow, and the request waits for a connection of the
// pool to come free. A pool with no connection at all gets one anyway.
// max_requests is taken as a request is given its connection. An idle socket
// closes after the cluster's idle timeout or a second before the server's
// own `Keep-Alive: timeout=N`, whichever is sooner, so a request is not
// written into a socket the server is closing.

import net from 'node:net';
import type tls from 'node:tls';
import type { NativeParser } from './llhttp.ts';
import { lowerPairs } from './headers.ts';
import { HTTPParser, MAX_RESPONSE_HEADER_BYTES, headerError } from './llhttp.ts';
import type { ConnectionStats, Exchange, HeaderPairs, PoolOptions, ResetReason, UpgradeAdmission, UpstreamPool, UpstreamRequest, UpstreamResponse } from './upstream.ts';
import { MAX_CONNECTIONS_PER_EVENT, UpstreamBody, UpstreamFailure, classify, connectFailure, connectTls, countConnection, localAddressOf } from './upstream.ts';
import type { Readable } from 'node:stream';

const KEEP_ALIVE_TIMEOUT = /timeout=(\d+)/i;

/** A pool made without a circuit breaker: waiting or a request takes no place. */
const NOTHING_HELD = (): void => undefined;

/**
 * Where every plain upstream socket of this process reads into (net's
 * `onread`): the parser consumes each read before the next arrives, and only
 * body bytes are kept (copied out, see kOnBody). A socket read into node's own
 * buffers made an ArrayBuffer per read and went through the Readable
 * machinery (a nextTick per read), one more object per request for the
 * scavenger to sweep (docs/sidecar.md, Performance).
 */
const READ_BUFFER = Buffer.allocUnsafe(64 * 1024);


/** The request line and headers; throws on a header that would not survive the wire intact. */
function head(req: UpstreamRequest, chunked: boolean): string {
  let out = `${req.method} ${req.path} HTTP/1.1\r\n`;
  let host = false;
  let length = false;
  for (const [k, v] of req.headers) {
    if (k.charCodeAt(0) === 58 /* : */) continue;
    const error = headerError(k, v);
    if (error) throw new UpstreamFailure('reset', error);
    if (k === 'host') host = true;
    else if (k === 'content-length') length = true;
    out += `${k}: ${v}\r\n`;
  }
  if (!host) out += `host: ${req.authority}\r\n`;
  const body = req.body;
  if (!length) {
    if (chunked) out += 'transfer-encoding: chunked\r\n';
    else if (Buffer.isBuffer(body) && body.length > 0) out += `content-length: ${body.length}\r\n`;
  }
  return out + '\r\n';
}

const EMPTY = Buffer.alloc(0);

/**
 * The last chunk of a chunked body, with the request's trailers (Envoy's
 * encodeTrailersBase with enable_trailers): pseudo-headers and fields that
 * would not survive the wire are left out.
 */
function lastChunk(trailers: HeaderPairs | undefined): string {
  let out = '0\r\n';
  if (trailers) for (const [k, v] of trailers) if (k.charCodeAt(0) !== 58 /* : */ && headerError(k, v) === undefined) out += `${k}: ${v}\r\n`;
  return out + '\r\n';
}

/** One request on its way: waiting for a socket, written, or receiving its response. */
class H1ClientExchange implements Exchange {
  readonly response: Promise<UpstreamResponse>;
  readonly req: UpstreamRequest;
  readonly #pool: Http1Pool;
  #resolve!: (r: UpstreamResponse) => void;
  #reject!: (e: Error) => void;
  conn: Connection | undefined;
  body: UpstreamBody | undefined;
  done = false;
  /** Waiting for a connection (pending): gives its place among max_pending_requests back. */
  unpend: (() => void) | undefined;
  /** Given a connection: gives its place among max_requests back. */
  slot: (() => void) | undefined;

  constructor(pool: Http1Pool, req: UpstreamRequest) {
    this.#pool = pool;
    this.req = req;
    this.response = new Promise((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
    });
  }

  abort(reason: ResetReason): void {
    if (this.done) return;
    const f = new UpstreamFailure(reason, reason === 'timeout' ? 'upstream request timeout' : `request aborted (${reason})`);
    if (this.conn) this.conn.destroy(f);
    else {
      this.#pool.dequeue(this);
      this.fail(f);
    }
  }

  respond(status: number, headers: HeaderPairs, body: UpstreamBody): void {
    this.body = body;
    this.#resolve({ status, headers, body });
  }

  /** Before the headers the response rejects; after, the body fails. */
  fail(f: UpstreamFailure): void {
    if (this.done) return;
    this.done = true;
    this.unpended();
    this.released();
    if (this.body) this.body.fail(f);
    else this.#reject(f);
  }

  /** No longer pending: its place among max_pending_requests is given back (once). */
  unpended(): void {
    const u = this.unpend;
    this.unpend = undefined;
    u?.();
  }

  /** Its exchange ended: its place among max_requests is given back (once). */
  released(): void {
    const s = this.slot;
    this.slot = undefined;
    s?.();
  }
}

/** One keep-alive socket and its response parser. */
class Connection {
  readonly socket: net.Socket | tls.TLSSocket;
  readonly #pool: Http1Pool;
  readonly #parser: NativeParser;
  current: H1ClientExchange | undefined;
  connected = false;
  closed = false;
  /** The server's keep-alive hint, in ms; Infinity when it gave none. */
  keepAliveMs = Infinity;
  #keepAlive = true;
  #status = 0;
  #trailers: string[] = [];
  #skipBody = false;
  /** Reads land in READ_BUFFER (plain sockets): body chunks are copied out. */
  #shared = false;
  /** Requests sent on this connection, and how many it may carry (0: no limit; max_requests_per_connection). */
  #sent = 0;
  readonly #maxRequests: number;
  readonly #cx: ConnectionStats | undefined;
  readonly #attached: (() => void) | undefined;
  #connectTimer: NodeJS.Timeout | undefined;
  /** The current request is written whole; false while a streamed body is still going out. */
  #requestDone = true;
  /** destroy() ended an exchange in progress. */
  #failedExchange = false;
  /** Stops the streamed body's pump (its listeners on the source and the socket). */
  #stopPump: (() => void) | undefined;
  /** http_protocol_options.enable_trailers: a chunked request body ends with the request's trailers. */
  readonly #enableTrailers: boolean;

  constructor(pool: Http1Pool, o: PoolOptions) {
    this.#pool = pool;
    this.#enableTrailers = o.enableTrailers === true;
    this.#maxRequests = o.maxRequestsPerConnection ?? 0;
    const socket = o.tls
      ? connectTls(o, 'http/1.1')
      : net.connect({ host: o.address, port: o.port, noDelay: true, onread: { buffer: READ_BUFFER, callback: (n: number, buf: Uint8Array) => this.#read(buf as Buffer, n) } });
    this.socket = socket;
    const counted = countConnection(o, socket, 'http1', o.tls ? 'secureConnect' : 'connect', { socket, busy: () => this.current !== undefined || this.#failedExchange });
    this.#cx = o.cx;
    this.#attached = o.attached;
    this.#shared = !o.tls;
    this.#connectTimer = setTimeout(() => {
      counted.timedOut();
      this.destroy(new UpstreamFailure('connection_failure', 'connection failure (connect timeout)'));
    }, o.connectTimeoutMs);
    socket.once(o.tls ? 'secureConnect' : 'connect', () => {
      clearTimeout(this.#connectTimer);
      this.connected = true;
      if (o.tls) socket.setNoDelay(true);
      this.#pool.connected(this);
    });
    const p = new HTTPParser();
    p.initialize(HTTPParser.RESPONSE, {}, MAX_RESPONSE_HEADER_BYTES, 0);
    p[HTTPParser.kOnHeaders] = (raw: string[]) => {
      // Header lines past the first batch, or trailers after a chunked body.
      this.#trailers = this.#trailers.concat(raw);
    };
    p[HTTPParser.kOnHeadersComplete] = (_major: number, _minor: number, raw: string[] | undefined, _m: unknown, _u: unknown, status: number, _sm: unknown, upgrade: boolean, keepAlive: boolean): number => {
      const all = raw ?? this.#takeTrailers();
      this.#status = status;
      // 101 to a request that asked for no upgrade (upgrades have connections of their own, upgrade.ts): the
      // connection no longer speaks HTTP; a protocol error, as in Envoy, rather than a wait for a response.
      if (status === 101) {
        this.destroy(new UpstreamFailure('protocol_error', 'upstream protocol error (101 Switching Protocols to a request without Upgrade)'));
        return 0;
      }
      if (status < 200) return 0; // 1xx: informational, the real response follows.
      const ex = this.current;
      if (!ex || ex.done) return 0;
      if (upgrade) {
        this.destroy(new UpstreamFailure('protocol_error', 'upstream protocol error (upgraded the connection)'));
        return 0;
      }
      this.#keepAlive = keepAlive;
      const headers = lowerPairs(all);
      let te = 0;
      for (const [k, v] of headers) {
        // As Envoy's codec: a transfer-encoding other than exactly `chunked` (`gzip, chunked`: a body the client
        // could not decode once de-chunked) is a protocol error.
        if (k === 'transfer-encoding' && (++te > 1 || v.toLowerCase() !== 'chunked')) {
          this.destroy(new UpstreamFailure('protocol_error', `upstream protocol error (unsupported transfer encoding: ${v})`));
          return 0;
        }
        if (k !== 'keep-alive') continue;
        const m = KEEP_ALIVE_TIMEOUT.exec(v);
        if (m) this.keepAliveMs = Number(m[1]) * 1000;
      }
      const body = new UpstreamBody();
      body.resumeSource = () => this.socket.resume();
      body.abortSource = (err) => this.destroy(err instanceof UpstreamFailure ? err : new UpstreamFailure('reset', err.message));
      ex.respond(status, headers, body);
      this.#skipBody = ex.req.method === 'HEAD';
      return this.#skipBody ? 1 : 0;
    };
    p[HTTPParser.kOnBody] = (chunk: Buffer) => {
      const body = this.current?.body;
      // A chunk of the shared read buffer is overwritten by the next read: the body gets its own copy.
      if (body && !body.push(this.#shared ? Buffer.from(chunk) : chunk)) this.socket.pause();
    };
    p[HTTPParser.kOnMessageComplete] = () => {
      if (this.#status < 200) return;
      const ex = this.current;
      if (!ex || ex.done) return;
      ex.done = true;
      this.current = undefined;
      // As Envoy's onStreamClosed: max_requests is given back before the connection takes the next request.
      ex.released();
      ex.body!.end(lowerPairs(this.#takeTrailers()));
      // The response came before the request was written whole (an early 413 or 401 to a streamed upload): the
      // rest of the body would be read as the next request, so the connection closes, as Envoy resets the
      // upstream stream when the response completes first.
      if (this.#keepAlive && this.#requestDone && (this.#maxRequests === 0 || this.#sent < this.#maxRequests)) this.#pool.released(this);
      else this.destroy();
    };
    this.#parser = p;
    // A TLS socket has no onread: its bytes come as 'data'.
    if (o.tls) socket.on('data', (d: Buffer) => this.#read(d, d.length));
    socket.on('end', () => {
      // A body delimited by the close ends here; anything else in flight was cut short.
      if (!this.closed) this.#parser.finish();
      this.destroy();
    });
    socket.on('error', (err) => this.destroy(this.connected ? classify(err) : connectFailure(err)));
    socket.on('close', () => this.destroy());
  }

  /** Bytes from the upstream socket: the first `n` of `buf` (the shared read buffer for a plain socket). */
  #read(buf: Buffer, n: number): true {
    if (this.closed) return true;
    const r = this.#parser.execute(n === buf.length ? buf : buf.subarray(0, n));
    // Not valid HTTP/1.1 (a malformed head, conflicting lengths, a bad chunk): Envoy's protocol error (UPE), not a close.
    if (r instanceof Error) this.destroy(new UpstreamFailure('protocol_error', `upstream protocol error (${(r as Error & { code?: string }).code ?? r.message})`));
    // Pausing is kOnBody's business (socket.pause()), not the read callback's.
    return true;
  }

  #takeTrailers(): string[] {
    const t = this.#trailers;
    this.#trailers = [];
    return t;
  }

  /** Writes the exchange's request; the response comes back through the parser. */
  send(ex: H1ClientExchange): void {
    ex.unpended();
    this.#attached?.();
    this.#sent++;
    if (this.#sent === this.#maxRequests) this.#cx?.maxRequests();
    this.current = ex;
    ex.conn = this;
    this.#status = 0;
    const req = ex.req;
    const streamed = req.body !== null && !Buffer.isBuffer(req.body);
    this.#requestDone = !streamed;
    // Request trailers go out (enable_trailers) on a chunked body only, as Envoy's codec: a whole body with trailers
    // and no content-length goes chunked then; without enable_trailers it keeps its content-length and they are dropped.
    const trailers = this.#enableTrailers && req.trailers !== undefined && !streamed ? req.trailers.requestTrailers : undefined;
    // A streamed body goes chunked unless the request carries its content-length (sent as it is then).
    const chunked = (streamed || (trailers !== undefined && trailers.length > 0)) && !req.headers.some(([k]) => k === 'content-length');
    let text: string;
    try {
      text = head(req, chunked);
    } catch (e) {
      this.current = undefined;
      ex.fail(e as UpstreamFailure);
      this.#pool.released(this);
      return;
    }
    const socket = this.socket;
    if (!streamed && chunked) {
      // A whole body with trailers (enable_trailers): one chunk, then the last chunk with the trailers.
      const body = (req.body as Buffer | null) ?? EMPTY;
      socket.cork();
      socket.write(text, 'latin1');
      if (body.length > 0) {
        socket.write(`${body.length.toString(16)}\r\n`, 'latin1');
        socket.write(body);
        socket.write('\r\n', 'latin1');
      }
      socket.write(lastChunk(trailers), 'latin1');
      socket.uncork();
      req.onSent?.(localAddressOf(socket), socket);
      return;
    }
    if (!streamed) {
      const body = req.body as Buffer | null;
      if (body && body.length > 0) {
        socket.cork();
        socket.write(text, 'latin1');
        socket.write(body);
        socket.uncork();
      } else socket.write(text, 'latin1');
      req.onSent?.(localAddressOf(socket), socket);
      return;
    }
    socket.write(text, 'latin1');
    this.#stream(ex, req.body as Readable, chunked);
  }

  /** A streamed request body, chunked or as it is (its content-length was sent), with backpressure from the socket. */
  #stream(ex: H1ClientExchange, source: Readable, chunked: boolean): void {
    const socket = this.socket;
    const onDrain = () => source.resume();
    const cleanup = () => {
      if (this.#stopPump === cleanup) this.#stopPump = undefined;
      source.off('data', onData);
      source.off('end', onEnd);
      source.off('error', onError);
      socket.off('drain', onDrain);
    };
    this.#stopPump = cleanup;
    const onData = (c: Buffer) => {
      if (this.current !== ex) return cleanup();
      ex.req.onBodyData?.(c);
      if (c.length === 0) return;
      let ok: boolean;
      if (chunked) {
        socket.cork();
        socket.write(`${c.length.toString(16)}\r\n`, 'latin1');
        socket.write(c);
        ok = socket.write('\r\n', 'latin1');
        socket.uncork();
      } else ok = socket.write(c);
      if (!ok) source.pause();
    };
    const onEnd = () => {
      cleanup();
      if (this.current !== ex || this.closed) return;
      this.#requestDone = true;
      // The trailers of a streamed body are known now that it ended (enable_trailers: sent; else dropped).
      if (chunked) socket.write(this.#enableTrailers ? lastChunk(ex.req.trailers?.requestTrailers) : '0\r\n\r\n', 'latin1');
      ex.req.onSent?.(localAddressOf(socket), socket);
    };
    const onError = (err: Error) => {
      cleanup();
      this.destroy(new UpstreamFailure('reset', `request body failed (${err.message})`));
    };
    source.on('data', onData);
    source.once('end', onEnd);
    source.once('error', onError);
    socket.on('drain', onDrain);
  }

  #idleTimer: NodeJS.Timeout | undefined;
  #idleMs = 0;

  /**
   * Idle until `ms`, then closed. One timer per connection, refreshed on each
   * release: socket.setTimeout made a Timeout and a bound function per request.
   */
  idle(ms: number): void {
    if (this.#idleTimer && this.#idleMs === ms) {
      this.#idleTimer.refresh();
      return;
    }
    clearTimeout(this.#idleTimer);
    this.#idleMs = ms;
    this.#idleTimer = setTimeout(idleExpired, ms, this);
    this.#idleTimer.unref();
  }

  /** The idle timer fired: closed unless a request went out on it since. */
  idleExpired(): void {
    if (this.current) return;
    this.#cx?.idleTimeout();
    this.destroy();
  }

  destroy(f?: UpstreamFailure): void {
    const ex = this.current;
    this.current = undefined;
    // Closed under an exchange (upstream_cx_destroy_*_with_active_rq, read as the socket closes), or for a response
    // that was not HTTP (upstream_cx_protocol_error).
    if (ex && !ex.done) this.#failedExchange = true;
    if (f?.reason === 'protocol_error' && !this.closed) this.#cx?.protocolError?.();
    if (ex && !ex.done) ex.fail(f ?? new UpstreamFailure(this.connected ? 'connection_termination' : 'connection_failure', this.connected ? 'connection termination (upstream closed)' : 'connection failure'));
    if (this.closed) return;
    this.closed = true;
    this.#stopPump?.();
    clearTimeout(this.#connectTimer);
    clearTimeout(this.#idleTimer);
    this.socket.destroy();
    // Not from inside the parser's own callback (this may run in one): freed on the next turn.
    setImmediate(() => this.#parser.close());
    this.#pool.gone(this, f);
  }
}

function idleExpired(c: Connection): void {
  c.idleExpired();
}

/** An upgrade waiting for a connection place. */
interface UpgradeWaiter {
  resolve(r: (() => void) | UpstreamFailure): void;
  unpend: () => void;
}

export class Http1Pool implements UpstreamPool {
  readonly #o: PoolOptions;
  readonly #all = new Set<Connection>();
  /** Idle connections, most recently used last. */
  readonly #idle: Connection[] = [];
  /** Requests waiting for a connection (pending), oldest first. */
  readonly #waiting: H1ClientExchange[] = [];
  /** Upgrades waiting for a connection place (each opens a connection of its own, upgrade.ts). */
  readonly #upgradeWaiting: UpgradeWaiter[] = [];
  /** Upgrades admitted and not yet closed: connections of this host, as Envoy's pool keeps an upgraded connection. */
  #upgrades = 0;
  /** What max_connections counts: the cluster's (PoolOptions.connectionsOpen), else this pool's own. */
  readonly #open: { value: number; changed(): void };
  #closed = false;

  constructor(o: PoolOptions) {
    this.#o = o;
    this.#open = o.connectionsOpen ?? { value: 0, changed: () => undefined };
  }

  start(req: UpstreamRequest): Exchange {
    const ex = new H1ClientExchange(this, req);
    if (this.#closed) {
      ex.fail(new UpstreamFailure('connection_failure', 'connection pool closed'));
      return ex;
    }
    if (this.#idle.length > 0) {
      if (this.#attach(ex)) this.#idle.pop()!.send(ex);
      return ex;
    }
    // As Envoy's newStream: no ready connection, so the request is pending (or overflows), then a connection is tried.
    const place = this.#o.pending ? this.#o.pending() : NOTHING_HELD;
    if (!place) {
      ex.fail(new UpstreamFailure('overflow', 'pending request overflow'));
      return ex;
    }
    ex.unpend = place;
    this.#waiting.push(ex);
    this.#grow();
    return ex;
  }

  /**
   * A place among max_requests for `ex`, about to be given a connection (Envoy's attachStreamToClient); false when
   * none is left: the request fails as overflow (the cluster counts upstream_rq_pending_overflow).
   */
  #attach(ex: H1ClientExchange): boolean {
    const slot = this.#o.request ? this.#o.request() : NOTHING_HELD;
    if (!slot) {
      ex.fail(new UpstreamFailure('overflow', 'max requests overflow'));
      return false;
    }
    ex.slot = slot;
    return true;
  }

  #connecting(): number {
    let n = 0;
    for (const c of this.#all) if (!c.connected) n++;
    return n;
  }

  /** Whether one more connection may be made (PoolOptions.canConnect, else the cluster's count under max_connections). */
  #canConnect(): boolean {
    const can = this.#o.canConnect;
    return can ? can() : this.#open.value < this.#o.connections;
  }

  /** This host has no connection at all (Envoy makes one whatever max_connections says, or its requests would be stranded). */
  #empty(): boolean {
    return this.#all.size === 0 && this.#upgrades === 0;
  }

  /**
   * As Envoy's tryCreateNewConnections: a connection for each pending request beyond those being made, at most
   * MAX_CONNECTIONS_PER_EVENT of them, while the cluster's max_connections allows; refused, upstream_cx_overflow,
   * and the requests wait for one of this pool's connections to come free.
   */
  #grow(): void {
    for (let made = 0; made < MAX_CONNECTIONS_PER_EVENT && this.#waiting.length > this.#connecting(); made++) {
      const can = this.#canConnect();
      if (!can) this.#o.cxOverflow?.();
      if (!can && !this.#empty()) return;
      this.#connect();
      if (!can) return;
    }
  }

  #connect(): void {
    const c = new Connection(this, this.#o);
    this.#all.add(c);
    this.#open.value++;
    this.#open.changed();
  }

  /** @internal */
  connected(c: Connection): void {
    this.released(c);
  }

  /** @internal a connection is ready (connected, or done with an exchange) and may be reused. */
  released(c: Connection): void {
    if (c.closed) return;
    // As Envoy's onUpstreamReady: the oldest pending request takes it; one that max_requests refuses fails as overflow.
    while (this.#waiting.length > 0) {
      const next = this.#waiting.shift()!;
      if (!this.#attach(next)) continue;
      c.send(next);
      // Requests still pending get connections made for them, as Envoy's onUpstreamReady tries then (the rest of a
      // backlog MAX_CONNECTIONS_PER_EVENT left waiting).
      if (this.#waiting.length > 0) this.#grow();
      return;
    }
    if (this.#upgradeWaiting.length > 0) {
      // The upgrade takes this connection's place (Envoy would upgrade this very connection).
      c.destroy();
      return this.#admitUpgrade(this.#upgradeWaiting.shift()!);
    }
    if (this.#closed) return c.destroy();
    // A second before the server's own idle timeout, so a request never races its close.
    const ms = Math.min(this.#o.idleTimeoutMs, c.keepAliveMs - 1000);
    if (ms <= 0) return c.destroy();
    c.idle(ms);
    this.#idle.push(c);
  }

  /** @internal a connection closed. */
  gone(c: Connection, f: UpstreamFailure | undefined): void {
    if (!this.#all.delete(c)) return;
    this.#open.value--;
    this.#open.changed();
    const i = this.#idle.indexOf(c);
    if (i >= 0) this.#idle.splice(i, 1);
    if (!c.connected) {
      // As Envoy's pool on a connect failure (purgePendingStreams): every pending request fails (UF), and the
      // router decides about retries.
      const failure = f?.reason === 'connection_failure' ? f : new UpstreamFailure('connection_failure', 'connection failure');
      for (const ex of this.#waiting.splice(0)) {
        this.#o.unfinished?.('failure_eject');
        ex.fail(failure);
      }
    }
    this.#room();
  }

  /** A connection place came free: pending requests get a connection made, then waiting upgrades their place. */
  #room(): void {
    this.#grow();
    while (!this.#closed && this.#upgradeWaiting.length > 0 && (this.#canConnect() || this.#empty())) this.#admitUpgrade(this.#upgradeWaiting.shift()!);
  }

  /** @internal an exchange aborted before it got a connection. */
  dequeue(ex: H1ClientExchange): void {
    const i = this.#waiting.indexOf(ex);
    if (i < 0) return;
    this.#waiting.splice(i, 1);
    this.#o.cancelled?.();
    ex.unpended();
  }

  /**
   * An upgrade to this host, on a connection of its own (upgrade.ts), admitted as Envoy's pool admits the upgrade
   * request: an idle connection gives its place up to it (Envoy would upgrade that connection), else it takes a new
   * place while max_connections allows (or the host has no connection at all), else it waits as pending (among
   * max_pending_requests, upstream_cx_overflow counted) for a connection of this host to come free or close.
   */
  upgrade(): UpgradeAdmission {
    const now = (r: (() => void) | UpstreamFailure): UpgradeAdmission => ({ admitted: Promise.resolve(r), cancel: () => undefined });
    if (this.#closed) return now(new UpstreamFailure('connection_failure', 'connection pool closed'));
    const idle = this.#idle.pop();
    if (idle) {
      idle.destroy();
      return now(this.#upgradePlace());
    }
    const can = this.#canConnect();
    if (!can) this.#o.cxOverflow?.();
    if (can || this.#empty()) return now(this.#upgradePlace());
    const place = this.#o.pending ? this.#o.pending() : NOTHING_HELD;
    if (!place) return now(new UpstreamFailure('overflow', 'pending request overflow'));
    let resolve!: (r: (() => void) | UpstreamFailure) => void;
    const admitted = new Promise<(() => void) | UpstreamFailure>((r) => (resolve = r));
    const w: UpgradeWaiter = { resolve, unpend: place };
    this.#upgradeWaiting.push(w);
    return {
      admitted,
      cancel: () => {
        const i = this.#upgradeWaiting.indexOf(w);
        if (i < 0) return;
        this.#upgradeWaiting.splice(i, 1);
        place();
        this.#o.cancelled?.();
        resolve(new UpstreamFailure('reset', 'upgrade cancelled while pending'));
      },
    };
  }

  #admitUpgrade(w: UpgradeWaiter): void {
    w.unpend();
    w.resolve(this.#upgradePlace());
  }

  /** A connection place and a max_requests place for an upgrade: a function giving both back once its connection closed. */
  #upgradePlace(): (() => void) | UpstreamFailure {
    const slot = this.#o.request ? this.#o.request() : NOTHING_HELD;
    if (!slot) return new UpstreamFailure('overflow', 'max requests overflow');
    this.#upgrades++;
    this.#open.value++;
    this.#open.changed();
    let done = false;
    return () => {
      if (done) return;
      done = true;
      slot();
      this.#upgrades--;
      this.#open.value--;
      this.#open.changed();
      this.#room();
    };
  }

  /**
   * Drains the pool, as Envoy drains a removed host's pools (DrainAndDelete, closeIdleConnectionsForDrainingPool):
   * it takes no new request, idle connections close, connections being made close unless requests wait for them,
   * and a connection carrying a request closes once it is done and no request waits (released() closes it), so a
   * host EDS removes finishes what it was doing, its pending requests included. Waiting upgrades fail.
   */
  async close(): Promise<void> {
    this.#closed = true;
    for (const w of this.#upgradeWaiting.splice(0)) {
      w.unpend();
      w.resolve(new UpstreamFailure('connection_failure', 'connection pool closed'));
    }
    for (const c of [...this.#all]) if (!c.current && (c.connected || this.#waiting.length === 0)) c.destroy();
  }
}
