// retry_on's gRPC conditions (Envoy's x-envoy-retry-grpc-on): a trailers-only
// response whose grpc-status (in its headers) is the condition's code is
// retried; other codes, and conditions not named, are not. A response an
// upstream Envoy rate limited is never retried.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { RetryPolicyConfig } from '../../sidecar/config.ts';
import { ENVOY_RETRY_DEFAULTS } from '../../sidecar/config.ts';
import { shouldRetry } from '../../sidecar/forward.ts';
import { UpstreamBody, type HeaderPairs } from '../../sidecar/upstream.ts';

const policy = (...retryOn: string[]): RetryPolicyConfig => ({ ...ENVOY_RETRY_DEFAULTS, retryOn: new Set(retryOn) });

const response = (status: number, headers: HeaderPairs) => ({ kind: 'response' as const, response: { status, headers, body: new UpstreamBody() } });
const trailersOnly = (grpcStatus: number) => response(200, [['content-type', 'application/grpc'], ['grpc-status', String(grpcStatus)]]);

test('each gRPC retry condition retries its own status and no other', () => {
  const codes: [string, number][] = [['cancelled', 1], ['deadline-exceeded', 4], ['resource-exhausted', 8], ['internal', 13], ['unavailable', 14]];
  for (const [cond, code] of codes) {
    for (const [, other] of codes) assert.equal(shouldRetry(policy(cond), trailersOnly(other)), other === code, `${cond} with grpc-status ${other}`);
    assert.equal(shouldRetry(policy(cond), trailersOnly(0)), false, `${cond} with OK`);
  }
  assert.equal(shouldRetry(policy('unavailable', 'internal'), trailersOnly(13)), true);
});

test('gRPC conditions need the status in the response headers; HTTP conditions still see the HTTP status', () => {
  // A response that will carry its status in trailers: nothing to decide on when the headers arrive.
  assert.equal(shouldRetry(policy('unavailable'), response(200, [['content-type', 'application/grpc']])), false);
  assert.equal(shouldRetry(policy('unavailable'), response(503, [])), false, 'an HTTP 503 is not a gRPC UNAVAILABLE');
  assert.equal(shouldRetry(policy('5xx', 'unavailable'), response(503, [])), true);
  assert.equal(shouldRetry(policy('5xx'), trailersOnly(14)), false, '5xx does not look at grpc-status');
});

test('a response an upstream Envoy rate limited (x-envoy-ratelimited) is retried under envoy-ratelimited only, whatever the other conditions', () => {
  const limited = (status: number, extra: HeaderPairs = []) => response(status, [['x-envoy-ratelimited', 'true'], ...extra]);
  const all: RetryPolicyConfig = { ...policy('5xx', 'gateway-error', 'retriable-4xx', 'retriable-status-codes', 'unavailable'), retriableStatusCodes: new Set([429]) };
  assert.equal(shouldRetry(all, limited(429)), false);
  assert.equal(shouldRetry(all, limited(503)), false);
  assert.equal(shouldRetry(all, limited(200, [['grpc-status', '14']])), false);
  assert.equal(shouldRetry(all, response(429, [])), true, 'the same 429 without the header is retried');
  assert.equal(shouldRetry(policy('envoy-ratelimited'), limited(429)), true);
  assert.equal(shouldRetry(policy('envoy-ratelimited'), response(429, [])), false, 'envoy-ratelimited needs the header');
});

test('refused-stream retries an upstream REFUSED_STREAM and no other reset; reset, 5xx and gateway-error retry both', () => {
  const refused = { kind: 'failure' as const, reason: 'remote_refused_stream_reset' as const };
  const reset = { kind: 'failure' as const, reason: 'remote_reset' as const };
  assert.equal(shouldRetry(policy('refused-stream'), refused), true);
  assert.equal(shouldRetry(policy('refused-stream'), reset), false);
  assert.equal(shouldRetry(policy('connect-failure'), refused), false);
  for (const cond of ['reset', '5xx', 'gateway-error']) {
    assert.equal(shouldRetry(policy(cond), refused), true, cond);
    assert.equal(shouldRetry(policy(cond), reset), true, cond);
  }
});
