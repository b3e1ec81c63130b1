// Connections to one upstream host: a keep-alive undici Pool for HTTP/1.1,
// or one multiplexed HTTP/2 (prior knowledge) session for http2/gRPC clusters.
// Failures come back as UpstreamFailure with Envoy's reset reasons.

import http2 from 'node:http2';
import net from 'node:net';
import tls from 'node:tls';
import { uriSans } from './peer-identity.ts';
import { Readable } from 'node:stream';
import { Pool } from 'undici';

export type HeaderPairs = [string, string][];

export type ResetReason = 'connection_failure' | 'connection_termination' | 'timeout' | 'overflow' | 'reset';

export class UpstreamFailure extends Error {
  readonly reason: ResetReason;
  constructor(reason: ResetReason, message: string) {
    super(message);
    this.reason = reason;
  }
}

export interface UpstreamRequest {
  method: string;
  /** Path and query. */
  path: string;
  authority: string;
  headers: HeaderPairs;
  body: Buffer | Readable | null;
  signal: AbortSignal;
}

export interface UpstreamResponse {
  status: number;
  headers: HeaderPairs;
  body: Readable;
  /** HTTP/2 only: resolves with trailers (gRPC status) once the body ends. */
  trailers?: Promise<HeaderPairs>;
}

export interface UpstreamPool {
  send(req: UpstreamRequest): Promise<UpstreamResponse>;
  close(): Promise<void>;
}

/**
 * Mutual TLS to the host, asked per new connection so a rotated certificate
 * is used from the next connection on; undefined while the SDS secrets have
 * not arrived (the connection fails, as an Envoy cluster would stay warming).
 */
export type UpstreamTls = () => { secureContext: tls.SecureContext; uriSans: string[] } | undefined;

export interface PoolOptions {
  address: string;
  port: number;
  connections: number;
  connectTimeoutMs: number;
  idleTimeoutMs: number;
  tls?: UpstreamTls;
}

function origin(o: PoolOptions): string {
  return `${o.tls ? 'https' : 'http'}://${o.address.includes(':') ? `[${o.address}]` : o.address}:${o.port}`;
}

/**
 * A TLS connection presenting the workload certificate, verifying the
 * server's chain against the trust bundle and its URI SAN against the
 * destination's SPIFFE ID (SNI is not used: identities are URIs).
 */
function connectTls(o: PoolOptions, alpn: string): tls.TLSSocket {
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
    ALPNProtocols: [alpn],
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

function classify(err: unknown, signal: AbortSignal): UpstreamFailure {
  if (signal.aborted) return new UpstreamFailure('timeout', 'upstream request timeout');
  const e = err as { code?: string; message?: string; cause?: { code?: string } };
  const code = e.code ?? e.cause?.code ?? '';
  if (['ECONNREFUSED', 'UND_ERR_CONNECT_TIMEOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN'].includes(code)) {
    return new UpstreamFailure('connection_failure', `connection failure (${code})`);
  }
  return new UpstreamFailure('connection_termination', `connection termination (${code || e.message})`);
}

export class Http1Pool implements UpstreamPool {
  readonly #pool: Pool;

  constructor(o: PoolOptions) {
    this.#pool = new Pool(origin(o), {
      connections: o.connections,
      pipelining: 1,
      keepAliveTimeout: Math.min(o.idleTimeoutMs, 60_000),
      keepAliveMaxTimeout: o.idleTimeoutMs,
      connect: o.tls
        ? (_opts, callback) => {
          const socket = connectTls(o, 'http/1.1');
          const timer = setTimeout(() => socket.destroy(Object.assign(new Error('connect timeout'), { code: 'UND_ERR_CONNECT_TIMEOUT' })), o.connectTimeoutMs);
          socket.once('secureConnect', () => {
            clearTimeout(timer);
            callback(null, socket);
          });
          socket.once('error', (err) => {
            clearTimeout(timer);
            callback(err, null);
          });
        }
        : { timeout: o.connectTimeoutMs },
      // The sidecar enforces its own route and per-try timeouts.
      headersTimeout: 0,
      bodyTimeout: 0,
    });
  }

  async send(req: UpstreamRequest): Promise<UpstreamResponse> {
    const headers: string[] = [];
    for (const [k, v] of req.headers) if (!k.startsWith(':')) headers.push(k, v);
    if (!req.headers.some(([k]) => k === 'host')) headers.push('host', req.authority);
    try {
      const res = await this.#pool.request({
        method: req.method as 'GET',
        path: req.path,
        headers,
        body: req.body ?? undefined,
        signal: req.signal,
      });
      return { status: res.statusCode, headers: pairsFromObject(res.headers), body: res.body };
    } catch (err) {
      throw classify(err, req.signal);
    }
  }

  async close(): Promise<void> {
    await this.#pool.destroy().catch(() => undefined);
  }
}

export class Http2Pool implements UpstreamPool {
  readonly #o: PoolOptions;
  #session: http2.ClientHttp2Session | undefined;

  constructor(o: PoolOptions) {
    this.#o = o;
  }

  #connect(): Promise<http2.ClientHttp2Session> {
    const s = this.#session;
    if (s && !s.closed && !s.destroyed) return Promise.resolve(s);
    return new Promise((resolve, reject) => {
      const session = this.#o.tls ? http2.connect(origin(this.#o), { createConnection: () => connectTls(this.#o, 'h2') }) : http2.connect(origin(this.#o));
      const timer = setTimeout(() => {
        session.destroy();
        reject(new UpstreamFailure('connection_failure', 'connection failure (connect timeout)'));
      }, this.#o.connectTimeoutMs);
      session.once('connect', () => {
        clearTimeout(timer);
        this.#session = session;
        session.setTimeout(this.#o.idleTimeoutMs, () => session.close());
        resolve(session);
      });
      session.once('error', (err) => {
        clearTimeout(timer);
        if (this.#session === session) this.#session = undefined;
        reject(classify(err, new AbortController().signal));
      });
      session.on('close', () => {
        if (this.#session === session) this.#session = undefined;
      });
    });
  }

  async send(req: UpstreamRequest): Promise<UpstreamResponse> {
    const session = await this.#connect();
    const headers: http2.OutgoingHttpHeaders = { ':method': req.method, ':path': req.path, ':authority': req.authority, ':scheme': 'http' };
    for (const [k, v] of req.headers) {
      if (k === 'host' || k.startsWith(':')) continue;
      const prev = headers[k];
      headers[k] = prev === undefined ? v : ([] as string[]).concat(prev as string | string[], v);
    }
    return new Promise((resolve, reject) => {
      const stream = session.request(headers, { endStream: req.body === null || (Buffer.isBuffer(req.body) && req.body.length === 0) });
      const onAbort = () => stream.close(http2.constants.NGHTTP2_CANCEL);
      req.signal.addEventListener('abort', onAbort, { once: true });
      let trailersResolve: (t: HeaderPairs) => void = () => undefined;
      const trailers = new Promise<HeaderPairs>((r) => (trailersResolve = r));
      stream.on('trailers', (t) => trailersResolve(pairsFromObject(t as Record<string, string>)));
      stream.on('end', () => trailersResolve([]));
      stream.once('response', (h) => {
        const status = Number(h[':status']);
        const pairs = pairsFromObject(h as Record<string, string>).filter(([k]) => !k.startsWith(':'));
        resolve({ status, headers: pairs, body: stream, trailers });
      });
      stream.once('error', (err) => {
        req.signal.removeEventListener('abort', onAbort);
        trailersResolve([]);
        reject(classify(err, req.signal));
      });
      stream.once('close', () => {
        req.signal.removeEventListener('abort', onAbort);
        if (stream.rstCode && stream.rstCode !== http2.constants.NGHTTP2_NO_ERROR) reject(req.signal.aborted ? new UpstreamFailure('timeout', 'upstream request timeout') : new UpstreamFailure('reset', `stream reset (code ${stream.rstCode})`));
      });
      if (Buffer.isBuffer(req.body)) {
        if (req.body.length > 0) stream.end(req.body);
      } else if (req.body) {
        req.body.pipe(stream);
      }
    });
  }

  async close(): Promise<void> {
    this.#session?.close();
  }
}

export function createPool(o: PoolOptions, http2Upstream: boolean): UpstreamPool {
  return http2Upstream ? new Http2Pool(o) : new Http1Pool(o);
}

export { Readable };
