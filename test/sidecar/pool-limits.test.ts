// max_requests and max_pending_requests on an HTTP/2 cluster as Envoy's pool
// applies them: a request waiting for room on a connection is pending (it
// takes a place among max_pending_requests, none among max_requests), and
// max_requests is taken as its stream is attached, so upstream_rq_active
// counts streams open upstream.

import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { TestMesh, get, instance, metric, policy, service, slowH2 } from './harness.ts';

const closers: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of closers.reverse()) await c();
});

test('HTTP/2: requests pending in the pool hold no max_requests place: max_requests 2, one stream at a time, four concurrent calls all served (two were refused 503)', { timeout: 30_000 }, async () => {
  const app = await slowH2(closers, 300, 1);
  const mesh = await TestMesh.start();
  closers.push(() => mesh.close());
  mesh.model.update({
    services: [service('pl-caller', 8000), { name: 'pl-one', namespace: 'default', ports: [{ port: 7410, protocol: 'http2' }] }],
    instances: [instance('pl-one', app.port)],
    destinationPolicies: [policy('pl-one', { circuitBreakers: { maxConnections: 1, maxPendingRequests: 10, maxRequests: 2 } })],
    routes: [],
  });
  const caller = await mesh.sidecar('pl-caller', 8000);
  assert.equal((await get(caller.outboundPort, 'pl-one')).status, 200);
  const cluster = { envoy_cluster_name: 'outbound|7410||pl-one.default' };
  const calls = Array.from({ length: 4 }, () => get(caller.outboundPort, 'pl-one'));
  await new Promise((r) => setTimeout(r, 150));
  // One stream upstream, three waiting for it: one active request, three pending.
  assert.equal(await metric(caller.adminPort, 'envoy_cluster_upstream_rq_active', cluster), 1);
  assert.equal(await metric(caller.adminPort, 'envoy_cluster_upstream_rq_pending_active', cluster), 3);
  const responses = await Promise.all(calls);
  assert.deepEqual(responses.map((r) => r.status), [200, 200, 200, 200], 'max_requests counts streams, not requests waiting for one');
  assert.equal(app.seen.mostOpen, 1);
  assert.equal(await metric(caller.adminPort, 'envoy_cluster_upstream_rq_pending_overflow', cluster), 0);
  assert.equal(await metric(caller.adminPort, 'envoy_cluster_upstream_rq_active', cluster), 0);
});

test('HTTP/2: past max_requests streams a request is refused as it would be attached (503 x-envoy-overloaded, pending_overflow), never queued', { timeout: 30_000 }, async () => {
  const app = await slowH2(closers, 300);
  const mesh = await TestMesh.start();
  closers.push(() => mesh.close());
  mesh.model.update({
    services: [service('pl-caller2', 8000), { name: 'pl-two', namespace: 'default', ports: [{ port: 7411, protocol: 'http2' }] }],
    instances: [instance('pl-two', app.port)],
    destinationPolicies: [policy('pl-two', { circuitBreakers: { maxConnections: 10, maxPendingRequests: 10, maxRequests: 2 } })],
    routes: [],
  });
  const caller = await mesh.sidecar('pl-caller2', 8000);
  assert.equal((await get(caller.outboundPort, 'pl-two')).status, 200);
  const responses = await Promise.all(Array.from({ length: 4 }, () => get(caller.outboundPort, 'pl-two')));
  const statuses = responses.map((r) => r.status).sort();
  assert.deepEqual(statuses, [200, 200, 503, 503]);
  for (const r of responses.filter((x) => x.status === 503)) assert.equal(r.headers['x-envoy-overloaded'], 'true');
  assert.equal(app.seen.mostOpen, 2);
  const cluster = { envoy_cluster_name: 'outbound|7411||pl-two.default' };
  assert.equal(await metric(caller.adminPort, 'envoy_cluster_upstream_rq_pending_overflow', cluster), 2);
  assert.equal(await metric(caller.adminPort, 'envoy_cluster_upstream_rq_active', cluster), 0);
});
