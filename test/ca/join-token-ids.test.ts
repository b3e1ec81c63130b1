// A join token's id is what `weft token revoke --join ID` and the API's
// DELETE /tokens/join/{id} go by, so it must name one token. Ids are 64 bits
// of the token's hash (they were 32: two of some tens of thousands of tokens
// shared one); a new token whose id is taken is drawn again; tokens issued
// with 32-bit ids still load, verify and revoke by them, and two that shared
// one are each known by a longer id of their own.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { JOIN_TOKENS_FILE, JoinTokens } from '../../control/ca/join-tokens.ts';

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');
const newToken = () => `wjt_${randomBytes(32).toString('base64url')}`;

function tempDir(t: { after: (fn: () => void) => void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'weft-join-ids-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** join-tokens.json as builds before 2026-11-27 wrote it: keyed by the token's hash, the id its first 8 hex digits. */
function writeOldFile(dir: string, tokens: string[], id = (token: string) => sha256(token).slice(0, 8)): void {
  const saved = Object.fromEntries(tokens.map((token, i) => [sha256(token), { namespace: 'default', service: `svc${i}`, id: id(token), issuedAt: '2026-01-01T00:00:00.000Z' }]));
  writeFileSync(join(dir, JOIN_TOKENS_FILE), JSON.stringify(saved, null, 2), { mode: 0o600 });
}

test('a new token has a 64-bit id (16 hex digits of its hash), listed and revoked by it, also after a restart', (t) => {
  const dir = tempDir(t);
  const tokens = new JoinTokens(dir);
  const { token, record } = tokens.issue({ namespace: 'default', service: 'web' });
  assert.match(record.id, /^[0-9a-f]{16}$/);
  assert.equal(record.id, sha256(token).slice(0, 16));
  const other = tokens.issue({ namespace: 'default', service: 'web' });
  const reopened = new JoinTokens(dir);
  assert.deepEqual(reopened.list().map((r) => r.id).sort(), [record.id, other.record.id].sort());
  assert.equal(reopened.revoke(record.id.slice(0, 8)), false, 'a prefix of an id names no token');
  assert.ok(reopened.revoke(record.id));
  assert.equal(new JoinTokens(dir).verify(token), undefined);
  assert.ok(new JoinTokens(dir).verify(other.token));
});

test('tokens issued with 8-digit ids still load, verify and revoke by those ids', (t) => {
  const dir = tempDir(t);
  const old = [newToken(), newToken()];
  writeOldFile(dir, old);
  const tokens = new JoinTokens(dir);
  const ids = old.map((token) => sha256(token).slice(0, 8));
  assert.deepEqual(tokens.list().map((r) => r.id), ids);
  assert.equal(tokens.verify(old[0]!)?.service, 'svc0');
  assert.ok(tokens.revoke(ids[0]!));
  assert.equal(tokens.verify(old[0]!), undefined);
  const reopened = new JoinTokens(dir);
  assert.equal(reopened.verify(old[0]!), undefined, 'the revocation was stored');
  assert.equal(reopened.verify(old[1]!)?.id, ids[1], 'the other keeps its 8-digit id across a rewrite of the file');
  assert.ok(reopened.issue({ namespace: 'default', service: 'web' }).record.id.length === 16);
});

test('two old tokens that shared an 8-digit id (a real birthday collision) are each revocable alone, by ids of their own', (t) => {
  const dir = tempDir(t);
  // 32 bits collide after about 2^16 tokens: find two, as a large mesh issuing them would have
  const seen = new Map<string, string>();
  let pair: [string, string] | undefined;
  for (let i = 0; i < 1_000_000 && !pair; i++) {
    const token = newToken();
    const id = sha256(token).slice(0, 8);
    const earlier = seen.get(id);
    if (earlier) pair = [earlier, token];
    else seen.set(id, token);
  }
  assert.ok(pair, 'a collision was found');
  const [a, b] = pair;
  const bystander = newToken();
  writeOldFile(dir, [a, b, bystander]);
  const shared = sha256(a).slice(0, 8);

  const tokens = new JoinTokens(dir);
  const ids = tokens.list().map((r) => r.id);
  assert.equal(new Set(ids).size, 3, `every token has its own id: ${ids.join(', ')}`);
  assert.equal(tokens.verify(a)?.id, sha256(a).slice(0, 16));
  assert.equal(tokens.verify(b)?.id, sha256(b).slice(0, 16));
  assert.equal(tokens.verify(bystander)?.id, sha256(bystander).slice(0, 8), 'an id no other token had is kept');
  assert.equal(tokens.revoke(shared), false, 'the shared id no longer revokes whichever token came first');
  assert.ok(tokens.verify(a) && tokens.verify(b));
  assert.ok(tokens.revoke(sha256(b).slice(0, 16)));
  assert.equal(tokens.verify(b), undefined);
  assert.ok(tokens.verify(a), 'only that one');
  assert.equal(new JoinTokens(dir).verify(a)?.id, sha256(a).slice(0, 16));
});

test('a new token whose id is taken (or that is a token already issued) is drawn again', () => {
  const first = Buffer.alloc(32, 1);
  const second = Buffer.alloc(32, 2);
  const third = Buffer.alloc(32, 3);
  const draws = [first, first, second, third];
  const tokens = new JoinTokens(undefined, undefined, () => draws.shift()!);
  const one = tokens.issue({ namespace: 'default', service: 'web' });
  assert.equal(one.token, `wjt_${first.toString('base64url')}`);
  const two = tokens.issue({ namespace: 'default', service: 'web' });
  assert.equal(two.token, `wjt_${second.toString('base64url')}`, 'the same token again was drawn again');
  assert.notEqual(one.record.id, two.record.id);
  assert.deepEqual(draws, [third]);
});

test('an id taken by a stored token that is not the new one: drawn again', (t) => {
  const dir = tempDir(t);
  const taken = Buffer.alloc(32, 7);
  const fresh = Buffer.alloc(32, 8);
  const existing = newToken();
  // a stored token whose id is the one the first draw would get (a 64-bit collision, planted)
  writeOldFile(dir, [existing], () => sha256(`wjt_${taken.toString('base64url')}`).slice(0, 16));
  const draws = [taken, fresh];
  const tokens = new JoinTokens(dir, undefined, () => draws.shift()!);
  const issued = tokens.issue({ namespace: 'default', service: 'web' });
  assert.equal(issued.token, `wjt_${fresh.toString('base64url')}`);
  assert.equal(new Set(tokens.list().map((r) => r.id)).size, 2);
  assert.ok(tokens.verify(existing));
  assert.deepEqual(readdirSync(dir), [JOIN_TOKENS_FILE]);
});

test('a random source that keeps drawing taken ids is refused, not looped on', () => {
  const stuck = Buffer.alloc(32, 9);
  const tokens = new JoinTokens(undefined, undefined, () => stuck);
  tokens.issue({ namespace: 'default', service: 'web' });
  assert.throws(() => tokens.issue({ namespace: 'default', service: 'web' }), /had an id already in use/);
  assert.equal(tokens.list().length, 1);
});
