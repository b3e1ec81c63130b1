// A body the API cannot take says why in terms the caller can act on: the
// limit it went over, or the content types it accepts (curl -d sends a form
// type unless told otherwise). fastify's own texts said neither.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startApi } from './harness.ts';

test('a body over the limit names the limit; an unaccepted content type names what to send', async (t) => {
  const h = await startApi();
  t.after(() => h.close());
  const big = JSON.stringify({ name: 'orders', ports: [{ port: 8080, protocol: 'http' }], pad: 'x'.repeat(5 * 1024 * 1024) });
  const tooBig = await h.call('POST', '/api/v1/services', big, undefined, { 'content-type': 'application/json' });
  assert.equal(tooBig.status, 413);
  assert.equal(tooBig.json.error.code, 'PAYLOAD_TOO_LARGE');
  assert.equal(tooBig.json.error.message, `body is larger than this endpoint's limit of 4 MiB (${Buffer.byteLength(big)} bytes sent)`);

  const form = await h.call('POST', '/api/v1/services', 'name=orders', undefined, { 'content-type': 'application/x-www-form-urlencoded' });
  assert.equal(form.status, 415);
  assert.equal(form.json.error.code, 'UNSUPPORTED_MEDIA_TYPE');
  assert.match(form.json.error.message, /^content-type application\/x-www-form-urlencoded is not accepted: send application\/json \(curl -d sends/);
  const xml = await h.call('POST', '/api/v1/apply', '<manifests/>', undefined, { 'content-type': 'application/xml' });
  assert.equal(xml.status, 415);
  assert.match(xml.json.error.message, /^content-type application\/xml is not accepted: send application\/json or application\/yaml/);
  assert.equal(h.store.revision(), 0, 'nothing stored');
});

test('an endpoint that takes no body refuses one with something in it, naming each field, and does nothing', async (t) => {
  const h = await startApi();
  t.after(() => h.close());
  assert.equal((await h.call('POST', '/api/v1/apply', 'apiVersion: weft.dev/v1\nkind: Service\nmetadata: {name: orders}\nspec: {ports: [{port: 8080, protocol: http}]}\n', undefined, { 'content-type': 'application/yaml' })).status, 200);
  const before = h.store.revision();
  // Before 2026-11-29 the body was ignored and the rollback done.
  const rollback = await h.call('POST', `/api/v1/revisions/0/rollback`, { x: 1, dryRun: true });
  assert.equal(rollback.status, 400);
  assert.deepEqual(rollback.json.error.details, [{ path: 'x', message: 'unknown field (this endpoint takes no body)' }, { path: 'dryRun', message: 'unknown field (this endpoint takes no body)' }]);
  assert.equal(h.store.revision(), before, 'not rolled back');
  const list = await h.call('DELETE', '/api/v1/services/orders', [1]);
  assert.equal(list.status, 400);
  assert.equal(list.json.error.message, 'invalid body: this endpoint takes no body');
  assert.equal((await h.call('GET', '/api/v1/services/orders')).status, 200, 'not deleted');
  // An empty object says nothing, and is taken.
  assert.equal((await h.call('POST', `/api/v1/revisions/0/rollback`, {})).status, 200);
});
