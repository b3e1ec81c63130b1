// Revisions, rollback and the audit log through the API.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { appendFile, mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openAuditJournal } from '../../control/api/audit-journal.ts';
import { startApi } from './harness.ts';

const read = (f: string) => readFileSync(new URL(`../../examples/manifests/${f}`, import.meta.url), 'utf8');

test('history lists every revision newest first with time, actor and summary; one revision reads back its state', async (t) => {
  const h = await startApi();
  t.after(() => h.close());
  await h.call('POST', '/api/v1/apply', read('services.yaml'));
  await h.call('POST', '/api/v1/apply', read('canary.yaml'));
  const history = await h.call('GET', '/api/v1/revisions', undefined, h.viewer);
  assert.equal(history.json.current, 2);
  assert.deepEqual(history.json.items.map((r: { revision: number }) => r.revision), [2, 1]);
  assert.equal(history.json.items[0].actor, 'token:alice');
  assert.match(history.json.items[0].summary, /apply route\/orders/);
  assert.ok(!Number.isNaN(Date.parse(history.json.items[0].time)));
  assert.deepEqual((await h.call('GET', '/api/v1/revisions?limit=1')).json.items.map((r: { revision: number }) => r.revision), [2]);

  const one = await h.call('GET', '/api/v1/revisions/1');
  assert.equal(one.status, 200);
  assert.equal(one.json.objects.length, 5, 'state as of revision 1: 4 services and 1 policy');
  assert.ok(!one.json.objects.some((o: { kind: string }) => o.kind === 'Route'));
  assert.equal((await h.call('GET', '/api/v1/revisions/99')).status, 404);
  const bad = await h.call('GET', '/api/v1/revisions/abc');
  assert.equal(bad.status, 400);
  assert.equal(bad.json.error.details[0].path, 'params.n');
});

test('rollback returns the operator objects to a revision as a new revision, leaving instances alone', async (t) => {
  const h = await startApi();
  t.after(() => h.close());
  await h.call('POST', '/api/v1/apply', read('services.yaml'));
  await h.call('POST', '/api/v1/apply', read('blue-green.yaml'));
  const green = h.store.revision();
  const id = (await h.call('POST', '/api/v1/services/orders/instances', { address: '127.0.0.1', port: 9001, labels: { version: 'v2' } })).json.id;
  await h.call('POST', '/api/v1/apply', read('canary.yaml'));
  assert.equal((await h.call('GET', '/api/v1/routes/orders')).json.rules.length, 2);

  const rolled = await h.call('POST', `/api/v1/revisions/${green}/rollback`);
  assert.equal(rolled.status, 200);
  assert.equal(rolled.json.changed, true);
  assert.deepEqual(rolled.json.objects.map((o: { kind: string; action: string }) => `${o.kind}:${o.action}`), ['Route:configured']);
  const route = (await h.call('GET', '/api/v1/routes/orders')).json;
  assert.deepEqual(route.rules.map((r: { name: string }) => r.name), ['live'], 'the blue/green route is back');
  assert.equal((await h.call('GET', '/api/v1/instances')).json.items[0].id, id, 'the instance registered after that revision is still there');
  assert.match(h.store.history()[0]!.summary, new RegExp(`rollback to revision ${green}`));

  const noop = await h.call('POST', `/api/v1/revisions/${green}/rollback`);
  assert.equal(noop.json.changed, false, 'rolling back to the state we are in changes nothing');
  assert.equal((await h.call('POST', '/api/v1/revisions/500/rollback')).status, 404);
  // curl -X POST -H 'content-type: application/json' with no body: still the route's own answer, not "is empty".
  const json = { 'content-type': 'application/json' };
  assert.equal((await h.call('POST', '/api/v1/revisions/500/rollback', undefined, undefined, json)).status, 404);
  const badQuery = await h.call('POST', '/api/v1/revisions/500/rollback?dryRun=true', undefined, undefined, json);
  assert.equal(badQuery.status, 400);
  assert.equal(badQuery.json.error.details[0].path, 'query.dryRun');
  // A route that takes a body still says so when it gets none.
  const empty = await h.call('POST', '/api/v1/services', undefined, undefined, json);
  assert.equal(empty.status, 400);
  assert.match(empty.json.error.details[0].message, /is empty/);

  const toEmpty = await h.call('POST', '/api/v1/revisions/0/rollback');
  assert.equal(toEmpty.status, 200, 'revision 0 is the empty store');
  assert.deepEqual((await h.call('GET', '/api/v1/services')).json.items, []);
  assert.equal((await h.call('GET', '/api/v1/instances')).json.items.length, 1, 'rollback never removes registrations');
});

test('audit log: who changed what, filterable by token name', async (t) => {
  const h = await startApi();
  t.after(() => h.close());
  const bob = (await h.call('POST', '/api/v1/tokens', { role: 'admin', name: 'bob' })).json.token;
  await h.call('POST', '/api/v1/services', { name: 'orders', ports: [{ port: 80, protocol: 'http' }] });
  await h.call('POST', '/api/v1/services', { name: 'payments', ports: [{ port: 80, protocol: 'http' }] }, bob);
  const all = await h.call('GET', '/api/v1/audit', undefined, h.viewer);
  assert.deepEqual(all.json.items.map((e: { actor: string; action: string }) => `${e.actor} ${e.action}`), [
    'token:bob create service default/payments',
    'token:alice create service default/orders',
    'token:alice create admin token "bob"',
  ]);
  assert.deepEqual(all.json.items[0].objects, [{ op: 'put', kind: 'Service', namespace: 'default', name: 'payments', action: 'create' }]);
  const bobs = await h.call('GET', '/api/v1/audit?actor=bob');
  assert.deepEqual(bobs.json.items.map((e: { revision: number }) => e.revision), [2]);
});

test('audit log names the operator token behind registry changes and token creation', async (t) => {
  const h = await startApi();
  t.after(() => h.close());
  await h.call('POST', '/api/v1/services', { name: 'orders', ports: [{ port: 80, protocol: 'http' }] });
  const id = (await h.call('POST', '/api/v1/services/orders/instances', { address: '10.0.0.5', port: 80 })).json.id;
  await h.call('PUT', `/api/v1/services/orders/instances/${id}/health`, { health: 'draining' });
  await h.call('POST', '/api/v1/tokens', { role: 'viewer', name: 'dash' });
  const items = (await h.call('GET', '/api/v1/audit', undefined, h.viewer)).json.items as { revision: number | null; actor: string; action: string }[];
  assert.deepEqual(
    items.map((e) => [e.revision, e.actor, e.action]),
    [
      [null, 'token:alice', 'create viewer token "dash"'],
      [3, 'token:alice', `set health of instance ${id} of default/orders to draining`],
      [2, 'token:alice', `register instance ${id} of default/orders at 10.0.0.5:80`],
      [1, 'token:alice', 'create service default/orders'],
    ],
  );
  assert.equal(h.store.history()[1]!.actor, 'registry', 'the store itself records the registry as the committer');
});

test('the audit journal survives a reopen and skips a line torn by a crash', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'weft-audit-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const path = join(dir, 'audit.jsonl');
  const journal = await openAuditJournal(path);
  await journal.record({ time: '2026-01-01T00:00:00.000Z', actor: 'token:a', action: 'one', revision: 1 });
  await journal.record({ time: '2026-01-01T00:00:01.000Z', actor: 'token:a', action: 'two' });
  await appendFile(path, '{"time":"2026-01-01T00:00:02.000Z","act');
  const reopened = await openAuditJournal(path);
  assert.deepEqual(reopened.list().map((e) => e.action), ['one', 'two']);
  assert.equal((await stat(path)).mode & 0o777, 0o600);
});
