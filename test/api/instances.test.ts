// Instances through the API: register -> {id}, list with health, heartbeat,
// draining, deregister; unknown service and unknown instance are 404.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startApi } from './harness.ts';

test('register, heartbeat, drain and deregister an instance', async (t) => {
  const h = await startApi();
  t.after(() => h.close());
  await h.call('POST', '/api/v1/services', { name: 'orders', ports: [{ port: 8080, protocol: 'http' }] });

  const reg = await h.call('POST', '/api/v1/services/orders/instances', { address: '127.0.0.1', port: 9001, labels: { version: 'v2' }, zone: 'z1', ttlSeconds: 30 });
  assert.equal(reg.status, 201);
  // Each registry write answers with the revision it made, as every other write does.
  assert.equal(reg.headers['x-weft-revision'], String(h.store.revision()));
  const id = reg.json.id as string;
  assert.match(id, /^orders-/);

  const listed = await h.call('GET', '/api/v1/services/orders/instances');
  assert.equal(listed.json.items.length, 1);
  assert.deepEqual(
    { health: listed.json.items[0].health, live: listed.json.items[0].live, labels: listed.json.items[0].labels, zone: listed.json.items[0].zone },
    { health: 'healthy', live: true, labels: { version: 'v2' }, zone: 'z1' },
  );
  assert.equal((await h.call('PUT', `/api/v1/services/orders/instances/${id}/heartbeat`)).status, 200);

  const drain = await h.call('PUT', `/api/v1/services/orders/instances/${id}/health`, { health: 'draining' });
  assert.equal(drain.status, 200);
  assert.equal(drain.headers['x-weft-revision'], String(h.store.revision()));
  assert.equal((await h.call('GET', '/api/v1/instances')).json.items[0].health, 'draining');
  assert.equal(h.deps.buildModel().instances[0]!.health, 'draining', 'the model the translator sees is draining');
  const badHealth = await h.call('PUT', `/api/v1/services/orders/instances/${id}/health`, { health: 'sleepy' });
  assert.equal(badHealth.status, 400);
  assert.equal(badHealth.json.error.details[0].path, 'health');

  const gone = await h.call('DELETE', `/api/v1/services/orders/instances/${id}`);
  assert.equal(gone.status, 200);
  assert.equal(gone.headers['x-weft-revision'], String(h.store.revision()));
  assert.deepEqual((await h.call('GET', '/api/v1/services/orders/instances')).json.items, []);
  assert.equal((await h.call('PUT', `/api/v1/services/orders/instances/${id}/heartbeat`)).status, 404);
  assert.equal((await h.call('DELETE', `/api/v1/services/orders/instances/${id}`)).status, 404);
});

test('registering for an unknown service is 404 and an instance of another service is not reachable through this one', async (t) => {
  const h = await startApi();
  t.after(() => h.close());
  const none = await h.call('POST', '/api/v1/services/ghost/instances', { address: '127.0.0.1', port: 9001 });
  assert.equal(none.status, 404);
  assert.match(none.json.error.message, /create it before registering/);
  await h.call('POST', '/api/v1/services', { name: 'orders', ports: [{ port: 8080, protocol: 'http' }] });
  await h.call('POST', '/api/v1/services', { name: 'payments', ports: [{ port: 8080, protocol: 'http' }] });
  const id = (await h.call('POST', '/api/v1/services/orders/instances', { address: '10.0.0.1', port: 80 })).json.id;
  assert.equal((await h.call('DELETE', `/api/v1/services/payments/instances/${id}`)).status, 404);
  assert.equal((await h.call('GET', '/api/v1/services/orders/instances')).json.items.length, 1);
});
