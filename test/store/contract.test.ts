// The Store contract, run against both implementations: atomic revisions,
// idempotent commits, history, stateAt, subscriptions, rollback.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openFileStore } from '../../control/store/file-store.ts';
import { createMemoryStore } from '../../control/store/memory-store.ts';
import { rollbackChanges } from '../../control/store/rollback.ts';
import type { Change, Store } from '../../control/store/store.ts';

const put = (kind: string, name: string, spec: unknown): Change => ({ op: 'put', kind, namespace: 'default', name, spec });
const del = (kind: string, name: string): Change => ({ op: 'delete', kind, namespace: 'default', name });
const meta = (summary: string) => ({ actor: 'alice', summary });
const clock = () => new Date('2026-01-02T03:04:05.000Z');

const implementations: [string, (t: { after: (fn: () => void) => void }) => Promise<Store>][] = [
  ['memory store', async () => createMemoryStore({ now: clock })],
  [
    'file store',
    async (t) => {
      const dir = mkdtempSync(join(tmpdir(), 'weft-store-'));
      const store = await openFileStore(dir, { now: clock });
      t.after(() => rmSync(dir, { recursive: true, force: true }));
      return store;
    },
  ],
];

for (const [name, open] of implementations) {
  test(`${name}: a commit is one revision with its time, actor, summary and changes`, async (t) => {
    const store = await open(t);
    assert.equal(store.revision(), 0);
    const seen: number[] = [];
    const unsubscribe = store.subscribe((r) => seen.push(r));
    assert.deepEqual(await store.commit([put('Service', 'a', { n: 1 }), put('Route', 'r', { n: 2 })], meta('two objects')), { revision: 1, changed: true });
    assert.deepEqual(await store.commit([del('Route', 'r')], meta('drop route')), { revision: 2, changed: true });
    unsubscribe();
    await store.commit([put('Service', 'b', {})], meta('unheard'));
    assert.deepEqual(seen, [1, 2]);
    assert.deepEqual(store.history({ limit: 2 }).map((h) => h.summary), ['unheard', 'drop route']);
    assert.deepEqual(store.history().at(-1), {
      revision: 1, time: '2026-01-02T03:04:05.000Z', actor: 'alice', summary: 'two objects',
      changes: [{ op: 'put', kind: 'Service', namespace: 'default', name: 'a', action: 'create' }, { op: 'put', kind: 'Route', namespace: 'default', name: 'r', action: 'create' }],
    });
    assert.deepEqual(store.history({ limit: 2 }).at(-1)!.changes, [{ op: 'delete', kind: 'Route', namespace: 'default', name: 'r', action: 'delete' }]);
    assert.deepEqual(store.list().map((o) => `${o.kind}/${o.name}`), ['Service/a', 'Service/b']);
    assert.deepEqual(store.list('Service').map((o) => o.name), ['a', 'b']);
    await store.close();
  });

  test(`${name}: commits that change nothing make no revision`, async (t) => {
    const store = await open(t);
    await store.commit([put('Service', 'a', { x: 1, y: [1, 2] })], meta('first'));
    assert.deepEqual(await store.commit([put('Service', 'a', { x: 1, y: [1, 2] })], meta('same again')), { revision: 1, changed: false });
    assert.deepEqual(await store.commit([put('Service', 'a', { y: [1, 2], x: 1 })], meta('key order')), { revision: 1, changed: false });
    assert.deepEqual(await store.commit([del('Service', 'ghost')], meta('nothing to delete')), { revision: 1, changed: false });
    assert.deepEqual(await store.commit([put('Service', 'tmp', {}), del('Service', 'tmp')], meta('nets to nothing')), { revision: 1, changed: false });
    assert.deepEqual(await store.commit([put('Service', 'a', { x: 1, y: [2, 1] })], meta('array order matters')), { revision: 2, changed: true });
    assert.equal(store.history().length, 2);
    await store.close();
  });

  test(`${name}: concurrent commits become consecutive revisions in call order`, async (t) => {
    const store = await open(t);
    const results = await Promise.all([
      store.commit([put('Service', 'a', { v: 1 })], meta('1')),
      store.commit([put('Service', 'a', { v: 1 })], meta('same as the one before: no revision')),
      store.commit([put('Service', 'a', { v: 2 }), put('Service', 'b', {})], meta('2')),
      store.commit([{ op: 'put', kind: '', namespace: 'default', name: 'x', spec: {} }], meta('malformed')).catch((e: Error) => e),
      store.commit([del('Service', 'b')], meta('3')),
    ]);
    assert.deepEqual(results.slice(0, 3), [{ revision: 1, changed: true }, { revision: 1, changed: false }, { revision: 2, changed: true }]);
    assert.ok(results[3] instanceof TypeError);
    assert.deepEqual(results[4], { revision: 3, changed: true });
    assert.deepEqual(store.history().map((h) => h.summary), ['3', '2', '1']);
    // Committed together, each commit still says whether it created or updated as of the one before it.
    assert.deepEqual(store.history().map((h) => h.changes.map((c) => `${c.action} ${c.name}`)), [['delete b'], ['update a', 'create b'], ['create a']]);
    assert.deepEqual(store.list().map((o) => [o.name, o.spec]), [['a', { v: 2 }]]);
    await store.close();
  });

  test(`${name}: stored specs are copies the caller cannot mutate`, async (t) => {
    const store = await open(t);
    const spec = { ports: [80] };
    await store.commit([put('Service', 'a', spec)], meta('a'));
    spec.ports.push(81);
    const stored = store.get('Service', 'default', 'a')!.spec as { ports: number[] };
    assert.deepEqual(stored.ports, [80]);
    assert.throws(() => stored.ports.push(82), TypeError);
    await store.close();
  });

  test(`${name}: stateAt answers for every past revision; rollback restores configuration, not instances or modules`, async (t) => {
    const store = await open(t);
    await store.commit([put('Service', 'a', { v: 1 }), put('Route', 'r', { v: 1 })], meta('r1'));
    await store.commit([put('Instance', 'a-1', { address: '10.0.0.1' })], meta('instance'));
    await store.commit([put('FilterModule', 'auth', { sha256: 'ab' })], meta('module'));
    await store.commit([put('Service', 'a', { v: 2 }), del('Route', 'r'), put('DestinationPolicy', 'p', { v: 1 })], meta('r3'));
    assert.deepEqual(store.stateAt(0), []);
    assert.deepEqual(store.stateAt(1).map((o) => [o.kind, o.spec]), [['Route', { v: 1 }], ['Service', { v: 1 }]]);
    assert.throws(() => store.stateAt(5), RangeError);

    const changes = rollbackChanges(store, 1);
    assert.deepEqual(changes, [
      del('DestinationPolicy', 'p'),
      put('Service', 'a', { v: 1 }),
      put('Route', 'r', { v: 1 }),
    ]);
    assert.deepEqual(rollbackChanges(store, 1, { kinds: ['Route'] }), [put('Route', 'r', { v: 1 })]);
    assert.deepEqual(await store.commit(changes, meta('rollback to 1')), { revision: 5, changed: true });
    assert.deepEqual(store.list().map((o) => `${o.kind}/${o.name}`), ['FilterModule/auth', 'Instance/a-1', 'Route/r', 'Service/a']);
    assert.deepEqual(rollbackChanges(store, 1), []);
    await store.close();
  });

  test(`${name}: a malformed change is a caller bug and commits nothing`, async (t) => {
    const store = await open(t);
    await assert.rejects(store.commit([put('Service', 'ok', {}), { op: 'put', kind: 'Service', namespace: 'default', name: '' } as Change], meta('bad')), TypeError);
    await assert.rejects(store.commit([put('Service', 'fn', () => 1)], meta('not JSON')), TypeError);
    assert.equal(store.revision(), 0);
    await store.close();
  });
}
