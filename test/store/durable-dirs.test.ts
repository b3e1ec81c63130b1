// Directories the control plane creates in (or as) its data dir survive a
// crash: each new directory's entry is fsynced into its parent, or every file
// fsynced inside it could be lost with it. fsync is watched, not timed.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import { join } from 'node:path';
import { mkdirDurable } from '../../control/store/atomic-file.ts';
import { openFileStore } from '../../control/store/file-store.ts';
import { ModuleStore } from '../../control/filters/module-store.ts';
import { tempDir } from './fixtures/temp.ts';

/** Records the directories under `root` that are fsynced (opened, then fsynced through that descriptor) until the test ends. */
function watchDirFsyncs(t: { after: (fn: () => void) => void }, root: string): string[] {
  const synced: string[] = [];
  const opened = new Map<number, string>();
  const { openSync, fsyncSync } = fs;
  fs.openSync = ((path: fs.PathLike, ...rest: unknown[]) => {
    const fd = (openSync as (...a: unknown[]) => number)(path, ...rest);
    if (String(path).startsWith(root) && fs.statSync(path).isDirectory()) opened.set(fd, String(path));
    return fd;
  }) as typeof fs.openSync;
  fs.fsyncSync = ((fd: number) => {
    fsyncSync(fd);
    const dir = opened.get(fd);
    if (dir !== undefined) synced.push(dir);
  }) as typeof fs.fsyncSync;
  syncBuiltinESMExports();
  t.after(() => {
    fs.openSync = openSync;
    fs.fsyncSync = fsyncSync;
    syncBuiltinESMExports();
  });
  return synced;
}

test('mkdirDurable fsyncs the parent of every directory it creates, and nothing when all exist', (t) => {
  const root = tempDir(t, 'weft-dirs-');
  const synced = watchDirFsyncs(t, root);
  assert.equal(mkdirDurable(join(root, 'a', 'b', 'c')), true);
  assert.deepEqual(synced.sort(), [root, join(root, 'a'), join(root, 'a', 'b')]);
  synced.length = 0;
  assert.equal(mkdirDurable(join(root, 'a', 'b')), false);
  assert.deepEqual(synced, []);
});

test('a new data dir and its store dir are fsynced into their parents when the store is first opened', async (t) => {
  const root = tempDir(t, 'weft-dirs-');
  const synced = watchDirFsyncs(t, root);
  const store = await openFileStore(join(root, 'data'));
  await store.close();
  assert.ok(synced.includes(root), `the data dir's entry in ${root}: ${JSON.stringify(synced)}`);
  assert.ok(synced.includes(join(root, 'data')), `the store dir's entry in the data dir: ${JSON.stringify(synced)}`);
});

test("the wasm module dir's entry is fsynced into the data dir when the first module is stored", async (t) => {
  const root = tempDir(t, 'weft-dirs-');
  const synced = watchDirFsyncs(t, root);
  await new ModuleStore(root).put(new Uint8Array([0, 97, 115, 109]));
  assert.ok(synced.includes(root), JSON.stringify(synced));
});
