// upstream_rq_<code> and upstream_rq_<class>xx as Envoy's router charges
// them: the answer that goes downstream, not the ones a retry policy retried;
// and for a request the upstream never answered (connect failure, reset,
// timeout, overflow) the code of the local reply, so a 5xx rate sees a dead
// upstream.

import assert from 'node:assert/strict';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { after, test } from 'node:test';
import { TestMesh, get, instance, metric, service, startApp } from './harness.ts';

const closers: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of closers.reverse()) await c();
});

const code = (cluster: string, c: number) => ({ envoy_cluster_name: cluster, envoy_response_code: String(c) });
const cls = (cluster: string, c: number) => ({ envoy_cluster_name: cluster, envoy_response_code_class: String(c) });

test('a 503 a retry policy retried is not counted as the cluster\'s upstream_rq_503: only the 200 that went downstream', { timeout: 30_000 }, async () => {
  const app = await startApp('uc-flaky', (_req, res, hit) => {
    res.statusCode = hit === 1 ? 503 : 200;
    res.end();
  });
  closers.push(() => app.close());
  const mesh = await TestMesh.start();
  closers.push(() => mesh.close());
  mesh.model.update({
    services: [service('uc-caller', 8000), service('uc-flaky', 7440)],
    instances: [instance('uc-flaky', app.port)],
    routes: [{ name: 'uc-flaky', namespace: 'default', service: 'uc-flaky', rules: [{ name: 'r', destinations: [{ service: 'uc-flaky', weight: 1 }], retries: { attempts: 1, retryOn: ['5xx'] } }] }],
  });
  const caller = await mesh.sidecar('uc-caller', 8000);
  assert.equal((await get(caller.outboundPort, 'uc-flaky')).status, 200);
  const cluster = 'outbound|7440||uc-flaky.default';
  assert.equal(await metric(caller.adminPort, 'envoy_cluster_upstream_rq', code(cluster, 200)), 1);
  assert.equal(await metric(caller.adminPort, 'envoy_cluster_upstream_rq', code(cluster, 503)), 0, 'the retried 503 is not an answer the cluster gave');
  assert.equal(await metric(caller.adminPort, 'envoy_cluster_upstream_rq_xx', cls(cluster, 5)), 0);
  assert.equal(await metric(caller.adminPort, 'envoy_cluster_upstream_rq_total', { envoy_cluster_name: cluster }), 2, 'both attempts went upstream');
  assert.equal(await metric(caller.adminPort, 'envoy_cluster_retry_upstream_rq', code(cluster, 503)), 1, 'the retried 503, under retry.');
  assert.equal(await metric(caller.adminPort, 'envoy_cluster_retry_upstream_rq_xx', cls(cluster, 5)), 1);
  const text = await get(caller.adminPort, 'admin', '/stats?filter=retry');
  assert.match(text.body, /^cluster\.outbound\|7440\|\|uc-flaky\.default\.retry\.upstream_rq_503: 1$/m, "Envoy's stat name");
});

test('a connect failure and a route timeout are counted by their local reply\'s code (503, 504) among upstream_rq_<code> and _5xx', { timeout: 30_000 }, async () => {
  const probe = net.createServer();
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', () => r()));
  const refused = (probe.address() as AddressInfo).port;
  await new Promise<void>((r) => probe.close(() => r()));
  const slow = await startApp('uc-slow', (_req, res) => setTimeout(() => res.end(), 1500));
  closers.push(() => slow.close());
  const mesh = await TestMesh.start();
  closers.push(() => mesh.close());
  mesh.model.update({
    services: [service('uc-caller2', 8000), service('uc-gone', 7441), service('uc-slow', 7442)],
    instances: [instance('uc-gone', refused), instance('uc-slow', slow.port)],
    routes: [{ name: 'uc-slow', namespace: 'default', service: 'uc-slow', rules: [{ name: 'r', destinations: [{ service: 'uc-slow', weight: 1 }], timeoutMs: 200 }] }],
  });
  const caller = await mesh.sidecar('uc-caller2', 8000);
  assert.equal((await get(caller.outboundPort, 'uc-gone')).status, 503);
  assert.equal((await get(caller.outboundPort, 'uc-slow')).status, 504);
  const gone = 'outbound|7441||uc-gone.default';
  const timedOut = 'outbound|7442||uc-slow.default';
  assert.equal(await metric(caller.adminPort, 'envoy_cluster_upstream_rq', code(gone, 503)), 1);
  assert.equal(await metric(caller.adminPort, 'envoy_cluster_upstream_rq_xx', cls(gone, 5)), 1);
  assert.equal(await metric(caller.adminPort, 'envoy_cluster_upstream_rq', code(timedOut, 504)), 1);
  assert.equal(await metric(caller.adminPort, 'envoy_cluster_upstream_rq_xx', cls(timedOut, 5)), 1);
  // upstream_rq_total counts requests given a connection, as Envoy's pool counts them: not the one whose connection failed.
  assert.equal(await metric(caller.adminPort, 'envoy_cluster_upstream_rq_total', { envoy_cluster_name: gone }), 0);
  assert.equal(await metric(caller.adminPort, 'envoy_cluster_upstream_rq_total', { envoy_cluster_name: timedOut }), 1);
  const hosts = (await get(caller.adminPort, 'admin', '/clusters')).body;
  assert.match(hosts, new RegExp(`^outbound\\|7441\\|\\|uc-gone\\.default::127\\.0\\.0\\.1:${refused}::rq_total::0$`, 'm'), "the host's rq_total too");
});
