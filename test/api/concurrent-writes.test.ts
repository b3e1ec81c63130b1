// Operator writes sent at the same moment, over the file store (real fsyncs,
// so a commit takes long enough for another request to run its checks
// meanwhile). Each write must see the state the one before it committed:
// no dangling reference stored, one create of a name wins, one delete does.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openFileStore } from '../../control/store/file-store.ts';
import { createRegistry } from '../../control/registry/registry.ts';
import { openTokenStore } from '../../control/api/tokens.ts';
import { startApi } from './harness.ts';

async function fileBackedApi(t: import('node:test').TestContext) {
  const dir = await mkdtemp(join(tmpdir(), 'weft-race-'));
  const store = await openFileStore(dir);
  const h = await startApi({ store, registry: createRegistry(store) });
  t.after(async () => {
    await h.close();
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });
  return h;
}

const service = (name: string, port = 80) => ({ name, ports: [{ name: 'http', port, protocol: 'http' }] });

test('a route to a service and the deletion of that service, sent together: never both stored', async (t) => {
  const h = await fileBackedApi(t);
  let routed = 0;
  for (let i = 0; i < 20; i++) {
    assert.equal((await h.call('POST', '/api/v1/services', service(`tgt${i}`))).status, 201);
    const [deleted, route] = await Promise.all([
      h.call('DELETE', `/api/v1/services/tgt${i}`),
      h.call('POST', '/api/v1/routes', { name: `r${i}`, service: `tgt${i}`, rules: [{ destinations: [{ service: `tgt${i}` }] }] }),
    ]);
    assert.ok(!(deleted.status === 200 && route.status === 201), `round ${i}: the delete (${deleted.status}) and the route to what it deleted (${route.status}) were both stored`);
    if (route.status === 201) {
      routed++;
      assert.equal(deleted.status, 422, `round ${i}: the delete is refused while the route refers to the service`);
      assert.match(deleted.json.error.message, /still refers to it/);
    } else assert.equal(route.status, 422);
  }
  // The store holds no dangling reference: an unrelated write still succeeds.
  assert.equal((await h.call('POST', '/api/v1/services', service('unrelated'))).status, 201);
  assert.equal((await h.call('GET', '/api/v1/routes')).json.items.length, routed);
});

test('two creates of one name sent together: one 201, one 409; two deletes: one 200, one 404', async (t) => {
  const h = await fileBackedApi(t);
  for (let i = 0; i < 10; i++) {
    const created = await Promise.all([h.call('POST', '/api/v1/services', service(`dup${i}`, 80)), h.call('POST', '/api/v1/services', service(`dup${i}`, 81))]);
    assert.deepEqual(created.map((r) => r.status).sort(), [201, 409], `round ${i}: creates`);
    const winner = created.find((r) => r.status === 201)!.json.ports[0].port;
    assert.equal((await h.call('GET', `/api/v1/services/dup${i}`)).json.ports[0].port, winner, 'the stored object is the one whose create succeeded');
    const deleted = await Promise.all([h.call('DELETE', `/api/v1/services/dup${i}`), h.call('DELETE', `/api/v1/services/dup${i}`)]);
    assert.deepEqual(deleted.map((r) => r.status).sort(), [200, 404], `round ${i}: deletes`);
  }
});

test('two applies of the same new manifest sent together: one says created, the other unchanged', async (t) => {
  const h = await fileBackedApi(t);
  const yaml = 'apiVersion: weft.dev/v1\nkind: Service\nmetadata: {name: shop}\nspec: {ports: [{port: 80, protocol: http}]}\n';
  const [a, b] = await Promise.all([h.call('POST', '/api/v1/apply', yaml), h.call('POST', '/api/v1/apply', yaml)]);
  assert.deepEqual([a.json.objects[0].action, b.json.objects[0].action].sort(), ['created', 'unchanged']);
  assert.deepEqual([a.json.changed, b.json.changed].sort(), [false, true]);
});

test('ten operator tokens created at once: every one is stored, and each still works after a restart', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'weft-race-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const { store } = await openTokenStore(dir);
  const created = await Promise.all(Array.from({ length: 10 }, (_, i) => store.create(`race${i}`, 'viewer')));
  const reopened = (await openTokenStore(dir)).store;
  for (const { token, info } of created) assert.equal(reopened.authenticate(token)?.name, info.name, `${info.name} after a restart`);
  assert.deepEqual(reopened.list().map((i) => i.name).sort(), ['admin', ...created.map((c) => c.info.name)].sort());
  assert.deepEqual(readdirSync(dir).filter((f) => f.endsWith('.tmp')), [], 'no temp file left behind');
});
