// Applying or deleting manifests that hold no object is refused, as kubectl
// refuses it ("no objects passed to apply"): an empty file or a template that
// rendered nothing answered "no changes" and a pipeline took it for success.
// A diff of nothing stays a (empty) diff.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startApi } from './harness.ts';

test('apply and delete of manifests with no object are a 400 naming the documents; nothing is stored', async (t) => {
  const api = await startApi();
  t.after(() => api.close());
  const before = api.store.revision();
  for (const [url, body, path] of [
    ['/api/v1/apply', '', 'documents'],
    ['/api/v1/apply', '# generated: nothing to deploy\n---\n---\n', 'documents'],
    ['/api/v1/apply?dryRun=true', '', 'documents'],
    ['/api/v1/apply', { manifests: [] }, 'manifests'],
    ['/api/v1/delete', '---\n', 'documents'],
    ['/api/v1/delete', { manifests: [] }, 'manifests'],
  ] as const) {
    const res = await api.call('POST', url, body);
    assert.equal(res.status, 400, `${url} ${JSON.stringify(body)}: ${res.body}`);
    assert.equal(res.json.error.code, 'VALIDATION_FAILED');
    assert.deepEqual(res.json.error.details.map((d: { path: string }) => d.path), [path]);
    assert.match(res.json.error.message, /holds no object to (apply|delete)/);
  }
  assert.equal(api.store.revision(), before);
  assert.equal((await api.call('POST', '/api/v1/diff', '')).status, 200, 'a diff of nothing is an empty diff');
});
