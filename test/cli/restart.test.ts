// Restart: apply, stop `weft control`, start it again on the same data dir.
// Every object, registration and revision is still there, and a proxy that
// reconnects with the same node id gets identical resources.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { api, ROOT, startControl, weft, type ControlProcess } from './control-process.ts';
import { SotwProxy } from './sotw-proxy.ts';

const TYPES = ['listeners', 'routes', 'clusters', 'endpoints'] as const;
const manifests = ['services.yaml', 'canary.yaml', 'retries-timeouts.yaml', 'circuit-breaking.yaml']
  .map((f) => readFileSync(join(ROOT, 'examples', 'manifests', f), 'utf8'))
  .join('---\n');

/** Instances without lastHeartbeat: a restart starts every TTL window afresh, by design. */
function registrations(items: Record<string, unknown>[]): Record<string, unknown>[] {
  return items.map(({ lastHeartbeat: _fresh, ...rest }) => rest);
}

async function syncedConfig(control: ControlProcess, id: string): Promise<Record<string, unknown>> {
  const deadline = Date.now() + 60_000;
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

// Steps in order, one time bound each; they share the data dir.
describe('state, history and proxy resources survive a restart of weft control', () => {
  let dir: string;
  let control: ControlProcess;
  let proxy: SotwProxy | undefined;
  const saved: Record<string, any> = {};

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'weft-restart-'));
    control = await startControl(dir);
  });
  after(async () => {
    proxy?.close();
    await control?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('apply manifests, register instances (one draining), and sync a proxy', async () => {
    const applied = await weft(control, ['apply', '-f', '-'], {}, manifests);
    assert.equal(applied.code, 0, applied.stderr);
    await api(control, 'POST', '/api/v1/services/orders/instances', { address: '127.0.0.1', port: 9201, labels: { version: 'v1' } });
    await api(control, 'POST', '/api/v1/services/orders/instances', { address: '127.0.0.1', port: 9202, labels: { version: 'v2' }, zone: 'z2' });
    const inventory = await api(control, 'POST', '/api/v1/services/inventory/instances', { address: '127.0.0.1', port: 9203 });
    await api(control, 'PUT', `/api/v1/services/inventory/instances/${inventory.id}/health`, { health: 'draining' });

    proxy = new SotwProxy(control.xdsPort, 'orders-restart-1', 'orders');
    saved.config = await syncedConfig(control, 'orders-restart-1');
    saved.history = (await api(control, 'GET', '/api/v1/revisions')).items;
    saved.objects = (await api(control, 'GET', `/api/v1/revisions/${saved.history[0].revision}`)).objects;
    saved.instances = registrations((await api(control, 'GET', '/api/v1/instances')).items);
    proxy.close();
    proxy = undefined;
  });

  it('SIGINT stops weft control cleanly; it starts again on the same data dir', async () => {
    assert.equal(await control.stop(), 0);
    control = await startControl(dir);
    assert.doesNotMatch(control.output(), /admin token written/, 'the existing admin token is kept');
  });

  it('every object, registration and revision is still there', async () => {
    assert.deepEqual((await api(control, 'GET', '/api/v1/revisions')).items, saved.history, 'revision history survives');
    assert.deepEqual((await api(control, 'GET', `/api/v1/revisions/${saved.history[0].revision}`)).objects, saved.objects, 'every object survives');
    assert.deepEqual(registrations((await api(control, 'GET', '/api/v1/instances')).items), saved.instances, 'registrations (and the draining health) survive');
    const get = await weft(control, ['get', 'routes']);
    assert.match(get.stdout, /orders\s+orders\s+2/);
    assert.match(get.stdout, /inventory\s+inventory\s+2/);
  });

  it('a reconnecting proxy gets identical resources', async () => {
    proxy = new SotwProxy(control.xdsPort, 'orders-restart-1', 'orders');
    const config = await syncedConfig(control, 'orders-restart-1');
    for (const type of TYPES) assert.deepEqual(config[type], saved.config[type], `identical ${type} after the restart`);
    assert.ok(JSON.stringify(config.endpoints).includes('DRAINING'), 'the draining instance is still draining in EDS');
  });
});
