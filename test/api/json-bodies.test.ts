// Bodies the API would otherwise read as something the operator never wrote:
// a key given twice (JSON.parse keeps the last one) and bytes that are not
// UTF-8 (decoding replaced them with U+FFFD). Each is a 400 naming where, and
// nothing is stored; JSON that merely looks like such a case is accepted.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startApi } from './harness.ts';

const JSON_TYPE = { 'content-type': 'application/json' };
const paths = (res: { json: any }) => res.json.error.details.map((d: { path: string }) => d.path);

test('a key given twice is refused naming it, at any depth, and nothing is stored', async (t) => {
  const api = await startApi();
  t.after(() => api.close());
  const before = api.store.revision();
  const top = await api.call('POST', '/api/v1/services', '{"name":"cart","ports":[{"port":80,"protocol":"http"}],"name":"shop"}', undefined, JSON_TYPE);
  assert.equal(top.status, 400);
  assert.equal(top.json.error.code, 'VALIDATION_FAILED');
  assert.deepEqual(paths(top), ['name']);
  assert.match(top.json.error.message, /name: duplicate key/);

  const manifest = (spec: string) => `{"manifests":[{"apiVersion":"weft.dev/v1","kind":"Service","metadata":{"name":"cart"},"spec":${spec}}]}`;
  const nested = await api.call('POST', '/api/v1/apply', manifest('{"ports":[{"port":80,"protocol":"http","port":8080}]}'), undefined, JSON_TYPE);
  assert.equal(nested.status, 400);
  assert.deepEqual(paths(nested), ['manifests[0].spec.ports[0].port']);
  const labels = await api.call('POST', '/api/v1/services/cart/instances', '{"address":"127.0.0.1","port":9000,"labels":{"app/v":"1","app/v":"2"}}', undefined, JSON_TYPE);
  assert.equal(labels.status, 400);
  assert.deepEqual(paths(labels), ['labels["app/v"]']);
  const proto = await api.call('POST', '/api/v1/services', '{"name":"cart","ports":[{"port":80,"protocol":"http"}],"__proto__":{"admin":true}}', undefined, JSON_TYPE);
  assert.equal(proto.status, 400);
  assert.deepEqual(paths(proto), ['__proto__']);
  const ctor = await api.call('POST', '/api/v1/services', '{"name":"cart","ports":[{"port":80,"protocol":"http"}],"labels":{"constructor":{"prototype":{"admin":true}}}}', undefined, JSON_TYPE);
  assert.equal(ctor.status, 400);
  assert.deepEqual(paths(ctor), ['labels.constructor.prototype']);
  assert.equal(api.store.revision(), before);

  // keys inside strings, escaped quotes and equal keys in sibling objects are no duplicates
  const fine = await api.call('POST', '/api/v1/apply', manifest('{"ports":[{"port":80,"protocol":"http","name":"a"},{"port":81,"protocol":"http","name":"b"}]}'), undefined, JSON_TYPE);
  assert.equal(fine.status, 200, fine.body);
  assert.equal(api.store.revision(), before + 1);
  const quoted = '{"name":"r1","service":"cart","rules":[{"match":[{"headers":[{"name":"x-note","match":{"exact":"a\\\\\\",\\"exact\\":\\"b"}}]}],"destinations":[{"service":"cart"}]}]}';
  const route = await api.call('POST', '/api/v1/routes', quoted, undefined, JSON_TYPE);
  assert.equal(route.status, 201, route.body);
  assert.equal(route.json.rules[0].match[0].headers[0].match.exact, 'a\\","exact":"b');
});

test('a body that is not UTF-8 is refused naming the first bad byte, JSON or YAML, and nothing is stored', async (t) => {
  const api = await startApi();
  t.after(() => api.close());
  await api.call('POST', '/api/v1/services', { name: 'orders', ports: [{ port: 80, protocol: 'http' }] });
  const before = api.store.revision();
  // "café" in Latin-1: 0xe9 is no UTF-8; decoded leniently it became "caf\ufffd" and the route matched nothing
  const latin1 = Buffer.concat([Buffer.from('{"name":"r1","service":"orders","rules":[{"match":[{"headers":[{"name":"x-who","match":{"exact":"caf'), Buffer.from([0xe9]), Buffer.from('"}}]}],"destinations":[{"service":"orders"}]}]}')]);
  const json = await api.call('POST', '/api/v1/routes', latin1, undefined, JSON_TYPE);
  assert.equal(json.status, 400, json.body);
  assert.equal(json.json.error.code, 'VALIDATION_FAILED');
  assert.match(json.json.error.message, new RegExp(`not valid UTF-8 \\(first bad byte at offset ${latin1.indexOf(0xe9)}\\)`));
  const yaml = Buffer.concat([Buffer.from('apiVersion: weft.dev/v1\nkind: Service\nmetadata: {name: cart}\nspec: {ports: [{port: 80, protocol: http, name: caf'), Buffer.from([0xe9]), Buffer.from('}]}\n')]);
  const manifests = await api.call('POST', '/api/v1/apply', yaml, undefined, { 'content-type': 'application/yaml' });
  assert.equal(manifests.status, 400, manifests.body);
  assert.match(manifests.json.error.message, /not valid UTF-8/);
  assert.equal(api.store.revision(), before);
  // the same in UTF-8 is taken as written
  const utf8 = await api.call('POST', '/api/v1/routes', Buffer.from(latin1.toString('latin1'), 'utf8'), undefined, JSON_TYPE);
  assert.equal(utf8.status, 201, utf8.body);
  assert.equal(utf8.json.rules[0].match[0].headers[0].match.exact, 'café');
});

test('an empty or malformed JSON body is a 400 saying so', async (t) => {
  const api = await startApi();
  t.after(() => api.close());
  const empty = await api.call('POST', '/api/v1/services', Buffer.alloc(0), undefined, JSON_TYPE);
  assert.equal(empty.status, 400);
  assert.match(empty.json.error.message, /body: is empty/);
  const broken = await api.call('POST', '/api/v1/services', '{"name":', undefined, JSON_TYPE);
  assert.equal(broken.status, 400);
  assert.match(broken.json.error.message, /body: is not valid JSON/);
});

test('a string with half a surrogate pair (no UTF-8 form for a proxy) is refused naming it, in JSON and in YAML', async (t) => {
  const api = await startApi();
  t.after(() => api.close());
  await api.call('POST', '/api/v1/services', { name: 'orders', ports: [{ port: 80, protocol: 'http' }] });
  const before = api.store.revision();
  const json = await api.call('PUT', '/api/v1/routes/r1', '{"service":"orders","rules":[{"match":[{"headers":[{"name":"x-who","match":{"exact":"a\\ud800"}}]}],"destinations":[{"service":"orders"}]}]}', undefined, JSON_TYPE);
  assert.equal(json.status, 400, json.body);
  assert.deepEqual(paths(json), ['rules[0].match[0].headers[0].match.exact']);
  assert.match(json.json.error.message, /half of a UTF-16 surrogate pair/);
  const yaml = await api.call('POST', '/api/v1/apply', 'apiVersion: weft.dev/v1\nkind: Route\nmetadata: {name: r1}\nspec:\n  service: orders\n  rules:\n    - match: [{path: {prefix: "/\\udc00x"}}]\n      destinations: [{service: orders}]\n');
  assert.equal(yaml.status, 400, yaml.body);
  assert.deepEqual(paths(yaml), ['documents[0].spec.rules[0].match[0].path.prefix']);
  assert.equal(api.store.revision(), before);
  // a whole pair is text like any other
  const pair = await api.call('PUT', '/api/v1/routes/r1', '{"service":"orders","rules":[{"match":[{"headers":[{"name":"x-who","match":{"exact":"\\ud83d\\ude00"}}]}],"destinations":[{"service":"orders"}]}]}', undefined, JSON_TYPE);
  assert.equal(pair.status, 201, pair.body);
  assert.equal(pair.json.rules[0].match[0].headers[0].match.exact, '😀');
});
