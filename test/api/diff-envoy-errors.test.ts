// A dry run (POST /diff, /apply?dryRun=true) reports, per proxy, what the xDS
// server would refuse the snapshot for: the translator's errors and Envoy's
// validation errors (protos, PGV, the semantic checks) of every resource the
// change adds or alters. Until 2026-11-29 only the translator's were, so a
// dry run said errors: [] for a change that then reached no proxy at all.
// An invalid resource is made here the way a misconfigured control plane
// makes one (an empty wasm cluster name in its translate options, which
// Envoy's HttpUri refuses), since the API now refuses every manifest field
// known to produce one.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parse } from '@bytecodealliance/jco';
import { startApi } from './harness.ts';

test("a dry run names Envoy's validation errors of the resources a change would send, per proxy", async (t) => {
  const h = await startApi({ translateOptions: { wasmBaseUrl: 'http://127.0.0.1:8080', wasmClusterName: '' } });
  t.after(() => h.close());
  const bytes = await parse(`(module (memory (export "memory") 1) (func (export "malloc") (param i32) (result i32) (i32.const 1024)) (func (export "proxy_abi_version_0_2_1")))`);
  assert.equal((await h.call('POST', '/api/v1/filters', { name: 'tagger', wasm: Buffer.from(bytes).toString('base64') })).status, 201);
  assert.equal((await h.call('POST', '/api/v1/services', { name: 'orders', ports: [{ port: 8080, protocol: 'http' }] })).status, 201);
  const binding = 'apiVersion: weft.dev/v1\nkind: FilterBinding\nmetadata: {name: tag}\nspec: {service: orders, direction: inbound, filter: tagger}\n';

  const diff = await h.call('POST', '/api/v1/diff', binding);
  assert.equal(diff.status, 200, diff.body);
  const orders = diff.json.proxies.find((p: { service: string }) => p.service === 'orders.default');
  const errors = orders.errors.map((e: { path: string; message: string }) => `${e.path}: ${e.message}`);
  assert.ok(errors.some((e: string) => /^extension-configs\/weft\.wasm\.default\.tag: .*cluster: value length must be at least 1/.test(e)), errors.join('\n'));
  // A dry run of the apply answers as the apply would: refused, with the same errors (write-check.ts).
  const dry = await h.call('POST', '/api/v1/apply?dryRun=true', binding);
  assert.equal(dry.status, 422);
  assert.equal(dry.json.error.code, 'UNDELIVERABLE');
  assert.deepEqual(dry.json.error.details, orders.errors);

  // A change that sends nothing invalid reports nothing.
  const clean = await h.call('POST', '/api/v1/diff', 'apiVersion: weft.dev/v1\nkind: Service\nmetadata: {name: stock}\nspec: {ports: [{port: 9090, protocol: http}]}\n');
  assert.deepEqual(clean.json.proxies.flatMap((p: { errors: unknown[] }) => p.errors), []);
});
