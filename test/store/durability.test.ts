// The file store under crashes: kill -9 mid-stream keeps every acknowledged
// revision; a torn final line is dropped (its bytes kept beside the log);
// corruption elsewhere is refused.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { appendFileSync, readFileSync, readdirSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { openFileStore } from '../../control/store/file-store.ts';
import { tempDir, put, meta } from './fixtures/temp.ts';

const writer = fileURLToPath(new URL('./fixtures/commit-writer.ts', import.meta.url));

/** Runs the writer until it has acknowledged `acks` revisions, then SIGKILLs it; returns the last acknowledged revision. */
function commitThenKill(dataDir: string, acks: number, compactEvery: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', writer, dataDir, String(compactEvery)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let lastAck = 0;
    let seen = 0;
    let buffer = '';
    let stderr = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`writer too slow: ${seen} acks; ${stderr}`));
    }, 60_000);
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.stdout.on('data', (d: Buffer) => {
      buffer += d.toString();
      const lines = buffer.split('\n');
      buffer = lines.pop()!;
      for (const line of lines) {
        if (!line.startsWith('ack ')) continue;
        lastAck = Number(line.slice(4));
        if (++seen === acks) child.kill('SIGKILL');
      }
    });
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      if (signal === 'SIGKILL') resolve(lastAck);
      else reject(new Error(`writer exited ${code}: ${stderr}`));
    });
  });
}

test('every revision acknowledged before kill -9 survives, through compactions', async (t) => {
  const dir = tempDir(t);
  let acknowledged = 0;
  for (const round of [1, 2]) {
    acknowledged = await commitThenKill(dir, 40, 7);
    const store = await openFileStore(dir); // also proves the dead writer's lock is taken over
    assert.ok(store.revision() >= acknowledged, `round ${round}: reopened at ${store.revision()}, acknowledged ${acknowledged}`);
    for (let r = 1; r <= acknowledged; r++) {
      assert.deepEqual((store.get('Test', 'default', `o${r}`)?.spec as { i: number } | undefined)?.i, r, `round ${round}: revision ${r} lost`);
    }
    const history = store.history();
    assert.equal(history.length, store.revision());
    assert.deepEqual(history.map((h) => h.revision), Array.from({ length: store.revision() }, (_, i) => store.revision() - i));
    await store.close();
  }
  assert.ok(acknowledged >= 80, 'the second writer continued from the first one\'s revisions');
  assert.ok(readdirSync(join(dir, 'store')).some((f) => f.startsWith('snapshot-')), 'compaction ran while being killed');
});

test('a torn final line is dropped on open, and the log stays appendable', async (t) => {
  const dir = tempDir(t);
  let store = await openFileStore(dir);
  for (let i = 1; i <= 3; i++) await store.commit([put(`o${i}`, { i })], meta);
  await store.close();
  const log = join(dir, 'store', readdirSync(join(dir, 'store')).find((f) => f.startsWith('log-'))!);
  const size = readFileSync(log).length;
  truncateSync(log, size - 20); // the last revision's line, cut mid-way

  store = await openFileStore(dir);
  assert.equal(store.revision(), 2);
  assert.equal(store.get('Test', 'default', 'o3'), undefined);
  assert.match(store.openReport.droppedTail?.reason ?? '', /incomplete line 3/);
  assert.deepEqual(await store.commit([put('o3', { again: true })], meta), { revision: 3, changed: true });
  await store.close();

  store = await openFileStore(dir);
  assert.equal(store.revision(), 3);
  assert.deepEqual(store.get('Test', 'default', 'o3')?.spec, { again: true });
  assert.equal(store.openReport.droppedTail, undefined);
  await store.close();
});

test('a final line with a bad checksum is dropped; a bad line before good ones refuses to open', async (t) => {
  const dir = tempDir(t);
  let store = await openFileStore(dir);
  for (let i = 1; i <= 3; i++) await store.commit([put(`o${i}`, { i })], meta);
  await store.close();
  const log = join(dir, 'store', readdirSync(join(dir, 'store')).find((f) => f.startsWith('log-'))!);
  const lines = readFileSync(log, 'utf8').split('\n');

  const damaged = lines[2]!.replace('"i":3', '"i":4') + '\n';
  appendFileSync(log, damaged);
  store = await openFileStore(dir, { now: () => new Date('2026-11-29T10:00:00.000Z') });
  assert.equal(store.revision(), 3);
  // It may have been an acknowledged revision damaged on disk: its bytes are kept beside the log before the cut.
  const keptIn = `${log}.dropped-2026-11-29T10-00-00.000Z`;
  assert.deepEqual(store.openReport.droppedTail, { file: log, reason: 'bad checksum on line 4', line: 4, revision: 4, bytes: Buffer.byteLength(damaged), keptIn });
  assert.equal(readFileSync(keptIn, 'utf8'), damaged);
  assert.equal(readFileSync(log, 'utf8'), lines.join('\n'), 'the damaged line is cut off the log');
  await store.close();

  writeFileSync(log, [lines[0], lines[1]!.replace('"i":2', '"i":9'), lines[2], ''].join('\n'));
  await assert.rejects(openFileStore(dir), /corrupt at line 2/);
  // A refused open releases the lock.
  writeFileSync(log, lines.join('\n'));
  store = await openFileStore(dir);
  assert.equal(store.revision(), 3);
  await store.close();
});

test('a zero-filled tail (size grew, data never landed) is dropped like a torn line', async (t) => {
  const dir = tempDir(t);
  let store = await openFileStore(dir);
  for (let i = 1; i <= 2; i++) await store.commit([put(`o${i}`, { i })], meta);
  await store.close();
  const log = join(dir, 'store', readdirSync(join(dir, 'store')).find((f) => f.startsWith('log-'))!);
  const intactBytes = readFileSync(log).length;
  appendFileSync(log, Buffer.concat([Buffer.alloc(300), Buffer.from('\n'), Buffer.alloc(100)]));

  store = await openFileStore(dir);
  assert.equal(store.revision(), 2);
  assert.ok(store.openReport.droppedTail);
  assert.equal(readFileSync(log).length, intactBytes, 'the tail is cut off the file');
  await store.commit([put('o3', { i: 3 })], meta);
  await store.close();
  store = await openFileStore(dir);
  assert.equal(store.revision(), 3);
  await store.close();
});
