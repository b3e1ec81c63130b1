// Operator token names are unique, also when two creates of one name arrive
// together: revocation goes by name, so a second "ci" token would have stayed
// valid after `weft token revoke ci`. A tokens.json an older build left with
// two of one name has both revoked by that name.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openTokenStore } from '../../control/api/tokens.ts';
import { startApi } from './harness.ts';

test('creates of one token name sent together: one 201, the others 409, and one token of that name', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'weft-token-names-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const { store: tokens } = await openTokenStore(dir); // written to disk, as weft control keeps them: each create takes a while
  const h = await startApi({ tokens });
  t.after(() => h.close());
  const as = (await readFile(join(dir, 'admin.token'), 'utf8')).trim();
  const answers = await Promise.all([1, 2, 3].map(() => h.call('POST', '/api/v1/tokens', { role: 'viewer', name: 'ci' }, as)));
  assert.deepEqual(answers.map((a) => a.status).sort(), [201, 409, 409]);
  assert.match(answers.find((a) => a.status === 409)!.json.error.message, /a token named "ci" exists already/);
  assert.deepEqual(answers.find((a) => a.status === 409)!.json.error.details.map((d: { path: string }) => d.path), ['name'], 'the field named');
  assert.equal(h.deps.tokens.list().filter((i) => i.name === 'ci').length, 1);
  const token = answers.find((a) => a.status === 201)!.json.token as string;
  assert.equal((await h.call('DELETE', '/api/v1/tokens/ci', undefined, as)).status, 200);
  assert.equal((await h.call('GET', '/api/v1/services', undefined, token)).status, 401, 'revoked by its name');
});

test('revoking a name revokes every token an older build stored under it', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'weft-token-names-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const sha = (s: string) => createHash('sha256').update(s).digest('hex');
  const createdAt = '2026-11-01T00:00:00.000Z';
  await writeFile(join(dir, 'tokens.json'), JSON.stringify([
    { name: 'admin', role: 'admin', createdAt, sha256: sha('weft_admin') },
    { name: 'ci', role: 'viewer', createdAt, sha256: sha('weft_ci1') },
    { name: 'ci', role: 'admin', createdAt, sha256: sha('weft_ci2') },
  ]));
  const { store: tokens } = await openTokenStore(dir);
  const h = await startApi({ tokens });
  t.after(() => h.close());
  assert.equal((await h.call('DELETE', '/api/v1/tokens/ci', undefined, 'weft_admin')).status, 200);
  assert.equal((await h.call('GET', '/api/v1/services', undefined, 'weft_ci1')).status, 401);
  assert.equal((await h.call('GET', '/api/v1/services', undefined, 'weft_ci2')).status, 401);
  const reopened = await openTokenStore(dir);
  assert.deepEqual(reopened.store.list().map((i) => i.name), ['admin']);
});
