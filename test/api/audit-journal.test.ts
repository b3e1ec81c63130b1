// The audit journal after a crash: a torn last line is skipped and cut off,
// so the next acknowledged entry is not glued to it and lost at the
// following open; a line written whole but without its newline was never
// acknowledged and is dropped too.

import assert from 'node:assert/strict';
import { appendFile, mkdtemp, readFile, rm } from 'node:fs/promises';
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
