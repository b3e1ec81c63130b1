// Envoy's circuit breakers as its connection pools apply them: a request
// without a free connection waits among max_pending_requests; max_requests is
// never waited on: past it a request overflows at once, HTTP/2 included.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CircuitBreaker } from '../../sidecar/circuit-breaker.ts';
import { ENVOY_DEFAULT_CIRCUIT_BREAKERS } from '../../sidecar/config.ts';

const limits = (maxConnections: number, maxRequests: number, maxPendingRequests: number) => ({ ...ENVOY_DEFAULT_CIRCUIT_BREAKERS, maxConnections, maxRequests, maxPendingRequests });

test('HTTP/2: past max_requests a request overflows at once, whatever max_pending_requests allows', () => {
  const cb = new CircuitBreaker(limits(1024, 2, 1024), true);
  const first = cb.acquire();
  const second = cb.acquire();
  assert.equal(typeof first, 'function');
  assert.equal(typeof second, 'function');
  assert.equal(cb.acquire(), undefined, 'the third overflows, not queued');
  (first as () => void)();
  assert.equal(typeof cb.acquire(), 'function', 'a slot freed: admitted');
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
