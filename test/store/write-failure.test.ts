// The file store when a log write fails while it runs (a full disk, an I/O
// error): the commit is refused with a StoreWriteError and nothing of it is
// stored; the log is cut back to its last acknowledged line, so the next
// commit is tried afresh and survives a reopen. When even the cut fails, the
// store refuses every commit until reopened, and says why (unwritable()).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { openFileStore } from '../../control/store/file-store.ts';
import { StoreWriteError } from '../../control/store/store.ts';
import { failNext } from './fixtures/failing-writes.ts';
import { tempDir, put, meta } from './fixtures/temp.ts';

const logOf = (dir: string) => join(dir, 'store', readdirSync(join(dir, 'store')).find((f) => f.startsWith('log-'))!);

test('a commit whose log write fails stores nothing, and the next commit is written and survives a reopen', async (t) => {
  const dir = tempDir(t);
  let store = await openFileStore(dir);
  await store.commit([put('a', { i: 1 })], meta);
  const intact = readFileSync(logOf(dir));

  await failNext(t, dir, 'appendFile', 'ENOSPC');
  await assert.rejects(store.commit([put('b', { i: 2 })], meta), (e: unknown) => e instanceof StoreWriteError && !e.restartRequired && /ENOSPC.*nothing was stored/.test(e.message));
  assert.equal(store.revision(), 1);
  assert.equal(store.get('Test', 'default', 'b'), undefined);
  assert.deepEqual(readFileSync(logOf(dir)), intact, 'the part of the failed write that landed is cut off');
  assert.equal(store.unwritable?.(), undefined);

  assert.deepEqual(await store.commit([put('c', { i: 3 })], meta), { revision: 2, changed: true });
  await store.close();
  store = await openFileStore(dir);
  assert.equal(store.revision(), 2);
  assert.deepEqual(store.get('Test', 'default', 'c')?.spec, { i: 3 });
  assert.equal(store.openReport.droppedTail, undefined, 'no damaged line was left behind');
  await store.close();
});

test('when the failed write cannot be cut off the log, every later commit is refused naming the cause', async (t) => {
  const dir = tempDir(t);
  let store = await openFileStore(dir);
  await store.commit([put('a', { i: 1 })], meta);
  await failNext(t, dir, 'appendFile', 'ENOSPC');
  await failNext(t, dir, 'truncate', 'EIO');

  await assert.rejects(store.commit([put('b', { i: 2 })], meta), (e: unknown) => e instanceof StoreWriteError && e.restartRequired);
  assert.match(store.unwritable?.() ?? '', /ENOSPC.*could not be cut back.*EIO.*restarted/);
  await assert.rejects(store.commit([put('c', { i: 3 })], meta), (e: unknown) => e instanceof StoreWriteError && e.restartRequired && /ENOSPC/.test(e.message));
  assert.equal(store.revision(), 1);
  await store.close();

  store = await openFileStore(dir); // a reopen (restart) drops the fragment and takes commits again
  assert.equal(store.revision(), 1);
  assert.deepEqual(await store.commit([put('c', { i: 3 })], meta), { revision: 2, changed: true });
  await store.close();
});
