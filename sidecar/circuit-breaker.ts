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
// - max_retries: retries in flight (tryRetry). With a retry_budget (either of
//   its fields set, or either of its runtime keys), as Envoy's RetryBudgetImpl:
//   the limit is max(budget_percent% of (active + pending requests),
//   min_retry_concurrency), budget_percent 20 and min_retry_concurrency 3 where
//   unset, in place of max_retries.
// Each limit is read at each check through the runtime, as Envoy's
// ManagedResourceImpl::max(): circuit_breakers.<cluster>.<default|high>.
// max_connections, .max_pending_requests, .max_requests, .max_retries and
// .retry_budget.budget_percent / .retry_budget.min_retry_concurrency over the
// configured values (a key with no value: one Map lookup, no allocation).
// per_host_thresholds' max_connections (the only field Envoy honours there) is
// the host's limit, checked by its pools as Envoy's canCreateConnection
// (clusters.ts connectOptions): not runtime-overridable, as in Envoy.
// An overflow is a 503 with x-envoy-overloaded (flag UO). The cluster sets the
// circuit_breakers.default.* (or .high.*) gauges from these counts (clusters.ts).

import type { CircuitBreakerConfig } from './config.ts';
import { NO_RUNTIME, type Runtime } from './runtime.ts';

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

  readonly #runtime: Runtime;
  readonly #kConnections: string;
  readonly #kPending: string;
  readonly #kRequests: string;
  readonly #kRetries: string;
  readonly #kBudgetPercent: string;
  readonly #kMinRetry: string;

  /**
   * runtimePrefix: Envoy's `circuit_breakers.<cluster name>.<default|high>.` (ResourceManagers::load), the runtime
   * keys precomputed here so that a check allocates nothing.
   */
  constructor(limits: CircuitBreakerConfig, runtime: Runtime = NO_RUNTIME, runtimePrefix = '') {
    this.#limits = limits;
    this.#runtime = runtime;
    this.#kConnections = `${runtimePrefix}max_connections`;
    this.#kPending = `${runtimePrefix}max_pending_requests`;
    this.#kRequests = `${runtimePrefix}max_requests`;
    this.#kRetries = `${runtimePrefix}max_retries`;
    this.#kBudgetPercent = `${runtimePrefix}retry_budget.budget_percent`;
    this.#kMinRetry = `${runtimePrefix}retry_budget.min_retry_concurrency`;
  }

  /** max_connections as in force now (the runtime key over the configured value). */
  maxConnections(): number {
    return this.#runtime.getInteger(this.#kConnections, this.#limits.maxConnections);
  }

  maxPendingRequests(): number {
    return this.#runtime.getInteger(this.#kPending, this.#limits.maxPendingRequests);
  }

  maxRequests(): number {
    return this.#runtime.getInteger(this.#kRequests, this.#limits.maxRequests);
  }

  /** Whether the retry budget replaces max_retries: as Envoy's useRetryBudget, either field configured or either runtime key present. */
  retryBudgetInUse(): boolean {
    const l = this.#limits;
    return l.budgetPercent !== undefined || l.minRetryConcurrency !== undefined || this.#runtime.get(this.#kBudgetPercent) !== undefined || this.#runtime.get(this.#kMinRetry) !== undefined;
  }

  /** The retries allowed in flight now: max_retries, or the retry budget's max(budget_percent% of active + pending, min_retry_concurrency). */
  maxRetries(): number {
    if (!this.retryBudgetInUse()) return this.#runtime.getInteger(this.#kRetries, this.#limits.maxRetries);
    const percent = this.#runtime.getDouble(this.#kBudgetPercent, this.#limits.budgetPercent ?? 20);
    const min = this.#runtime.getInteger(this.#kMinRetry, this.#limits.minRetryConcurrency ?? 3);
    // std::max<uint64_t>(double, uint32): the budget truncated to a whole number.
    const budget = Math.max(0, Math.floor((percent / 100) * (this.active + this.pending)));
    return Math.max(budget, min);
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
    if (this.pending >= this.maxPendingRequests()) return undefined;
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
    if (this.active >= this.maxRequests()) return undefined;
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
    if (this.activeRetries >= this.maxRetries()) return undefined;
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
