// The weft sidecar's ADS connection across control-plane restarts: a Delta
// reconnect in which nothing changed gets no response, yet the sidecar says
// it is connected (the server's response headers tell it) and the control
// plane shows the versions it holds; through a long outage it keeps trying
// every few seconds, so it is back soon after the control plane is.

import assert from 'node:assert/strict';
import net from 'node:net';
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

test('during a long control-plane outage the sidecar keeps trying at its own backoff (100 ms doubling to 5 s), not grpc-js\'s (1 s growing to 120 s), and is back soon after the control plane', { timeout: 120_000 }, async () => {
  const port = await freePort();
  const first = await controlPlane(port);
  const sc = await runSidecar({ service: 'solo', xds: `127.0.0.1:${port}`, appPort: 9, accessLog: false, log: () => undefined });
  closers.push(() => sc.close());
  await withTimeout(sc.ready, 10_000, 'sidecar ready');
  const model = first.model.current;
  await first.close();
  // The outage: a listener that records each connection attempt and drops it (a failed connect, as a refused one).
  const attempts: number[] = [];
  const recorder = net.createServer((socket) => {
    attempts.push(Date.now());
    socket.destroy();
  });
  await new Promise<void>((resolve, reject) => recorder.once('error', reject).listen(port, '127.0.0.1', () => resolve()));
  const start = Date.now();
  // 30 s: grpc-js's schedule has reached a gap of 8.4 s or more (10.5 s +-20%) by then; a 5 s cap with its 20% jitter is at most 6 s.
  await new Promise((r) => setTimeout(r, 30_000));
  const end = Date.now();
  await new Promise<void>((r) => recorder.close(() => r()));
  const gaps = [...attempts.slice(1).map((t, i) => t - attempts[i]!), end - (attempts.at(-1) ?? start)];
  assert.ok(attempts.length >= 5, `attempts at ${attempts.map((t) => t - start).join(', ')} ms`);
  assert.ok(Math.max(...gaps) < 7200, `longest wait between attempts ${Math.max(...gaps)} ms (attempts at ${attempts.map((t) => t - start).join(', ')} ms)`);

  const back = Date.now();
  const second = await controlPlane(port, model);
  closers.push(() => second.close());
  // Bounded, generous: the channel's next attempt (at most 6 s) and the stream's own retry (at most 5 s).
  await eventually(() => second.xds.status.get(sc.nodeId) !== undefined, 15_000, `the sidecar back on the control plane (${Date.now() - back} ms)`);
});
