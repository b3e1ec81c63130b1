// HTTP/1.1 to one upstream host on keep-alive sockets, parsed by Node's
// llhttp binding. It replaced an undici Pool on the request path: undici
// deferred each request write to setImmediate and ran its parser in wasm
// with a JS callback per header field, which on a 1,000 req/s hop cost more
// than the proxying around it (docs/sidecar.md, Performance).
//
// One request at a time per connection (no pipelining, as Envoy's HTTP/1
// pool); up to `connections` sockets, further requests wait in order for the
// first free one. An idle socket closes after the cluster's idle timeout or a
// second before the server's own `Keep-Alive: timeout=N`, whichever is
// sooner, so a request is not written into a socket the server is closing.

import net from 'node:net';
import type tls from 'node:tls';
import type { NativeParser } from './llhttp.ts';
import { lowerPairs } from './headers.ts';
import { HTTPParser, MAX_RESPONSE_HEADER_BYTES, headerError } from './llhttp.ts';
import type { ConnectionStats, Exchange, HeaderPairs, PoolOptions, ResetReason, UpstreamPool, UpstreamRequest, UpstreamResponse } from './upstream.ts';
import { UpstreamBody, UpstreamFailure, classify, connectFailure, connectTls, countConnection } from './upstream.ts';
import type { Readable } from 'node:stream';

const KEEP_ALIVE_TIMEOUT = /timeout=(\d+)/i;

/** A pool made without a circuit breaker: waiting takes no place. */
const NOTHING_PENDING = (): void => undefined;

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
  /** Waiting for a connection being made for it: gives its place among max_pending_requests back. */
  unpend: (() => void) | undefined;

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
    this.unpend?.();
    if (this.body) this.body.fail(f);
    else this.#reject(f);
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
  /** Stops the streamed body's pump (its listeners on the source and the socket). */
  #stopPump: (() => void) | undefined;

  constructor(pool: Http1Pool, o: PoolOptions) {
    this.#pool = pool;
    this.#maxRequests = o.maxRequestsPerConnection ?? 0;
    const socket = o.tls
      ? connectTls(o, 'http/1.1')
      : net.connect({ host: o.address, port: o.port, noDelay: true, onread: { buffer: READ_BUFFER, callback: (n: number, buf: Uint8Array) => this.#read(buf as Buffer, n) } });
    this.socket = socket;
    const counted = countConnection(o, socket, 'http1', o.tls ? 'secureConnect' : 'connect');
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
    ex.unpend?.();
    this.#attached?.();
    this.#sent++;
    if (this.#sent === this.#maxRequests) this.#cx?.maxRequests();
    this.current = ex;
    ex.conn = this;
    this.#status = 0;
    const req = ex.req;
    const streamed = req.body !== null && !Buffer.isBuffer(req.body);
    this.#requestDone = !streamed;
    // A streamed body goes chunked unless the request carries its content-length (sent as it is then).
    const chunked = streamed && !req.headers.some(([k]) => k === 'content-length');
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
    if (!streamed) {
      const body = req.body as Buffer | null;
      if (body && body.length > 0) {
        socket.cork();
        socket.write(text, 'latin1');
        socket.write(body);
        socket.uncork();
      } else socket.write(text, 'latin1');
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
      if (chunked) socket.write('0\r\n\r\n', 'latin1');
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

export class Http1Pool implements UpstreamPool {
  readonly #o: PoolOptions;
  readonly #all = new Set<Connection>();
  /** Idle connections, most recently used last. */
  readonly #idle: Connection[] = [];
  /** Connections still connecting, each for the exchange that opened it. */
  readonly #opening = new Map<Connection, H1ClientExchange>();
  readonly #waiting: H1ClientExchange[] = [];
  #closed = false;

  constructor(o: PoolOptions) {
    this.#o = o;
  }

  start(req: UpstreamRequest): Exchange {
    const ex = new H1ClientExchange(this, req);
    if (this.#closed) {
      ex.fail(new UpstreamFailure('connection_failure', 'connection pool closed'));
      return ex;
    }
    const idle = this.#idle.pop();
    if (idle) idle.send(ex);
    else if (this.#all.size < this.#o.connections) this.#open(ex);
    else this.#waiting.push(ex);
    return ex;
  }

  /**
   * A connection for `ex`, which waits for it as pending, as in Envoy's pool (a request that finds no ready
   * connection is pending while one is made): among max_pending_requests, or refused (overflow) past them.
   */
  #open(ex: H1ClientExchange): void {
    const place = this.#o.pending ? this.#o.pending() : NOTHING_PENDING;
    if (!place) return ex.fail(new UpstreamFailure('overflow', 'pending request overflow'));
    ex.unpend = place;
    const c = new Connection(this, this.#o);
    this.#all.add(c);
    this.#opening.set(c, ex);
  }

  /** @internal */
  connected(c: Connection): void {
    const ex = this.#opening.get(c);
    this.#opening.delete(c);
    if (ex && !ex.done) c.send(ex);
    else this.released(c);
  }

  /** @internal a connection finished an exchange and may be reused. */
  released(c: Connection): void {
    if (c.closed) return;
    const next = this.#waiting.shift();
    if (next) return c.send(next);
    if (this.#closed) return c.destroy();
    // A second before the server's own idle timeout, so a request never races its close.
    const ms = Math.min(this.#o.idleTimeoutMs, c.keepAliveMs - 1000);
    if (ms <= 0) return c.destroy();
    c.idle(ms);
    this.#idle.push(c);
  }

  /** @internal a connection closed. */
  gone(c: Connection, f: UpstreamFailure | undefined): void {
    this.#all.delete(c);
    const i = this.#idle.indexOf(c);
    if (i >= 0) this.#idle.splice(i, 1);
    const ex = this.#opening.get(c);
    this.#opening.delete(c);
    if (ex && !ex.done) ex.fail(f?.reason === 'connection_failure' ? f : new UpstreamFailure('connection_failure', 'connection failure'));
    // Room for a waiting request on a fresh connection.
    const next = this.#waiting.shift();
    if (next && !this.#closed) this.#open(next);
  }

  /** @internal an exchange aborted before it got a connection. */
  dequeue(ex: H1ClientExchange): void {
    if (ex.unpend || this.#waiting.includes(ex)) this.#o.cancelled?.();
    ex.unpend?.();
    const i = this.#waiting.indexOf(ex);
    if (i >= 0) this.#waiting.splice(i, 1);
    for (const [c, e] of this.#opening) {
      if (e === ex) {
        // The connection may still serve the next request once it is up.
        this.#opening.delete(c);
      }
    }
  }

  /**
   * Drains the pool, as Envoy drains a removed host's pools (DrainAndDelete): requests waiting for a connection fail,
   * idle connections close, and a connection carrying a request (or being made for one) closes once it is done
   * (released() closes it), so a host EDS removes finishes what it was doing.
   */
  async close(): Promise<void> {
    this.#closed = true;
    for (const ex of this.#waiting.splice(0)) ex.fail(new UpstreamFailure('connection_failure', 'connection pool closed'));
    for (const c of [...this.#all]) {
      const opening = this.#opening.get(c);
      if (c.current || (opening && !opening.done)) continue;
      c.destroy();
    }
  }
}
