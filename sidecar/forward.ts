// One routed request to its cluster: host choice, attempts (each admitted by
// its host's pool under the cluster's circuit breakers, as Envoy's pools admit
// them), with per-try timeouts, Envoy's retry_on conditions with jittered
// backoff, the route timeout, and outlier detection fed with every outcome.
//
// Cancellation is plain state, not AbortSignals: the route timer, a per-try
// timer and the downstream going away each call abort() on the exchange in
// flight. An AbortController with its listeners cost more per request than
// the rest of this file.

import type { Readable } from 'node:stream';
import type { Cluster, ClusterManager, Host } from './clusters.ts';
import type { HeaderMatcherConfig, RetryPolicyConfig, RoutingPriority } from './config.ts';
import { headerValueMatches } from './router.ts';
import type { LocalReply } from './local-reply.ts';
import { isGrpc, localReplies } from './local-reply.ts';
import type { SidecarStats } from './stats.ts';
import type { Exchange, HeaderPairs, ResetReason, TrailerSource, UpstreamResponse } from './upstream.ts';
import { UpstreamFailure } from './upstream.ts';
import { setHeader } from './headers.ts';

/** The downstream side of a request: set aborted and call onAbort when the client goes away. */
export class Downstream {
  aborted = false;
  onAbort: (() => void) | undefined;

  abort(): void {
    if (this.aborted) return;
    this.aborted = true;
    this.onAbort?.();
  }
}

export interface ForwardRequest {
  method: string;
  path: string;
  authority: string;
  headers: HeaderPairs;
  /** A Buffer can be replayed for retries; a stream (gRPC streaming) gets one attempt. */
  body: Buffer | Readable | null;
  hash?: bigint;
  /** 0 = none. */
  timeoutMs: number;
  retry?: RetryPolicyConfig;
  downstream: Downstream;
  /** Per chunk of a streamed request body (stream_idle_timeout, the retry copy). */
  onBodyData?: (chunk: Buffer) => void;
  /** Each attempt's whole request went upstream (UpstreamRequest.onSent): the access log's timing and upstream local address. */
  onSent?: (localAddress: string | undefined, socket: object | undefined) => void;
  /** The request's trailers (HTTP/2 downstreams), read as each attempt's body ends: a retry resends them too. */
  trailers?: TrailerSource;
  /**
   * For a streamed body, what a retry sends (Envoy's router keeps such a copy):
   * the whole of it once it has ended within the buffer limit, a stream of the
   * part so far and then the rest while it is still coming, undefined after it
   * overflowed.
   */
  replay?: () => Buffer | Readable | undefined;
  /** include_request_attempt_count: each attempt carries x-envoy-attempt-count. */
  attemptCount?: boolean;
  /** Each retry carries x-envoy-expected-rq-timeout-ms with the time it has left (the first got it from the router). */
  expectedTimeout?: boolean;
  /**
   * The route's priority (RouteAction.priority; unset: DEFAULT): whose circuit breakers admit its retries and its
   * attempts, and whose pools carry them (ClusterInfo::resourceManager(priority), a pool per priority).
   */
  priority?: RoutingPriority;
}

/**
 * Why the router stopped retrying, as Envoy's router flags the stream: URX, the retries ran out on an answer it
 * would have retried (the last one goes downstream); UO, the circuit breaker refused the retry.
 */
export type RetryFlag = 'URX' | 'UO';

export type ForwardResult =
  | { kind: 'response'; response: UpstreamResponse; host: Host; attempts: number; finish: () => void; retryFlag?: RetryFlag }
  | { kind: 'local'; reply: LocalReply; host?: Host; attempts: number; retryFlag?: RetryFlag }
  /** The downstream left before a response: nothing to answer, and not an upstream timeout (Envoy's DC). */
  | { kind: 'abandoned'; host?: Host; attempts: number };

/** A failure's `perTry`: the attempt's per-try timeout ended it (Envoy's upstream_per_try_timeout), not the route's. */
type Outcome = { kind: 'response'; response: UpstreamResponse } | { kind: 'failure'; reason: ResetReason; transport?: string; perTry?: true };

/** retry_on's gRPC conditions and the status each retries. */
const GRPC_RETRY_ON: readonly (readonly [string, number])[] = [
  ['cancelled', 1],
  ['deadline-exceeded', 4],
  ['resource-exhausted', 8],
  ['internal', 13],
  ['unavailable', 14],
];

function grpcStatusIn(headers: HeaderPairs): number | undefined {
  for (const [k, v] of headers) if (k === 'grpc-status') return Number(v);
  return undefined;
}

/** Envoy's Grpc::Utility::grpcToHttpStatus, by gRPC code (an unknown code is 500). */
const GRPC_TO_HTTP = [200, 499, 500, 400, 504, 404, 409, 403, 429, 400, 409, 400, 501, 500, 503, 500, 401];

/**
 * The status outlier detection and the host's counters judge an answer by: for a gRPC request whose answer has its
 * grpc-status in the headers (a trailers-only answer: how a server fails a call at once), that status mapped to
 * HTTP, as Envoy's router does (UNAVAILABLE is a 503, so a backend failing every call is ejected); else the HTTP status.
 */
function judgedStatus(req: ForwardRequest, response: UpstreamResponse): number {
  let grpc = false;
  for (const [k, v] of req.headers) if (k === 'content-type') grpc = isGrpc(v);
  if (!grpc) return response.status;
  const g = grpcStatusIn(response.headers);
  if (g === undefined) return response.status;
  return Number.isInteger(g) && g >= 0 && g < GRPC_TO_HTTP.length ? GRPC_TO_HTTP[g]! : 500;
}

export function shouldRetry(policy: RetryPolicyConfig, o: Outcome): boolean {
  const on = policy.retryOn;
  if (o.kind === 'failure') {
    if (o.reason === 'overflow') return false;
    if (on.has('5xx') || on.has('gateway-error') || on.has('reset')) return true;
    if (o.reason === 'remote_refused_stream_reset') return on.has('refused-stream');
    return o.reason === 'connection_failure' && on.has('connect-failure');
  }
  const s = o.response.status;
  // As Envoy's RetryStateImpl::wouldRetryFromHeaders: an upstream Envoy's rate limiter said no (x-envoy-ratelimited):
  // retried under envoy-ratelimited only, whatever else the policy says.
  for (const [k] of o.response.headers) if (k === 'x-envoy-ratelimited') return on.has('envoy-ratelimited');
  // As Envoy: the gRPC conditions look at the grpc-status of a trailers-only response (in its headers).
  let g: number | undefined;
  for (const [cond, code] of GRPC_RETRY_ON) if (on.has(cond) && (g ??= grpcStatusIn(o.response.headers)) === code) return true;
  if (on.has('5xx') && s >= 500) return true;
  if (on.has('gateway-error') && (s === 502 || s === 503 || s === 504)) return true;
  if (on.has('retriable-4xx') && s === 409) return true;
  if (on.has('retriable-status-codes') && policy.retriableStatusCodes.has(s)) return true;
  if (on.has('retriable-headers') && policy.retriableHeaders !== undefined) {
    for (const h of policy.retriableHeaders) if (headerValueMatches(h, h.name === ':status' ? String(s) : joinedValue(o.response.headers, h.name))) return true;
  }
  return false;
}

/** Every value of header `name` joined with ',', as Envoy's header matchers read a repeated header; undefined when absent. */
function joinedValue(headers: HeaderPairs, name: string): string | undefined {
  let out: string | undefined;
  for (const [k, v] of headers) if (k === name) out = out === undefined ? v : `${out},${v}`;
  return out;
}

/** retriable_request_headers: whether the request matches one (pseudo-headers as the router sends them). */
function requestRetriable(matchers: readonly HeaderMatcherConfig[], req: ForwardRequest): boolean {
  for (const h of matchers) {
    const v = h.name === ':method' ? req.method : h.name === ':path' ? req.path : h.name === ':authority' || h.name === 'host' ? req.authority : joinedValue(req.headers, h.name);
    if (headerValueMatches(h, v)) return true;
  }
  return false;
}

function backoffMs(policy: RetryPolicyConfig, retry: number): number {
  const ceiling = Math.min(policy.backoffMaxMs, policy.backoffBaseMs * 2 ** (retry - 1));
  return Math.random() * ceiling;
}

/**
 * rate_limited_retry_back_off: the interval the retried response's first reset header gives (whole seconds, or a
 * Unix timestamp in seconds from now), if at most max_interval, as Envoy's ResetHeaderParserImpl::parseInterval and
 * RetryStateImpl::parseResetInterval read it; undefined when none does.
 */
export function resetIntervalMs(rl: NonNullable<RetryPolicyConfig['rateLimitedBackoff']>, headers: HeaderPairs, nowMs: number): number | undefined {
  for (const h of rl.resetHeaders) {
    let value: string | undefined;
    for (const [k, v] of headers) {
      if (k === h.name) {
        value = v;
        break;
      }
    }
    // absl::SimpleAtoi into a uint64: digits only (surrounding whitespace allowed).
    const text = value?.trim();
    if (text === undefined || !/^\+?\d{1,19}$/.test(text)) continue;
    const n = Number(text);
    let ms: number;
    if (h.unixTimestamp) {
      const now = Math.floor(nowMs / 1000);
      if (n < now) continue;
      ms = (n - now) * 1000;
    } else ms = n * 1000;
    if (ms <= rl.maxIntervalMs) return ms;
  }
  return undefined;
}

/**
 * What cancels the request as a whole: the route timeout or the downstream
 * leaving. As in Envoy's router, the route timeout (and an attempt's per-try
 * timeout) starts once the request has arrived whole: at once for a buffered
 * body, at the end of a body that streams.
 */
class RequestState {
  /** Why the request stopped early, if it did. */
  stopped: 'timeout' | 'downstream' | undefined;
  /** The attempt in flight. */
  exchange: Exchange | undefined;
  /** Wakes a backoff or admission wait. */
  wake: (() => void) | undefined;
  /** When the request arrived whole (undefined while its body streams in). */
  completedAt: number | undefined;
  #timer: NodeJS.Timeout | undefined;
  /** Set once the response streams: what a route timeout does then. */
  #late: (() => void) | undefined;
  /** done() or finished(): no timer is started any more. */
  #over = false;
  #onComplete: (() => void)[] = [];
  readonly #timeoutMs: number;
  readonly #downstream: Downstream;

  constructor(timeoutMs: number, downstream: Downstream, body: ForwardRequest['body']) {
    this.#timeoutMs = timeoutMs;
    this.#downstream = downstream;
    if (downstream.aborted) this.stopped = 'downstream';
    downstream.onAbort = () => this.stop('downstream');
    if (body !== null && !Buffer.isBuffer(body) && !body.readableEnded) body.once('end', () => this.#complete());
    else this.#complete();
  }

  #complete(): void {
    if (this.completedAt !== undefined || this.#over) return;
    this.completedAt = Date.now();
    if (this.#timeoutMs > 0) {
      this.#timer = setTimeout(() => this.stop('timeout'), this.#timeoutMs);
    }
    const waiting = this.#onComplete;
    this.#onComplete = [];
    for (const f of waiting) f();
  }

  /** Runs `f` now if the request has arrived whole, else when it has. */
  whenComplete(f: () => void): void {
    if (this.completedAt !== undefined) f();
    else this.#onComplete.push(f);
  }

  stop(why: 'timeout' | 'downstream'): void {
    if (this.stopped) return;
    this.stopped = why;
    if (this.#late) return this.#late();
    this.exchange?.abort('timeout');
    this.wake?.();
  }

  /** The request is over before a response (local reply, failure): stop the timer. */
  done(): void {
    this.#over = true;
    clearTimeout(this.#timer);
    this.#downstream.onAbort = undefined;
  }

  /**
   * Response headers arrived. Envoy's route timeout runs until the response
   * has been completely received, so the timer keeps running over the body:
   * if it fires now, `late` stops the body (the proxy then resets the stream,
   * or answers 504 when nothing was sent yet). The downstream's own close is
   * handled by the body copy from here on.
   */
  streaming(late: () => void): void {
    this.#downstream.onAbort = undefined;
    this.exchange = undefined;
    this.wake = undefined;
    this.#late = late;
  }

  /** The body is complete (or abandoned). */
  finished(): void {
    this.#over = true;
    clearTimeout(this.#timer);
  }
}

function sleep(ms: number, state: RequestState): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      state.wake = undefined;
      resolve();
    }
    state.wake = done;
  });
}

export async function forward(clusters: ClusterManager, clusterName: string, req: ForwardRequest, stats: SidecarStats): Promise<ForwardResult> {
  const cluster = clusters.get(clusterName);
  if (!cluster) return { kind: 'local', reply: localReplies.clusterNotFound(), attempts: 0 };
  const cs = stats.cluster(clusterName);
  const started = Date.now();
  const state = new RequestState(req.timeoutMs, req.downstream, req.body);

  const policy = req.retry;
  const replayable = req.body === null || Buffer.isBuffer(req.body) || req.replay !== undefined;
  // retriable_request_headers that the request does not match: Envoy makes no retry state, so no retries.
  const retrying = policy !== undefined && (policy.retriableRequestHeaders === undefined || requestRetriable(policy.retriableRequestHeaders, req));
  const maxAttempts = retrying && replayable ? 1 + policy.numRetries : 1;
  let body = req.body;
  const tried: string[] = [];
  /** Attempts sent upstream (x-envoy-attempt-count, the access log's attempts). */
  let made = 0;
  let last: { outcome: Outcome; host: Host } | undefined;
  let retryToken: (() => void) | undefined;
  let retryFlag: RetryFlag | undefined;
  for (let attempt = 1; attempt <= maxAttempts; attempt++) {
    if (attempt > 1) {
      retryToken?.();
      retryToken = cluster.breakers[req.priority ?? 0].tryRetry();
      if (!retryToken) {
        stats.upstreamRqRetryOverflow.inc(stats.clusterLabel(clusterName));
        retryFlag = 'UO';
        break;
      }
      if (body !== null && !Buffer.isBuffer(body)) {
        // The streamed body went to the first attempt: a retry resends the copy (and the rest as it comes), if it fit.
        const again = req.replay?.();
        if (again === undefined) {
          stats.retryOrShadowAbandoned.inc(stats.clusterLabel(clusterName));
          break;
        }
        body = again;
      }
      stats.upstreamRqRetry.inc(stats.clusterLabel(clusterName));
      // The answer being retried: Envoy's router counts it under retry.upstream_rq_<code>, not upstream_rq_<code>.
      if (last?.outcome.kind === 'response') stats.retriedResponse(clusterName, last.outcome.response.status);
      // As Envoy's RetryStateImpl::enableBackoffTimer: the rate limited back-off when the response being retried gave
      // a reset interval over 1 ms (JitteredLowerBoundBackOffStrategy: from it to 1.5 times it), else the exponential one.
      const reset = policy!.rateLimitedBackoff !== undefined && last?.outcome.kind === 'response' ? resetIntervalMs(policy!.rateLimitedBackoff, last.outcome.response.headers, Date.now()) : undefined;
      if (reset !== undefined && reset > 1) {
        stats.upstreamRqRetryBackoffRatelimited.inc(stats.clusterLabel(clusterName));
        await sleep(reset + Math.floor(Math.random() * (reset / 2)), state);
      } else {
        stats.upstreamRqRetryBackoffExponential.inc(stats.clusterLabel(clusterName));
        await sleep(backoffMs(policy!, attempt - 1), state);
      }
      if (state.stopped) {
        // As Envoy: the response being retried was already given up; a route timeout in the backoff is a 504.
        if (last?.outcome.kind === 'response') {
          last.outcome.response.body.dump();
          last.host.activeRequests--;
          last = { outcome: { kind: 'failure', reason: 'timeout' }, host: last.host };
        }
        break;
      }
    }
    const host = cluster.pick({ hash: req.hash, avoid: policy?.avoidPreviousHosts ? new Set(tried) : undefined, hostSelectionRetries: policy?.hostSelectionMaxAttempts });
    if (!host) {
      stats.noHealthyUpstream.inc(stats.clusterLabel(clusterName));
      if (last) break;
      retryToken?.();
      state.done();
      return { kind: 'local', reply: localReplies.noHealthyUpstream(), attempts: attempt };
    }
    if (!tried.includes(host.key)) tried.push(host.key);
    made = attempt;
    if (req.attemptCount) setHeader(req.headers, 'x-envoy-attempt-count', String(attempt));
    if (attempt > 1 && req.expectedTimeout) expectTimeLeft(req.headers, policy!.perTryTimeoutMs, req.timeoutMs, Date.now() - (state.completedAt ?? Date.now()));
    const outcome = await attempt1(cluster, host, req, body, policy?.perTryTimeoutMs ?? 0, state, stats);
    // As Envoy's router: a retry succeeded when its answer is one the policy would not retry (a 429 that
    // retriable-status-codes retries is no success; a 500 that only gateway-error governs is one).
    if (outcome.kind === 'response' && attempt > 1 && !shouldRetry(policy!, outcome)) stats.upstreamRqRetrySuccess.inc(stats.clusterLabel(clusterName));
    if (last?.outcome.kind === 'response') {
      // The previous attempt is being retried: drop its response and free its host slot.
      last.outcome.response.body.dump();
      last.host.activeRequests--;
    }
    last = { outcome, host };
    if (state.stopped) break;
    if (!retrying || !shouldRetry(policy, outcome)) break;
    if (attempt === maxAttempts) {
      // Retriable, but the policy's retries are spent (a body that cannot be resent never had any).
      if (replayable) {
        stats.upstreamRqRetryLimitExceeded.inc(stats.clusterLabel(clusterName));
        retryFlag = 'URX';
      }
      break;
    }
  }
  retryToken?.();
  if (state.stopped === 'downstream') {
    // The client left: not the upstream's failure. A response it no longer waits for (it left during a
    // retry's backoff, or as the response came) is dropped, its host slot freed.
    state.done();
    if (last?.outcome.kind === 'response') {
      // Its headers came: counted by their code, as Envoy's router counts them as they arrive.
      stats.upstreamResponse(cs, clusterName, last.outcome.response.status);
      last.outcome.response.body.dump();
      last.host.activeRequests--;
    }
    return { kind: 'abandoned', host: last?.host, attempts: made };
  }
  if (state.stopped === 'timeout' && (!last || last.outcome.kind === 'failure')) {
    state.done();
    return timedOut(stats, clusterName, last?.host, made);
  }
  if (!last || last.outcome.kind === 'failure') {
    state.done();
    const reason = last?.outcome.kind === 'failure' ? last.outcome.reason : 'connection_failure';
    // The last try's own timeout (retries spent, or none): Envoy's onPerTryTimeout, upstream_per_try_timeout.
    const perTry = last?.outcome.kind === 'failure' && last.outcome.perTry === true;
    if (reason === 'timeout') return { ...timedOut(stats, clusterName, last?.host, made, perTry), ...(retryFlag ? { retryFlag } : {}) };
    const transport = last?.outcome.kind === 'failure' ? last.outcome.transport : undefined;
    // The host's pool refused it (max_pending_requests or max_requests reached): Envoy's pool overflow (503, x-envoy-overloaded, UO).
    if (reason === 'overflow') return aborted(stats, clusterName, { kind: 'local', reply: localReplies.overflow(), host: last?.host, attempts: made, ...(retryFlag ? { retryFlag } : {}) });
    return aborted(stats, clusterName, { kind: 'local', reply: localReplies.reset(reason, transport), host: last?.host, attempts: made, ...(retryFlag ? { retryFlag } : {}) });
  }
  const { response } = last.outcome;
  // The answer that goes downstream, counted by its code; the ones retried before it are not (Envoy's router
  // counts those under retry.upstream_rq_<code> instead).
  stats.upstreamResponse(cs, clusterName, response.status);
  const host = last.host;
  state.streaming(() => {
    stats.upstreamRqTimeout.inc(stats.clusterLabel(clusterName));
    response.body.abort(new UpstreamFailure('timeout', 'upstream request timeout'));
  });
  let finished = false;
  return {
    kind: 'response',
    response,
    host,
    attempts: made,
    retryFlag,
    finish() {
      if (finished) return;
      finished = true;
      state.finished();
      host.activeRequests--;
      cs.rqTime.observe(Date.now() - started);
    },
  };
}

/**
 * A retry's x-envoy-expected-rq-timeout-ms, as Envoy's router sets it per
 * attempt: its per-try timeout (else the route timeout), but no more than the
 * route timeout has left (1 ms once it has run out, 0 meaning none).
 */
function expectTimeLeft(headers: HeaderPairs, perTryMs: number, timeoutMs: number, elapsedMs: number): void {
  let expected = perTryMs > 0 && (timeoutMs === 0 || perTryMs < timeoutMs) ? perTryMs : timeoutMs;
  if (expected <= 0) return;
  if (timeoutMs > 0) expected = elapsedMs >= timeoutMs ? 1 : Math.min(expected, timeoutMs - elapsedMs);
  setHeader(headers, 'x-envoy-expected-rq-timeout-ms', String(expected));
}

function timedOut(stats: SidecarStats, clusterName: string, host?: Host, attempts = 0, perTry = false): ForwardResult {
  // upstream_rq_timeout is the route timeout's (Envoy's onResponseTimeout); a last try's own timeout was counted as
  // upstream_rq_per_try_timeout when it fired (onPerTryTimeoutCommon counts nothing else).
  if (!perTry) stats.upstreamRqTimeout.inc(stats.clusterLabel(clusterName));
  return aborted(stats, clusterName, { kind: 'local', reply: localReplies.timeout(perTry), host, attempts });
}

/**
 * A request the upstream never answered (reset, connect failure, timeout, overflow): its local reply's code is
 * counted among the cluster's upstream_rq_<code> and _<class>xx, as Envoy's router charges an upstream abort
 * (chargeUpstreamAbort), so a dashboard's 5xx rate sees a dead or overloaded upstream.
 */
function aborted(stats: SidecarStats, clusterName: string, result: ForwardResult & { kind: 'local' }): ForwardResult {
  stats.upstreamResponse(stats.cluster(clusterName), clusterName, result.reply.status);
  return result;
}

/** One attempt to one host. The host's activeRequests stays raised for a returned response until finish(). */
async function attempt1(cluster: Cluster, host: Host, req: ForwardRequest, body: ForwardRequest['body'], perTryMs: number, state: RequestState, stats: SidecarStats): Promise<Outcome> {
  host.activeRequests++;
  cluster.hadTraffic = true;
  let perTryFired = false;
  let timer: NodeJS.Timeout | undefined;
  if (state.stopped) {
    host.activeRequests--;
    return { kind: 'failure', reason: 'timeout' };
  }
  const exchange = cluster.poolFor(host, req.priority ?? 0).start({ method: req.method, path: req.path, authority: req.authority, headers: req.headers, body, onBodyData: body === req.body ? req.onBodyData : undefined, onSent: req.onSent, trailers: req.trailers });
  state.exchange = exchange;
  let settled = false;
  if (perTryMs > 0) {
    // As Envoy's: from the later of the attempt's start and the request's end, and the configured per-try timeout,
    // not cut to what the route timeout has left (setupPerTryTimeout): when the route timeout comes first it fires
    // alone, and the try is not also counted as a per-try timeout (the two timers racing counted one in a dozen
    // such requests twice).
    state.whenComplete(() => {
      if (settled) return;
      timer = setTimeout(() => {
        perTryFired = !state.stopped;
        exchange.abort('timeout');
      }, perTryMs);
    });
  }
  try {
    const response = await exchange.response;
    cluster.recordResult(host, judgedStatus(req, response));
    return { kind: 'response', response };
  } catch (err) {
    host.activeRequests--;
    const reason: ResetReason = err instanceof UpstreamFailure ? err.reason : 'reset';
    const transport = err instanceof UpstreamFailure ? err.transport : undefined;
    if (perTryFired) stats.upstreamRqPerTryTimeout.inc(stats.clusterLabel(cluster.name));
    // A pool overflow is the circuit breaker's answer, not the host's: no outlier failure.
    if (!req.downstream.aborted && reason !== 'overflow') cluster.recordResult(host, 0, perTryFired || state.stopped === 'timeout');
    if (state.stopped === 'timeout') return { kind: 'failure', reason: 'timeout' };
    if (perTryFired) return { kind: 'failure', reason: 'timeout', perTry: true };
    return transport ? { kind: 'failure', reason, transport } : { kind: 'failure', reason };
  } finally {
    settled = true;
    clearTimeout(timer);
    state.exchange = undefined;
  }
}
