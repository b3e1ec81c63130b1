// Tests for the api-key example filter, written the way a filter author
// would: load the module with a configuration through weft's test kit, send
// requests, and assert on what the upstream and the client would see.
// (Run by `npm test` through test/wasm/example-filter.test.ts.)

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadFilter } from 'weft/testing';
import { buildApiKeyFilter } from './build.ts';

const config = JSON.stringify({
  keys: { 'k-123': 'mobile-app' },
  trustedPeers: ['spiffe://weft.local/ns/default/sa/web'],
});

test('a known API key reaches the upstream as the client name, without the key', async () => {
  const filter = await loadFilter(await buildApiKeyFilter(), { configuration: config });
  const res = await filter.request({ path: '/orders', headers: { 'x-api-key': 'k-123' } }, { status: 200, body: 'ok' });
  assert.equal(res.forwarded?.header('x-weft-client'), 'mobile-app');
  assert.equal(res.forwarded?.header('x-api-key'), undefined);
  assert.equal(res.response?.status, 200);
  assert.equal(res.response?.header('x-weft-filter'), 'api-key');
  assert.equal(res.response?.body, 'ok');
  assert.equal(filter.metric('api_key_requests', { result: 'allowed' }), 1);
});

test('a trusted workload (by its SPIFFE ID) needs no key', async () => {
  const filter = await loadFilter(await buildApiKeyFilter(), { configuration: config });
  const res = await filter.request({ properties: { 'connection.uri_san_peer_certificate': 'spiffe://weft.local/ns/default/sa/web' } });
  assert.equal(res.forwarded?.header('x-weft-client'), 'spiffe://weft.local/ns/default/sa/web');
});

test('no key: 401 with WWW-Authenticate, and the upstream never sees the request', async () => {
  const filter = await loadFilter(await buildApiKeyFilter(), { configuration: config });
  const res = await filter.request({ path: '/orders' });
  assert.equal(res.forwarded, undefined);
  assert.equal(res.localReply?.status, 401);
  assert.deepEqual(JSON.parse(res.localReply!.bodyText), { error: 'missing API key' });
  assert.equal(res.response?.header('www-authenticate'), 'ApiKey');
  // Envoy runs the filter's response callbacks on its own local reply too.
  assert.equal(res.response?.header('x-weft-filter'), 'api-key');
  assert.deepEqual(filter.logMessages('info'), ['api-key: missing API key']);
});

test('an unknown key is 403 and counted as denied', async () => {
  const filter = await loadFilter(await buildApiKeyFilter(), { configuration: config });
  const res = await filter.request({ headers: { 'X-Api-Key': 'stolen' } });
  assert.equal(res.localReply?.status, 403);
  assert.match(filter.prometheus(), /^api_key_requests\{plugin="filter-under-test",result="denied"\} 1$/m);
});

test('a configuration with a typo is refused at load, naming the field', async () => {
  await assert.rejects(loadFilter(await buildApiKeyFilter(), { configuration: '{"keyz": {}}' }), /proxy_on_configure: module returned false/);
});
