// Operator auth: 401 without or with a wrong token, 403 for a viewer that
// writes, reads and dry runs open to viewers, tokens stored hashed, and the
// first-start admin token file with mode 0600.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openTokenStore } from '../../control/api/tokens.ts';
import { startApi } from './harness.ts';

const service = { name: 'orders', ports: [{ port: 8080, protocol: 'http' }] };

test('every /api/v1 endpoint answers 401 without a token and with an unknown one', async (t) => {
  const h = await startApi();
  t.after(() => h.close());
  const endpoints: [string, string][] = [
    ['GET', '/api/v1/services'], ['POST', '/api/v1/services'], ['GET', '/api/v1/services/orders'], ['PUT', '/api/v1/services/orders'], ['DELETE', '/api/v1/services/orders'],
    ['GET', '/api/v1/routes'], ['GET', '/api/v1/destination-policies'], ['GET', '/api/v1/filter-bindings'],
    ['GET', '/api/v1/instances'], ['POST', '/api/v1/services/orders/instances'], ['PUT', '/api/v1/services/orders/instances/x/heartbeat'],
    ['POST', '/api/v1/apply'], ['POST', '/api/v1/diff'], ['POST', '/api/v1/delete'],
    ['GET', '/api/v1/proxies'], ['GET', '/api/v1/proxies/p1/config'], ['GET', '/api/v1/revisions'], ['POST', '/api/v1/revisions/0/rollback'],
    ['GET', '/api/v1/audit'], ['GET', '/api/v1/filters'], ['POST', '/api/v1/filters'], ['POST', '/api/v1/tokens'], ['GET', '/api/v1/openapi.json'],
  ];
  for (const [method, url] of endpoints) {
    const missing = await h.call(method as 'GET', url, undefined, null);
    assert.equal(missing.status, 401, `${method} ${url} without a token`);
    assert.equal(missing.json.error.code, 'UNAUTHENTICATED');
    const wrong = await h.call(method as 'GET', url, undefined, 'weft_not-a-real-token');
    assert.equal(wrong.status, 401, `${method} ${url} with a wrong token`);
  }
  const basic = await h.call('GET', '/api/v1/services', undefined, null, { authorization: `Basic ${h.admin}` });
  assert.equal(basic.status, 401, 'only Bearer is accepted');
  assert.equal(h.store.revision(), 0);
});

test('a viewer reads and dry-runs but every write is 403 and stores nothing', async (t) => {
  const h = await startApi();
  t.after(() => h.close());
  assert.equal((await h.call('POST', '/api/v1/services', service)).status, 201);
  const rev = h.store.revision();
  const writes: [string, string, unknown][] = [
    ['POST', '/api/v1/services', { ...service, name: 'payments' }],
    ['PUT', '/api/v1/services/orders', service],
    ['DELETE', '/api/v1/services/orders', undefined],
    ['POST', '/api/v1/services/orders/instances', { address: '127.0.0.1', port: 9000 }],
    ['POST', '/api/v1/apply', 'apiVersion: weft.dev/v1\nkind: Service\nmetadata: {name: x}\nspec: {ports: [{port: 1, protocol: http}]}\n'],
    ['POST', '/api/v1/delete', 'apiVersion: weft.dev/v1\nkind: Service\nmetadata: {name: orders}\n'],
    ['POST', `/api/v1/revisions/${rev}/rollback`, undefined],
    ['POST', '/api/v1/tokens', { role: 'admin' }],
    ['POST', '/api/v1/filters', { name: 'f', wasm: 'AGFzbQEAAAA=' }],
  ];
  for (const [method, url, body] of writes) {
    const res = await h.call(method as 'POST', url, body, h.viewer);
    assert.equal(res.status, 403, `${method} ${url}`);
    assert.equal(res.json.error.code, 'FORBIDDEN');
    assert.match(res.json.error.message, /victor/);
  }
  assert.equal(h.store.revision(), rev, 'no write got through');
  assert.equal((await h.call('GET', '/api/v1/services/orders', undefined, h.viewer)).status, 200);
  assert.equal((await h.call('GET', '/api/v1/revisions', undefined, h.viewer)).status, 200);
  const dry = await h.call('POST', '/api/v1/apply?dryRun=true', 'apiVersion: weft.dev/v1\nkind: Service\nmetadata: {name: x}\nspec: {ports: [{port: 1, protocol: http}]}\n', h.viewer);
  assert.equal(dry.status, 200);
  assert.equal(dry.json.dryRun, true);
  assert.equal((await h.call('POST', '/api/v1/diff', { manifests: [] }, h.viewer)).status, 200);
  assert.equal(h.store.revision(), rev);
});

test('/healthz, /readyz and /metrics need no token', async (t) => {
  const h = await startApi();
  t.after(() => h.close());
  assert.equal((await h.call('GET', '/healthz', undefined, null)).status, 200);
  const ready = await h.call('GET', '/readyz', undefined, null);
  assert.equal(ready.status, 200);
  assert.equal(ready.json.revision, 0);
  const metrics = await h.call('GET', '/metrics', undefined, null);
  assert.equal(metrics.status, 200);
  assert.match(String(metrics.headers['content-type']), /text\/plain/);
});

test('/readyz is 503 until the control plane says it is ready', async (t) => {
  let ready = false;
  const h = await startApi({ ready: () => ready });
  t.after(() => h.close());
  const before = await h.call('GET', '/readyz', undefined, null);
  assert.equal(before.status, 503);
  assert.equal(before.json.error.code, 'UNAVAILABLE');
  ready = true;
  assert.equal((await h.call('GET', '/readyz', undefined, null)).status, 200);
});

test('an admin creates a viewer token that can read and not write; its name is the actor in the audit log', async (t) => {
  const h = await startApi();
  t.after(() => h.close());
  const me = (await h.call('GET', '/api/v1/whoami')).json;
  assert.deepEqual([me.name, me.role, me.canWrite], ['alice', 'admin', true]);
  const viewerMe = (await h.call('GET', '/api/v1/whoami', undefined, h.viewer)).json;
  assert.deepEqual([viewerMe.name, viewerMe.role, viewerMe.canWrite], ['victor', 'viewer', false]);
  assert.equal((await h.call('GET', '/api/v1/whoami', undefined, null)).status, 401);
  const created = await h.call('POST', '/api/v1/tokens', { role: 'viewer', name: 'ci-reader' });
  assert.equal(created.status, 201);
  assert.equal(created.json.role, 'viewer');
  assert.match(created.json.token, /^weft_/);
  const token = created.json.token as string;
  assert.equal((await h.call('GET', '/api/v1/services', undefined, token)).status, 200);
  assert.equal((await h.call('POST', '/api/v1/services', service, token)).status, 403);
  const listed = await h.call('GET', '/api/v1/tokens');
  assert.deepEqual(listed.json.items.map((t: { name: string }) => t.name).sort(), ['alice', 'ci-reader', 'victor']);
  assert.ok(!listed.body.includes(token), 'tokens are never listed');
  assert.equal((await h.call('POST', '/api/v1/tokens', { role: 'viewer', name: 'ci-reader' })).status, 409);
  const bad = await h.call('POST', '/api/v1/tokens', { role: 'root' });
  assert.equal(bad.status, 400);
  assert.equal(bad.json.error.details[0].path, 'role');

  await h.call('POST', '/api/v1/services', service);
  const audit = await h.call('GET', '/api/v1/audit', undefined, token);
  assert.equal(audit.json.items[0].actor, 'token:alice');
  assert.match(audit.json.items[0].action, /create service default\/orders/);
});

test('first start writes admin.token (0600) and stores only hashes; a second open reuses them', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'weft-tokens-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const first = await openTokenStore(dir);
  assert.equal(first.adminTokenPath, join(dir, 'admin.token'));
  const token = (await readFile(first.adminTokenPath!, 'utf8')).trim();
  assert.equal((await stat(first.adminTokenPath!)).mode & 0o777, 0o600);
  assert.equal(first.store.authenticate(token)?.role, 'admin');
  const onDisk = await readFile(join(dir, 'tokens.json'), 'utf8');
  assert.ok(!onDisk.includes(token), 'the plaintext token is not in tokens.json');
  assert.equal((await stat(join(dir, 'tokens.json'))).mode & 0o777, 0o600);

  const second = await openTokenStore(dir);
  assert.equal(second.adminTokenPath, undefined, 'no new admin token on a later start');
  assert.equal(second.store.authenticate(token)?.name, 'admin');
  assert.equal(second.store.authenticate(token + 'x'), undefined);
});

test('an unknown /api/v1 path is 401 without a token and 404 with one', async (t) => {
  const h = await startApi();
  t.after(() => h.close());
  for (const [method, url] of [['GET', '/api/v1/no-such-thing'], ['DELETE', '/api/v1/services/orders/extra'], ['POST', '/api/v1/secrets']] as const) {
    const anonymous = await h.call(method, url, undefined, null);
    assert.equal(anonymous.status, 401, `${method} ${url} without a token`);
    assert.equal(anonymous.json.error.code, 'UNAUTHENTICATED');
    const known = await h.call(method, url, undefined, h.admin);
    assert.equal(known.status, 404, `${method} ${url} with a token`);
    assert.equal(known.json.error.code, 'NOT_FOUND');
    assert.match(known.json.error.message, /no route/);
  }
  assert.equal((await h.call('GET', '/api/v1/no-such-thing', undefined, h.viewer)).status, 404, 'a viewer may read that a path is unknown');
  assert.equal((await h.call('DELETE', '/api/v1/no-such-thing', undefined, h.viewer)).status, 403, 'a viewer may not write anywhere');
  const outside = await h.call('GET', '/nope', undefined, null);
  assert.equal(outside.status, 404, 'outside /api/v1 no token is needed to learn a path is unknown');
});

test('an admin revokes a token: it is 401 from then on, also after a restart; the last admin token cannot be revoked', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'weft-tokens-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const { store: tokens } = await openTokenStore(dir);
  const h = await startApi({ tokens });
  t.after(() => h.close());
  const admin = (await readFile(join(dir, 'admin.token'), 'utf8')).trim();
  const ci = (await h.call('POST', '/api/v1/tokens', { role: 'viewer', name: 'ci' }, admin)).json.token as string;
  assert.equal((await h.call('GET', '/api/v1/services', undefined, ci)).status, 200);

  assert.equal((await h.call('DELETE', '/api/v1/tokens/ci', undefined, ci)).status, 403, 'a viewer may not revoke, not even itself');
  const revoked = await h.call('DELETE', '/api/v1/tokens/ci', undefined, admin);
  assert.equal(revoked.status, 200, revoked.body);
  assert.deepEqual(revoked.json, { revoked: 'ci' });
  assert.equal((await h.call('GET', '/api/v1/services', undefined, ci)).status, 401, 'the revoked token is refused at once');
  assert.equal((await h.call('DELETE', '/api/v1/tokens/ci', undefined, admin)).status, 404);
  const audit = await h.call('GET', '/api/v1/audit', undefined, admin);
  assert.ok(audit.json.items.some((i: { action: string }) => i.action === 'revoke token "ci"'), 'audited');

  const last = await h.call('DELETE', '/api/v1/tokens/admin', undefined, admin);
  assert.equal(last.status, 409);
  assert.match(last.json.error.message, /last admin token/);
  const ops = (await h.call('POST', '/api/v1/tokens', { role: 'admin', name: 'ops' }, admin)).json.token as string;
  assert.equal((await h.call('DELETE', '/api/v1/tokens/admin', undefined, ops)).status, 200, 'with another admin, the first one can go');
  assert.equal((await h.call('GET', '/api/v1/services', undefined, admin)).status, 401);

  const reopened = await openTokenStore(dir);
  assert.equal(reopened.store.authenticate(ci), undefined, 'revocations survive a restart');
  assert.equal(reopened.store.authenticate(admin), undefined);
  assert.equal(reopened.store.authenticate(ops)?.name, 'ops');
  assert.equal(reopened.adminTokenPath, undefined);
});
