// One routed request to its cluster: circuit breaker admission, host choice,
// attempts with per-try timeouts, Envoy's retry_on conditions with jittered
// backoff, the route timeout, and outlier detection fed with every outcome.

import type { Readable } from 'node:stream';
import type { Cluster, ClusterManager, Host } from './clusters.ts';
import type { RetryPolicyConfig } from './config.ts';
import type { LocalReply } from './local-reply.ts';
import { localReplies } from './local-reply.ts';
import type { SidecarStats } from './stats.ts';
import type { HeaderPairs, ResetReason, UpstreamResponse } from './upstream.ts';
import { UpstreamFailure } from './upstream.ts';

export interface ForwardRequest {
  method: string;
  path: string;
  authority: string;
  headers: HeaderPairs;
  /** A Buffer can be replayed for retries; a stream (gRPC streaming) gets one attempt. */
  body: Buffer | Readable | null;
  hash?: number;
  /** 0 = none. */
  timeoutMs: number;
  retry?: RetryPolicyConfig;
  /** Aborted when the downstream goes away. */
  downstream: AbortSignal;
}

export type ForwardResult =
  | { kind: 'response'; response: UpstreamResponse; host: Host; attempts: number; finish: () => void }
  | { kind: 'local'; reply: LocalReply; host?: Host; attempts: number };

type Outcome = { kind: 'response'; response: UpstreamResponse } | { kind: 'failure'; reason: ResetReason };

export function shouldRetry(policy: RetryPolicyConfig, o: Outcome): boolean {
  const on = policy.retryOn;
  if (o.kind === 'failure') {
    if (o.reason === 'overflow') return false;
    if (on.has('5xx') || on.has('gateway-error') || on.has('reset')) return true;
    return o.reason === 'connection_failure' && on.has('connect-failure');
  }
  const s = o.response.status;
  if (on.has('5xx') && s >= 500) return true;
  if (on.has('gateway-error') && (s === 502 || s === 503 || s === 504)) return true;
  if (on.has('retriable-4xx') && s === 409) return true;
  if (on.has('retriable-status-codes') && policy.retriableStatusCodes.has(s)) return true;
  return false;
}

function backoffMs(policy: RetryPolicyConfig, retry: number): number {
  const ceiling = Math.min(policy.backoffMaxMs, policy.backoffBaseMs * 2 ** (retry - 1));
  return Math.random() * ceiling;
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => {
      clearTimeout(t);
      resolve();
    }, { once: true });
  });
}

export async function forward(clusters: ClusterManager, clusterName: string, req: ForwardRequest, stats: SidecarStats): Promise<ForwardResult> {
  const cluster = clusters.get(clusterName);
  if (!cluster) return { kind: 'local', reply: localReplies.clusterNotFound(), attempts: 0 };
  const labels = { envoy_cluster_name: clusterName };
  const started = Date.now();
  const deadline = req.timeoutMs > 0 ? started + req.timeoutMs : Infinity;
  const overall = new AbortController();
  const onDownstreamAbort = () => overall.abort();
  req.downstream.addEventListener('abort', onDownstreamAbort, { once: true });
  const timer = req.timeoutMs > 0 ? setTimeout(() => overall.abort(), req.timeoutMs) : undefined;
  const cleanup = () => {
    clearTimeout(timer);
    req.downstream.removeEventListener('abort', onDownstreamAbort);
  };

  const admitted = cluster.breaker.acquire();
  const release = admitted instanceof Promise ? await waitAdmission(cluster, admitted, stats, overall.signal) : admitted;
  if (!release) {
    cleanup();
    if (overall.signal.aborted) return timedOut(stats, labels);
    stats.upstreamRqPendingOverflow.inc(labels);
    return { kind: 'local', reply: localReplies.overflow(), attempts: 0 };
  }
  stats.upstreamRqActive.inc(labels);
  const releaseAll = () => {
    release();
    stats.upstreamRqActive.dec(labels);
  };

  const policy = req.retry;
  const replayable = req.body === null || Buffer.isBuffer(req.body);
  const maxAttempts = policy && replayable ? 1 + policy.numRetries : 1;
  const tried = new Set<string>();
  let last: { outcome: Outcome; host: Host } | undefined;
  let retryToken: (() => void) | undefined;
  for (let attempt = 1; attempt <= maxAttempts; attempt++) {
    if (attempt > 1) {
      retryToken?.();
      retryToken = cluster.breaker.tryRetry();
      if (!retryToken) {
        stats.upstreamRqRetryOverflow.inc(labels);
        break;
      }
      stats.upstreamRqRetry.inc(labels);
      await sleep(backoffMs(policy!, attempt - 1), overall.signal);
      if (overall.signal.aborted) break;
    }
    const host = cluster.pick({ hash: req.hash, avoid: policy?.avoidPreviousHosts ? tried : undefined });
    if (!host) {
      stats.noHealthyUpstream.inc(labels);
      if (last) break;
      retryToken?.();
      releaseAll();
      cleanup();
      return { kind: 'local', reply: localReplies.noHealthyUpstream(), attempts: attempt };
    }
    tried.add(host.key);
    const outcome = await attempt1(cluster, host, req, policy?.perTryTimeoutMs ?? 0, deadline, overall.signal, stats);
    if (outcome.kind === 'response' && attempt > 1 && outcome.response.status < 500) stats.upstreamRqRetrySuccess.inc(labels);
    if (last?.outcome.kind === 'response') {
      // The previous attempt is being retried: drop its response and free its host slot.
      last.outcome.response.body.resume();
      last.host.activeRequests--;
    }
    last = { outcome, host };
    if (overall.signal.aborted) break;
    if (!policy || attempt === maxAttempts || !shouldRetry(policy, outcome)) break;
  }
  retryToken?.();
  cleanup();
  if (overall.signal.aborted && !req.downstream.aborted && (!last || last.outcome.kind === 'failure')) {
    releaseAll();
    return timedOut(stats, labels, last?.host);
  }
  if (!last || last.outcome.kind === 'failure') {
    releaseAll();
    const reason = last?.outcome.kind === 'failure' ? last.outcome.reason : 'connection_failure';
    if (reason === 'timeout') return timedOut(stats, labels, last?.host);
    return { kind: 'local', reply: localReplies.reset(reason), host: last?.host, attempts: tried.size };
  }
  const { response } = last.outcome;
  const host = last.host;
  let finished = false;
  return {
    kind: 'response',
    response,
    host,
    attempts: tried.size,
    finish: () => {
      if (finished) return;
      finished = true;
      host.activeRequests--;
      releaseAll();
      stats.upstreamRqTime.observe(labels, Date.now() - started);
    },
  };
}

function timedOut(stats: SidecarStats, labels: { envoy_cluster_name: string }, host?: Host): ForwardResult {
  stats.upstreamRqTimeout.inc(labels);
  return { kind: 'local', reply: localReplies.timeout(), host, attempts: 1 };
}

async function waitAdmission(cluster: Cluster, admitted: Promise<(() => void) | undefined>, stats: SidecarStats, signal: AbortSignal): Promise<(() => void) | undefined> {
  const labels = { envoy_cluster_name: cluster.name };
  stats.upstreamRqPendingActive.inc(labels);
  try {
    return await Promise.race([
      admitted,
      new Promise<undefined>((resolve) => signal.addEventListener('abort', () => resolve(undefined), { once: true })),
    ]).then((release) => {
      if (signal.aborted && release) {
        release();
        return undefined;
      }
      if (!release) void admitted.then((r) => r?.());
      return release;
    });
  } finally {
    stats.upstreamRqPendingActive.dec(labels);
  }
}

/** One attempt to one host. The host's activeRequests stays raised for a returned response until finish(). */
async function attempt1(cluster: Cluster, host: Host, req: ForwardRequest, perTryMs: number, deadline: number, overall: AbortSignal, stats: SidecarStats): Promise<Outcome> {
  const labels = { envoy_cluster_name: cluster.name };
  // Without a per-try budget the attempt lives exactly as long as the request (whose
  // timer already fires at the deadline): reuse its signal rather than paying for a
  // second AbortController, listener and timer on every request.
  const budget = Math.min(perTryMs, deadline - Date.now());
  const ac = perTryMs > 0 ? new AbortController() : undefined;
  const onAbort = () => ac?.abort();
  if (ac) overall.addEventListener('abort', onAbort, { once: true });
  let perTryFired = false;
  const timer = ac
    ? setTimeout(() => {
        perTryFired = perTryMs > 0 && !overall.aborted;
        ac.abort();
      }, Math.max(0, budget))
    : undefined;
  host.activeRequests++;
  stats.upstreamRq.inc(labels);
  try {
    const response = await host.pool.send({ method: req.method, path: req.path, authority: req.authority, headers: req.headers, body: req.body, signal: ac?.signal ?? overall });
    const cls = `${Math.floor(response.status / 100)}xx`;
    stats.upstreamRqCode.inc({ ...labels, envoy_response_code: String(response.status) });
    stats.upstreamRqXx.inc({ ...labels, envoy_response_code_class: cls.slice(0, 1) });
    cluster.recordResult(host, response.status);
    return { kind: 'response', response };
  } catch (err) {
    host.activeRequests--;
    const reason: ResetReason = err instanceof UpstreamFailure ? err.reason : 'reset';
    if (reason === 'connection_failure') stats.upstreamCxConnectFail.inc(labels);
    if (perTryFired) stats.upstreamRqPerTryTimeout.inc(labels);
    if (!req.downstream.aborted) cluster.recordResult(host, 0);
    return { kind: 'failure', reason: perTryFired ? 'timeout' : reason };
  } finally {
    clearTimeout(timer);
    overall.removeEventListener('abort', onAbort);
  }
}
