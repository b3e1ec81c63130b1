// Restart: apply, stop `weft control`, start it again on the same data dir.
// Every object, registration and revision is still there, and a proxy that
// reconnects with the same node id gets identical resources.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { api, ROOT, startControl, weft, type ControlProcess } from './control-process.ts';
import { SotwProxy } from './sotw-proxy.ts';

const manifest = (name: string) => join(ROOT, 'examples', 'manifests', name);
const TYPES = ['listeners', 'routes', 'clusters', 'endpoints'] as const;

async function syncedConfig(control: ControlProcess, id: string): Promise<Record<string, unknown>> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const proxy = await api(control, 'GET', `/api/v1/proxies/${id}`).catch(() => undefined);
    if (proxy?.status === 'SYNCED' && proxy.versions.routes && proxy.versions.endpoints) {
      const config = await api(control, 'GET', `/api/v1/proxies/${id}/config`);
      if (TYPES.every((t) => config[t].length > 0)) return config;
    }
    if (Date.now() > deadline) throw new Error(`proxy ${id} did not sync: ${JSON.stringify(proxy)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

test('state, history and proxy resources survive a restart of weft control', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'weft-restart-'));
  let control = await startControl(dir);
  let proxy: SotwProxy | undefined;
  t.after(async () => {
    proxy?.close();
    await control.stop();
    await rm(dir, { recursive: true, force: true });
  });

  for (const f of ['services.yaml', 'canary.yaml', 'retries-timeouts.yaml', 'circuit-breaking.yaml']) {
    const r = await weft(control, ['apply', '-f', manifest(f)]);
    assert.equal(r.code, 0, r.stderr);
  }
  await api(control, 'POST', '/api/v1/services/orders/instances', { address: '127.0.0.1', port: 9201, labels: { version: 'v1' } });
  await api(control, 'POST', '/api/v1/services/orders/instances', { address: '127.0.0.1', port: 9202, labels: { version: 'v2' }, zone: 'z2' });
  const inventory = await api(control, 'POST', '/api/v1/services/inventory/instances', { address: '127.0.0.1', port: 9203 });
  await api(control, 'PUT', `/api/v1/services/inventory/instances/${inventory.id}/health`, { health: 'draining' });

  proxy = new SotwProxy(control.xdsPort, 'orders-restart-1', 'orders');
  const before = await syncedConfig(control, 'orders-restart-1');
  const objectsBefore = await api(control, 'GET', `/api/v1/revisions/${(await api(control, 'GET', '/api/v1/revisions')).current}`);
  const historyBefore = (await api(control, 'GET', '/api/v1/revisions')).items;
  const instancesBefore = (await api(control, 'GET', '/api/v1/instances')).items;
  proxy.close();
  proxy = undefined;

  assert.equal(await control.stop(), 0, 'SIGINT stops weft control cleanly');
  control = await startControl(dir);
  assert.doesNotMatch(control.output(), /admin token written/, 'the existing admin token is kept');

  assert.deepEqual((await api(control, 'GET', '/api/v1/revisions')).items, historyBefore, 'revision history survives');
  const objectsAfter = await api(control, 'GET', `/api/v1/revisions/${historyBefore[0].revision}`);
  assert.deepEqual(objectsAfter.objects, objectsBefore.objects, 'every object survives');
  const instancesAfter = (await api(control, 'GET', '/api/v1/instances')).items;
  assert.deepEqual(instancesAfter, instancesBefore, 'registrations (and the draining health) survive');
  const get = await weft(control, ['get', 'routes']);
  assert.match(get.stdout, /orders\s+orders\s+2/);
  assert.match(get.stdout, /inventory\s+inventory\s+2/);

  proxy = new SotwProxy(control.xdsPort, 'orders-restart-1', 'orders');
  const after = await syncedConfig(control, 'orders-restart-1');
  for (const type of TYPES) assert.deepEqual(after[type], before[type], `identical ${type} after the restart`);
  assert.ok(JSON.stringify(after.endpoints).includes('DRAINING'), 'the draining instance is still draining in EDS');
});
