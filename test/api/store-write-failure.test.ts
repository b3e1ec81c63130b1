// What the API says when the store cannot write (a full disk, a failing
// device): the write is refused 503 UNAVAILABLE saying why, not a bare 500;
// once space is back the next write is stored. When the store could not
// recover, every write is refused saying a restart is needed, and /readyz
// answers 503 naming the cause instead of 200.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openFileStore } from '../../control/store/file-store.ts';
import { failNext } from '../store/fixtures/failing-writes.ts';
import { startApi } from './harness.ts';

const service = { ports: [{ port: 80, protocol: 'http' }] };

async function fileStoreApi(t: { after: (fn: () => Promise<void> | void) => void }) {
  const dir = mkdtempSync(join(tmpdir(), 'weft-api-store-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const store = await openFileStore(dir);
  t.after(() => store.close());
  const h = await startApi({ store });
  t.after(() => h.close());
  return { h, dir };
}

test('a write the store could not write is refused 503 naming the cause, and the next one is stored', async (t) => {
  const { h, dir } = await fileStoreApi(t);
  assert.equal((await h.call('PUT', '/api/v1/services/before', service)).status, 201);
  await failNext(t, dir, 'appendFile', 'ENOSPC');

  const during = await h.call('PUT', '/api/v1/services/during', service);
  assert.equal(during.status, 503, during.body);
  assert.equal(during.json.error.code, 'UNAVAILABLE');
  assert.match(during.json.error.message, /store write failed \(ENOSPC.*nothing was stored/);
  assert.equal((await h.call('GET', '/api/v1/services/during')).status, 404);

  assert.equal((await h.call('PUT', '/api/v1/services/after', service)).status, 201);
  assert.equal((await h.call('GET', '/readyz', undefined, null)).status, 200);
});

test('a store that cannot recover from a failed write makes /readyz 503 and refuses writes saying a restart is needed', async (t) => {
  const { h, dir } = await fileStoreApi(t);
  await failNext(t, dir, 'appendFile', 'ENOSPC');
  await failNext(t, dir, 'truncate', 'EIO');
  assert.equal((await h.call('PUT', '/api/v1/services/during', service)).status, 503);

  const after = await h.call('PUT', '/api/v1/services/after', service);
  assert.equal(after.status, 503, after.body);
  assert.equal(after.json.error.code, 'UNAVAILABLE');
  assert.match(after.json.error.message, /store write failed \(ENOSPC.*restarted/);
  const ready = await h.call('GET', '/readyz', undefined, null);
  assert.equal(ready.status, 503, ready.body);
  assert.match(ready.json.error.message, /^not ready: store write failed \(ENOSPC.*restarted/);
});
