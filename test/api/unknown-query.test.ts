// A write takes no query parameter it does not define: `?dryRun=true` on a
// rollback or a manifest delete (only /apply has a dry run) is a 400 naming
// it and changes nothing, as an unknown query parameter already was on the
// object and instance routes. Until 2026-11-28 those routes ignored it, so a
// rollback or delete meant as a preview was carried out.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { startApi } from './harness.ts';

const read = (f: string) => readFileSync(new URL(`../../examples/manifests/${f}`, import.meta.url), 'utf8');

test('POST /revisions/{n}/rollback?dryRun=true is a 400 at query.dryRun and rolls nothing back', async (t) => {
  const api = await startApi();
  t.after(() => api.close());
  await api.call('POST', '/api/v1/apply', read('services.yaml'));
  const before = api.store.revision();
  const res = await api.call('POST', '/api/v1/revisions/0/rollback?dryRun=true');
  assert.equal(res.status, 400);
  assert.equal(res.json.error.code, 'VALIDATION_FAILED');
  assert.deepEqual(res.json.error.details, [{ path: 'query.dryRun', message: 'unknown field' }]);
  assert.equal(api.store.revision(), before, 'no revision made');
  assert.equal((await api.call('GET', '/api/v1/services')).json.items.length, 4, 'every service still there');
});

test('POST /delete?dryRun=true is a 400 at query.dryRun and deletes nothing', async (t) => {
  const api = await startApi();
  t.after(() => api.close());
  await api.call('POST', '/api/v1/apply', read('services.yaml'));
  await api.call('POST', '/api/v1/apply', read('canary.yaml'));
  const res = await api.call('POST', '/api/v1/delete?dryRun=true', read('canary.yaml'));
  assert.equal(res.status, 400);
  assert.deepEqual(res.json.error.details.map((d: { path: string }) => d.path), ['query.dryRun']);
  assert.equal((await api.call('GET', '/api/v1/routes/orders')).status, 200, 'the route is still there');
});

test('token and filter writes refuse an unknown query parameter by name, and change nothing', async (t) => {
  const api = await startApi();
  t.after(() => api.close());
  const created = await api.call('POST', '/api/v1/tokens?role=admin', { role: 'viewer', name: 'ci' });
  assert.equal(created.status, 400);
  assert.deepEqual(created.json.error.details.map((d: { path: string }) => d.path), ['query.role']);
  assert.ok(!(await api.call('GET', '/api/v1/tokens')).json.items.some((i: { name: string }) => i.name === 'ci'));

  await api.call('POST', '/api/v1/tokens', { role: 'viewer', name: 'ci' });
  const revoked = await api.call('DELETE', '/api/v1/tokens/ci?force=true');
  assert.equal(revoked.status, 400);
  assert.deepEqual(revoked.json.error.details.map((d: { path: string }) => d.path), ['query.force']);
  assert.ok((await api.call('GET', '/api/v1/tokens')).json.items.some((i: { name: string }) => i.name === 'ci'), 'still there');

  const upload = await api.call('POST', '/api/v1/filters?name=x', { name: 'x', wasm: 'AGFzbQEAAAA=' });
  assert.equal(upload.status, 400);
  assert.deepEqual(upload.json.error.details.map((d: { path: string }) => d.path), ['query.name']);
});

test('the routes that define query parameters still take them', async (t) => {
  const api = await startApi();
  t.after(() => api.close());
  assert.equal((await api.call('POST', '/api/v1/apply?dryRun=true', read('services.yaml'))).status, 200);
  await api.call('POST', '/api/v1/apply', read('services.yaml'));
  assert.equal((await api.call('POST', '/api/v1/revisions/1/rollback')).status, 200);
  assert.equal((await api.call('POST', '/api/v1/diff', read('canary.yaml'))).status, 200);
});
