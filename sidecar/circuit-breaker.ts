// Envoy's circuit breakers for one cluster, as its connection pools apply
// them. A request that finds no free connection (HTTP/1: one request holds
// one connection, so max_connections are busy) waits among at most
// max_pending_requests; one that gets a connection (at once, or when one
// frees up) is refused once max_requests are active. Envoy never queues on
// max_requests: past it a request overflows (503 x-envoy-overloaded) even
// where a connection is free, HTTP/2 included.
// HTTP/2 requests wait in their host's pool instead (h2-client.ts: every
// connection at its stream limit, or still being made), and take their place
// among the same max_pending_requests (tryPending); max_requests is taken as
// the stream is attached to a connection (tryRequest), as Envoy's
// attachStreamToClient takes it, so a pending HTTP/2 request holds none.
// max_requests counts what upstream_rq_active reports (activeSeries).

import type { CircuitBreakerConfig } from './config.ts';

/** An HTTP/2 request's admission: nothing is held until its pool attaches it to a connection. */
const NOTHING_HELD = (): void => undefined;

export class CircuitBreaker {
  #limits: CircuitBreakerConfig;
  #http2: boolean;
  active = 0;
  activeRetries = 0;
  /** Requests waiting for a connection: called with whether max_requests lets them in once one is free. */
  readonly #waiting: ((admit: boolean) => void)[] = [];
  /** HTTP/2 requests waiting in a host's pool for room on a connection. */
  #poolPending = 0;
  /** Called when max_connections keeps an HTTP/1 request from a connection of its own (Envoy's upstream_cx_overflow). */
  onCxOverflow: (() => void) | undefined;
  /** A request became pending: it waits for a connection (upstream_rq_pending_total). */
  onPending: (() => void) | undefined;
  /** The cluster's upstream_rq_active, raised and lowered with `active`. */
  activeSeries: (() => { value: number }) | undefined;
  /** Called after any count or limit changed (the circuit_breakers.default.*_open gauges). */
  onChange: (() => void) | undefined;

  constructor(limits: CircuitBreakerConfig, http2: boolean) {
    this.#limits = limits;
    this.#http2 = http2;
  }

  update(limits: CircuitBreakerConfig, http2: boolean): void {
    this.#limits = limits;
    this.#http2 = http2;
    this.#drain();
    this.onChange?.();
  }

  /**
   * Which limits are reached, as Envoy's circuit_breakers.default.*_open gauges say (1: at capacity, admitting no
   * more). `connections`: the cluster's open connections, which HTTP/2 counts; an HTTP/1 request holds one.
   */
  open(connections: number): { cx: boolean; rqPending: boolean; rq: boolean; rqRetry: boolean } {
    const l = this.#limits;
    return {
      cx: (this.#http2 ? connections : this.active) >= l.maxConnections,
      rqPending: this.pending >= l.maxPendingRequests,
      rq: this.active >= l.maxRequests,
      rqRetry: this.activeRetries >= l.maxRetries,
    };
  }

  get pending(): number {
    return this.#waiting.length + this.#poolPending;
  }

  /** A place among max_pending_requests for a request waiting in a pool: a function giving it back, or undefined (overflow). */
  tryPending(): (() => void) | undefined {
    if (this.pending >= this.#limits.maxPendingRequests) return undefined;
    this.#poolPending++;
    this.onPending?.();
    this.onChange?.();
    let done = false;
    return () => {
      if (done) return;
      done = true;
      this.#poolPending--;
      this.onChange?.();
    };
  }

  /** Whether a connection is free for one more request (HTTP/2 multiplexes: always). */
  #connectionFree(): boolean {
    return this.#http2 || this.active < this.#limits.maxConnections;
  }

  /**
   * Resolves to a release function, or to undefined when the request overflows (503 + x-envoy-overloaded).
   * HTTP/2: always admitted here; its pool takes max_pending_requests (tryPending) and max_requests (tryRequest).
   */
  acquire(): Promise<(() => void) | undefined> | (() => void) | undefined {
    if (this.#http2) return NOTHING_HELD;
    if (this.#connectionFree() && this.#waiting.length === 0) return this.tryRequest();
    if (this.pending >= this.#limits.maxPendingRequests) return undefined;
    // As Envoy's pool: the request is queued first, then a new connection is tried, and max_connections refuses it.
    if (!this.#http2) this.onCxOverflow?.();
    this.onPending?.();
    return new Promise((resolve) => {
      this.#waiting.push((admit) => resolve(admit ? this.#take() : undefined));
      this.onChange?.();
    });
  }

  /** A place among max_requests for a request given a connection: a function giving it back, or undefined (overflow). */
  tryRequest(): (() => void) | undefined {
    if (this.active >= this.#limits.maxRequests) return undefined;
    return this.#take();
  }

  /** True when one more retry may start (max_retries counts concurrent retries). */
  tryRetry(): (() => void) | undefined {
    if (this.activeRetries >= this.#limits.maxRetries) return undefined;
    this.activeRetries++;
    this.onChange?.();
    let done = false;
    return () => {
      if (!done) {
        done = true;
        this.activeRetries--;
        this.onChange?.();
      }
    };
  }

  #take(): () => void {
    this.active++;
    const gauge = this.activeSeries?.();
    if (gauge) gauge.value++;
    this.onChange?.();
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.active--;
      if (gauge) gauge.value--;
      this.#drain();
      this.onChange?.();
    };
  }

  #drain(): void {
    while (this.#waiting.length > 0 && this.#connectionFree()) this.#waiting.shift()!(this.active < this.#limits.maxRequests);
  }
}
