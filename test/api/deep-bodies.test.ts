// Bodies nested deeper than any manifest (a free-form FilterBinding config,
// in JSON or YAML) and bodies over the size limit are refused with an error
// naming where, and nothing is stored. Deep nesting used to overflow the
// stack in validation and cloning: a 500 "internal error".

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MAX_NESTING } from '../../control/model/nesting.ts';
import { startApi } from './harness.ts';

const service = { apiVersion: 'weft.dev/v1', kind: 'Service', metadata: { name: 'svc' }, spec: { ports: [{ port: 80, protocol: 'http' }] } };
const nested = (depth: number): string => '{"a":'.repeat(depth) + '1' + '}'.repeat(depth);
const bindingJson = (depth: number) =>
  `{"manifests":[${JSON.stringify(service)},{"apiVersion":"weft.dev/v1","kind":"FilterBinding","metadata":{"name":"fb"},"spec":{"filter":"auth","service":"svc","direction":"inbound","config":${nested(depth)}}}]}`;

test('a body nested thousands of levels deep is a 400 naming the field, in JSON and YAML; nothing is stored', async (t) => {
  const h = await startApi();
  t.after(() => h.close());
  const before = h.store.revision();

  const json = await h.call('POST', '/api/v1/apply', bindingJson(5000), undefined, { 'content-type': 'application/json' });
  assert.equal(json.status, 400, json.body);
  assert.equal(json.json.error.code, 'VALIDATION_FAILED');
  assert.deepEqual(json.json.error.details, [{ path: 'manifests[1].spec.config', message: `nests objects or arrays more than ${MAX_NESTING} levels deep` }]);

  const yaml = `${JSON.stringify(service)}\n---\napiVersion: weft.dev/v1\nkind: FilterBinding\nmetadata: {name: fb}\nspec:\n  filter: auth\n  service: svc\n  direction: inbound\n  config: ${'{a: '.repeat(400)}1${'}'.repeat(400)}\n`;
  const fromYaml = await h.call('POST', '/api/v1/apply', yaml, undefined, { 'content-type': 'application/yaml' });
  assert.equal(fromYaml.status, 400, fromYaml.body);
  assert.deepEqual(fromYaml.json.error.details, [{ path: 'documents[1].spec.config.a.a', message: `nests objects or arrays more than ${MAX_NESTING} levels deep` }]);

  const ports = await h.call('POST', '/api/v1/services', `{"name":"deep","ports":[${'['.repeat(3000)}${']'.repeat(3000)}]}`, undefined, { 'content-type': 'application/json' });
  assert.equal(ports.status, 400, ports.body);
  assert.equal(ports.json.error.details[0].path, 'ports[0][0][0]');

  assert.equal(h.store.revision(), before, 'no revision');
  assert.deepEqual(h.store.list(), [], 'nothing stored');
});

test('a config nested within the limit passes the nesting check (and meets the usual ones)', async (t) => {
  const h = await startApi();
  t.after(() => h.close());
  const r = await h.call('POST', '/api/v1/apply', bindingJson(MAX_NESTING - 10), undefined, { 'content-type': 'application/json' });
  assert.equal(r.status, 422, r.body);
  assert.match(r.json.error.message, /unknown filter "auth"/);
});

test('a body over the 4 MiB limit is a 413 PAYLOAD_TOO_LARGE; nothing is stored', async (t) => {
  const h = await startApi();
  t.after(() => h.close());
  const big = JSON.stringify({ manifests: [{ ...service, metadata: { name: 'svc', labels: { pad: 'x'.repeat(5 * 1024 * 1024) } } }] });
  const r = await h.call('POST', '/api/v1/apply', big, undefined, { 'content-type': 'application/json' });
  assert.equal(r.status, 413);
  assert.equal(r.json.error.code, 'PAYLOAD_TOO_LARGE');
  assert.equal(h.store.revision(), 0);
});
