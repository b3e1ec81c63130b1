// WebSocket upgrades (the connection manager's upgrade_configs: websocket),
// carried as Envoy carries an upgraded HTTP/1.1 stream. The request is routed
// and filtered like any other and goes to a host of the routed cluster on a
// connection of its own (never pooled: it will not carry HTTP again). When
// the host answers 101 Switching Protocols, the two connections are joined
// byte for byte until either side closes or the stream idles out; any other
// answer is an ordinary response, and both connections close after it.

import net from 'node:net';
import type { Duplex, Readable, Transform, Writable } from 'node:stream';
import { lowerPairs } from './headers.ts';
import { HTTPParser, MAX_RESPONSE_HEADER_BYTES, headerError } from './llhttp.ts';
import { classify, connectFailure, connectTls, countConnection, type HeaderPairs, type PoolOptions, type ResetReason } from './upstream.ts';

export type UpgradeOutcome =
  /**
   * 101 (or an extended CONNECT's 200): `socket` carries the upgraded protocol both ways (a connection, or an HTTP/2
   * stream); `head` is what the host sent past its response head (the upgraded protocol's first bytes).
   */
  | { kind: 'switched'; socket: Duplex; headers: HeaderPairs; head: Buffer }
  /** The host refused the upgrade with an ordinary response (read whole, up to the buffer limit). */
  | { kind: 'response'; status: number; headers: HeaderPairs; body: Buffer }
  | { kind: 'failure'; reason: ResetReason; message: string };

export interface UpgradeRequest {
  method: string;
  path: string;
  authority: string;
  /** Without pseudo-headers; the Connection and Upgrade headers are the caller's to include. */
  headers: HeaderPairs;
}

/** An upgrade attempt on its own connection: `outcome` settles once the host answered (or failed); abort() drops it. */
export interface UpgradeAttempt {
  outcome: Promise<UpgradeOutcome>;
  abort(): void;
}


/** Opens a connection to the host (TLS as the cluster says), sends the upgrade request and reads the answer. */
export function openUpgrade(o: PoolOptions, req: UpgradeRequest, bodyLimit: number): UpgradeAttempt {
  let settle!: (r: UpgradeOutcome) => void;
  const outcome = new Promise<UpgradeOutcome>((r) => (settle = r));
  let text = `${req.method} ${req.path} HTTP/1.1\r\n`;
  let host = false;
  for (const [k, v] of req.headers) {
    const error = headerError(k, v);
    if (error) {
      settle({ kind: 'failure', reason: 'reset', message: error });
      return { outcome, abort: () => undefined };
    }
    if (k === 'host') host = true;
    text += `${k}: ${v}\r\n`;
  }
  if (!host) text += `host: ${req.authority}\r\n`;
  text += '\r\n';

  const socket = o.tls ? connectTls(o, 'http/1.1') : net.connect({ host: o.address, port: o.port, noDelay: true });
  // The connection is its one request's, from the upgrade request to the tunnel's end.
  const counted = countConnection(o, socket, 'http1', o.tls ? 'secureConnect' : 'connect', { socket, busy: () => true });
  let done = false;
  let connected = false;
  const finish = (r: UpgradeOutcome, keep = false): void => {
    if (done) return;
    done = true;
    clearTimeout(connectTimer);
    socket.removeAllListeners('data');
    socket.removeAllListeners('end');
    if (!keep) socket.destroy();
    // Never from inside one of the parser's own callbacks (finish may run in one): freed on the next turn.
    setImmediate(() => parser.close());
    settle(r);
  };
  const connectTimer = setTimeout(() => {
    counted.timedOut();
    finish({ kind: 'failure', reason: 'connection_failure', message: 'connection failure (connect timeout)' });
  }, o.connectTimeoutMs);
  socket.once(o.tls ? 'secureConnect' : 'connect', () => {
    clearTimeout(connectTimer);
    connected = true;
    if (o.tls) socket.setNoDelay(true);
    socket.write(text, 'latin1');
  });

  const parser = new HTTPParser();
  parser.initialize(HTTPParser.RESPONSE, {}, MAX_RESPONSE_HEADER_BYTES, 0);
  let raw: string[] = [];
  let status = 0;
  let headers: HeaderPairs = [];
  let switched = false;
  const body: Buffer[] = [];
  let bodyBytes = 0;
  parser[HTTPParser.kOnHeaders] = (more: string[]) => {
    raw = raw.concat(more);
  };
  parser[HTTPParser.kOnHeadersComplete] = (_major: number, _minor: number, all: string[] | undefined, _m: unknown, _u: unknown, code: number, _sm: unknown, upgrade: boolean): number => {
    const list = all ?? raw;
    raw = [];
    // 1xx other than 101: informational, the real answer follows.
    if (code < 200 && code !== 101) return 0;
    status = code;
    headers = lowerPairs(list);
    switched = code === 101 && upgrade;
    return 0;
  };
  parser[HTTPParser.kOnBody] = (chunk: Buffer) => {
    bodyBytes += chunk.length;
    if (bodyBytes > bodyLimit) return finish({ kind: 'failure', reason: 'reset', message: 'upgrade refusal body over the buffer limit' });
    body.push(Buffer.from(chunk));
  };
  parser[HTTPParser.kOnMessageComplete] = () => {
    if (status === 0 || switched) return;
    if (status === 101) return finish({ kind: 'failure', reason: 'reset', message: 'upstream answered 101 without an Upgrade header' });
    finish({ kind: 'response', status, headers, body: Buffer.concat(body) });
  };
  socket.on('data', (d: Buffer) => {
    const r = parser.execute(d);
    if (switched) {
      socket.pause();
      const head = typeof r === 'number' && r < d.length ? d.subarray(r) : Buffer.alloc(0);
      finish({ kind: 'switched', socket, headers, head }, true);
      return;
    }
    if (r instanceof Error) {
      o.cx?.protocolError?.();
      finish({ kind: 'failure', reason: 'protocol_error', message: `upstream protocol error (${(r as Error & { code?: string }).code ?? r.message})` });
    }
  });
  socket.on('end', () => {
    // A refusal delimited by the close ends here; anything else was cut short.
    parser.finish();
    finish({ kind: 'failure', reason: 'connection_termination', message: 'connection termination (upstream closed)' });
  });
  socket.on('error', (err) => {
    const f = connected ? classify(err) : connectFailure(err);
    finish({ kind: 'failure', reason: f.reason, message: f.message });
  });
  socket.on('close', () => finish({ kind: 'failure', reason: connected ? 'connection_termination' : 'connection_failure', message: 'connection closed' }));
  return { outcome, abort: () => finish({ kind: 'failure', reason: 'reset', message: 'aborted' }) };
}

/**
 * Joins the downstream and upstream connections of a switched upgrade:
 * bytes flow both ways with backpressure, each side's half-close is passed
 * on, and either side's error or close ends both. With `through`, each
 * direction's bytes pass a Transform first (the wasm filters' body phases,
 * as Envoy runs an upgraded stream's data through its filter chain).
 * `onBytes` counts what moved (access log, idle timer); `onClose` once both
 * are done.
 */
export function join(
  downstream: Duplex,
  downHead: Buffer,
  upstream: Duplex,
  upHead: Buffer,
  onBytes: (fromClient: number, toClient: number) => void,
  onClose: (cleanly: boolean) => void,
  through?: { up: Transform; down: Transform },
): () => void {
  let closed = false;
  let ends = 0;
  const close = (cleanly: boolean): void => {
    if (closed) return;
    closed = true;
    downstream.destroy();
    upstream.destroy();
    through?.up.destroy();
    through?.down.destroy();
    onClose(cleanly);
  };
  /** Bytes from `src` into `to`, pausing `src` while `to` is full. */
  const flow = (src: Readable, to: Writable, onChunk?: (n: number) => void): void => {
    src.on('data', (d: Buffer) => {
      onChunk?.(d.length);
      if (!to.write(d)) {
        src.pause();
        to.once('drain', () => src.resume());
      }
    });
  };
  const pipe = (from: Duplex, to: Duplex, head: Buffer, up: boolean, filter: Transform | undefined): void => {
    const count = (n: number) => (up ? onBytes(n, 0) : onBytes(0, n));
    const into: Writable = filter ?? to;
    if (head.length > 0) {
      count(head.length);
      into.write(head);
    }
    flow(from, into, count);
    if (filter) {
      flow(filter, to);
      from.on('end', () => filter.end());
      filter.on('error', () => close(false));
    }
    (filter ?? from).on('end', () => {
      to.end();
      // Both halves closed: the session is over.
      if (++ends === 2) close(true);
    });
    from.on('error', () => close(false));
    from.on('close', () => {
      if (ends >= 2) return;
      // A side that closed after its end of stream: the filters still see that end (and hand on what they held) first.
      if (filter && from.readableEnded && !filter.readableEnded) filter.once('end', () => close(false));
      else close(false);
    });
    from.resume();
  };
  pipe(downstream, upstream, downHead, true, through?.up);
  pipe(upstream, downstream, upHead, false, through?.down);
  return () => close(false);
}
