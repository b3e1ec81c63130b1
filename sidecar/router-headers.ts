// The request headers Envoy's router reads on every request it forwards.
// The sidecar never sanitizes them as an edge proxy would: use_remote_address
// is not supported, so every request counts as internal, as in an Envoy
// sidecar. Each one is taken off the request before it goes upstream:
//
// - x-envoy-upstream-rq-timeout-ms: the route timeout for this request (0: none);
// - x-envoy-upstream-rq-per-try-timeout-ms: the per-try timeout (ignored
//   unless under the route timeout);
// - x-envoy-retry-on, x-envoy-retry-grpc-on: retry conditions added to the
//   route's (a request may ask for retries on a route without a policy);
// - x-envoy-max-retries: the number of retries, when there is a policy;
// - x-envoy-retriable-status-codes: status codes added to the policy's
//   retriable_status_codes (they count under retriable-status-codes);
// - x-envoy-upstream-rq-timeout-alt-response: a timeout answers 204, not 504.
// x-envoy-retriable-header-names and x-envoy-hedge-on-per-try-timeout
// (features the sidecar does not have) are taken off unread, as Envoy
// consumes every retry header.
//
// With the router's respect_expected_rq_timeout, a request's own
// x-envoy-expected-rq-timeout-ms (set by the proxy before this one) is its
// timeout, and x-envoy-upstream-rq-timeout-ms counts only without it.
//
// Unless the router says suppress_envoy_headers, the upstream request then
// carries x-envoy-expected-rq-timeout-ms: the per-try timeout if there is
// one, else the route timeout, so the upstream can give up in time.

import type { RetryPolicyConfig } from './config.ts';
import { ENVOY_RETRY_DEFAULTS } from './config.ts';
import { RETRY_ON } from './fidelity/route.ts';
import { removeHeader } from './headers.ts';
import type { HeaderPairs } from './upstream.ts';

/** A policy made by request headers alone: Envoy's retry defaults. */
const HEADER_RETRY = ENVOY_RETRY_DEFAULTS;

export interface RouterDecision {
  timeoutMs: number;
  retry: RetryPolicyConfig | undefined;
  /** x-envoy-upstream-rq-timeout-alt-response: a timeout is answered 204. */
  timeoutAltResponse: boolean;
}

const X_ENVOY = 'x-envoy-';
const expectedValues = new Map<number, string>();

function isXEnvoy(k: string): boolean {
  return k.length > 8 && k.charCodeAt(0) === 120 /* x */ && k.startsWith(X_ENVOY);
}

/** Non-negative whole milliseconds, as Envoy's SimpleAtoi reads them; undefined otherwise (the header is then dropped unread). */
function millis(v: string): number | undefined {
  return /^\d{1,10}$/.test(v) ? Number(v) : undefined;
}

/**
 * The route's timeout and retry policy after the request's own x-envoy-*
 * headers (which are removed from `headers`), and the expected timeout set on
 * `headers` when `expectedHeader`.
 */
export function applyRouterHeaders(headers: HeaderPairs, timeoutMs: number, retry: RetryPolicyConfig | undefined, expectedHeader: boolean, respectExpected = false): RouterDecision {
  let any = false;
  for (const [k] of headers) {
    if (isXEnvoy(k)) {
      any = true;
      break;
    }
  }
  let perTryMs: number | undefined;
  let retryOn: Set<string> | undefined;
  let maxRetries: number | undefined;
  let statusCodes: number[] | undefined;
  let headerNames: string[] | undefined;
  let timeoutAltResponse = false;
  if (any) {
    // respect_expected_rq_timeout: the expected timeout an earlier proxy set wins, and x-envoy-upstream-rq-timeout-ms
    // is neither read nor taken off then (as in Envoy's FilterUtility::finalTimeout).
    let expected: number | undefined;
    if (respectExpected) {
      for (const [k, v] of headers) if (k === 'x-envoy-expected-rq-timeout-ms') expected = millis(v) ?? expected;
    }
    for (let i = headers.length - 1; i >= 0; i--) {
      const [k, v] = headers[i]!;
      if (!isXEnvoy(k)) continue;
      switch (k) {
        case 'x-envoy-upstream-rq-timeout-ms':
          if (expected !== undefined) continue;
          timeoutMs = millis(v) ?? timeoutMs;
          break;
        case 'x-envoy-upstream-rq-timeout-alt-response':
          timeoutAltResponse = true;
          break;
        case 'x-envoy-upstream-rq-per-try-timeout-ms':
          perTryMs = millis(v) ?? perTryMs;
          break;
        case 'x-envoy-retry-on':
        case 'x-envoy-retry-grpc-on':
          // Unknown conditions are skipped, as Envoy skips them.
          for (const c of v.split(',')) {
            const cond = c.trim();
            if (RETRY_ON.has(cond)) (retryOn ??= new Set()).add(cond);
          }
          break;
        case 'x-envoy-max-retries':
          maxRetries = millis(v) ?? maxRetries;
          break;
        case 'x-envoy-retriable-status-codes':
          for (const c of v.split(',')) {
            const code = millis(c.trim());
            if (code !== undefined) (statusCodes ??= []).push(code);
          }
          break;
        case 'x-envoy-retriable-header-names':
          // Names only, each a presence matcher, as Envoy's RetryStateImpl reads them (retry_state_impl.cc).
          for (const c of v.split(',')) {
            const name = c.trim().toLowerCase();
            if (name !== '') (headerNames ??= []).push(name);
          }
          break;
        case 'x-envoy-hedge-on-per-try-timeout':
          break;
        default:
          // x-envoy-expected-rq-timeout-ms among them: passed on, or replaced below when there is a timeout to expect.
          continue;
      }
      headers.splice(i, 1);
    }
    if (expected !== undefined) timeoutMs = expected;
    if (retryOn || perTryMs !== undefined) {
      const base = retry ?? (retryOn ? HEADER_RETRY : { ...HEADER_RETRY, numRetries: 0 });
      retry = { ...base, retryOn: retryOn ? new Set([...base.retryOn, ...retryOn]) : base.retryOn, perTryTimeoutMs: perTryMs ?? base.perTryTimeoutMs };
    }
    if (retry && maxRetries !== undefined) retry = { ...retry, numRetries: maxRetries };
    if (retry && statusCodes) retry = { ...retry, retriableStatusCodes: new Set([...retry.retriableStatusCodes, ...statusCodes]) };
    if (retry && headerNames) retry = { ...retry, retriableHeaders: [...(retry.retriableHeaders ?? []), ...headerNames.map((name) => ({ name, present: true, invert: false }))] };
  }
  if (expectedHeader) {
    let perTry = retry?.perTryTimeoutMs ?? 0;
    if (timeoutMs > 0 && perTry >= timeoutMs) perTry = 0;
    const expected = perTry > 0 ? perTry : timeoutMs;
    if (expected > 0) {
      let value = expectedValues.get(expected);
      if (value === undefined) {
        value = String(expected);
        if (expectedValues.size < 64) expectedValues.set(expected, value);
      }
      if (any) removeHeader(headers, 'x-envoy-expected-rq-timeout-ms');
      headers.push(['x-envoy-expected-rq-timeout-ms', value]);
    }
  }
  return { timeoutMs, retry, timeoutAltResponse };
}
