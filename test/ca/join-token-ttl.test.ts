// Join token lifetimes: a token issued with a TTL admits until expiresAt and
// is refused after it with a reason that says it expired (not "unknown"); its
// expiry survives a restart; listeners hear of each expiry once, so the
// streams it opened can end. A token without a TTL never expires.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { Registry } from 'prom-client';
import { MeshCa } from '../../control/ca/authority.ts';
import { JoinTokens, type JoinTokenRecord } from '../../control/ca/join-tokens.ts';
import { identityHooks } from '../../control/ca/xds-identity.ts';
import type { ProxyRef } from '../../control/model/types.ts';

const dir = mkdtempSync(join(tmpdir(), 'weft-join-ttl-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const proxy: ProxyRef = { id: 'web-1', service: 'web', namespace: 'default', kind: 'sidecar', inboundPort: 15006, outboundPort: 15001, appPort: 8080, appAddress: '127.0.0.1', bindAddress: '127.0.0.1' };
const node = (token: string) => ({ id: 'n', metadata: { fields: { WEFT_TOKEN: { stringValue: token } } } });

test('a token with a TTL admits until expiresAt, then is refused as expired; its expiry survives a restart', () => {
  let now = new Date('2026-11-27T12:00:00Z');
  const tokens = new JoinTokens(dir, () => now);
  const { token, record } = tokens.issue({ namespace: 'default', service: 'web' }, { ttlMs: 3_600_000 });
  const forever = tokens.issue({ namespace: 'default', service: 'web' });
  assert.equal(record.expiresAt, '2026-11-27T13:00:00.000Z');
  assert.equal(forever.record.expiresAt, undefined, 'no TTL: valid until revoked');
  assert.deepEqual(tokens.check(token), { ok: true, record });

  now = new Date('2026-11-27T13:00:00Z');
  assert.deepEqual(tokens.check(token), { ok: false, reason: 'expired', record });
  assert.equal(tokens.verify(token), undefined);
  assert.ok(tokens.verify(forever.token), 'a token without a TTL still admits');
  assert.equal(tokens.check('wjt_forged').ok, false);

  const reopened = new JoinTokens(dir, () => new Date('2026-11-27T12:30:00Z'));
  assert.deepEqual(reopened.check(token), { ok: true, record }, 'expiresAt is stored with the token');
  assert.deepEqual(new JoinTokens(dir, () => now).check(token), { ok: false, reason: 'expired', record });
});

test('the authenticate hook refuses an expired token saying so, counted under reason "expired"', async () => {
  const ca = await MeshCa.open({ dataDir: dir });
  try {
    let now = new Date('2026-11-27T12:00:00Z');
    const tokens = new JoinTokens(undefined, () => now);
    const registry = new Registry();
    const logs: string[] = [];
    const hooks = identityHooks({ tokens, ca, registry, log: (l) => logs.push(l) });
    const { token, record } = tokens.issue({ namespace: 'default', service: 'web' }, { ttlMs: 60_000 });
    assert.equal((await hooks.authenticate(node(token), undefined, proxy)).ok, true);
    now = new Date('2026-11-27T12:01:00Z');
    const verdict = await hooks.authenticate(node(token), undefined, proxy);
    assert.deepEqual(verdict, { ok: false, message: `join token ${record.id} expired at 2026-11-27T12:01:00.000Z: issue a new one` });
    assert.match(logs.at(-1)!, /refused proxy "web-1" claiming web\.default: join token \w+ expired at/);
    assert.match(await registry.metrics(), /weft_xds_auth_refusals_total\{reason="expired"\} 1/);
  } finally {
    ca.close();
  }
});

test('onExpire hears of each token once, as it expires; a revoked token is not announced', async () => {
  const tokens = new JoinTokens();
  const heard: JoinTokenRecord[] = [];
  tokens.onExpire((r) => heard.push(r));
  try {
    const soon = tokens.issue({ namespace: 'default', service: 'web' }, { ttlMs: 150 });
    const later = tokens.issue({ namespace: 'default', service: 'web' }, { ttlMs: 400 });
    const revoked = tokens.issue({ namespace: 'default', service: 'web' }, { ttlMs: 200 });
    tokens.issue({ namespace: 'default', service: 'web' });
    tokens.revoke(revoked.record.id);
    await new Promise((r) => setTimeout(r, 300));
    assert.deepEqual(heard.map((r) => r.id), [soon.record.id]);
    await new Promise((r) => setTimeout(r, 400));
    assert.deepEqual(heard.map((r) => r.id), [soon.record.id, later.record.id]);
  } finally {
    tokens.close();
  }
});
