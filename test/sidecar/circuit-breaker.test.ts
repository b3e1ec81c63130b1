// Envoy's circuit breakers as its connection pools apply them: a request
// without a free connection waits among max_pending_requests; max_requests is
// never waited on: past it a request overflows at once, HTTP/2 included.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CircuitBreaker } from '../../sidecar/circuit-breaker.ts';
import { ENVOY_DEFAULT_CIRCUIT_BREAKERS } from '../../sidecar/config.ts';

const limits = (maxConnections: number, maxRequests: number, maxPendingRequests: number) => ({ ...ENVOY_DEFAULT_CIRCUIT_BREAKERS, maxConnections, maxRequests, maxPendingRequests });

test('HTTP/2: admission holds nothing; max_requests is taken as a stream is attached (tryRequest), and past it a request overflows at once, whatever max_pending_requests allows', () => {
  const cb = new CircuitBreaker(limits(1024, 2, 1024), true);
  const active = { value: 0 };
  cb.activeSeries = () => active;
  for (let i = 0; i < 5; i++) assert.equal(typeof cb.acquire(), 'function', 'a request waiting for its pool takes no max_requests place');
  assert.equal(active.value, 0);
  const first = cb.tryRequest();
  const second = cb.tryRequest();
  assert.equal(typeof first, 'function');
  assert.equal(typeof second, 'function');
  assert.equal(active.value, 2, 'upstream_rq_active counts the streams attached');
  assert.equal(cb.tryRequest(), undefined, 'the third overflows, not queued');
  first!();
  first!();
  assert.equal(active.value, 1, 'given back once');
  assert.equal(typeof cb.tryRequest(), 'function', 'a slot freed: admitted');
});

test('HTTP/1: a request waits for a busy connection (max_pending_requests), but never for max_requests', async () => {
  // One connection, one request at a time, one may wait: the second waits for the first's connection.
  const one = new CircuitBreaker(limits(1, 1, 1), false);
  let cxOverflow = 0;
  one.onCxOverflow = () => cxOverflow++;
  const running = one.acquire() as () => void;
  const waiting = one.acquire();
  assert.ok(waiting instanceof Promise);
  assert.equal(cxOverflow, 1, 'the waiting request found max_connections busy (upstream_cx_overflow)');
  assert.equal(one.acquire(), undefined, 'max_pending_requests reached');
  assert.equal(cxOverflow, 1, 'a request refused as pending overflow never asked for a connection');
  running();
  assert.equal(typeof (await waiting), 'function', 'given the freed connection');

  // Connections to spare, max_requests 2: the third is refused at once, as Envoy's pool refuses it on attaching.
  const requests = new CircuitBreaker(limits(100, 2, 100), false);
  requests.acquire();
  requests.acquire();
  assert.equal(requests.acquire(), undefined);
});
