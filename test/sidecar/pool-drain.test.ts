// A host EDS removes (an instance deregistered in a rolling deploy or a
// scale-down) is drained as Envoy drains its connection pools: requests in
// flight on it finish, the idle connections close, new requests go to the
// hosts that remain.

import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { TestMesh, eventually, get, instance, policy, service, startApp } from './harness.ts';

const closers: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of closers.reverse()) await c();
});

test('HTTP/1.1: a request in flight on a host EDS removes completes (it was cut: 503 connection termination)', { timeout: 30_000 }, async () => {
  const slow = await startApp('leaving', (_req, res) => setTimeout(() => res.end('finished'), 600));
  const stays = await startApp('staying', (_req, res) => res.end('other'));
  closers.push(() => slow.close(), () => stays.close());
  const mesh = await TestMesh.start();
  closers.push(() => mesh.close());
  const leaving = instance('drained', slow.port);
  const staying = instance('drained', stays.port);
  mesh.model.update({ services: [service('dr-caller', 8000), service('drained', 7420)], instances: [leaving], routes: [] });
  const caller = await mesh.sidecar('dr-caller', 8000);
  const inFlight = get(caller.outboundPort, 'drained');
  await eventually(() => slow.hits === 1, 5000, 'the request at the host');
  mesh.model.update({ instances: [staying] });
  await eventually(async () => (await get(caller.outboundPort, 'drained')).body === 'other', 5000, 'new requests at the remaining host');
  const r = await inFlight;
  assert.deepEqual([r.status, r.body], [200, 'finished']);
});

test('HTTP/1.1: a request in flight when a CDS update changes the cluster\'s connection settings completes on its old connection (it was cut)', { timeout: 30_000 }, async () => {
  const slow = await startApp('reconfigured', (_req, res) => setTimeout(() => res.end('finished'), 600));
  closers.push(() => slow.close());
  const mesh = await TestMesh.start();
  closers.push(() => mesh.close());
  mesh.model.update({ services: [service('dr-caller2', 8000), service('reconfigured', 7421)], instances: [instance('reconfigured', slow.port)], routes: [] });
  const caller = await mesh.sidecar('dr-caller2', 8000);
  const inFlight = get(caller.outboundPort, 'reconfigured');
  await eventually(() => slow.hits === 1, 5000, 'the request at the host');
  mesh.model.update({ destinationPolicies: [policy('reconfigured', { connectTimeoutMs: 2500 })] });
  await eventually(async () => (await get(caller.adminPort, 'admin', '/config_dump?resource=dynamic_active_clusters')).body.includes('2.500s'), 5000, 'the new connect timeout applied');
  const r = await inFlight;
  assert.deepEqual([r.status, r.body], [200, 'finished']);
});
