// Envoy's circuit breakers count as its resource manager does: the pools
// (h1-client.ts, h2-client.ts) ask for each place; what is reached shows in
// the cx_open / rq_pending_open / rq_open / rq_retry_open gauges and what is
// left in the remaining_* ones.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CircuitBreaker } from '../../sidecar/circuit-breaker.ts';
import { ENVOY_DEFAULT_CIRCUIT_BREAKERS } from '../../sidecar/config.ts';
import { Runtime } from '../../sidecar/runtime.ts';

const limits = (maxConnections: number, maxRequests: number, maxPendingRequests: number) => ({ ...ENVOY_DEFAULT_CIRCUIT_BREAKERS, maxConnections, maxRequests, maxPendingRequests });

test('max_requests: a place per request given a connection, given back once; past the limit none (overflow), never a wait', () => {
  const cb = new CircuitBreaker(limits(1024, 2, 1024));
  const active = { value: 0 };
  cb.activeSeries = () => active;
  const first = cb.tryRequest();
  const second = cb.tryRequest();
  assert.equal(typeof first, 'function');
  assert.equal(typeof second, 'function');
  assert.equal(active.value, 2, 'upstream_rq_active counts the requests attached');
  assert.equal(cb.tryRequest(), undefined, 'the third overflows');
  first!();
  first!();
  assert.equal(active.value, 1, 'given back once');
  assert.equal(cb.active, 1);
  assert.equal(typeof cb.tryRequest(), 'function', 'a place freed: admitted');
});

test('max_pending_requests: pending places are counted over the cluster', () => {
  const h1 = new CircuitBreaker(limits(2, 100, 1));
  let pendingTotal = 0;
  h1.onPending = () => pendingTotal++;
  const place = h1.tryPending();
  assert.equal(typeof place, 'function');
  assert.equal(h1.tryPending(), undefined, 'max_pending_requests reached');
  assert.equal(pendingTotal, 1, 'upstream_rq_pending_total counts the request that waited, not the one refused');
  place!();
  place!();
  assert.equal(h1.pending, 0, 'given back once');
  assert.equal(typeof h1.tryPending(), 'function');
});

test('max_retries counts retries in flight', () => {
  const cb = new CircuitBreaker({ ...ENVOY_DEFAULT_CIRCUIT_BREAKERS, maxRetries: 1 });
  const retry = cb.tryRetry();
  assert.equal(cb.tryRetry(), undefined);
  assert.equal(cb.activeRetries, 1);
  retry!();
  assert.equal(typeof cb.tryRetry(), 'function');
});

test("retry_budget: max(budget_percent% of active + pending requests, min_retry_concurrency) in place of max_retries, each field defaulting (20, 3) once either is set; the runtime keys over them, as Envoy's RetryBudgetImpl", () => {
  const runtime = new Runtime([{ name: 'admin', kind: 'admin' }], '');
  const p = 'circuit_breakers.c.default.';
  const cb = new CircuitBreaker({ ...ENVOY_DEFAULT_CIRCUIT_BREAKERS, maxRetries: 50, budgetPercent: 25 }, runtime, p);
  assert.equal(cb.retryBudgetInUse(), true);
  assert.equal(cb.maxRetries(), 3, 'no request: min_retry_concurrency, 3 where unset');
  const places = Array.from({ length: 17 }, () => cb.tryRequest()!);
  const pending = Array.from({ length: 3 }, () => cb.tryPending()!);
  assert.equal(cb.maxRetries(), 5, '25% of 20 (17 active + 3 pending)');
  places.pop()!();
  assert.equal(cb.maxRetries(), 4, '25% of 19 (16 active + 3 pending), truncated');
  const retries = Array.from({ length: 4 }, () => cb.tryRetry());
  assert.ok(retries.every((r) => typeof r === 'function'));
  assert.equal(cb.tryRetry(), undefined, 'the fifth retry in flight overflows the budget, though max_retries is 50');
  runtime.merge([[`${p}retry_budget.budget_percent`, '50']]);
  assert.equal(cb.maxRetries(), 9, 'the runtime key over budget_percent: 50% of 19 (16 active + 3 pending), truncated');
  runtime.merge([[`${p}retry_budget.min_retry_concurrency`, '30']]);
  assert.equal(cb.maxRetries(), 30);
  for (const f of [...places, ...pending]) f();
  // No budget configured: max_retries, until a retry_budget runtime key turns the budget on.
  const plain = new CircuitBreaker({ ...ENVOY_DEFAULT_CIRCUIT_BREAKERS, maxRetries: 1 }, runtime, 'circuit_breakers.d.default.');
  assert.equal(plain.retryBudgetInUse(), false);
  assert.equal(plain.maxRetries(), 1);
  runtime.merge([['circuit_breakers.d.default.retry_budget.min_retry_concurrency', '7']]);
  assert.equal(plain.retryBudgetInUse(), true);
  assert.equal(plain.maxRetries(), 7);
});

test('circuit_breakers.<cluster>.<priority>.max_* runtime keys override the configured limits at each check; an empty value removes the override', () => {
  const runtime = new Runtime([{ name: 'admin', kind: 'admin' }], '');
  const p = 'circuit_breakers.c.high.';
  const cb = new CircuitBreaker(limits(5, 5, 5), runtime, p);
  assert.equal(typeof cb.tryRequest(), 'function');
  runtime.merge([[`${p}max_requests`, '1'], [`${p}max_pending_requests`, '0'], [`${p}max_connections`, '9'], [`${p}max_retries`, '0']]);
  assert.equal(cb.tryRequest(), undefined, 'max_requests 1 from the runtime, taken');
  assert.equal(cb.tryPending(), undefined);
  assert.equal(cb.tryRetry(), undefined);
  assert.equal(cb.maxConnections(), 9);
  runtime.merge([[`${p}max_requests`, '']]);
  assert.equal(typeof cb.tryRequest(), 'function', 'back to the configured 5');
  // Another cluster's or priority's keys change nothing here.
  runtime.merge([['circuit_breakers.c.default.max_requests', '0']]);
  assert.equal(typeof cb.tryRequest(), 'function');
});
