// The first admin token's plaintext (<data-dir>/admin.token) is durable
// before its hash is stored. A first start that dies between the two (here:
// admin.token cannot be written) leaves no admin behind, so the next start
// writes a working admin token; the other order locked the operator out.

import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, rmdirSync, statSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { api, startControl } from './control-process.ts';

test('a first start that could not write admin.token stores no admin: the next start writes a working one', { timeout: 120_000 }, async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'weft-admin-token-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const adminToken = join(dir, 'admin.token');
  mkdirSync(adminToken); // writing the plaintext fails, as a crash before it reached the disk would lose it
  await assert.rejects(startControl(dir), /exited with 1/);
  rmdirSync(adminToken);

  const control = await startControl(dir);
  t.after(() => control.stop());
  assert.equal(statSync(adminToken).mode & 0o777, 0o600);
  const token = readFileSync(adminToken, 'utf8').trim();
  const me = await api({ api: control.api, token }, 'GET', '/api/v1/whoami');
  assert.equal(me.role, 'admin');
});
