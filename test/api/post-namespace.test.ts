// POST /{kind}?namespace=NS creates the object in NS, as ?namespace= selects
// the namespace on every other object route (GET, PUT, DELETE); a body that
// names another namespace, or a namespace that is no DNS label, is refused
// naming the field, and nothing is stored.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startApi } from './harness.ts';

const svc = { name: 'cart', ports: [{ port: 8080, protocol: 'http' }] };

test('POST ?namespace= creates the object in that namespace', async (t) => {
  const api = await startApi();
  t.after(() => api.close());
  const created = await api.call('POST', '/api/v1/services?namespace=shop', svc);
  assert.equal(created.status, 201);
  assert.equal(created.json.namespace, 'shop');
  assert.equal((await api.call('GET', '/api/v1/services/cart?namespace=shop')).status, 200);
  assert.equal((await api.call('GET', '/api/v1/services/cart')).status, 404, 'nothing in default');
  // the same name in another namespace is another object
  assert.equal((await api.call('POST', '/api/v1/services', svc)).status, 201);
});

test('POST ?namespace= that disagrees with the body, or is no DNS label, is a 400 naming it and stores nothing', async (t) => {
  const api = await startApi();
  t.after(() => api.close());
  const before = api.store.revision();
  const mismatch = await api.call('POST', '/api/v1/services?namespace=shop', { ...svc, namespace: 'billing' });
  assert.equal(mismatch.status, 400);
  assert.deepEqual(mismatch.json.error.details.map((d: { path: string }) => d.path), ['namespace']);
  assert.match(mismatch.json.error.message, /does not match \?namespace= \("shop"\)/);
  const bad = await api.call('POST', '/api/v1/services?namespace=Shop_1', svc);
  assert.equal(bad.status, 400);
  assert.deepEqual(bad.json.error.details.map((d: { path: string }) => d.path), ['query.namespace']);
  assert.equal(api.store.revision(), before);
  const agreeing = await api.call('POST', '/api/v1/services?namespace=shop', { ...svc, namespace: 'shop' });
  assert.equal(agreeing.status, 201);
});

test('PUT /{kind}/NAME names the object by its URL, namespace included (?namespace=, else default): a body naming another namespace is a 400 naming it, and stores nothing', async (t) => {
  const api = await startApi();
  t.after(() => api.close());
  const before = api.store.revision();
  // It created other/cart, which GET /services/cart (default) then did not find.
  const elsewhere = await api.call('PUT', '/api/v1/services/cart', { ...svc, namespace: 'other' });
  assert.equal(elsewhere.status, 400);
  assert.deepEqual(elsewhere.json.error.details.map((d: { path: string }) => d.path), ['namespace']);
  assert.match(elsewhere.json.error.details[0].message, /does not match the namespace the URL selects \("default"\); add \?namespace=other/);
  assert.equal(api.store.revision(), before);
  assert.equal((await api.call('GET', '/api/v1/services/cart?namespace=other')).status, 404);
  // With ?namespace= it is that namespace's object, and the same GET finds it.
  assert.equal((await api.call('PUT', '/api/v1/services/cart?namespace=other', { ...svc, namespace: 'other' })).status, 201);
  assert.equal((await api.call('GET', '/api/v1/services/cart?namespace=other')).status, 200);
  assert.equal((await api.call('PUT', '/api/v1/services/cart', svc)).status, 201, 'without a namespace anywhere: default');
  assert.equal((await api.call('GET', '/api/v1/services/cart')).status, 200);
});
