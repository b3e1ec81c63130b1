// CRUD of the operator kinds through the API: services, routes, destination
// policies, filter bindings; conflicts, not found, namespaces, and reference
// checks across objects (nothing stored on error).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { kindNames } from '../../control/model/kinds.ts';
import { kindPath } from '../../control/api/routes/objects.ts';
import { startApi } from './harness.ts';

const orders = { name: 'orders', ports: [{ name: 'http', port: 8080, protocol: 'http' }] };
const policy = { name: 'orders', service: 'orders', subsets: [{ name: 'v1', labels: { version: 'v1' } }, { name: 'v2', labels: { version: 'v2' } }] };
const canary = {
  name: 'orders',
  service: 'orders',
  rules: [{ destinations: [{ service: 'orders', subset: 'v1', weight: 90 }, { service: 'orders', subset: 'v2', weight: 10 }], timeoutMs: 2000 }],
};

test('services: create, read, list, replace, delete; each write is one revision with defaults filled', async (t) => {
  const h = await startApi();
  t.after(() => h.close());
  const created = await h.call('POST', '/api/v1/services', orders);
  assert.equal(created.status, 201);
  assert.equal(created.json.namespace, 'default', 'namespace defaulted');
  assert.equal(created.headers['x-weft-revision'], '1');
  assert.equal((await h.call('POST', '/api/v1/services', orders)).status, 409, 'POST of an existing name conflicts');

  const read = await h.call('GET', '/api/v1/services/orders');
  assert.deepEqual(read.json, { name: 'orders', namespace: 'default', ports: [{ name: 'http', port: 8080, protocol: 'http' }] });
  const withHc = await h.call('PUT', '/api/v1/services/orders', { ports: orders.ports, healthCheck: { path: '/healthz' } });
  assert.equal(withHc.status, 200);
  assert.equal(withHc.json.healthCheck.intervalMs, 10000, 'health-check defaults filled');
  assert.equal(h.store.revision(), 2);
  assert.equal((await h.call('PUT', '/api/v1/services/orders', { ports: orders.ports, healthCheck: { path: '/healthz' } })).status, 200);
  assert.equal(h.store.revision(), 2, 'an identical PUT makes no revision');

  const mismatch = await h.call('PUT', '/api/v1/services/orders', { ...orders, name: 'payments' });
  assert.equal(mismatch.status, 400);
  assert.equal(mismatch.json.error.details[0].path, 'name');

  assert.equal((await h.call('POST', '/api/v1/services', { ...orders, namespace: 'shop' })).status, 201);
  assert.equal((await h.call('GET', '/api/v1/services')).json.items.length, 2);
  assert.deepEqual((await h.call('GET', '/api/v1/services?namespace=shop')).json.items.map((s: { namespace: string }) => s.namespace), ['shop']);
  assert.equal((await h.call('GET', '/api/v1/services/orders?namespace=shop')).json.namespace, 'shop');

  const deleted = await h.call('DELETE', '/api/v1/services/orders?namespace=shop');
  assert.equal(deleted.status, 200);
  assert.equal((await h.call('GET', '/api/v1/services/orders?namespace=shop')).status, 404);
  const missing = await h.call('DELETE', '/api/v1/services/nope');
  assert.equal(missing.status, 404);
  assert.equal(missing.json.error.code, 'NOT_FOUND');
});

test('routes and destination policies: subsets must exist, and a referenced service cannot be deleted', async (t) => {
  const h = await startApi();
  t.after(() => h.close());
  await h.call('POST', '/api/v1/services', orders);
  const rev = h.store.revision();

  const noSubsets = await h.call('POST', '/api/v1/routes', canary);
  assert.equal(noSubsets.status, 422);
  assert.equal(noSubsets.json.error.code, 'INVALID_REFERENCE');
  assert.deepEqual(noSubsets.json.error.details.map((d: { path: string }) => d.path), ['rules[0].destinations[0].subset', 'rules[0].destinations[1].subset']);
  assert.match(noSubsets.json.error.details[0].message, /unknown subset v1 of service default\/orders/);
  assert.equal(h.store.revision(), rev, 'nothing stored');

  assert.equal((await h.call('POST', '/api/v1/destination-policies', policy)).status, 201);
  const route = await h.call('POST', '/api/v1/routes', canary);
  assert.equal(route.status, 201);
  assert.equal(route.json.rules[0].destinations[1].weight, 10);
  assert.deepEqual((await h.call('GET', '/api/v1/routes')).json.items.map((r: { name: string }) => r.name), ['orders']);
  assert.equal((await h.call('GET', '/api/v1/destination-policies/orders')).json.subsets.length, 2);

  const dropSubset = await h.call('PUT', '/api/v1/destination-policies/orders', { service: 'orders', subsets: [policy.subsets[0]] });
  assert.equal(dropSubset.status, 422, 'removing a subset a route uses is refused');
  assert.match(dropSubset.json.error.details[0].message, /Route default\/orders still refers to it/);

  const before = h.store.revision();
  const del = await h.call('DELETE', '/api/v1/services/orders');
  assert.equal(del.status, 422);
  assert.ok(del.json.error.details.some((d: { path: string }) => d.path.startsWith('Route/default/orders.')), JSON.stringify(del.json));
  assert.equal(h.store.revision(), before);

  assert.equal((await h.call('DELETE', '/api/v1/routes/orders')).status, 200);
  assert.equal((await h.call('DELETE', '/api/v1/destination-policies/orders')).status, 200);
  assert.equal((await h.call('DELETE', '/api/v1/services/orders')).status, 200);
});

test('routes need an HTTP port: a route on a tcp-only service is refused, and so is making a routed service tcp-only', async (t) => {
  // Translation refuses HTTP routes on a tcp-only service, and a refused
  // translation keeps every caller on its last good snapshot: accepting the
  // route (201) froze the mesh's config without a word to the operator.
  const h = await startApi();
  t.after(() => h.close());
  assert.equal((await h.call('POST', '/api/v1/services', { name: 'db', ports: [{ port: 5432, protocol: 'tcp' }] })).status, 201);
  const rev = h.store.revision();
  const onTcp = await h.call('POST', '/api/v1/routes', { name: 'db', service: 'db', rules: [{ destinations: [{ service: 'db' }] }] });
  assert.equal(onTcp.status, 422, JSON.stringify(onTcp.json));
  assert.deepEqual(onTcp.json.error.details.map((d: { path: string }) => d.path), ['service', 'rules[0].destinations[0].service']);
  assert.match(onTcp.json.error.details[0].message, /only tcp ports/);
  assert.equal(h.store.revision(), rev, 'nothing stored');

  assert.equal((await h.call('POST', '/api/v1/services', orders)).status, 201);
  assert.equal((await h.call('POST', '/api/v1/routes', { name: 'orders', service: 'orders', rules: [{ destinations: [{ service: 'orders' }], timeoutMs: 1000 }] })).status, 201);
  const toTcp = await h.call('PUT', '/api/v1/services/orders', { ports: [{ port: 8080, protocol: 'tcp' }] });
  assert.equal(toTcp.status, 422, JSON.stringify(toTcp.json));
  assert.match(toTcp.json.error.details[0].message, /only tcp ports.*Route default\/orders still refers to it/);
});

test('filter bindings: the filter must be in the catalog', async (t) => {
  const h = await startApi();
  t.after(() => h.close());
  await h.call('POST', '/api/v1/services', orders);
  const res = await h.call('POST', '/api/v1/filter-bindings', { name: 'auth', service: 'orders', direction: 'inbound', filter: 'nosuch' });
  assert.equal(res.status, 422);
  assert.equal(res.json.error.details[0].path, 'filter');
  assert.match(res.json.error.details[0].message, /unknown filter "nosuch"/);
  assert.deepEqual((await h.call('GET', '/api/v1/filter-bindings')).json.items, []);
});

test('unknown routes answer 404 in the contract shape (a known route with another method: method-not-allowed.test.ts)', async (t) => {
  const h = await startApi();
  t.after(() => h.close());
  const res = await h.call('GET', '/api/v1/nothing-here');
  assert.equal(res.status, 404);
  assert.deepEqual(Object.keys(res.json.error).sort(), ['code', 'details', 'message']);
});

test('OpenAPI 3 document lists every endpoint with the model schemas as request bodies', async (t) => {
  const h = await startApi();
  t.after(() => h.close());
  const doc = (await h.call('GET', '/api/v1/openapi.json')).json;
  assert.match(doc.openapi, /^3\./);
  for (const path of ['/api/v1/services', '/api/v1/services/{name}/instances', '/api/v1/routes', '/api/v1/destination-policies', '/api/v1/filter-bindings', '/api/v1/apply', '/api/v1/diff', '/api/v1/proxies/{id}/config', '/api/v1/revisions/{n}/rollback', '/api/v1/audit', '/api/v1/filters', '/api/v1/tokens']) {
    assert.ok(doc.paths[path], `${path} documented`);
  }
  const body = doc.paths['/api/v1/services'].post.requestBody.content['application/json'].schema;
  assert.equal(body.additionalProperties, false);
  assert.ok(body.properties.ports, 'the Service schema from control/model');
  assert.deepEqual(doc.components.securitySchemes.bearer, { type: 'http', scheme: 'bearer' });
});

test('every kind control/model registers gets CRUD routes at its kebab-case plural', async (t) => {
  assert.deepEqual(['Service', 'DestinationPolicy', 'FilterBinding', 'PeerAuthentication'].map(kindPath), ['services', 'destination-policies', 'filter-bindings', 'peer-authentications']);
  const h = await startApi();
  t.after(() => h.close());
  const doc = (await h.call('GET', '/api/v1/openapi.json')).json;
  for (const name of kindNames()) {
    const path = `/api/v1/${kindPath(name)}`;
    assert.ok(doc.paths[path]?.post && doc.paths[`${path}/{name}`]?.put, `${name} has routes at ${path}`);
    assert.equal((await h.call('GET', path, undefined, h.viewer)).status, 200);
  }
});

test('If-Match: a write based on a stale read is 412 and stores nothing; If-None-Match: * creates only', async (t) => {
  const h = await startApi();
  const onPort = (port: number) => ({ ...orders, ports: [{ name: 'http', port, protocol: 'http' }] });
  t.after(() => h.close());
  const created = await h.call('POST', '/api/v1/services', orders);
  const etag = created.headers.etag as string;
  assert.match(etag, /^"[0-9a-f]{32}"$/);
  const read = await h.call('GET', '/api/v1/services/orders');
  assert.equal(read.headers.etag, etag, 'GET gives the tag the write answered with');

  // Two operators read the same version; the first write wins, the second is told.
  const first = await h.call('PUT', '/api/v1/services/orders', onPort(8081), undefined, { 'if-match': etag });
  assert.equal(first.status, 200);
  assert.notEqual(first.headers.etag, etag, 'the tag moves with the object');
  const rev = h.store.revision();
  const second = await h.call('PUT', '/api/v1/services/orders', onPort(8082), undefined, { 'if-match': etag });
  assert.equal(second.status, 412);
  assert.equal(second.json.error.code, 'PRECONDITION_FAILED');
  assert.match(second.json.error.message, /service default\/orders has changed since it was read/);
  const staleDelete = await h.call('DELETE', '/api/v1/services/orders', undefined, undefined, { 'if-match': etag });
  assert.equal(staleDelete.status, 412);
  assert.equal(h.store.revision(), rev, 'neither stale write was stored');
  assert.equal((await h.call('GET', '/api/v1/services/orders')).json.ports[0].port, 8081);

  // The current tag, a list holding it, or * pass.
  assert.equal((await h.call('PUT', '/api/v1/services/orders', onPort(8083), undefined, { 'if-match': `"nope", ${first.headers.etag}` })).status, 200);
  assert.equal((await h.call('PUT', '/api/v1/services/payments', { ...orders, name: 'payments' }, undefined, { 'if-match': '*' })).status, 412, 'If-Match: * needs the object to exist');
  assert.equal((await h.call('GET', '/api/v1/services/payments')).status, 404);

  assert.equal((await h.call('PUT', '/api/v1/services/orders', orders, undefined, { 'if-none-match': '*' })).status, 412, 'If-None-Match: * never replaces');
  assert.equal((await h.call('PUT', '/api/v1/services/payments', { ...orders, name: 'payments' }, undefined, { 'if-none-match': '*' })).status, 201);
  const current = (await h.call('GET', '/api/v1/services/orders')).headers.etag as string;
  assert.equal((await h.call('DELETE', '/api/v1/services/orders', undefined, undefined, { 'if-match': current })).status, 200);
});

test('objects an older build stored and this one refuses are named, field and reason, for the warning at start', async (t) => {
  const { storedStateProblems } = await import('../../control/api/stored-check.ts');
  const h = await startApi();
  t.after(() => h.close());
  assert.equal((await h.call('POST', '/api/v1/services', orders)).status, 201);
  assert.equal((await h.call('POST', '/api/v1/routes', { name: 'orders', service: 'orders', rules: [{ destinations: [{ service: 'orders', weight: 1 }] }] })).status, 201);
  assert.deepEqual(storedStateProblems(h.deps), [], 'what this build stored passes');
  // Written around the API, as an older build's data dir holds them.
  await h.store.commit([
    { op: 'put', kind: 'Route', namespace: 'default', name: 'legacy', spec: { name: 'legacy', namespace: 'default', service: 'orders', rules: [{ destinations: [{ service: 'orders', weight: 1 }], requestHeaders: { add: [{ name: 'x-share', value: '10%' }] } }] } },
    { op: 'put', kind: 'Instance', namespace: 'default', name: 'orders-1', spec: { id: 'orders-1', service: 'orders', namespace: 'default', address: 'orders.internal', port: 8080, labels: {}, health: 'healthy', ttlSeconds: 0 } },
    { op: 'put', kind: 'Route', namespace: 'default', name: 'dangling', spec: { name: 'dangling', namespace: 'default', service: 'gone', rules: [{ destinations: [{ service: 'gone', weight: 1 }] }] } },
  ], { actor: 'older-build', summary: 'legacy' });
  const problems = storedStateProblems(h.deps);
  assert.ok(problems.some((p) => /^Route\/default\/legacy\.rules\[0\]\.requestHeaders\.add\[0\]\.value: /.test(p)), problems.join('\n'));
  assert.ok(problems.some((p) => /^Instance\/default\/orders-1\.address: .*not a host name \("orders\.internal"\)/.test(p)), problems.join('\n'));
  assert.ok(problems.some((p) => /^Route\/default\/dangling\./.test(p)), problems.join('\n'));
});
