// A join token write that cannot reach the disk changes nothing: a revocation
// is not taken in memory (gone from the list, refused on new streams) only to
// come back valid at the next start, and an issue that failed leaves no
// token nobody holds in the list. The disk is made to fail by putting a file
// where the token file's directory must be.
import assert from 'node:assert/strict';
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { JoinTokens } from '../../control/ca/join-tokens.ts';

test('a revocation or an issue whose write fails changes nothing, in memory or at the next start', (t) => {
  const parent = mkdtempSync(join(tmpdir(), 'weft-join-writes-'));
  t.after(() => rmSync(parent, { recursive: true, force: true }));
  const dir = join(parent, 'data');
  const tokens = new JoinTokens(dir);
  const { token, record } = tokens.issue({ namespace: 'default', service: 'web' });

  renameSync(dir, join(parent, 'moved'));
  writeFileSync(dir, 'not a directory');
  assert.throws(() => tokens.revoke(record.id), /ENOTDIR|EEXIST/);
  assert.deepEqual(tokens.verify(token), record, 'still valid, as it is on disk');
  assert.deepEqual(tokens.list().map((r) => r.id), [record.id]);
  assert.throws(() => tokens.issue({ namespace: 'default', service: 'api' }), /ENOTDIR|EEXIST/);
  assert.deepEqual(tokens.list().map((r) => r.id), [record.id], 'no token nobody received');

  rmSync(dir);
  renameSync(join(parent, 'moved'), dir);
  assert.ok(tokens.revoke(record.id), 'with the disk back, the revocation is taken');
  assert.equal(tokens.verify(token), undefined);
  assert.equal(new JoinTokens(dir).verify(token), undefined, 'and it holds after a restart');
});
