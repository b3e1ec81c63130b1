// Join tokens and the xDS identity hooks: a token admits exactly the
// identity it was issued for, is stored hashed (mode 0600) and survives a
// restart; refusals are counted by reason; Secrets go to sidecars only.

import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { Registry } from 'prom-client';
import { MeshCa } from '../../control/ca/authority.ts';
import { JOIN_TOKENS_FILE, JoinTokens } from '../../control/ca/join-tokens.ts';
import { identityHooks } from '../../control/ca/xds-identity.ts';
import type { ProxyRef } from '../../control/model/types.ts';

const dir = mkdtempSync(join(tmpdir(), 'weft-join-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const proxy = (service: string, kind: ProxyRef['kind'] = 'sidecar'): ProxyRef => ({
  id: `${service}-1`, service, namespace: 'default', kind, inboundPort: 15006, outboundPort: 15001, appPort: 8080, appAddress: '127.0.0.1', bindAddress: '127.0.0.1',
});
const node = (token?: string) => ({ id: 'n', metadata: { fields: (token ? { WEFT_TOKEN: { stringValue: token } } : {}) as Record<string, { stringValue?: string }> } });

test('a join token verifies for its identity, is stored hashed with mode 0600 and survives a restart', () => {
  const tokens = new JoinTokens(dir);
  const { token, record } = tokens.issue({ namespace: 'default', service: 'web' });
  assert.match(token, /^wjt_/);
  assert.deepEqual(tokens.verify(token), record);
  assert.equal(tokens.verify('wjt_forged'), undefined);
  const file = join(dir, JOIN_TOKENS_FILE);
  assert.equal(statSync(file).mode & 0o777, 0o600);
  assert.ok(!readFileSync(file, 'utf8').includes(token), 'the plaintext token is never stored');
  assert.deepEqual(new JoinTokens(dir).verify(token), record);
  assert.ok(tokens.revoke(record.id));
  assert.equal(tokens.verify(token), undefined);
});

test('the authenticate hook admits only the token of the claimed identity; refusals are logged and counted', async () => {
  const ca = await MeshCa.open({ dataDir: dir });
  try {
    const tokens = new JoinTokens();
    const registry = new Registry();
    const logs: string[] = [];
    const hooks = identityHooks({ tokens, ca, registry, log: (l) => logs.push(l) });
    const { token: web, record } = tokens.issue({ namespace: 'default', service: 'web' });
    assert.deepEqual(await hooks.authenticate(node(web), undefined, proxy('web')), { ok: true, credential: `join-token:${record.id}` });
    assert.ok(ca.current('default', 'web'), 'the certificate is issued before the stream opens');
    const foreign = await hooks.authenticate(node(web), undefined, proxy('orders'));
    assert.equal(foreign.ok, false);
    assert.match((foreign as { message: string }).message, /is for web\.default, not orders\.default/);
    assert.equal((await hooks.authenticate(node(), undefined, proxy('web'))).ok, false);
    assert.equal((await hooks.authenticate(node('wjt_x'), undefined, proxy('web'))).ok, false);
    assert.deepEqual(Object.fromEntries(hooks.refusals), { foreign: 1, missing: 1, unknown: 1 });
    assert.equal(logs.length, 3);
    assert.match(await registry.metrics(), /weft_xds_auth_refusals_total\{reason="foreign"\} 1/);

    const secrets = hooks.secrets.secretsFor(proxy('web'));
    assert.deepEqual(secrets.map((s) => s.name), ['ROOTCA', 'default']);
    assert.deepEqual(hooks.secrets.secretsFor(proxy('web', 'proxyless-grpc')), [], 'proxyless gRPC clients get no SDS');
  } finally {
    ca.close();
  }
});

test('a join token revoked while its first certificate is being issued admits no stream', async () => {
  // The issue awaits key generation and signing; a revocation in that gap used to find no stream to end, and the
  // stream then opened under a token that no longer existed, getting config and every rotated certificate.
  const ca = await MeshCa.open({ dataDir: mkdtempSync(join(tmpdir(), 'weft-join-race-')) });
  try {
    const tokens = new JoinTokens();
    const hooks = identityHooks({ tokens, ca, log: () => undefined });
    const { token, record } = tokens.issue({ namespace: 'default', service: 'late' });
    const verdict = hooks.authenticate(node(token), undefined, proxy('late'));
    assert.ok(tokens.revoke(record.id));
    const result = await verdict;
    assert.equal(result.ok, false);
    assert.match((result as { message: string }).message, /unknown or revoked join token/);
  } finally {
    ca.close();
  }
});

test('a damaged join-tokens.json is refused naming the file and what to do', (t) => {
  const own = mkdtempSync(join(tmpdir(), 'weft-join-damaged-'));
  t.after(() => rmSync(own, { recursive: true, force: true }));
  new JoinTokens(own).issue({ namespace: 'default', service: 'orders' });
  const file = join(own, JOIN_TOKENS_FILE);
  writeFileSync(file, readFileSync(file, 'utf8').slice(0, 20));
  assert.throws(() => new JoinTokens(own), (e: Error) => e.message.startsWith(`${file} is damaged (`) && /restore it from a backup/.test(e.message));
});
