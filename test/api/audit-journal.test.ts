// The audit journal after a crash: a torn last line is skipped and cut off,
// so the next acknowledged entry is not glued to it and lost at the
// following open; a line written whole but without its newline was never
// acknowledged and is dropped too. A failed append (a full disk) is cut off
// the same way while the process runs.

import assert from 'node:assert/strict';
import fsp, { appendFile, mkdtemp, readFile, rm } from 'node:fs/promises';
import { syncBuiltinESMExports } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { openAuditJournal } from '../../control/api/audit-journal.ts';

async function journalDir(t: { after: (fn: () => Promise<void>) => void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'weft-audit-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return join(dir, 'audit.jsonl');
}

test('an entry recorded after a torn last line survives the next reopen', async (t) => {
  const path = await journalDir(t);
  const journal = await openAuditJournal(path);
  await journal.record({ time: '2026-01-01T00:00:00.000Z', actor: 'token:a', action: 'one', revision: 1 });
  await journal.record({ time: '2026-01-01T00:00:01.000Z', actor: 'token:a', action: 'two' });
  await appendFile(path, '{"time":"2026-01-01T00:00:02.000Z","act');

  const afterCrash = await openAuditJournal(path);
  assert.deepEqual(afterCrash.list().map((e) => e.action), ['one', 'two']);
  await afterCrash.record({ time: '2026-01-01T00:00:03.000Z', actor: 'token:a', action: 'three' });
  assert.deepEqual((await openAuditJournal(path)).list().map((e) => e.action), ['one', 'two', 'three'], 'the acknowledged third entry is not lost');
  assert.ok((await readFile(path, 'utf8')).split('\n').every((l) => l === '' || JSON.parse(l)), 'every line is whole');
});

test('a whole entry without its newline (cut before the newline landed) was never acknowledged: dropped, not half-kept', async (t) => {
  const path = await journalDir(t);
  const journal = await openAuditJournal(path);
  await journal.record({ time: '2026-01-01T00:00:00.000Z', actor: 'token:a', action: 'one' });
  await appendFile(path, JSON.stringify({ time: '2026-01-01T00:00:01.000Z', actor: 'token:a', action: 'unacknowledged' }));
  const reopened = await openAuditJournal(path);
  assert.deepEqual(reopened.list().map((e) => e.action), ['one']);
  await reopened.record({ time: '2026-01-01T00:00:02.000Z', actor: 'token:a', action: 'two' });
  assert.deepEqual((await openAuditJournal(path)).list().map((e) => e.action), ['one', 'two']);
});

/** Replaces fs/promises' `name` (for the journal's imports too) until the test ends. */
function replaceFs<K extends 'appendFile' | 'open'>(t: { after: (fn: () => void) => void }, name: K, fake: (real: (typeof fsp)[K]) => (typeof fsp)[K]): void {
  const real = fsp[name];
  (fsp as Record<K, (typeof fsp)[K]>)[name] = fake(real);
  syncBuiltinESMExports();
  t.after(() => {
    (fsp as Record<K, (typeof fsp)[K]>)[name] = real;
    syncBuiltinESMExports();
  });
}

/** The next append writes 20 bytes of its line, then fails as a full disk does. */
function failNextAppendPartWay(t: { after: (fn: () => void) => void }): void {
  let failed = false;
  replaceFs(t, 'appendFile', (real) => (async (p: Parameters<typeof real>[0], data: string, opts: Parameters<typeof real>[2]) => {
    if (failed) return real(p, data, opts);
    failed = true;
    await real(p, data.slice(0, 20), opts);
    throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
  }) as typeof real);
}

test('an append that fails part-way is cut off: the next acknowledged entry survives the next open', async (t) => {
  const path = await journalDir(t);
  const journal = await openAuditJournal(path);
  await journal.record({ time: '2026-01-01T00:00:00.000Z', actor: 'token:a', action: 'one' });
  failNextAppendPartWay(t);
  await assert.rejects(journal.record({ time: '2026-01-01T00:00:01.000Z', actor: 'token:a', action: 'unacknowledged' }), /ENOSPC/);

  await journal.record({ time: '2026-01-01T00:00:02.000Z', actor: 'token:a', action: 'two' });
  assert.deepEqual(journal.list().map((e) => e.action), ['one', 'two']);
  assert.deepEqual((await openAuditJournal(path)).list().map((e) => e.action), ['one', 'two'], `after reopen:\n${await readFile(path, 'utf8')}`);
});

test('when a failed append cannot be cut off, later entries are refused rather than glued to its fragment', async (t) => {
  const path = await journalDir(t);
  const journal = await openAuditJournal(path);
  await journal.record({ time: '2026-01-01T00:00:00.000Z', actor: 'token:a', action: 'one' });
  failNextAppendPartWay(t);
  let cutRefused = false;
  replaceFs(t, 'open', (real) => (async (...args: Parameters<typeof real>) => {
    if (args[1] === 'r+' && !cutRefused) {
      cutRefused = true;
      throw Object.assign(new Error('EIO: i/o error, open'), { code: 'EIO' });
    }
    return real(...args);
  }) as typeof real);
  await assert.rejects(journal.record({ time: '2026-01-01T00:00:01.000Z', actor: 'token:a', action: 'unacknowledged' }), /ENOSPC/);
  await assert.rejects(journal.record({ time: '2026-01-01T00:00:02.000Z', actor: 'token:a', action: 'two' }), (e: Error) => e.message.includes(path) && /could not be cut back.*restart/.test(e.message));
  assert.deepEqual(journal.list().map((e) => e.action), ['one']);
  assert.deepEqual((await openAuditJournal(path)).list().map((e) => e.action), ['one'], 'the fragment is dropped at the next open');
});
