// Envoy's circuit breakers for one cluster and one routing priority (DEFAULT
// or HIGH: a cluster has one of each, as Envoy's ClusterInfoImpl has a
// resource manager per priority, source/common/upstream/upstream_impl.cc), as
// its resource manager counts them and its connection pools apply them
// (source/common/upstream/resource_manager_impl.h,
// source/common/conn_pool/conn_pool_base.cc). The breaker only counts; the
// host pools (h1-client.ts, h2-client.ts) decide, as Envoy's pools do:
// - max_connections: connections open or being made, over every host of the
//   cluster (of this priority's pools). A pool asks for one when its pending
//   requests outnumber the connections it is making; refused,
//   upstream_cx_overflow counts and the requests keep waiting (a pool with no
//   connection at all gets one anyway). `connections` is raised as a pool
//   makes a connection (or an upgrade takes one) and lowered as it closes, as
//   Envoy's ActiveClient holds its connection resource.
// - max_pending_requests: requests waiting in a pool for a connection (or,
//   HTTP/2, for room on one): past it a request overflows (tryPending).
// - max_requests: taken as a request is given a connection (an HTTP/2
//   stream), as attachStreamToClient takes it, and held until the upstream
//   exchange ends; past it the request overflows there, never waits (tryRequest).
// - max_retries: retries in flight (tryRetry).
// An overflow is a 503 with x-envoy-overloaded (flag UO). The cluster sets the
// circuit_breakers.default.* (or .high.*) gauges from these counts (clusters.ts).

import type { CircuitBreakerConfig } from './config.ts';

export class CircuitBreaker {
  #limits: CircuitBreakerConfig;
  /** Requests given a connection (HTTP/2: a stream) and not yet done: what max_requests counts. */
  active = 0;
  activeRetries = 0;
  /** Requests waiting in a host's pool: what max_pending_requests counts. */
  pending = 0;
  /** The cluster's connections open or being made at this priority, its pools' and its upgrades' (what max_connections counts). */
  readonly connections = { value: 0, changed: (): void => this.onChange?.() };
  /** A request became pending: it waits for a connection (upstream_rq_pending_total). */
  onPending: (() => void) | undefined;
  /** The cluster's upstream_rq_active, raised and lowered with `active`. */
  activeSeries: (() => { value: number }) | undefined;
  /** Called after any count or limit changed (the circuit_breakers.<priority>.* gauges). */
  onChange: (() => void) | undefined;

  constructor(limits: CircuitBreakerConfig) {
    this.#limits = limits;
  }

  get limits(): CircuitBreakerConfig {
    return this.#limits;
  }

  update(limits: CircuitBreakerConfig): void {
    this.#limits = limits;
    this.onChange?.();
  }

  /** A place among max_pending_requests for a request waiting in a pool: a function giving it back, or undefined (overflow). */
  tryPending(): (() => void) | undefined {
    if (this.pending >= this.#limits.maxPendingRequests) return undefined;
    this.pending++;
    this.onPending?.();
    this.onChange?.();
    let done = false;
    return () => {
      if (done) return;
      done = true;
      this.pending--;
      this.onChange?.();
    };
  }

  /** A place among max_requests for a request given a connection: a function giving it back, or undefined (overflow). */
  tryRequest(): (() => void) | undefined {
    if (this.active >= this.#limits.maxRequests) return undefined;
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
      this.onChange?.();
    };
  }

  /** A place among max_retries (retries in flight): a function giving it back, or undefined (retry overflow). */
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
}
