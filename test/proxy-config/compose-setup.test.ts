// The compose setup steps against a real control plane: `apply` installs the
// demo mesh, `register` makes each workload's instances exactly its sidecars'
// current addresses (so re-running it after a scale or a restart converges).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startControl } from '../../control/main.ts';
import { DEMO_WORKLOADS, sidecarName } from '../../proxy-config/compose-demo.ts';
import { applyDemo, planRegistrations, registerWorkload, type SetupTarget } from '../../proxy-config/compose-setup.ts';

test('planRegistrations touches only the workload (its labels) and only what differs', () => {
  const v1 = { version: 'v1' };
  const existing = [
    { id: 'a', address: '10.0.0.2', port: 15006, labels: v1 },
    { id: 'b', address: '10.0.0.3', port: 15006, labels: v1 },
    { id: 'c', address: '10.0.0.9', port: 15006, labels: { version: 'v2' } },
  ];
  const plan = planRegistrations([{ address: '10.0.0.3', port: 15006, labels: v1 }, { address: '10.0.0.4', port: 15006, labels: v1 }], existing, v1);
  assert.deepEqual(plan.add.map((i) => i.address), ['10.0.0.4']);
  assert.deepEqual(plan.remove.map((i) => i.id), ['a']);
  assert.deepEqual(planRegistrations([], existing, { version: 'v3' }), { add: [], remove: [] });
});

test('apply then register against weft control: the demo services get their sidecars as instances; a re-run converges', { timeout: 60_000 }, async (t) => {
  const dataDir = await mkdtemp(join(tmpdir(), 'weft-compose-setup-'));
  const control = await startControl({ dataDir, apiPort: 0, xdsPort: 0, host: '127.0.0.1' });
  t.after(async () => {
    await control.close();
    await rm(dataDir, { recursive: true, force: true });
  });
  const target: SetupTarget = { api: control.apiUrl, token: (await readFile(join(dataDir, 'admin.token'), 'utf8')).trim() };
  const get = async (path: string) => (await fetch(`${control.apiUrl}/api/v1${path}`, { headers: { authorization: `Bearer ${target.token}` } })).json() as Promise<any>;

  await applyDemo(target);
  assert.deepEqual((await get('/services')).items.map((s: any) => s.name ?? s.metadata?.name).sort(), ['frontend', 'inventory', 'orders']);

  // Docker DNS stand-in: each sidecar name resolves to its replicas' addresses.
  const dns = new Map(DEMO_WORKLOADS.map((w, i) => [sidecarName(w), [`10.1.0.${10 + i}`]]));
  const resolve = async (host: string) => dns.get(host) ?? [];
  for (const w of DEMO_WORKLOADS) await registerWorkload(target, w, resolve);
  const orders = (await get('/services/orders/instances')).items as { address: string; port: number; labels: Record<string, string> }[];
  assert.deepEqual(orders.map((i) => `${i.labels.version}@${i.address}:${i.port}`).sort(), ['v1@10.1.0.11:15006', 'v2@10.1.0.12:15006']);

  // orders-v1 scaled to two replicas, one of them with a new address: re-running converges.
  dns.set('orders-v1-sidecar', ['10.1.0.21', '10.1.0.22']);
  for (const w of DEMO_WORKLOADS) await registerWorkload(target, w, resolve);
  const after = (await get('/services/orders/instances')).items as { address: string; labels: Record<string, string> }[];
  assert.deepEqual(after.map((i) => `${i.labels.version}@${i.address}`).sort(), ['v1@10.1.0.21', 'v1@10.1.0.22', 'v2@10.1.0.12']);
  assert.equal((await get('/services/inventory/instances')).items.length, 1);
});
