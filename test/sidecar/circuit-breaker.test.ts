// Envoy's circuit breakers count as its resource manager does: the pools
// (h1-client.ts, h2-client.ts) ask for each place; what is reached shows in
// the cx_open / rq_pending_open / rq_open / rq_retry_open gauges and what is
// left in the remaining_* ones.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CircuitBreaker } from '../../sidecar/circuit-breaker.ts';
import { ENVOY_DEFAULT_CIRCUIT_BREAKERS } from '../../sidecar/config.ts';

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
