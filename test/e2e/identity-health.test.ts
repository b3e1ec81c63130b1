// Active health checks of a service that takes mutual TLS only (STRICT): as
// Envoy's, they go over the cluster's transport socket, presenting the
// caller's certificate, so they reach the app and pass. Before, the weft
// sidecar probed in plaintext, the callee refused every probe, and every
// host sat in failed_active_hc: traffic flowed only through panic routing,
// and a dead instance could not be told from a live one.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { RunningSidecar } from '../../sidecar/main.ts';
import { get, metric, startApp, type TestApp } from '../sidecar/harness.ts';
import { IdentityMesh, callVia, eventually } from './identity-mesh.ts';

let mesh: IdentityMesh;
let frontend: RunningSidecar;
let app: TestApp;
const probes: (string | undefined)[] = [];

before(async () => {
  mesh = await IdentityMesh.start();
  await mesh.must('POST', '/services', { name: 'frontend', ports: [{ port: 8080, protocol: 'http' }] });
  await mesh.must('POST', '/services', { name: 'orders', ports: [{ port: 8080, protocol: 'http' }], healthCheck: { path: '/healthz', intervalMs: 200, timeoutMs: 200, unhealthyThreshold: 2 } });
  await mesh.must('POST', '/peer-authentications', { name: 'orders-strict', service: 'orders', mode: 'STRICT' });
  app = await startApp('orders', (req, res) => {
    if (req.url === '/healthz') probes.push(req.headers['user-agent']);
    res.end('ok');
  });
  ({ sidecar: frontend } = await mesh.workload('frontend'));
  await mesh.workload('orders', { app });
}, { timeout: 60_000 });

after(() => mesh?.close(), { timeout: 20_000 });

test('health checks of a STRICT service go over mutual TLS, reach the app and pass', { timeout: 30_000 }, async () => {
  await eventually(async () => probes.length >= 3, 'three health checks reached the app');
  assert.ok(probes.every((ua) => ua === 'Envoy/HC'));
  await eventually(async () => (await metric(frontend.adminPort, 'envoy_cluster_health_check_success', { envoy_cluster_name: 'outbound|8080||orders.default' })) >= 3, 'successes counted');
  const clusters = (await get(frontend.adminPort, 'admin', '/clusters')).body;
  const flags = clusters.split('\n').filter((l) => l.startsWith('outbound|8080||orders.default::') && l.includes('::health_flags::'));
  assert.equal(flags.length, 1);
  assert.match(flags[0]!, /::health_flags::healthy$/);
  assert.equal((await callVia(frontend, 'orders', '/x')).status, 200);
});
