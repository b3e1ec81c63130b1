// One downstream connection from accept to close, counted as Envoy's
// listener (listener.<address>.downstream_cx_*) and connection manager
// (http.<stat_prefix>.downstream_cx_destroy*, _length_ms, _rx/tx_bytes_total
// and the counters of why it closed) count it.
//
// Who closed it: the peer, when its end of the stream (FIN), a reset or an
// HTTP/2 GOAWAY came before the sidecar had ended its own side; the sidecar
// otherwise. With a request in progress: an HTTP/1 request not yet answered,
// or an HTTP/2 stream still open, when the socket closes. All of it is read
// once, at close; nothing is added to the request path.

import type net from 'node:net';
import type { Duplex } from 'node:stream';
import type { HcmSeries, ListenerSeries, TcpSeries } from './stats.ts';

/** Why the sidecar closed a connection, each with its counter. The first reason given is the one counted. */
export type LocalCloseReason = 'idle_timeout' | 'drain' | 'overload' | 'max_requests' | 'protocol_error';

/** Errors that say the peer reset or abandoned the connection. */
const PEER_ERRORS = new Set(['ECONNRESET', 'EPIPE', 'ECONNABORTED']);

export class DownstreamCx {
  readonly #started = performance.now();
  readonly #raw: net.Socket;
  readonly #listener: ListenerSeries;
  /** The connection manager's series (undefined for a TCP proxy listener). */
  readonly #hs: HcmSeries | undefined;
  /** The socket bytes are counted on: the TLS socket under TLS (bytes as the application sees them, as Envoy counts), else the raw one. */
  #bytes: net.Socket;
  #rx = 0;
  #tx = 0;
  #tls = false;
  #remote = false;
  #closed = false;
  /** The socket whose end tells who closed: the raw one, then the TLS one over it once there is one. */
  #serving: net.Socket | Duplex;
  /** Why the sidecar closed it (counted only when it did). */
  reason: LocalCloseReason | undefined;
  /** HTTP/2 streams open now. */
  streams = 0;
  /** The HTTP/1 codec serving it: a request is in progress while it is busy. */
  h1: { readonly busy: boolean } | undefined;

  /** A TCP proxy's series (for a tcp_proxy listener). */
  readonly #tcp: TcpSeries | undefined;

  constructor(raw: net.Socket, listener: ListenerSeries, hs: HcmSeries | undefined, tcp?: TcpSeries) {
    this.#tcp = tcp;
    this.#raw = raw;
    this.#bytes = raw;
    this.#serving = raw;
    this.#listener = listener;
    this.#hs = hs;
    listener.cxTotal.value++;
    listener.cxActive.value++;
    // Registered before any codec's listeners, so a codec reacting to the peer's end (ending its own side) comes after.
    this.watch(raw);
  }

  /**
   * The socket HTTP is read from (a TLS socket over the raw one): whether the
   * peer ended or reset it before the sidecar ended its side.
   */
  watch(socket: net.Socket | Duplex): void {
    this.#serving = socket;
    socket.on('end', () => {
      if (socket === this.#serving && !socket.writableEnded) this.#remote = true;
    });
    socket.on('error', (e: Error & { code?: string }) => {
      if (socket === this.#serving && !socket.writableEnded && e.code !== undefined && PEER_ERRORS.has(e.code)) this.#remote = true;
    });
  }

  /** Served over TLS: counted in downstream_cx_ssl_*, its bytes those of the TLS socket. */
  secured(socket: net.Socket): void {
    this.watch(socket);
    this.#bytes = socket;
    if (!this.#hs || this.#tls) return;
    this.#tls = true;
    this.#hs.cxSslTotal.value++;
    this.#hs.cxSslActive.value++;
  }

  /** The client sent GOAWAY on its HTTP/2 connection (before the sidecar did): it is closing it. */
  peerGoaway(sidecarClosing: boolean): void {
    if (!sidecarClosing) this.#remote = true;
  }

  /** The sidecar is closing it for `reason` (kept only if it is the first). */
  closing(reason: LocalCloseReason): void {
    this.reason ??= reason;
  }

  /**
   * Bytes moved since the last count (at close, and whenever stats are read): into the connection manager's totals,
   * or a TCP proxy's (which counts only those sent to the downstream).
   */
  countBytes(): void {
    const rx = this.#bytes.bytesRead;
    const tx = this.#bytes.bytesWritten;
    if (this.#hs) {
      this.#hs.cxRxBytes.value += rx - this.#rx;
      this.#hs.cxTxBytes.value += tx - this.#tx;
    } else if (this.#tcp) this.#tcp.txBytes.value += tx - this.#tx;
    this.#rx = rx;
    this.#tx = tx;
  }

  /** The raw socket closed: every count the close makes. */
  closed(): void {
    if (this.#closed) return;
    this.#closed = true;
    const ms = performance.now() - this.#started;
    const l = this.#listener;
    l.cxActive.value--;
    l.cxDestroy.value++;
    l.cxLengthMs.observe(ms);
    this.countBytes();
    const hs = this.#hs;
    if (!hs) return;
    if (this.#tls) hs.cxSslActive.value--;
    const active = this.streams > 0 || this.h1?.busy === true;
    hs.cxDestroy.value++;
    hs.cxLengthMs.observe(ms);
    if (this.#remote) hs.cxDestroyRemote.value++;
    else hs.cxDestroyLocal.value++;
    if (active) {
      hs.cxDestroyActiveRq.value++;
      (this.#remote ? hs.cxDestroyRemoteActiveRq : hs.cxDestroyLocalActiveRq).value++;
    }
    // A request it could not read is counted however the connection then ended; the other reasons only when the
    // sidecar's close is what ended it (an HTTP/1 connection told to close after its next response may be closed by
    // its client first).
    if (this.reason === 'protocol_error') return void hs.cxProtocolError.value++;
    if (this.#remote) return;
    switch (this.reason) {
      case 'idle_timeout':
        return void hs.cxIdleTimeout.value++;
      case 'drain':
        return void hs.cxDrainClose.value++;
      case 'overload':
        return void hs.cxOverloadDisableKeepalive.value++;
      case 'max_requests':
        return void hs.cxMaxRequestsReached.value++;
    }
  }

  get raw(): net.Socket {
    return this.#raw;
  }
}
