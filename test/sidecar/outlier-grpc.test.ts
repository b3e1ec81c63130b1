// Outlier detection judges a gRPC call as Envoy's router does: a
// trailers-only answer's grpc-status (in its headers: how a server fails a
// call at once) mapped to HTTP, so a backend answering UNAVAILABLE to every
// call is a run of 503s and is ejected, though each answer is HTTP 200.

import assert from 'node:assert/strict';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { after, test } from 'node:test';
import { TestMesh, get, instance, metric, policy, service } from './harness.ts';

const closers: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of closers.reverse()) await c();
});

/** An h2c gRPC-like server answering every call trailers-only with `grpcStatus`. */
async function grpcServer(grpcStatus: number): Promise<{ port: number; calls: () => number }> {
  let calls = 0;
  const server = http2.createServer();
  server.on('stream', (stream) => {
    calls++;
    stream.on('error', () => undefined);
    stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': String(grpcStatus) }, { endStream: true });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  closers.push(() => new Promise((r) => server.close(() => r())));
  return { port: (server.address() as AddressInfo).port, calls: () => calls };
}

test('a backend answering every gRPC call UNAVAILABLE (trailers-only, HTTP 200) is ejected by consecutive_5xx; one answering OK is not', { timeout: 30_000 }, async () => {
  const failing = await grpcServer(14);
  const fine = await grpcServer(0);
  const mesh = await TestMesh.start();
  closers.push(() => mesh.close());
  mesh.model.update({
    services: [service('og-caller', 8000), { name: 'og-api', namespace: 'default', ports: [{ port: 7450, protocol: 'grpc' }] }],
    instances: [instance('og-api', failing.port), instance('og-api', fine.port)],
    destinationPolicies: [policy('og-api', { outlierDetection: { consecutive5xx: 3, intervalMs: 10_000, baseEjectionTimeMs: 30_000, maxEjectionPercent: 100 } })],
    routes: [],
  });
  const caller = await mesh.sidecar('og-caller', 8000);
  const call = () => get(caller.outboundPort, 'og-api', '/pkg.Svc/Method', { method: 'POST', headers: { 'content-type': 'application/grpc', te: 'trailers' }, body: '' });
  for (let i = 0; i < 12; i++) await call();
  const cluster = { envoy_cluster_name: 'outbound|7450||og-api.default' };
  assert.equal(await metric(caller.adminPort, 'envoy_cluster_outlier_detection_ejections_enforced_consecutive_5xx', cluster), 1);
  assert.equal(await metric(caller.adminPort, 'envoy_cluster_outlier_detection_ejections_active', cluster), 1);
  const before = failing.calls();
  for (let i = 0; i < 4; i++) await call();
  assert.equal(failing.calls(), before, 'the ejected backend gets no more calls');
  const clusters = await get(caller.adminPort, 'admin', '/clusters');
  assert.match(clusters.body, new RegExp(`::127\\.0\\.0\\.1:${failing.port}::health_flags::/failed_outlier_check`));
});
