// The write-time delivery check (control/api/write-check.ts): a write that
// would give some proxy configuration the xDS server refuses to send is
// refused with 422 UNDELIVERABLE, naming the resource and field, and changes
// nothing. Until 2026-11-29 it got 200 and a revision, and the proxies of
// every service it touched got nothing further (proxy-status NOT_SENT).
// Only errors a write introduces refuse it: one the state has already leaves
// other writes, and the write that removes it, through.
// The invalid resource is made as in diff-envoy-errors.test.ts: by a
// misconfigured control plane (an empty wasm cluster name, which Envoy's
// HttpUri refuses), since the API refuses every manifest field known to make one.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parse } from '@bytecodealliance/jco';
import { startApi } from './harness.ts';

const binding = 'apiVersion: weft.dev/v1\nkind: FilterBinding\nmetadata: {name: tag}\nspec: {service: orders, direction: inbound, filter: tagger}\n';

async function misconfigured() {
  const h = await startApi({ translateOptions: { wasmBaseUrl: 'http://127.0.0.1:8080', wasmClusterName: '' } });
  const bytes = await parse(`(module (memory (export "memory") 1) (func (export "malloc") (param i32) (result i32) (i32.const 1024)) (func (export "proxy_abi_version_0_2_1")))`);
  assert.equal((await h.call('POST', '/api/v1/filters', { name: 'tagger', wasm: Buffer.from(bytes).toString('base64') })).status, 201);
  assert.equal((await h.call('POST', '/api/v1/services', { name: 'orders', ports: [{ port: 8080, protocol: 'http' }] })).status, 201);
  return h;
}

test('a write whose config the xDS server would refuse is 422 UNDELIVERABLE, names the resource and field, and stores nothing', async (t) => {
  const h = await misconfigured();
  t.after(() => h.close());
  const revision = h.store.revision();

  const applied = await h.call('POST', '/api/v1/apply', binding);
  assert.equal(applied.status, 422, applied.body);
  assert.equal(applied.json.error.code, 'UNDELIVERABLE');
  assert.match(applied.json.error.message, /proxies of orders\.default/);
  assert.ok(
    applied.json.error.details.some((d: { path: string; message: string }) => /^extension-configs\/weft\.wasm\.default\.tag: .*cluster$/.test(d.path) && /at least 1/.test(d.message)),
    JSON.stringify(applied.json.error.details),
  );
  assert.equal(h.store.revision(), revision);
  assert.equal((await h.call('GET', '/api/v1/filter-bindings/tag')).status, 404);

  // Every write path takes the check: the object API, and a dry run answers as the apply would.
  const put = await h.call('PUT', '/api/v1/filter-bindings/tag', { service: 'orders', direction: 'inbound', filter: 'tagger' });
  assert.equal(put.status, 422, put.body);
  assert.equal(put.json.error.code, 'UNDELIVERABLE');
  const dry = await h.call('POST', '/api/v1/apply?dryRun=true', binding);
  assert.equal(dry.status, 422, dry.body);
  assert.deepEqual(dry.json.error.details, applied.json.error.details);
  assert.equal(h.store.revision(), revision);
  // POST /diff still shows what would be sent, errors included.
  const diff = await h.call('POST', '/api/v1/diff', binding);
  assert.equal(diff.status, 200);
});

test('an error already in the state does not refuse other writes, nor the write that removes it', async (t) => {
  const h = await misconfigured();
  t.after(() => h.close());
  // Stored past the API, as a state from before the check (or a control plane restarted with a bad option) holds it.
  await h.store.commit([{ op: 'put', kind: 'FilterBinding', namespace: 'default', name: 'tag', spec: { name: 'tag', namespace: 'default', service: 'orders', direction: 'inbound', filter: 'tagger', order: 0, config: {}, failurePolicy: 'fail_closed' } }], { actor: 'test', summary: 'seed' });

  assert.equal((await h.call('POST', '/api/v1/services', { name: 'stock', ports: [{ port: 9090, protocol: 'http' }] })).status, 201);
  // A change to orders itself, which still carries the old error but adds none.
  const route = 'apiVersion: weft.dev/v1\nkind: Route\nmetadata: {name: orders}\nspec: {service: orders, rules: [{match: [{path: {prefix: /v2}}], destinations: [{service: stock, weight: 1}]}]}\n';
  const applied = await h.call('POST', '/api/v1/apply', route);
  assert.equal(applied.status, 200, applied.body);
  const removed = await h.call('DELETE', '/api/v1/filter-bindings/tag');
  assert.equal(removed.status, 200, removed.body);
});

test("a service its own proxies do not call is checked through a caller's", async (t) => {
  // stock's proxies call nothing (dependsOn: []), so the routes for calls to stock exist only in callers' config.
  // An error there is made by wrapping the real translator: any proxy whose route configuration carries the
  // prefix /poison gets one, as Envoy's validation would for a resource only callers receive.
  const h = await misconfigured();
  t.after(() => h.close());
  const translate = h.deps.translate;
  h.deps.translate = (model, proxy) => {
    const out = translate(model, proxy);
    for (const r of out.routes) if (JSON.stringify(r.value).includes('"/poison"')) out.errors.push({ path: `routes/${r.name}: virtual_hosts`, message: 'refused (stand-in)' });
    return out;
  };
  assert.equal((await h.call('POST', '/api/v1/services', { name: 'stock', ports: [{ port: 9090, protocol: 'http' }], dependsOn: [] })).status, 201);
  const route = 'apiVersion: weft.dev/v1\nkind: Route\nmetadata: {name: stock}\nspec: {service: stock, rules: [{match: [{path: {prefix: /poison}}], destinations: [{service: stock, weight: 1}]}]}\n';
  const res = await h.call('POST', '/api/v1/apply', route);
  assert.equal(res.status, 422, res.body);
  assert.equal(res.json.error.code, 'UNDELIVERABLE');
  assert.match(res.json.error.message, /proxies of orders\.default/);
  assert.doesNotMatch(res.json.error.message, /stock\.default/);
  // The same route without the poisoned prefix goes through.
  assert.equal((await h.call('POST', '/api/v1/apply', route.replace('/poison', '/fine'))).status, 200);
});
