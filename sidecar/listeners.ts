// Listeners from LDS: one TCP server per listener. Each connection is sniffed
// for the HTTP/2 connection preface, so one port serves HTTP/1.1 and h2c
// (gRPC) as Envoy's codec_type AUTO does. The connection manager config is
// read per request, so a filter or route change applies to the next request
// without rebinding; only an address change rebinds. The admin's
// /drain_listeners stops listeners, or first drains them for a while:
// HTTP/1 responses say `connection: close`, HTTP/2 connections get GOAWAY.

import http2 from 'node:http2';
import net from 'node:net';
import tls from 'node:tls';
import { Duplex } from 'node:stream';
import type { HttpConnectionManagerConfig, ListenerConfig } from './config.ts';
import type { H1Connection, H1Request, H1Response } from './http1.ts';
import { serveHttp1, type CodecReply } from './http1.ts';
import type { ProxyEnv } from './proxy.ts';
import { codecReply, handleRequest } from './proxy.ts';
import type { TlsMaterial } from './tls-contexts.ts';
import { DownstreamCx, type LocalCloseReason } from './downstream-cx.ts';
import { tlsFailure, type TlsOutcome } from './upstream.ts';
import { tcpProxy } from './tcp-proxy.ts';

/** How long the PERMISSIVE listener's TLS detection waits for the first bytes: Envoy's listener_filters_timeout default. */
export const LISTENER_FILTERS_TIMEOUT_MS = 15_000;

/**
 * Closes `socket` if it sends nothing for `ms` (the caller clears the timer with setTimeout(0) once data comes),
 * having told `closing`, or hands it to `orElse` instead.
 */
function closeIfSilent(socket: net.Socket, ms: number, orElse?: () => void, closing?: () => void): void {
  socket.setTimeout(ms);
  socket.once('timeout', () => {
    if (socket.bytesRead > 0) return;
    if (!orElse) {
      closing?.();
      return void socket.destroy();
    }
    socket.setTimeout(0);
    orElse();
  });
}

const H2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');

/**
 * An h2 connection's open streams, counted on its DownstreamCx (a stream the
 * session's teardown ends was in progress when the connection closed); with
 * no stream open for the connection manager's idle timeout it is closed
 * (GOAWAY), as Envoy does, and a long quiet stream keeps it.
 */
function trackStreams(session: http2.ServerHttp2Session, idleMs: number, cx: DownstreamCx): void {
  let timer: NodeJS.Timeout | undefined;
  const arm = () => {
    if (idleMs <= 0) return;
    timer = setTimeout(idleClose, idleMs, session, cx);
    timer.unref();
  };
  arm();
  session.on('stream', (stream) => {
    cx.streams++;
    clearTimeout(timer);
    stream.once('close', () => {
      if (session.destroyed) return;
      if (--cx.streams === 0 && !session.closed) arm();
    });
  });
  session.once('close', () => clearTimeout(timer));
}

function idleClose(session: http2.ServerHttp2Session, cx: DownstreamCx): void {
  cx.closing('idle_timeout');
  session.close();
}

/**
 * Why connections are asked to close after their next response while the
 * listeners keep accepting: admin /healthcheck/fail (until /healthcheck/ok),
 * or the overload manager's disable_http_keepalive.
 */
export type Discourager = 'healthcheck' | 'overload';

class RunningListener {
  config: ListenerConfig;
  readonly server: net.Server;
  /** HTTP/1.x connections (sidecar/http1.ts): closed when idle on drain. */
  readonly #h1 = new Set<H1Connection>();
  /** The h2 server for new connections, made for the connection manager's current head limits (h2For). */
  #h2: { server: http2.Http2Server; key: string } | undefined;
  readonly #onRequest: (req: H1Request | http2.Http2ServerRequest, res: H1Response | http2.Http2ServerResponse) => void;
  /** Open connections (DownstreamCx), and each by the socket or stream it came as (raw, or sniffed for TLS), which a TLS socket names as its parent. */
  readonly #connections = new Set<DownstreamCx>();
  readonly #cxOf = new WeakMap<object, DownstreamCx>();
  /** The connection handed to the h2 server now: its 'session' event comes while it is handed over. */
  #handingToH2: DownstreamCx | undefined;
  /** HTTP/2 connections: sent GOAWAY on drain. */
  readonly #sessions = new Set<http2.ServerHttp2Session>();
  readonly #sessionCx = new WeakMap<http2.ServerHttp2Session, DownstreamCx>();
  /** In a graceful drain: every connection is asked to close after its next response. */
  draining = false;
  /** While any reason holds, as in a drain, every connection is asked to close after its next response (see Discourager). */
  readonly #discouragedBy = new Set<Discourager>();
  readonly #tls: tls.Server;
  #tlsMaterial: TlsMaterial | undefined;

  constructor(config: ListenerConfig, env: ProxyEnv) {
    this.config = config;
    const onRequest = (req: H1Request | http2.Http2ServerRequest, res: H1Response | http2.Http2ServerResponse) => {
      const chain = this.config.chain;
      if (chain.kind !== 'http') {
        res.statusCode = 500;
        res.end();
        return;
      }
      void handleRequest(env, this.config.name, chain, req, res);
    };
    // The HTTP/1 codec's own answers (400, 431, 501, 403): logged and counted under the connection manager, as Envoy does.
    const reportCodecReply = (r: CodecReply) => {
      const chain = this.config.chain;
      if (chain.kind === 'http') codecReply(env, this.config.name, chain, r);
    };
    const idleMs = () => (this.config.chain.kind === 'http' ? this.config.chain.idleTimeoutMs : 0);
    const h1 = (socket: net.Socket, first?: Buffer) => {
      const chain = this.config.chain;
      const limits =
        chain.kind === 'http'
          ? {
              maxHeaderBytes: chain.maxRequestHeadersBytes,
              maxHeadersCount: chain.maxHeadersCount,
              maxRequestsPerConnection: chain.maxRequestsPerConnection,
              server: chain.server.transformation === 'PASS_THROUGH' ? undefined : chain.server.name,
            }
          : undefined;
      const cx = this.#cx(socket);
      const conn = serveHttp1(socket, onRequest, (c) => this.#h1.delete(c), idleMs(), first, limits, this.#discourageReason, reportCodecReply, cx && ((r) => cx.closing(r)));
      if (cx) cx.h1 = conn;
      this.#h1.add(conn);
    };
    this.#onRequest = onRequest;
    /** http.<stat_prefix>.downstream_cx_http1_total / _http2_total and their _active gauges, once the protocol is known. */
    const countProtocol = (socket: net.Socket, http2: boolean): void => {
      if (this.config.chain.kind !== 'http') return;
      const hs = env.stats.hcm(this.config.chain.statPrefix);
      const total = http2 ? hs.cxHttp2Total : hs.cxHttp1Total;
      const active = http2 ? hs.cxHttp2Active : hs.cxHttp1Active;
      total.value++;
      active.value++;
      socket.once('close', () => active.value--);
    };
    const serve = (socket: net.Socket) => {
      const chain = this.config.chain;
      if (chain.kind === 'tcp') return tcpProxy(env, chain, socket);
      // Over mutual TLS, ALPN already says which protocol the peer speaks.
      const alpn = (socket as tls.TLSSocket).alpnProtocol;
      if (alpn !== undefined) this.#cx(socket)?.secured(socket);
      if (alpn === 'h2') {
        countProtocol(socket, true);
        return this.#toH2(socket);
      }
      if (alpn === 'http/1.1') {
        countProtocol(socket, false);
        return h1(socket);
      }
      // Nothing has come yet: a connection that stays silent is closed after the connection manager's idle
      // timeout, as Envoy's codec would close it (1 h unless set; 0: never).
      const silent = idleMs();
      if (silent > 0 && !socket.readableLength) closeIfSilent(socket, silent, undefined, () => this.#cx(socket)?.closing('idle_timeout'));
      socket.once('data', (first: Buffer) => {
        socket.setTimeout(0);
        socket.pause();
        const n = Math.min(first.length, H2_PREFACE.length);
        const h2 = first.length >= 3 && first.subarray(0, n).equals(H2_PREFACE.subarray(0, n));
        countProtocol(socket, h2);
        if (h2) {
          // nghttp2 reads from the native handle, so unshifted bytes would be lost: hand it a stream that replays them.
          this.#toH2(replaying(socket, first), socket);
        } else {
          h1(socket, first);
          socket.resume();
        }
      });
    };
    // Mutual TLS: a tls.Server used only for its handshake and the client
    // certificate check (requestCert + rejectUnauthorized against the SDS
    // trust bundle); the decrypted socket then goes where a plaintext one would.
    // listener.<address>.ssl.*: each handshake's outcome. A client certificate the trust bundle does not verify is
    // refused by node after the handshake, without an error of its own: its tlsClientError (a hang-up) comes with the
    // socket's authorizationError set.
    const tlsOutcome = (o: TlsOutcome) => env.stats.tlsListener[o].inc({ envoy_listener_address: listenerStatAddress(this.config) });
    this.#tls = new tls.Server({ requestCert: true, rejectUnauthorized: true, ALPNProtocols: ['h2', 'http/1.1'], minVersion: 'TLSv1.2' }, (s) => {
      tlsOutcome('handshake');
      serve(s);
    });
    this.#tls.on('tlsClientError', (err: Error & { code?: string }, s) => {
      const failure = s.authorizationError ? (tlsFailure(String(s.authorizationError)) ?? 'fail_verify_error') : tlsFailure(err.code);
      if (failure) tlsOutcome(failure);
      s.destroy();
    });
    const secure = (socket: net.Socket | Duplex) => {
      const material = env.tls?.material(this.config.tls!);
      // No certificate from SDS yet (its initial_fetch_timeout passed and the listener went on): closed
      // and counted, as Envoy's ServerSslSocketFactory hands such a connection a NotReadySslSocket.
      if (!material) {
        env.stats.downstreamSecretsNotReady.inc({ envoy_listener_address: listenerStatAddress(this.config) });
        return void socket.destroy();
      }
      if (material !== this.#tlsMaterial) {
        // New connections get the rotated certificate; open ones keep theirs.
        this.#tls.setSecureContext(material);
        this.#tlsMaterial = material;
      }
      this.#tls.emit('connection', socket);
    };
    this.server = net.createServer({ noDelay: true }, (socket) => {
      // The overload manager's global_downstream_max_connections: over the limit, closed at accept.
      if (env.overload && !env.overload.admitConnection()) {
        env.stats.downstreamGlobalCxOverflow.inc({ envoy_listener_address: listenerStatAddress(this.config) });
        return void socket.destroy();
      }
      if (env.overload) socket.once('close', () => env.overload!.releaseConnection());
      const tlsConfig = this.config.tls;
      if (!tlsConfig) return serve(this.#open(socket, env));
      if (!tlsConfig.permissive) return secure(this.#open(socket, env));
      // PERMISSIVE (tls_inspector): a TLS record starts with the handshake byte 0x16. The inspector waits for
      // it at most listener_filters_timeout (Envoy's 15 s default, 0: no limit), then closes the connection
      // (downstream_pre_cx_timeout), or with continue_on_listener_filters_timeout hands it on as plaintext. As in
      // Envoy, the connection is the listener's (downstream_cx_total) once the listener filter let it through.
      const ls = env.stats.listener(listenerStatAddress(this.config));
      ls.preCxActive.value++;
      let waiting = true;
      const through = () => {
        if (!waiting) return false;
        waiting = false;
        ls.preCxActive.value--;
        return true;
      };
      socket.once('close', through);
      const waitMs = tlsConfig.filtersTimeoutMs ?? LISTENER_FILTERS_TIMEOUT_MS;
      if (waitMs > 0) {
        const onTimeout = tlsConfig.continueOnTimeout ? () => (socket.removeAllListeners('data'), through(), serve(this.#open(socket, env))) : undefined;
        closeIfSilent(socket, waitMs, onTimeout, () => void ls.preCxTimeout.value++);
      }
      socket.once('data', (first: Buffer) => {
        socket.setTimeout(0);
        socket.pause();
        through();
        this.#open(socket, env);
        if (first[0] === 0x16) {
          const replay = replaying(socket, first);
          this.#cxOf.set(replay, this.#cxOf.get(socket)!);
          secure(replay);
        } else {
          socket.unshift(first);
          serve(socket);
          socket.resume();
        }
      });
    });
    this.#stopRefresh = env.stats.onRefresh(() => {
      for (const c of this.#connections) c.countBytes();
    });
  }

  /** Stops counting the listener's open connections' bytes at each stats read (once it is closed). */
  readonly #stopRefresh: () => void;

  /** The listener's connection from here on (past its listener filters): counted, and its close counted. */
  #open(socket: net.Socket, env: ProxyEnv): net.Socket {
    // http.<stat_prefix>.downstream_cx_total / _active, counted where the connection was accepted.
    const hs = this.config.chain.kind === 'http' ? env.stats.hcm(this.config.chain.statPrefix) : undefined;
    if (hs) {
      hs.cxTotal.value++;
      hs.cxActive.value++;
    }
    const chain = this.config.chain;
    const cx = new DownstreamCx(socket, env.stats.listener(listenerStatAddress(this.config)), hs, chain.kind === 'tcp' ? env.stats.tcp(chain.statPrefix) : undefined);
    this.#connections.add(cx);
    this.#cxOf.set(socket, cx);
    // Before any codec's own: the connection's counts are read while its requests are still in progress.
    socket.on('close', () => {
      this.#connections.delete(cx);
      if (hs) hs.cxActive.value--;
      cx.closed();
    });
    return socket;
  }

  /** The connection a socket belongs to: the raw socket's, or for a TLS socket its parent's (the raw socket or the replaying stream). */
  #cx(socket: object): DownstreamCx | undefined {
    return this.#cxOf.get(socket) ?? this.#cxOf.get((socket as { _parent?: object })._parent ?? socket);
  }

  /** Hands a connection to the h2 server (its session is made while this runs). `raw`: the socket behind a replaying stream. */
  #toH2(socket: net.Socket | Duplex, raw?: net.Socket): void {
    const cx = this.#cx(raw ?? socket);
    this.#handingToH2 = cx;
    try {
      this.#h2For().emit('connection', socket);
    } finally {
      this.#handingToH2 = undefined;
    }
  }

  /** Why connections are told to close now: a drain (also /healthcheck/fail) before the overload manager. */
  get #discourageReason(): 'drain' | 'overload' | undefined {
    if (this.draining || this.#discouragedBy.has('healthcheck')) return 'drain';
    return this.#discouragedBy.has('overload') ? 'overload' : undefined;
  }

  /**
   * The h2 server for new connections, with node's header limits above the
   * connection manager's (handleRequest resets a stream past those, as Envoy
   * does). The limits are fixed per h2 server, so a new one is made when an
   * update changes them; open connections keep theirs.
   */
  #h2For(): http2.Http2Server {
    const chain = this.config.chain;
    const maxBytes = chain.kind === 'http' ? chain.maxRequestHeadersBytes : 60 * 1024;
    const maxCount = chain.kind === 'http' ? chain.maxHeadersCount : 100;
    const h2 = chain.kind === 'http' ? chain.http2 : undefined;
    const key = `${maxBytes}/${maxCount}/${h2?.allowConnect === true}/${h2?.maxConcurrentStreams ?? ''}`;
    if (this.#h2?.key === key) return this.#h2.server;
    // node's own limits are kept above the connection manager's (its size counts 32 bytes per header on top of
    // name and value); handleRequest applies the exact ones. A limit raised past node's 64 KiB default is
    // advertised in SETTINGS and holds once the client has acknowledged them.
    const settings: http2.Settings = { maxHeaderListSize: Math.max(65_535, maxBytes + 32 * (maxCount + 8)) };
    // http2_protocol_options: allow_connect lets a client open a WebSocket as an extended CONNECT stream (RFC 8441;
    // without it nghttp2 refuses a :protocol, as Envoy's codec does); max_concurrent_streams is advertised.
    if (h2?.allowConnect) settings.enableConnectProtocol = true;
    if (h2?.maxConcurrentStreams !== undefined) settings.maxConcurrentStreams = h2.maxConcurrentStreams;
    const server = http2.createServer({ settings, maxHeaderListPairs: Math.max(128, maxCount + 8) }, this.#onRequest);
    // node's compatibility layer hands CONNECT streams (extended or not) to 'connect'; handleRequest answers them.
    server.on('connect', this.#onRequest);
    server.on('session', (session: http2.ServerHttp2Session) => {
      const cx = this.#handingToH2;
      this.#handingToH2 = undefined;
      this.#sessions.add(session);
      session.once('close', () => this.#sessions.delete(session));
      // Accepted while draining: GOAWAY once its first stream is in, which then completes.
      const reason = this.#discourageReason;
      if (reason) {
        session.once('stream', () => {
          cx?.closing(reason);
          session.close();
        });
      }
      const now = this.config.chain;
      if (cx) {
        this.#sessionCx.set(session, cx);
        trackStreams(session, now.kind === 'http' ? now.idleTimeoutMs : 0, cx);
        // The client's GOAWAY: it closes the connection (unless the sidecar had sent its own first).
        session.on('goaway', () => cx.peerGoaway(session.closed));
      }
      const max = now.kind === 'http' ? now.maxRequestsPerConnection : 0;
      // max_requests_per_connection: GOAWAY once the last stream it may carry has arrived; open streams finish.
      if (max > 0) {
        let streams = 0;
        session.on('stream', () => {
          if (++streams !== max) return;
          cx?.closing('max_requests');
          session.close();
        });
      }
    });
    this.#h2 = { server, key };
    return server;
  }

  listen(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.config.address.port, this.config.address.address, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
  }

  get port(): number {
    const a = this.server.address();
    return typeof a === 'object' && a ? a.port : 0;
  }

  /**
   * A graceful drain: still accepting, but each HTTP/1 connection closes
   * after its next response (which says `connection: close`), and each
   * HTTP/2 connection gets GOAWAY (its open streams complete).
   */
  drainGracefully(): void {
    if (this.draining) return;
    this.draining = true;
    this.#discourage('drain');
  }

  /**
   * Envoy's drain_close() while a reason holds (listeners of drain_type
   * DEFAULT, the only one the sidecar takes): connections are discouraged as
   * in a graceful drain, but the listener keeps accepting and goes back to
   * keep-alive once no reason is left.
   */
  setDiscouraged(reason: Discourager, on: boolean): void {
    if (on === this.#discouragedBy.has(reason)) return;
    if (!on) return void this.#discouragedBy.delete(reason);
    this.#discouragedBy.add(reason);
    this.#discourage(reason === 'overload' ? 'overload' : 'drain');
  }

  /** Each HTTP/1 connection closes after its next response (which says `connection: close`); each HTTP/2 one gets GOAWAY. */
  #discourage(reason: 'drain' | 'overload'): void {
    for (const c of this.#h1) c.drain(reason);
    for (const s of this.#sessions) this.#goaway(s, reason);
  }

  /** GOAWAY on an HTTP/2 connection the sidecar closes for `reason` (its open streams complete). */
  #goaway(session: http2.ServerHttp2Session, reason: LocalCloseReason): void {
    if (session.closed) return;
    this.#sessionCx.get(session)?.closing(reason);
    session.close();
  }

  /** Stops accepting; idle keep-alive connections close now, busy ones after their response, HTTP/2 ones get GOAWAY (drain). */
  async close(): Promise<void> {
    this.#stopRefresh();
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      for (const c of this.#h1) c.closeWhenIdle();
      for (const s of this.#sessions) this.#goaway(s, 'drain');
      setTimeout(() => {
        for (const c of this.#connections) c.raw.destroy();
      }, 5000).unref();
      if (this.#connections.size === 0) resolve();
    });
  }
}

function replaying(socket: net.Socket, first: Buffer): Duplex {
  const duplex = new Duplex({
    read() {
      socket.resume();
    },
    write(chunk: Buffer, _enc, cb) {
      socket.write(chunk, cb);
    },
    final(cb) {
      socket.end();
      cb();
    },
    destroy(err, cb) {
      socket.destroy(err ?? undefined);
      cb(err);
    },
  });
  Object.defineProperties(duplex, {
    remoteAddress: { get: () => socket.remoteAddress },
    remotePort: { get: () => socket.remotePort },
  });
  duplex.push(first);
  socket.on('data', (c: Buffer) => {
    if (!duplex.push(c)) socket.pause();
  });
  socket.on('end', () => duplex.push(null));
  socket.on('error', (e) => duplex.destroy(e));
  socket.on('close', () => duplex.destroy());
  return duplex;
}

/** Which listeners a drain applies to: all, or those whose traffic_direction is INBOUND (?inboundonly). */
export type DrainScope = 'all' | 'inbound';

function inScope(config: ListenerConfig, scope: DrainScope | undefined): boolean {
  return scope === 'all' || (scope === 'inbound' && config.direction === 'INBOUND');
}

function widest(a: DrainScope | undefined, b: DrainScope): DrainScope {
  return a === 'all' || b === 'all' ? 'all' : 'inbound';
}

export class ListenerManager {
  readonly #running = new Map<string, RunningListener>();
  /** The listeners of the last LDS update applied: whose stats a later update may leave behind. */
  #applied: ReadonlyMap<string, ListenerConfig> = new Map();
  readonly #env: ProxyEnv;
  /** Listeners stopped by /drain_listeners: those in this scope are not bound again, even by a later LDS update (as Envoy's stopped listeners). */
  #stopped: DrainScope | undefined;
  /** A graceful drain in progress, and its end (the listeners in scope are then stopped). */
  #draining: DrainScope | undefined;
  #drainTimer: NodeJS.Timeout | undefined;
  /** The reasons every listener discourages its connections for, now. */
  readonly #discouragedBy = new Set<Discourager>();

  constructor(env: ProxyEnv) {
    this.#env = env;
  }

  /** Brings the set of listeners to `configs`; returns bind errors by listener name (the xDS client NACKs them). */
  async apply(configs: ReadonlyMap<string, ListenerConfig>): Promise<Map<string, string>> {
    const errors = new Map<string, string>();
    for (const [name, l] of this.#running) {
      if (!configs.has(name)) {
        this.#running.delete(name);
        void l.close();
      }
    }
    for (const [name, config] of configs) {
      // The listener's and its connection manager's stats exist with it, as Envoy's (at 0 until its first connection).
      if (config.chain.kind === 'http') this.#env.stats.hcmConfigured(config.chain.statPrefix, config.chain.httpFilters);
      else this.#env.stats.tcp(config.chain.statPrefix);
      this.#env.stats.listener(listenerStatAddress(config));
      // Its TLS handshake counters, with its transport socket (listener.<address>.ssl.*).
      if (config.tls) for (const c of Object.values(this.#env.stats.tlsListener)) c.series({ envoy_listener_address: listenerStatAddress(config) });
      const existing = this.#running.get(name);
      if (inScope(config, this.#stopped)) {
        // Stopped by a drain: the update is taken, nothing is bound.
        if (existing) {
          this.#running.delete(name);
          void existing.close();
        }
        continue;
      }
      if (existing && existing.config.address.address === config.address.address && existing.config.address.port === config.address.port && existing.config.chain.kind === config.chain.kind) {
        existing.config = config;
        continue;
      }
      const next = new RunningListener(config, this.#env);
      try {
        if (existing) {
          this.#running.delete(name);
          await existing.close();
        }
        await next.listen();
        this.#adopt(name, next);
      } catch (e) {
        errors.set(name, `cannot bind ${config.address.address}:${config.address.port}: ${(e as Error).message}`);
        if (existing) {
          // Keep serving on the old address if the new one cannot be bound.
          const back = new RunningListener(existing.config, this.#env);
          await back
            .listen()
            .then(() => this.#adopt(name, back))
            .catch(() => undefined);
        }
      }
    }
    this.#dropStatsOfRemoved(configs);
    this.#publish();
    return errors;
  }

  /** A removed listener's stats go with it, as in Envoy (SidecarStats.listenersRemoved). */
  #dropStatsOfRemoved(configs: ReadonlyMap<string, ListenerConfig>): void {
    const statsOf = (all: Iterable<ListenerConfig>) => {
      const statPrefixes = new Set<string>();
      const tcpPrefixes = new Set<string>();
      const addresses = new Set<string>();
      for (const c of all) {
        (c.chain.kind === 'http' ? statPrefixes : tcpPrefixes).add(c.chain.statPrefix);
        addresses.add(listenerStatAddress(c));
      }
      return { statPrefixes, tcpPrefixes, addresses };
    };
    const before = this.#applied;
    this.#applied = new Map(configs);
    if (before.size > 0) this.#env.stats.listenersRemoved(statsOf(before.values()), statsOf(configs.values()));
  }

  /** A listener just bound: running, in the drain or failed health check already under way. */
  #adopt(name: string, l: RunningListener): void {
    if (inScope(l.config, this.#draining)) l.drainGracefully();
    for (const reason of this.#discouragedBy) l.setDiscouraged(reason, true);
    this.#running.set(name, l);
  }

  /** Bound port of a listener (its config may say 0). */
  port(name: string): number | undefined {
    return this.#running.get(name)?.port;
  }

  names(): string[] {
    return [...this.#running.keys()];
  }

  /** Each running listener's name and bound address (admin /listeners). */
  bound(): { name: string; address: string; port: number }[] {
    return [...this.#running].map(([name, l]) => ({ name, address: l.config.address.address, port: l.port }));
  }

  /** A drain was asked for (admin /drain_listeners): the server's state is then DRAINING. */
  get drainStarted(): boolean {
    return this.#stopped !== undefined || this.#draining !== undefined;
  }

  /**
   * Admin /drain_listeners. Without graceful, the listeners in scope stop
   * accepting now and their connections close as they go idle. With it, they
   * keep accepting for drainTimeMs while every connection is asked to close
   * after its next response, and are stopped after that.
   */
  drain(scope: DrainScope, graceful: boolean, drainTimeMs: number): void {
    if (!graceful) return this.#stop(scope);
    this.#draining = widest(this.#draining, scope);
    for (const l of this.#running.values()) if (inScope(l.config, this.#draining)) l.drainGracefully();
    this.#publish();
    this.#drainTimer ??= setTimeout(() => this.#stop(this.#draining!), drainTimeMs);
    this.#drainTimer.unref();
  }

  /**
   * Requests in progress and requests and connections seen so far, summed
   * over the HTTP listeners in `scope` (their connection managers' stats):
   * what a drain before exit watches to know when nothing more comes.
   */
  activity(scope: DrainScope): { active: number; seen: number } {
    let active = 0;
    let seen = 0;
    for (const l of this.#running.values()) {
      const chain = l.config.chain;
      if (chain.kind !== 'http' || !inScope(l.config, scope)) continue;
      const s = this.#env.stats.hcm(chain.statPrefix);
      active += s.rqActive.value;
      seen += s.rq.value + s.cxTotal.value;
    }
    return { active, seen };
  }

  /** Every listener discourages its connections while `reason` holds (on), and stops once it no longer does. */
  setDiscouraged(reason: Discourager, on: boolean): void {
    if (on) this.#discouragedBy.add(reason);
    else this.#discouragedBy.delete(reason);
    for (const l of this.#running.values()) l.setDiscouraged(reason, on);
  }

  /** Admin /healthcheck/fail is in force (until /healthcheck/ok). */
  get healthCheckFailed(): boolean {
    return this.#discouragedBy.has('healthcheck');
  }

  #stop(scope: DrainScope): void {
    this.#stopped = widest(this.#stopped, scope);
    for (const [name, l] of this.#running) {
      if (!inScope(l.config, this.#stopped)) continue;
      this.#running.delete(name);
      void l.close();
    }
    this.#publish();
  }

  /** listener_manager.total_listeners_active and _draining. */
  #publish(): void {
    let draining = 0;
    for (const l of this.#running.values()) if (l.draining) draining++;
    this.#env.stats.listenersActive.set(this.#running.size);
    this.#env.stats.listenersDraining.set(draining);
  }

  async close(): Promise<void> {
    clearTimeout(this.#drainTimer);
    await Promise.all([...this.#running.values()].map((l) => l.close()));
    this.#running.clear();
  }
}

/** The listener's part of its stat names (listener.<address>_<port>.*), as Envoy names a listener without stat_prefix. */
function listenerStatAddress(config: ListenerConfig): string {
  return `${config.address.address}_${config.address.port}`;
}

export type { HttpConnectionManagerConfig };
