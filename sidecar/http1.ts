// HTTP/1.x on the sidecar's listeners, served straight off the socket.
//
// node:http's server builds a Readable IncomingMessage and a Writable
// ServerResponse per request, with their events and nextTicks; at 1,000
// requests/s that machinery was the largest single cost of a hop (bench:
// dataplane, see docs/sidecar.md, Performance). Here Node's own llhttp
// binding (the parser node:http uses, from node:_http_common) parses, and a
// request and its response are small objects carrying only what the proxy
// uses: headers, a body that is pushed as it arrives, writeHead/write/end.
//
// What it keeps from node:http: strict parsing (a malformed request gets 400
// and the connection closes; oversized headers 431), keep-alive with the
// connection manager's idle timeout (also the time allowed to send a
// request's headers),
// pipelined requests answered in order, `Expect: 100-continue` answered by
// the proxy (as Envoy does; the header is not forwarded), a Date header,
// chunked responses when the length is unknown, no body for HEAD/204/304,
// and `connection: close` for HTTP/1.0 without keep-alive. A WebSocket
// upgrade (GET with `Upgrade: websocket`) goes to the proxy like any request;
// once it answers 101 (switchProtocols) the connection is the proxy's, bytes
// the client sent past its request head included. `Upgrade: h2c` is ignored,
// as Envoy's codec ignores it: the request is served as plain HTTP/1.1. Other
// upgrades and CONNECT get 403, as Envoy answers an upgrade no
// upgrade_configs entry allows.

import type net from 'node:net';
import { STATUS_CODES } from 'node:http';
import type { NativeParser } from './llhttp.ts';
import { HTTPParser, headerError, methods } from './llhttp.ts';
import type { LocalCloseReason } from './downstream-cx.ts';

/** A first body chunk up to this size is copied behind the head and sent in one write. */
const JOIN_LIMIT = 16 * 1024;
/** As node:http's default maxHeadersCount: further header lines are dropped. */
const MAX_HEADER_PAIRS = 2000;

/**
 * A connection's limits: a request head's size in bytes and number of
 * headers (past either: 431), and the requests the connection carries (0: no
 * limit; the last one is answered with `connection: close`).
 */
export interface ConnectionLimits {
  maxHeaderBytes: number;
  maxHeadersCount: number;
  maxRequestsPerConnection: number;
  /** The `server` header of the connection's own replies (400, 431, 403, 501): server_name, none under PASS_THROUGH. */
  server?: string;
}

/**
 * One of the connection's own answers (400, 431, 501, 403 `upgrade failed`),
 * for the access log and the connection manager's counters, as Envoy logs
 * and counts a codec error's local reply. What the request head said, when it
 * got that far ('' otherwise); `flag` DPE for a request that could not be read.
 */
export interface CodecReply {
  status: number;
  flag: string;
  method: string;
  path: string;
  authority: string;
  protocol: string;
  bytesSent: number;
  bytesReceived: number;
}

/** Envoy's defaults: max_request_headers_kb 60, common_http_protocol_options.max_headers_count 100, no request limit, server_name envoy. */
export const ENVOY_CONNECTION_LIMITS: ConnectionLimits = { maxHeaderBytes: 60 * 1024, maxHeadersCount: 100, maxRequestsPerConnection: 0, server: 'envoy' };
/** Body bytes held for a request nobody reads yet before the socket is paused. */
const MAX_HELD_BODY = 64 * 1024;
/** Parsed requests waiting behind the one being answered before the socket is paused. */
const MAX_QUEUED = 16;
/** The body of the 403 to an upgrade no upgrade_configs entry allows, as Envoy words it. */
const UPGRADE_FAILED = 'upgrade failed';
/** How long a connection closed under an unfinished request body reads and drops it before it is reset (Envoy's delayed_close_timeout default). */
const DELAYED_CLOSE_MS = 1000;

type Listener = (...args: never[]) => void;

/**
 * A request whose body could not be read as HTTP/1.1 (a malformed chunk):
 * the request's 'error', with the status Envoy's codec answers (400), after
 * which the connection closes.
 */
export class DownstreamProtocolError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/**
 * Just enough of an event emitter: the proxy listens for a handful of events,
 * once each. Listeners sit in one flat [event, fn, event, fn, ...] array (a
 * Map per request and response was a measurable share of the garbage).
 */
class Events {
  #listeners: (string | Listener)[] | undefined;

  on(event: string, fn: Listener): this {
    (this.#listeners ??= []).push(event, fn);
    return this;
  }

  once(event: string, fn: Listener): this {
    const wrapped = ((...args: never[]) => {
      this.off(event, wrapped);
      fn(...args);
    }) as Listener;
    return this.on(event, wrapped);
  }

  off(event: string, fn: Listener): this {
    const list = this.#listeners;
    if (!list) return this;
    for (let i = 0; i < list.length; i += 2) {
      if (list[i] === event && list[i + 1] === fn) {
        list.splice(i, 2);
        break;
      }
    }
    return this;
  }

  protected emit(event: string, ...args: unknown[]): void {
    const list = this.#listeners;
    if (!list) return;
    let matched: Listener | Listener[] | undefined;
    for (let i = 0; i < list.length; i += 2) {
      if (list[i] !== event) continue;
      const fn = list[i + 1] as Listener;
      if (matched === undefined) matched = fn;
      else if (Array.isArray(matched)) matched.push(fn);
      else matched = [matched, fn];
    }
    if (matched === undefined) return;
    // Taken before calling: a listener may add or remove others (once does).
    if (Array.isArray(matched)) for (const fn of matched) (fn as (...a: unknown[]) => void)(...args);
    else (matched as (...a: unknown[]) => void)(...args);
  }
}

let dateSecond = 0;
let dateValue = '';
function httpDate(): string {
  const now = Date.now();
  const second = Math.floor(now / 1000);
  if (second !== dateSecond) {
    dateSecond = second;
    dateValue = new Date(now).toUTCString();
  }
  return dateValue;
}

/**
 * One request as it arrives. Body chunks are held until someone reads them
 * (a request queued behind a pipelined one, or read after an await); 'end'
 * and 'close' reach listeners that come late.
 */
export class H1Request extends Events {
  readonly httpVersionMajor = 1;
  readonly httpVersion: string;
  readonly method: string;
  readonly url: string;
  readonly rawHeaders: string[];
  readonly headers: Record<string, string>;
  readonly socket: net.Socket;
  /** The client sent `Expect: 100-continue` (answered by the proxy, not forwarded). */
  readonly expectContinue: boolean;
  /** An Upgrade or CONNECT request (only a WebSocket upgrade reaches the proxy; the rest get 403). */
  readonly upgrade: boolean;
  /** The request has a body to come (a content-length other than 0, or a transfer-encoding). */
  hasBody = false;
  /** Pipelined behind others and the connection's last (Connection: close, max_requests_per_connection): keep-alive ends when it is answered. */
  lastOnConnection = false;
  complete = false;
  #held: Buffer[] | undefined;
  #heldBytes = 0;
  #reading = false;
  /** Set by the connection while it has paused the socket for this request's held body. */
  onFlow: (() => void) | undefined;
  #discard = false;
  #closed = false;

  constructor(socket: net.Socket, versionMinor: number, method: string, url: string, rawHeaders: string[], headers: Record<string, string>, expectContinue: boolean, upgrade: boolean) {
    super();
    this.socket = socket;
    this.expectContinue = expectContinue;
    this.upgrade = upgrade;
    this.httpVersion = versionMinor === 1 ? '1.1' : `1.${versionMinor}`;
    this.method = method;
    this.url = url;
    this.rawHeaders = rawHeaders;
    this.headers = headers;
  }

  override on(event: string, fn: Listener): this {
    super.on(event, fn);
    if (event === 'data') {
      this.#reading = true;
      const held = this.#held;
      this.#held = undefined;
      this.#heldBytes = 0;
      if (held) for (const c of held) this.emit('data', c);
      this.#flow();
    } else if (event === 'end' && this.complete) queueMicrotask(() => (fn as () => void)());
    else if (event === 'close' && this.#closed) queueMicrotask(() => (fn as () => void)());
    return this;
  }

  /** The body is not wanted: chunks are dropped as they arrive. */
  resume(): this {
    this.#discard = true;
    this.#held = undefined;
    this.#heldBytes = 0;
    this.#flow();
    return this;
  }

  #flow(): void {
    const f = this.onFlow;
    this.onFlow = undefined;
    f?.();
  }

  /** Stops reading the connection while a streamed body's reader is behind (the upstream is slower). */
  pauseBody(): void {
    this.socket.pause();
  }

  /** Reads the connection again after pauseBody. */
  resumeBody(): void {
    this.socket.resume();
  }

  /** The request has arrived whole: no body, or its body ended. */
  get received(): boolean {
    return this.complete || !this.hasBody;
  }

  /** Bytes of body waiting for a reader. */
  get heldBytes(): number {
    return this.#heldBytes;
  }

  destroy(): void {
    this.socket.destroy();
  }

  /** @internal from the parser */
  push(chunk: Buffer): void {
    if (this.#discard) return;
    if (this.#reading) this.emit('data', chunk);
    else {
      (this.#held ??= []).push(chunk);
      this.#heldBytes += chunk.length;
    }
  }

  /** @internal the body could not be parsed: 'error' (readers answer `err.status`) */
  fail(err: DownstreamProtocolError): void {
    this.emit('error', err);
  }

  /** @internal the message ended */
  end(): void {
    this.complete = true;
    this.emit('end');
  }

  /** @internal the connection closed */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.emit('close');
  }
}

/**
 * The response to one request. Headers are written with the first body
 * bytes (one write for a small response); without a content-length the
 * body goes chunked (close-delimited to an HTTP/1.0 client).
 */
export class H1Response extends Events {
  statusCode = 200;
  headersSent = false;
  writableFinished = false;
  readonly #conn: H1Connection;
  readonly #req: H1Request;
  #status = 200;
  #headers: string[] = [];
  /** Head serialized but not yet written. */
  #pendingHead: string | undefined;
  #chunked = false;
  #noBody = false;
  #closed = false;

  constructor(conn: H1Connection, req: H1Request) {
    super();
    this.#conn = conn;
    this.#req = req;
  }

  /** Headers as node's flat [name, value, ...]; sent with the first body bytes. */
  writeHead(status: number, headers: string[] = []): this {
    if (this.headersSent) throw new Error('headers already sent');
    if (!Number.isInteger(status) || status < 100 || status > 999) throw new RangeError(`invalid status code: ${status}`);
    // Checked before anything is committed, so a caller can still answer otherwise (no response splitting).
    for (let i = 0; i + 1 < headers.length; i += 2) {
      const error = headerError(headers[i]!, String(headers[i + 1]));
      if (error) throw new TypeError(error);
    }
    this.#status = this.statusCode = status;
    this.#headers = headers;
    this.headersSent = true;
    return this;
  }

  /**
   * 101 Switching Protocols for a WebSocket upgrade: the head goes out at
   * once, and the connection is the caller's from here on, with the bytes
   * the client sent past its request head (`head`). `headers` as writeHead's.
   */
  switchProtocols(headers: string[]): { socket: net.Socket; head: Buffer } {
    if (!this.#req.upgrade || this.headersSent) throw new Error('not an upgrade request waiting for its response');
    let text = 'HTTP/1.1 101 Switching Protocols\r\n';
    for (let i = 0; i + 1 < headers.length; i += 2) {
      const error = headerError(headers[i]!, String(headers[i + 1]));
      if (error) throw new TypeError(error);
      text += `${headers[i]}: ${headers[i + 1]}\r\n`;
    }
    this.#status = this.statusCode = 101;
    this.headersSent = true;
    const taken = this.#conn.takeOver();
    taken.socket.write(text + '\r\n', 'latin1');
    return taken;
  }

  /** Whether the request had arrived whole when this response began (else, as Envoy, the connection closes after it). */
  get requestReceived(): boolean {
    return this.#req.received;
  }

  cork(): void {
    this.#conn.socket.cork();
  }

  uncork(): void {
    this.#conn.socket.uncork();
  }

  write(chunk: Buffer): boolean {
    if (this.writableFinished) return false;
    const socket = this.#conn.socket;
    if (this.#pendingHead === undefined && !this.#headWritten) this.#serialize(undefined);
    if (this.#noBody || chunk.length === 0) {
      this.#flushHead();
      return true;
    }
    // Head and a small first chunk in one buffer: one write, without the corked writev's per-chunk bookkeeping.
    if (this.#pendingHead !== undefined && !this.#chunked && chunk.length <= JOIN_LIMIT) {
      const ok = socket.write(this.#joinHead(chunk));
      if (!ok) socket.once('drain', () => this.emit('drain'));
      return ok;
    }
    socket.cork();
    this.#flushHead();
    let ok: boolean;
    if (this.#chunked) {
      socket.write(`${chunk.length.toString(16)}\r\n`, 'latin1');
      socket.write(chunk);
      ok = socket.write('\r\n', 'latin1');
    } else ok = socket.write(chunk);
    socket.uncork();
    if (!ok) socket.once('drain', () => this.emit('drain'));
    return ok;
  }

  end(body?: Buffer | string): this {
    if (this.writableFinished) return this;
    const chunk = body === undefined ? undefined : typeof body === 'string' ? Buffer.from(body) : body;
    const socket = this.#conn.socket;
    if (!this.#headWritten && this.#pendingHead === undefined) this.#serialize(chunk?.length ?? 0);
    if (this.#pendingHead !== undefined && !this.#chunked && !this.#noBody && chunk !== undefined && chunk.length <= JOIN_LIMIT) {
      socket.write(this.#joinHead(chunk));
      this.writableFinished = true;
      this.#conn.responded(this);
      return this;
    }
    socket.cork();
    this.#flushHead();
    if (!this.#noBody) {
      if (this.#chunked) {
        if (chunk?.length) {
          socket.write(`${chunk.length.toString(16)}\r\n`, 'latin1');
          socket.write(chunk);
          socket.write('\r\n0\r\n\r\n', 'latin1');
        } else socket.write('0\r\n\r\n', 'latin1');
      } else if (chunk?.length) socket.write(chunk);
    }
    socket.uncork();
    this.writableFinished = true;
    this.#conn.responded(this);
    return this;
  }

  /** Resets the connection, as a proxy does when a response cannot be completed. */
  destroy(): void {
    this.#conn.socket.destroy();
  }

  #headWritten = false;

  /** The pending head (latin1, as #flushHead writes it) followed by `chunk`. */
  #joinHead(chunk: Buffer): Buffer {
    const head = this.#pendingHead!;
    this.#pendingHead = undefined;
    this.#headWritten = true;
    const out = Buffer.allocUnsafe(head.length + chunk.length);
    out.write(head, 0, 'latin1');
    chunk.copy(out, head.length);
    return out;
  }

  #flushHead(): void {
    if (this.#pendingHead === undefined) return;
    this.#conn.socket.write(this.#pendingHead, 'latin1');
    this.#pendingHead = undefined;
    this.#headWritten = true;
  }

  /** Builds the status line and headers; knownLength is the whole body's length when end() came first. */
  #serialize(knownLength: number | undefined): void {
    if (!this.headersSent) this.writeHead(this.statusCode);
    const status = this.#status;
    const req = this.#req;
    this.#noBody = req.method === 'HEAD' || status === 204 || status === 304 || status < 200;
    let head = `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Unknown'}\r\n`;
    let length = false;
    let date = false;
    // A response that starts before its request has arrived whole is the connection's last, as Envoy's
    // connection manager closes an HTTP/1 connection then rather than wait for the rest of the body.
    let close = this.#conn.lastResponse() || !req.received;
    const h = this.#headers;
    for (let i = 0; i + 1 < h.length; i += 2) {
      const name = h[i]!;
      const value = String(h[i + 1]);
      const lower = name.length === 14 || name.length === 10 || name.length === 4 ? name.toLowerCase() : '';
      if (lower === 'content-length') length = true;
      else if (lower === 'connection') {
        if (value.toLowerCase() === 'close') close = true;
        continue;
      } else if (lower === 'date') date = true;
      head += `${name}: ${value}\r\n`;
    }
    if (!date) head += `date: ${httpDate()}\r\n`;
    if (!length && !this.#noBody) {
      if (knownLength !== undefined) head += `content-length: ${knownLength}\r\n`;
      else if (req.httpVersion === '1.1') {
        head += 'transfer-encoding: chunked\r\n';
        this.#chunked = true;
      } else close = true;
    }
    if (close) {
      this.#conn.keepAlive = false;
      head += 'connection: close\r\n';
    } else if (req.httpVersion !== '1.1') head += 'connection: keep-alive\r\n';
    this.#pendingHead = head + '\r\n';
  }

  /** @internal the response ended or the connection closed */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.emit('close');
  }
}

type OnRequest = (req: H1Request, res: H1Response) => void;

/** The request's Upgrade header is `h2c` (any case): an HTTP/2 upgrade, which Envoy ignores. */
function isH2cUpgrade(raw: readonly string[]): boolean {
  for (let i = 0; i + 1 < raw.length; i += 2) {
    if (raw[i]!.length === 7 && raw[i]!.toLowerCase() === 'upgrade') return raw[i + 1]!.trim().toLowerCase() === 'h2c';
  }
  return false;
}

/** The headers without Upgrade and HTTP2-Settings, and without their tokens in Connection (dropped if none is left). */
function withoutH2cUpgrade(raw: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    if (name === 'upgrade' || name === 'http2-settings') continue;
    let value = raw[i + 1]!;
    if (name === 'connection') {
      value = value
        .split(',')
        .map((t) => t.trim())
        .filter((t) => t !== '' && t.toLowerCase() !== 'upgrade' && t.toLowerCase() !== 'http2-settings')
        .join(', ');
      if (value === '') continue;
    }
    out.push(raw[i]!, value);
  }
  return out;
}

/** GET with `Upgrade: websocket` (the token, any case, maybe among others). */
function isWebSocketUpgrade(req: { method: string; headers: Record<string, string | string[] | undefined> }): boolean {
  const upgrade = req.headers.upgrade;
  return req.method === 'GET' && typeof upgrade === 'string' && upgrade.split(',').some((t) => t.trim().toLowerCase() === 'websocket');
}

/**
 * One downstream connection: parses requests, answers them one at a time and
 * in order, closes when asked to or when the client or a response says so.
 */
export class H1Connection {
  readonly socket: net.Socket;
  keepAlive = true;
  readonly #parser: NativeParser;
  readonly #onRequest: OnRequest;
  readonly #onClose: (c: H1Connection) => void;
  /** Requests parsed and not yet answered; the first is being answered. */
  readonly #queue: { req: H1Request; res: H1Response }[] = [];
  /** The request whose bytes are arriving. */
  #parsing: H1Request | undefined;
  #headers: string[] = [];
  #url = '';
  #failed = false;
  #closing = false;
  #closed = false;
  #paused = false;
  /** An upgrade request's bytes past its head (the upgraded protocol's first bytes). */
  #upgradeHead: Buffer | undefined;
  readonly #maxHeadersCount: number;
  readonly #server: string | undefined;
  /** max_requests_per_connection: requests this connection may still carry. */
  #requestsLeft: number;
  /** Where the connection's own answers are reported (the access log, the counters). */
  readonly #report: ((r: CodecReply) => void) | undefined;
  /** Where the connection says why it closes (the connection's counters, sidecar/downstream-cx.ts). */
  closing: ((reason: LocalCloseReason) => void) | undefined;
  /** The head of the request the connection refused, when it was read (what #sendError reports). */
  #refused: { method: string; url: string; headers: Record<string, string>; minor: number } | undefined;

  constructor(socket: net.Socket, onRequest: OnRequest, onClose: (c: H1Connection) => void, idleMs: number, limits: ConnectionLimits = ENVOY_CONNECTION_LIMITS, report?: (r: CodecReply) => void) {
    this.socket = socket;
    this.#report = report;
    this.#maxHeadersCount = limits.maxHeadersCount;
    this.#server = limits.server;
    this.#requestsLeft = limits.maxRequestsPerConnection > 0 ? limits.maxRequestsPerConnection : Infinity;
    this.#onRequest = onRequest;
    this.#onClose = onClose;
    const p = new HTTPParser();
    // The header block's size limit is llhttp's (HPE_HEADER_OVERFLOW: 431); node's own default would be 16 KiB.
    p.initialize(HTTPParser.REQUEST, {}, limits.maxHeaderBytes, 0);
    p[HTTPParser.kOnHeaders] = (headers: string[], url: string) => {
      if (this.#headers.length < MAX_HEADER_PAIRS * 2) this.#headers = this.#headers.concat(headers);
      this.#url += url;
    };
    p[HTTPParser.kOnHeadersComplete] = (_major: number, minor: number, headers: string[] | undefined, method: number, url: string | undefined, _s: unknown, _m: unknown, upgrade: boolean, keepAlive: boolean): number => {
      this.#headersComplete(minor, headers ?? this.#takeHeaders(), methods[method] ?? 'GET', url ?? this.#takeUrl(), upgrade, keepAlive);
      return 0;
    };
    p[HTTPParser.kOnBody] = (chunk: Buffer) => {
      const req = this.#parsing;
      if (!req) return;
      req.push(chunk);
      // Nobody reads this body yet (a pipelined request waiting its turn): stop reading the socket past a bound.
      if (req.heldBytes > MAX_HELD_BODY) {
        this.socket.pause();
        req.onFlow ??= () => {
          if (!this.#paused) this.socket.resume();
        };
      }
    };
    p[HTTPParser.kOnMessageComplete] = () => {
      const req = this.#parsing;
      this.#parsing = undefined;
      req?.end();
    };
    this.#parser = p;
    // One idle timer per connection, refreshed after each response (socket.setTimeout made a Timeout and a bound function per request).
    if (idleMs > 0) {
      this.#idle = setTimeout(idleExpired, idleMs, this);
      this.#idle.unref();
    }
    socket.on('data', (d: Buffer) => this.#execute(d));
    socket.on('end', () => {
      // The client half-closed: nothing more will arrive; answer what was asked, then close.
      this.#parser.finish();
      this.keepAlive = false;
      if (this.#queue.length === 0) socket.end();
    });
    socket.on('error', () => undefined);
    socket.on('close', () => this.#close());
  }

  /** Bytes that arrived with the connection's first read (already taken off the socket). */
  feed(first: Buffer): void {
    this.#execute(first);
  }

  /** A graceful drain: the next response says `connection: close` and the connection closes after it; idle, it waits for that request. */
  drain(reason: 'drain' | 'overload' = 'drain'): void {
    if (this.keepAlive) this.closing?.(reason);
    this.keepAlive = false;
  }

  /** A request is in progress (read, not yet answered). */
  get busy(): boolean {
    return this.#queue.length > 0;
  }

  /** Idle: close now. Busy: close after the response in progress. */
  closeWhenIdle(): void {
    this.closing?.('drain');
    this.#closing = true;
    this.keepAlive = false;
    if (this.#queue.length === 0) this.socket.end();
  }

  #takeHeaders(): string[] {
    const h = this.#headers;
    this.#headers = [];
    return h;
  }

  #takeUrl(): string {
    const u = this.#url;
    this.#url = '';
    return u;
  }

  #execute(d: Buffer): void {
    if (this.#failed || this.#closed) return;
    let r = this.#parser.execute(d);
    // After an upgrade request the parser stops on purpose (it returns how much it read); that is not a parse error.
    // An h2c upgrade served as plain HTTP/1.1 (below) is not one: the parser goes on with the bytes after it.
    while (typeof r === 'number' && r < d.length && !this.#failed && !this.#closed) {
      d = d.subarray(r);
      r = this.#parser.execute(d);
    }
    if (r instanceof Error) {
      if (!this.#failed) this.#fail(r);
    } else if (this.#failed && r < d.length) this.#upgradeHead = d.subarray(r);
  }

  /**
   * The upgraded connection leaves HTTP: the socket (paused) and the bytes
   * read past the request head; this connection stops reading it and lets go
   * of its idle timer. Closing the socket still ends the request as usual.
   */
  takeOver(): { socket: net.Socket; head: Buffer } {
    const socket = this.socket;
    socket.removeAllListeners('data');
    socket.removeAllListeners('end');
    clearTimeout(this.#idle);
    const head = this.#upgradeHead ?? Buffer.alloc(0);
    this.#upgradeHead = undefined;
    return { socket, head };
  }

  #fail(err: Error & { code?: string }, status = err.code === 'HPE_HEADER_OVERFLOW' ? 431 : 400): void {
    this.#failed = true;
    this.closing?.('protocol_error');
    this.socket.pause();
    const broken = this.#parsing;
    this.#parsing = undefined;
    if (broken) {
      // A request whose body is malformed. Handed to the proxy already (the first in line), it is the one to
      // answer: its body read fails with the status (the proxy sends it, or resets a response already under way),
      // rather than the request waiting for a body that never ends. Still queued, it is dropped and the status
      // sent in its place. The connection closes after either, as Envoy's codec closes it.
      const i = this.#queue.findIndex((e) => e.req === broken);
      if (i === 0) return broken.fail(new DownstreamProtocolError(status, `malformed request body (${err.code ?? err.message})`));
      if (i > 0) {
        this.#queue.splice(i, 1);
        broken.close();
        this.#refused ??= { method: broken.method, url: broken.url, headers: broken.headers, minor: broken.httpVersion === '1.1' ? 1 : 0 };
      }
    }
    // After the responses already owed, in order; then the connection closes.
    if (this.#queue.length === 0) this.#sendError(status);
    else this.#afterQueue = status;
  }

  #afterQueue: number | undefined;

  /** The connection's own answer to a request it could not read, with the server and date headers every response carries. */
  #sendError(status: number): void {
    const server = this.#server === undefined ? '' : `server: ${this.#server}\r\n`;
    this.socket.end(`HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\ncontent-length: 0\r\n${server}date: ${httpDate()}\r\nconnection: close\r\n\r\n`, 'latin1');
    // A request Envoy's codec could not read: logged and counted with flag DPE (downstream protocol error).
    const head = this.#refused;
    this.#refused = undefined;
    this.#report?.({
      status,
      flag: 'DPE',
      method: head?.method ?? '',
      path: head?.url ?? '',
      authority: head?.headers.host ?? '',
      protocol: head === undefined || head.minor === 1 ? 'HTTP/1.1' : `HTTP/1.${head.minor}`,
      bytesSent: 0,
      bytesReceived: 0,
    });
  }

  #headersComplete(minor: number, raw: string[], method: string, url: string, upgrade: boolean, keepAlive: boolean): void {
    // Past a request the connection refused, nothing more is served (llhttp may still be parsing the same read).
    if (this.#failed) return;
    // As Envoy's HTTP/1 codec: more headers than max_headers_count is 431, and the connection closes.
    if (raw.length / 2 > this.#maxHeadersCount) {
      this.#refused = { method, url, headers: { host: hostOf(raw) }, minor };
      return this.#fail(Object.assign(new Error('too many headers'), { code: 'HPE_HEADER_OVERFLOW' }));
    }
    // An `Upgrade: h2c` request (curl --http2, Java's HttpClient on http://) is served as the HTTP/1.1 request it
    // also is, as Envoy's codec does: Upgrade, HTTP2-Settings and their Connection tokens are taken off it.
    if (upgrade && method !== 'CONNECT' && isH2cUpgrade(raw)) {
      raw = withoutH2cUpgrade(raw);
      upgrade = false;
    }
    const headers: Record<string, string> = {};
    let rawHeaders = raw;
    let expectContinue = false;
    let teRepeated = false;
    for (let i = 0; i + 1 < raw.length; i += 2) {
      const k = raw[i]!.toLowerCase();
      if (k === 'expect' && raw[i + 1]!.toLowerCase() === '100-continue') expectContinue = true;
      else if (headers[k] === undefined) headers[k] = raw[i + 1]!;
      else if (k === 'transfer-encoding') teRepeated = true;
    }
    // As Envoy's codec: a transfer-encoding other than exactly `chunked` (gzip, `gzip, chunked`, two of them), or
    // one on CONNECT, is 501 Not Implemented, and the connection closes.
    const te = headers['transfer-encoding'];
    if (te !== undefined && (teRepeated || te.toLowerCase() !== 'chunked' || method === 'CONNECT')) {
      this.#refused = { method, url, headers, minor };
      return this.#fail(new Error(`unsupported transfer encoding: ${te}`), 501);
    }
    if (expectContinue) {
      rawHeaders = [];
      for (let i = 0; i + 1 < raw.length; i += 2) if (raw[i]!.toLowerCase() !== 'expect') rawHeaders.push(raw[i]!, raw[i + 1]!);
    }
    const req = new H1Request(this.socket, minor, method, url, rawHeaders, headers, expectContinue, upgrade);
    const length = headers['content-length'];
    req.hasBody = headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
    const res = new H1Response(this, req);
    // The connection's last request: keep-alive ends now, or, behind pipelined requests, once it is the one answered
    // (the responses before it do not say `connection: close`, and the connection stays open for them).
    if (!keepAlive || --this.#requestsLeft <= 0) {
      if (keepAlive) this.closing?.('max_requests');
      if (this.#queue.length === 0) this.keepAlive = false;
      else req.lastOnConnection = true;
    }
    if (upgrade) {
      // Not HTTP after these headers: no further request can be read (a refused upgrade closes the connection).
      this.#failed = true;
      this.keepAlive = false;
      this.socket.pause();
      req.complete = true;
    } else this.#parsing = req;
    this.#queue.push({ req, res });
    // An upgrade's handler runs once the parser has returned, when the bytes past its head are known (takeOver).
    if (this.#queue.length === 1) upgrade ? queueMicrotask(() => this.#dispatch()) : this.#dispatch();
    else if (this.#queue.length > MAX_QUEUED && !this.#paused) {
      this.#paused = true;
      this.socket.pause();
    }
  }

  readonly #idle: NodeJS.Timeout | undefined;

  /** @internal the idle timer fired: closed while no request is in progress, else checked again later. */
  idleExpired(): void {
    if (this.#queue.length > 0) return void this.#idle?.refresh();
    this.closing?.('idle_timeout');
    this.socket.destroy();
  }

  #dispatch(): void {
    const head = this.#queue[0]!;
    if (head.req.lastOnConnection) this.keepAlive = false;
    if (head.req.upgrade && !isWebSocketUpgrade(head.req)) {
      head.res.writeHead(403, this.#server === undefined ? ['content-type', 'text/plain'] : ['content-type', 'text/plain', 'server', this.#server]);
      head.res.end(UPGRADE_FAILED);
      // Envoy's connection manager answers it (no response flag): logged and counted as any request.
      const req = head.req;
      this.#report?.({ status: 403, flag: '-', method: req.method, path: req.url, authority: req.headers.host ?? '', protocol: `HTTP/${req.httpVersion}`, bytesSent: UPGRADE_FAILED.length, bytesReceived: 0 });
      return;
    }
    if (head.req.expectContinue) this.socket.write('HTTP/1.1 100 Continue\r\n\r\n', 'latin1');
    this.#onRequest(head.req, head.res);
  }

  /** @internal a response ended: the next request, or close. */
  responded(res: H1Response): void {
    const head = this.#queue[0];
    if (!head || head.res !== res) return;
    this.#queue.shift();
    res.close();
    const open = this.keepAlive && !this.#closing;
    if (open && this.#queue.length > 0) {
      if (this.#paused && this.#queue.length <= MAX_QUEUED) {
        this.#paused = false;
        this.socket.resume();
      }
      return this.#dispatch();
    }
    if (open && !this.#failed) return void this.#idle?.refresh();
    // Past a malformed request nothing more can be read: answer it, then close.
    if (open && this.#afterQueue !== undefined) return this.#sendError(this.#afterQueue);
    if (!head.req.received) return this.#closeUnread();
    this.socket.end();
  }

  /**
   * The last response went out before its request's body had arrived: nothing
   * more is parsed, and what the client still sends is read and dropped (a
   * socket paused for the body would otherwise stay paused, and closing with
   * unread bytes would reset the connection under the response) until it
   * closes, or for a second at most (Envoy's delayed_close_timeout default).
   */
  #closeUnread(): void {
    this.#failed = true;
    this.#paused = false;
    this.socket.end();
    this.socket.resume();
    setTimeout(destroySocket, DELAYED_CLOSE_MS, this.socket).unref();
  }

  /** The response being written is the connection's last (it then says `connection: close`). */
  lastResponse(): boolean {
    return !this.keepAlive || this.#closing || (this.#failed && this.#afterQueue === undefined && this.#queue.length <= 1);
  }

  #close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#idle);
    for (const { req, res } of this.#queue.splice(0)) {
      req.close();
      res.close();
    }
    this.#parsing?.close();
    // Never from inside one of the parser's callbacks: freed on the next turn.
    setImmediate(() => this.#parser.close());
    this.#onClose(this);
  }
}

/** The Host of a raw header list (the connection refused the request before it made a header object). */
function hostOf(raw: readonly string[]): string {
  for (let i = 0; i + 1 < raw.length; i += 2) if (raw[i]!.toLowerCase() === 'host') return raw[i + 1]!;
  return '';
}

function idleExpired(c: H1Connection): void {
  c.idleExpired();
}

function destroySocket(socket: net.Socket): void {
  socket.destroy();
}

/** Serves HTTP/1.x on a socket; `first` is data already read from it (protocol sniffing); idle for `idleMs` (0: never) with nothing in flight, it closes. */
/** `drain`: the connection closes after its first response, for that reason (set before `first` is read, which may be answered at once). */
/** `report`: the connection's own answers (400, 431, 501, 403), for the access log and the counters. */
/** `closing`: where it says why it closes (set before `first` is read, which may be refused at once). */
export function serveHttp1(socket: net.Socket, onRequest: OnRequest, onClose: (c: H1Connection) => void, idleMs: number, first?: Buffer, limits: ConnectionLimits = ENVOY_CONNECTION_LIMITS, drain?: 'drain' | 'overload', report?: (r: CodecReply) => void, closing?: (reason: LocalCloseReason) => void): H1Connection {
  const c = new H1Connection(socket, onRequest, onClose, idleMs, limits, report);
  c.closing = closing;
  if (drain) c.drain(drain);
  if (first) c.feed(first);
  return c;
}
