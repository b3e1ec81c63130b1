// File-store specifics: compaction, reopening, the data-dir lock.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, readdirSync, renameSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { openFileStore } from '../../control/store/file-store.ts';
import { tempDir } from './fixtures/temp.ts';

const put = (name: string, spec: unknown) => ({ op: 'put' as const, kind: 'Service', namespace: 'default', name, spec });

test('compaction keeps history and every past state, and reopening uses the snapshot', async (t) => {
  const dir = tempDir(t);
  let store = await openFileStore(dir, { compactEvery: 4 });
  for (let i = 1; i <= 10; i++) await store.commit([put(`s${i % 3}`, { i })], { actor: 'bob', summary: `commit ${i}` });
  const expected = Array.from({ length: 11 }, (_, r) => store.stateAt(r));
  await store.close();

  const files = readdirSync(join(dir, 'store')).sort();
  assert.deepEqual(files.filter((f) => f.startsWith('snapshot-')), ['snapshot-000000000008.json']);
  assert.deepEqual(files.filter((f) => f.startsWith('log-')), ['log-000000000001.jsonl', 'log-000000000005.jsonl', 'log-000000000009.jsonl']);

  store = await openFileStore(dir, { compactEvery: 4 });
  assert.deepEqual(store.openReport, { snapshotRevision: 8, replayed: 2 });
  assert.equal(store.revision(), 10);
  assert.deepEqual(store.history().map((h) => h.summary), Array.from({ length: 10 }, (_, i) => `commit ${10 - i}`));
  // Whether each put created or updated survives the snapshot and the log's replay.
  assert.deepEqual(store.history().map((h) => h.changes[0]!.action).reverse(), ['create', 'create', 'create', ...Array(7).fill('update')]);
  for (let r = 0; r <= 10; r++) assert.deepEqual(store.stateAt(r), expected[r], `stateAt(${r})`);
  assert.deepEqual(store.stateAt(5).map((o) => [o.name, o.spec]), [['s0', { i: 3 }], ['s1', { i: 4 }], ['s2', { i: 5 }]]);
  await store.close();
});

test('a second open of the same data dir is refused while the first holds it', async (t) => {
  const dir = tempDir(t);
  const first = await openFileStore(dir);
  await assert.rejects(openFileStore(dir), new RegExp(`locked by running process ${process.pid}`));
  await first.close();
  const second = await openFileStore(dir);
  await second.close();
});

test('a lock left by a dead process is taken over', async (t) => {
  const dir = tempDir(t);
  const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  mkdirSync(join(dir, 'store'), { recursive: true });
  writeFileSync(join(dir, 'store', 'LOCK'), `${dead.stdout}\n`);
  const store = await openFileStore(dir);
  assert.equal(store.revision(), 0);
  await store.close();
});

test("a lock naming this process's own pid, or a live pid that started at another time, is stale (a restarted container reuses pids)", async (t) => {
  const dir = tempDir(t);
  mkdirSync(join(dir, 'store'), { recursive: true });
  // In a container restarted after kill -9, the new control plane often gets the dead one's pid.
  writeFileSync(join(dir, 'store', 'LOCK'), `${process.pid}\n`);
  let store = await openFileStore(dir);
  await store.close();
  // A live process holds the dead holder's pid, but it is not the process that wrote the lock.
  writeFileSync(join(dir, 'store', 'LOCK'), `${process.ppid} 1\n`);
  store = await openFileStore(dir);
  const written = readFileSync(join(dir, 'store', 'LOCK'), 'utf8');
  assert.match(written, new RegExp(`^${process.pid} \\d+\n$`), 'the lock records pid and start time');
  await store.close();
  // The same live process with its real start time still holds the lock.
  const parentStart = readFileSync(`/proc/${process.ppid}/stat`, 'utf8').split(') ')[1]!.split(' ')[19];
  writeFileSync(join(dir, 'store', 'LOCK'), `${process.ppid} ${parentStart}\n`);
  await assert.rejects(openFileStore(dir), new RegExp(`locked by running process ${process.ppid}`));
});

test('commits after close are refused', async (t) => {
  const store = await openFileStore(tempDir(t));
  await store.close();
  await assert.rejects(store.commit([put('a', {})], { actor: 'x', summary: 'x' }), /closed/);
});

test('a damaged snapshot is refused naming the file and what to do; renamed aside, the state is rebuilt from the log', async (t) => {
  const dir = tempDir(t);
  let store = await openFileStore(dir);
  await store.commit([put('a', { i: 1 })], { actor: 't', summary: 't' });
  await store.compact();
  await store.commit([put('b', { i: 2 })], { actor: 't', summary: 't' });
  const snapshot = join(dir, 'store', readdirSync(join(dir, 'store')).find((f) => f.startsWith('snapshot-'))!);
  writeFileSync(snapshot, readFileSync(snapshot, 'utf8').slice(0, 20));
  // stateAt reads the snapshot again for past revisions
  assert.throws(() => store.stateAt(1), (e: Error) => e.message.startsWith(`${snapshot} is damaged (`));
  await store.close();

  await assert.rejects(openFileStore(dir), (e: Error) => e.name === 'DamagedFileError' && e.message.startsWith(`${snapshot} is damaged (`) && e.message.includes(`rename it (to ${snapshot.slice(snapshot.lastIndexOf('/') + 1)}.damaged)`));
  renameSync(snapshot, `${snapshot}.damaged`);
  store = await openFileStore(dir);
  assert.equal(store.revision(), 2);
  assert.deepEqual(store.list().map((o) => o.name), ['a', 'b']);
  await store.close();
});
