// The weft sidecar's ADS connection across control-plane restarts: a Delta
// reconnect in which nothing changed gets no response, yet the sidecar says
// it is connected (the server's response headers tell it) and the control
// plane shows the versions it holds.

import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { TypeUrl } from '../../control/xds/discovery.ts';
import { runSidecar } from '../../sidecar/main.ts';
import { TestMesh, eventually, freePort, get, metric, service, withTimeout } from './harness.ts';

const closers: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of closers.reverse()) await c();
});

/** A control plane on `port` serving `model` from its first stream on (set before any proxy can connect). */
async function controlPlane(port: number, model?: TestMesh['model']['current']): Promise<TestMesh> {
  const mesh = await TestMesh.start({ port });
  if (model) mesh.model.current = model;
  else mesh.model.update({ services: [service('solo', 9)] });
  return mesh;
}

test('Delta: after a control-plane restart in which nothing changed, the sidecar reports itself connected and the control plane shows its versions', { timeout: 60_000 }, async () => {
  const port = await freePort();
  const first = await controlPlane(port);
  // Not first.sidecar(): closing that control plane would close the sidecar with it.
  const sc = await runSidecar({ service: 'solo', xds: `127.0.0.1:${port}`, appPort: 9, accessLog: false, log: () => undefined });
  closers.push(() => sc.close());
  await withTimeout(sc.ready, 10_000, 'sidecar ready');
  const xds = async () => JSON.parse((await get(sc.adminPort, 'admin', '/xds')).body) as { connected: boolean };
  assert.equal((await xds()).connected, true);
  const model = first.model.current;
  await first.close();
  await eventually(async () => !(await xds()).connected, 10_000, 'the sidecar sees the control plane gone');

  const second = await controlPlane(port, model);
  closers.push(() => second.close());
  await eventually(() => second.xds.status.get(sc.nodeId) !== undefined, 20_000, 'the sidecar back on the new control plane');
  await eventually(async () => (await xds()).connected, 10_000, '/xds connected');
  assert.equal(await metric(sc.adminPort, 'envoy_control_plane_connected_state'), 1);
  const status = second.xds.status.get(sc.nodeId)!;
  assert.equal(status.status, 'SYNCED');
  assert.ok(status.ackedVersions[TypeUrl.cluster] && status.ackedVersions[TypeUrl.listener], `versions it holds: ${JSON.stringify(status.ackedVersions)}`);
  assert.equal(status.lastAckAt, undefined, 'nothing was sent, so nothing was ACKed');
});
