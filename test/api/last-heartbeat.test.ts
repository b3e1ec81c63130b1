// Instances carry when they last registered or sent a heartbeat, so an
// operator (the UI's service page) can see an instance going quiet before its
// TTL lapses.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startApi } from './harness.ts';

test('GET /instances shows lastHeartbeat; a heartbeat moves it forward', async (t) => {
  const h = await startApi();
  t.after(() => h.close());
  assert.equal((await h.call('POST', '/api/v1/services', { name: 'orders', ports: [{ port: 8081, protocol: 'http' }] })).status, 201);
  const before = Date.now();
  const { id } = (await h.call('POST', '/api/v1/services/orders/instances', { address: '127.0.0.1', port: 9001, ttlSeconds: 30 })).json;
  const first = (await h.call('GET', '/api/v1/services/orders/instances', undefined, h.viewer)).json.items[0];
  assert.ok(Date.parse(first.lastHeartbeat) >= before - 1000, first.lastHeartbeat);
  await new Promise((r) => setTimeout(r, 20));
  assert.equal((await h.call('PUT', `/api/v1/services/orders/instances/${id}/heartbeat`)).status, 200);
  const second = (await h.call('GET', '/api/v1/instances')).json.items[0];
  assert.ok(Date.parse(second.lastHeartbeat) > Date.parse(first.lastHeartbeat), `${second.lastHeartbeat} after ${first.lastHeartbeat}`);
});
