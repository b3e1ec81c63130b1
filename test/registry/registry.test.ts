// The registry: registration, TTL liveness on a fake clock, heartbeats,
// health, restart, and the model it assembles.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createMemoryStore } from '../../control/store/memory-store.ts';
import { openFileStore } from '../../control/store/file-store.ts';
import { createRegistry, type InstanceChange } from '../../control/registry/registry.ts';
import { buildModel } from '../../control/registry/build-model.ts';
import type { Store } from '../../control/store/store.ts';
import type { Instance } from '../../control/model/types.ts';

function fakeClock(start = 1_000_000) {
  let t = start;
  return { now: () => t, advance: (ms: number) => (t += ms) };
}

async function withService(store: Store, name = 'orders'): Promise<void> {
  await store.commit([{ op: 'put', kind: 'Service', namespace: 'default', name, spec: { name, namespace: 'default', ports: [{ port: 8080, protocol: 'http' }] } }], { actor: 'op', summary: `add ${name}` });
}

function registered(result: { ok: boolean }): Instance {
  assert.ok(result.ok, JSON.stringify(result));
  return (result as unknown as { value: Instance }).value;
}

test('registering assigns an id, stores the instance and makes it live', async () => {
  const store = createMemoryStore();
  await withService(store);
  const registry = createRegistry(store);
  const changes: InstanceChange[] = [];
  registry.onChange((c) => changes.push(c));
  const inst = registered(await registry.register('orders', 'default', { address: '127.0.0.1', port: 15006, labels: { version: 'v1' }, zone: 'a' }));
  assert.match(inst.id, /^orders-[0-9a-f]{10}$/);
  assert.deepEqual({ ...inst, id: 'x' }, { id: 'x', service: 'orders', namespace: 'default', address: '127.0.0.1', port: 15006, labels: { version: 'v1' }, zone: 'a', health: 'healthy', ttlSeconds: 0 });
  assert.deepEqual(store.get('Instance', 'default', inst.id)?.spec, inst);
  assert.deepEqual(registry.liveInstances(), [inst]);
  assert.deepEqual(changes.map((c) => [c.type, c.reason, c.instance.id]), [['added', 'registered', inst.id]]);
});

test('registering for an unknown service is refused and stores nothing', async () => {
  const store = createMemoryStore();
  const registry = createRegistry(store);
  const result = await registry.register('ghost', 'default', { address: '10.0.0.1', port: 80 });
  assert.deepEqual(result, { ok: false, errors: [{ path: 'service', message: 'unknown service default/ghost: register the service first' }] });
  assert.equal(store.revision(), 0);
});

test('re-registering the same address and port keeps the id and updates the instance', async () => {
  const store = createMemoryStore();
  await withService(store);
  const registry = createRegistry(store);
  const first = registered(await registry.register('orders', 'default', { address: '10.0.0.1', port: 80, labels: { version: 'v1' } }));
  const again = registered(await registry.register('orders', 'default', { address: '10.0.0.1', port: 80, labels: { version: 'v2' } }));
  assert.equal(again.id, first.id);
  assert.deepEqual(registry.liveInstances().map((i) => i.labels.version), ['v2']);
  const before = store.revision();
  registered(await registry.register('orders', 'default', { address: '10.0.0.1', port: 80, labels: { version: 'v2' } }));
  assert.equal(store.revision(), before, 'an identical re-registration writes nothing');
});

test('an instance whose TTL lapses leaves the live set; a heartbeat keeps it and revives it', async () => {
  const store = createMemoryStore();
  await withService(store);
  const clock = fakeClock();
  const registry = createRegistry(store, { now: clock.now });
  const changes: InstanceChange[] = [];
  registry.onChange((c) => changes.push(c));
  const ttl = registered(await registry.register('orders', 'default', { address: '10.0.0.1', port: 80, ttlSeconds: 10 }));
  const fixed = registered(await registry.register('orders', 'default', { address: '10.0.0.2', port: 80 }));
  const revision = store.revision();

  // Heartbeats every 8 s keep it alive well past one TTL.
  for (let i = 0; i < 5; i++) {
    clock.advance(8_000);
    assert.equal(registry.heartbeat(ttl.id)?.id, ttl.id);
    assert.deepEqual(await registry.sweep(), []);
  }
  assert.equal(registry.liveInstances().length, 2);
  assert.equal(store.revision(), revision, 'heartbeats write nothing to the store');

  clock.advance(10_001);
  const swept = await registry.sweep();
  assert.deepEqual(swept.map((c) => [c.type, c.reason, c.instance.id]), [['removed', 'expired', ttl.id]]);
  assert.deepEqual(registry.liveInstances().map((i) => i.id), [fixed.id], 'the static registration never lapses');
  assert.deepEqual(await registry.sweep(), [], 'expiry is reported once');
  assert.equal(registry.get(ttl.id)?.id, ttl.id, 'still registered while lapsed');

  registry.heartbeat(ttl.id);
  assert.equal(registry.liveInstances().length, 2);
  assert.deepEqual(changes.slice(-2).map((c) => [c.type, c.reason]), [['removed', 'expired'], ['added', 'revived']]);
  assert.equal(registry.heartbeat('orders-unknown'), undefined);
});

test('instances that lapse in one sweep are written as one revision naming them', async () => {
  // One revision each made a mass expiry (a partition) push the operators' own revisions out of `weft history`.
  const store = createMemoryStore();
  await withService(store);
  const clock = fakeClock();
  const registry = createRegistry(store, { now: clock.now });
  const ids: string[] = [];
  for (let i = 0; i < 7; i++) ids.push(registered(await registry.register('orders', 'default', { address: '127.0.0.1', port: 16000 + i, ttlSeconds: 5 })).id);
  const before = store.revision();
  clock.advance(6_000);
  assert.equal((await registry.sweep()).length, 7);
  assert.equal(store.revision(), before + 1, 'one revision for the sweep');
  for (const id of ids) assert.equal((store.get('Instance', 'default', id)?.spec as Instance).lapsedAt, new Date(1_000_000 + 5_000).toISOString(), `${id}'s expiry is stored`);
  const last = store.history()[0]!; // newest first
  assert.match(last.summary, /^7 instances lapsed, no heartbeat within their TTL: orders-\w+ of default\/orders, .*, \.\.\.$/);
});

test('an instance silent long past its TTL is deregistered', async () => {
  const store = createMemoryStore();
  await withService(store);
  const clock = fakeClock();
  const registry = createRegistry(store, { now: clock.now, reapAfterMs: 60_000 });
  const inst = registered(await registry.register('orders', 'default', { address: '10.0.0.1', port: 80, ttlSeconds: 5 }));
  clock.advance(6_000);
  await registry.sweep();
  assert.ok(store.get('Instance', 'default', inst.id));
  clock.advance(60_000);
  assert.deepEqual((await registry.sweep()).map((c) => c.reason), ['reaped']);
  assert.equal(store.get('Instance', 'default', inst.id), undefined);
  assert.equal(registry.get(inst.id), undefined);
});

test('health changes are stored and reflected in the live set; deregister removes', async () => {
  const store = createMemoryStore();
  await withService(store);
  const registry = createRegistry(store);
  const changes: InstanceChange[] = [];
  registry.onChange((c) => changes.push(c));
  const inst = registered(await registry.register('orders', 'default', { address: '10.0.0.1', port: 80 }));
  assert.equal((await registry.setHealth(inst.id, 'draining'))?.health, 'draining');
  assert.deepEqual(registry.liveInstances().map((i) => i.health), ['draining']);
  assert.equal((store.get('Instance', 'default', inst.id)?.spec as Instance).health, 'draining');
  await registry.setHealth(inst.id, 'unhealthy');
  assert.deepEqual(buildModel(store, registry).instances.map((i) => i.health), ['unhealthy']);
  assert.equal(await registry.setHealth('nope', 'healthy'), undefined);

  assert.equal(await registry.deregister(inst.id), true);
  assert.equal(await registry.deregister(inst.id), false);
  assert.deepEqual(registry.liveInstances(), []);
  assert.equal(store.get('Instance', 'default', inst.id), undefined);
  assert.deepEqual(changes.map((c) => `${c.type}:${c.reason}`), ['added:registered', 'updated:health', 'updated:health', 'removed:deregistered']);
});

test('after a restart, registrations are back and TTL instances get a fresh window', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-registry-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  let store = await openFileStore(dir);
  await withService(store);
  const clock = fakeClock();
  let registry = createRegistry(store, { now: clock.now });
  const ttl = registered(await registry.register('orders', 'default', { address: '10.0.0.1', port: 80, ttlSeconds: 10 }));
  const drained = registered(await registry.register('orders', 'default', { address: '10.0.0.2', port: 80 }));
  await registry.setHealth(drained.id, 'draining');
  await store.close();

  clock.advance(3_600_000); // the control plane was down for an hour
  store = await openFileStore(dir);
  registry = createRegistry(store, { now: clock.now });
  assert.deepEqual(await registry.sweep(), [], 'no instance expires for the outage');
  assert.deepEqual(registry.liveInstances().map((i) => [i.id, i.health]).sort(), [[ttl.id, 'healthy'], [drained.id, 'draining']].sort());
  clock.advance(10_001);
  assert.deepEqual((await registry.sweep()).map((c) => c.instance.id), [ttl.id], 'but one that stays silent still expires');
  await store.close();
});

test('an instance that had lapsed before a restart stays out of the live set until it heartbeats', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-registry-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  let store = await openFileStore(dir);
  await withService(store);
  const clock = fakeClock();
  let registry = createRegistry(store, { now: clock.now, reapAfterMs: 60_000 });
  const dead = registered(await registry.register('orders', 'default', { address: '10.0.0.1', port: 80, ttlSeconds: 5 }));
  const alive = registered(await registry.register('orders', 'default', { address: '10.0.0.2', port: 80, ttlSeconds: 5 }));
  clock.advance(4_000);
  registry.heartbeat(alive.id);
  clock.advance(2_000);
  assert.deepEqual((await registry.sweep()).map((c) => [c.reason, c.instance.id]), [['expired', dead.id]]);
  assert.equal((store.get('Instance', 'default', dead.id)?.spec as Instance).lapsedAt, new Date(1_000_000 + 5_000).toISOString(), 'the expiry is stored');
  await store.close();

  clock.advance(30_000); // the control plane is down for 30 s, then starts again
  store = await openFileStore(dir);
  t.after(() => store.close());
  registry = createRegistry(store, { now: clock.now, reapAfterMs: 60_000 });
  assert.deepEqual(registry.liveInstances().map((i) => i.id), [alive.id], 'the dead instance is not back in EDS');
  assert.deepEqual(buildModel(store, registry).instances.map((i) => i.id), [alive.id]);

  registry.heartbeat(dead.id);
  assert.deepEqual(registry.liveInstances().map((i) => i.id).sort(), [alive.id, dead.id].sort(), 'a heartbeat brings it back');
  assert.equal(registry.get(dead.id)?.lapsedAt, undefined);
  for (let i = 0; i < 100 && (store.get('Instance', 'default', dead.id)?.spec as Instance).lapsedAt !== undefined; i++) await new Promise((r) => setTimeout(r, 10));
  assert.equal((store.get('Instance', 'default', dead.id)?.spec as Instance).lapsedAt, undefined, 'and the revival is stored');

  // A lapsed instance that never comes back is reaped on its original schedule, not one restarted by the restart.
  clock.advance(2_000);
  registry.heartbeat(alive.id);
  clock.advance(6_000);
  await registry.sweep(); // dead lapses again at +5 s after its heartbeat
  clock.advance(60_001);
  registry.heartbeat(alive.id);
  assert.deepEqual((await registry.sweep()).map((c) => [c.reason, c.instance.id]), [['reaped', dead.id]]);
});

test('buildModel assembles the store and the live instances, dropping instances of deleted services', async () => {
  const store = createMemoryStore();
  await withService(store, 'orders');
  await withService(store, 'web');
  await store.commit(
    [
      { op: 'put', kind: 'Route', namespace: 'default', name: 'r', spec: { name: 'r', namespace: 'default', service: 'orders', rules: [] } },
      { op: 'put', kind: 'DestinationPolicy', namespace: 'default', name: 'p', spec: { name: 'p', namespace: 'default', service: 'orders' } },
      { op: 'put', kind: 'FilterBinding', namespace: 'default', name: 'b', spec: { name: 'b', namespace: 'default', service: 'orders' } },
      { op: 'put', kind: 'FilterModule', namespace: 'default', name: 'auth', spec: { name: 'auth', sha256: 'ab', size: 1, abiVersion: '0.2.1' } },
    ],
    { actor: 'op', summary: 'policy' },
  );
  const registry = createRegistry(store);
  const o = registered(await registry.register('orders', 'default', { address: '10.0.0.1', port: 80 }));
  registered(await registry.register('web', 'default', { address: '10.0.0.2', port: 80 }));
  await store.commit([{ op: 'delete', kind: 'Service', namespace: 'default', name: 'web' }], { actor: 'op', summary: 'drop web' });

  const model = buildModel(store, registry);
  assert.equal(model.revision, store.revision());
  assert.deepEqual(model.services.map((s) => s.name), ['orders']);
  assert.deepEqual(model.instances.map((i) => i.id), [o.id]);
  assert.deepEqual([model.routes.length, model.destinationPolicies.length, model.filterBindings.length, model.filterModules.length], [1, 1, 1, 1]);
});

test('concurrent registrations of one address end as one instance', async () => {
  const store = createMemoryStore();
  await withService(store);
  const registry = createRegistry(store);
  const results = await Promise.all([1, 2, 3].map((v) => registry.register('orders', 'default', { address: '10.0.0.9', port: 80, labels: { try: String(v) } })));
  const ids = new Set(results.map((r) => registered(r).id));
  assert.equal(ids.size, 1);
  assert.deepEqual(registry.liveInstances().map((i) => i.labels.try), ['3']);
  assert.equal(store.list('Instance').length, 1);
});

test('start() sweeps on its own until stop()', async () => {
  const store = createMemoryStore();
  await withService(store);
  const clock = fakeClock();
  const registry = createRegistry(store, { now: clock.now });
  const inst = registered(await registry.register('orders', 'default', { address: '10.0.0.1', port: 80, ttlSeconds: 1 }));
  clock.advance(1_001);
  const expired = new Promise<InstanceChange>((resolve) => registry.onChange(resolve));
  registry.start(5);
  // The registry's timer is unref'd by contract, so this guard timer must not
  // be: it is what keeps the event loop alive until the sweep runs.
  let guard: NodeJS.Timeout | undefined;
  try {
    const change = await Promise.race([expired, new Promise<never>((_, reject) => { guard = setTimeout(() => reject(new Error('no sweep ran')), 10_000); })]);
    assert.deepEqual([change.reason, change.instance.id], ['expired', inst.id]);
  } finally {
    clearTimeout(guard);
    registry.stop();
  }
  assert.deepEqual(registry.liveInstances(), []);
});
