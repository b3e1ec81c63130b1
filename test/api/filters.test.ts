// The filter catalog through the API: upload a proxy-wasm module (checked),
// list it with its schema, serve its bytes content-addressed, bind it with a
// config validated against the schema, refuse bad modules.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { parse } from '@bytecodealliance/jco';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildApp } from '../../control/api/app.ts';
import { filterCatalogPort, syncBuiltinFilters } from '../../control/api/filter-catalog.ts';
import { FilterCatalog } from '../../control/filters/catalog.ts';
import { startApi } from './harness.ts';

/** The smallest module the checks accept: memory, malloc, the 0.2.1 ABI marker. */
async function minimalFilter(): Promise<Uint8Array> {
  return parse(`(module
    (memory (export "memory") 1)
    (func (export "malloc") (param i32) (result i32) (i32.const 1024))
    (func (export "proxy_on_memory_allocate") (param i32) (result i32) (i32.const 1024))
    (func (export "proxy_abi_version_0_2_1")))`);
}

const schema = {
  type: 'object',
  additionalProperties: false,
  required: ['header'],
  properties: { header: { type: 'string', minLength: 1 }, percent: { type: 'integer', minimum: 0, maximum: 100 } },
};

test('upload, list, serve and bind a filter; the binding config is checked against its schema', async (t) => {
  const h = await startApi();
  t.after(() => h.close());
  await h.call('POST', '/api/v1/services', { name: 'orders', ports: [{ port: 8080, protocol: 'http' }] });
  const bytes = await minimalFilter();
  const sha = createHash('sha256').update(bytes).digest('hex');

  const up = await h.call('POST', '/api/v1/filters', { name: 'tagger', wasm: Buffer.from(bytes).toString('base64'), configSchema: schema });
  assert.equal(up.status, 201, up.body);
  assert.deepEqual({ name: up.json.name, sha256: up.json.sha256, size: up.json.size, abi: up.json.abiVersion }, { name: 'tagger', sha256: sha, size: bytes.length, abi: '0.2.1' });
  const listed = await h.call('GET', '/api/v1/filters', undefined, h.viewer);
  assert.deepEqual(listed.json.items.map((f: { name: string }) => f.name), ['tagger']);
  assert.deepEqual(listed.json.items[0].configSchema, schema);
  assert.match(h.store.history()[0]!.summary, /push filter tagger/);

  const served = await h.app.inject({ method: 'GET', url: `/wasm/${sha}.wasm` });
  assert.equal(served.statusCode, 200, 'no token needed: Envoy fetches modules itself');
  assert.equal(served.headers['content-type'], 'application/wasm');
  assert.match(String(served.headers['cache-control']), /immutable/);
  assert.deepEqual(new Uint8Array(served.rawPayload), bytes);
  assert.equal((await h.app.inject({ method: 'GET', url: `/wasm/${'0'.repeat(64)}.wasm` })).statusCode, 404);
  assert.equal((await h.app.inject({ method: 'GET', url: '/wasm/../../etc/passwd' })).statusCode, 404);

  const rev = h.store.revision();
  const badConfig = await h.call('POST', '/api/v1/filter-bindings', { name: 'tag', service: 'orders', direction: 'inbound', filter: 'tagger', config: { percent: 120, extra: 1 } });
  assert.equal(badConfig.status, 422);
  assert.deepEqual(badConfig.json.error.details.map((d: { path: string }) => d.path).sort(), ['config.extra', 'config.header', 'config.percent']);
  assert.equal(h.store.revision(), rev);

  const bound = await h.call('POST', '/api/v1/filter-bindings', { name: 'tag', service: 'orders', direction: 'inbound', filter: 'tagger', config: { header: 'x-tag', percent: 5 }, order: 10 });
  assert.equal(bound.status, 201, bound.body);
  const model = h.deps.buildModel();
  assert.equal(model.filterModules[0]!.sha256, sha, 'the catalog entry is in the model the translator sees');

  const yaml = `apiVersion: weft.dev/v1\nkind: FilterBinding\nmetadata: {name: tag2}\nspec:\n  service: orders\n  direction: outbound\n  filter: tagger\n  config: {header: 7}\n`;
  const viaManifest = await h.call('POST', '/api/v1/apply', yaml);
  assert.equal(viaManifest.status, 422);
  assert.equal(viaManifest.json.error.details[0].path, 'documents[0].spec.config.header');
});

test('a module the checks refuse is 400 INVALID_MODULE with every reason, and nothing is stored', async (t) => {
  const h = await startApi();
  t.after(() => h.close());
  const foreign = await parse(`(module (import "evil" "syscall" (func)) (memory (export "memory") 1))`);
  const res = await h.call('POST', '/api/v1/filters', { name: 'evil', wasm: Buffer.from(foreign).toString('base64') });
  assert.equal(res.status, 400);
  assert.equal(res.json.error.code, 'INVALID_MODULE');
  assert.ok(res.json.error.details.some((d: { message: string }) => /evil\.syscall/.test(d.message)), res.body);
  assert.ok(res.json.error.details.some((d: { message: string }) => /ABI/.test(d.message)));
  assert.equal(h.store.revision(), 0);
  assert.deepEqual((await h.call('GET', '/api/v1/filters')).json.items, []);
});

test('built-in filters become catalog entries once per build; their bytes are served and their names are reserved', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'weft-builtins-'));
  const bytes = await minimalFilter();
  const sha = createHash('sha256').update(bytes).digest('hex');
  await writeFile(join(dir, 'stamp.wasm'), bytes);
  await writeFile(join(dir, 'manifest.json'), JSON.stringify({ filters: [{ name: 'stamp', sha256: sha, size: bytes.length, abiVersion: '0.2.1', configSchema: schema }] }));
  const catalog = new FilterCatalog({ dataDir: join(dir, 'data'), manifestPath: join(dir, 'manifest.json') });
  const h = await startApi();
  t.after(async () => {
    await h.close();
    await rm(dir, { recursive: true, force: true });
  });
  const deps = { ...h.deps, filters: filterCatalogPort(h.store, catalog) };
  const app = await buildApp(deps);
  t.after(() => app.close());

  assert.deepEqual(await syncBuiltinFilters(h.store, catalog, 'weft-control'), { revision: 1, changed: true });
  assert.deepEqual(await syncBuiltinFilters(h.store, catalog, 'weft-control'), { revision: 1, changed: false }, 'the same build again: no revision');
  const listed = await app.inject({ method: 'GET', url: '/api/v1/filters', headers: { authorization: `Bearer ${h.admin}` } });
  assert.deepEqual(listed.json().items.map((f: { name: string }) => f.name), ['stamp']);
  const served = await app.inject({ method: 'GET', url: `/wasm/${sha}.wasm` });
  assert.equal(served.statusCode, 200);
  const taken = await app.inject({ method: 'POST', url: '/api/v1/filters', headers: { authorization: `Bearer ${h.admin}` }, payload: { name: 'stamp', wasm: Buffer.from(bytes).toString('base64') } });
  assert.equal(taken.statusCode, 400);
  assert.equal(taken.json().error.code, 'VALIDATION_FAILED');
  assert.match(taken.json().error.details[0].message, /built-in/);
  // A built-in cannot be deleted: every start would put it back.
  const deleteBuiltin = await app.inject({ method: 'DELETE', url: '/api/v1/filters/stamp', headers: { authorization: `Bearer ${h.admin}` } });
  assert.equal(deleteBuiltin.statusCode, 409);
  assert.match(deleteBuiltin.json().error.message, /"stamp" is a built-in filter/);
});

test('a pushed filter can be deleted once nothing binds it: refused while a binding uses it, naming the binding; its bytes stay served', async (t) => {
  const h = await startApi();
  t.after(() => h.close());
  await h.call('POST', '/api/v1/services', { name: 'orders', ports: [{ port: 8080, protocol: 'http' }] });
  const bytes = await minimalFilter();
  const sha = createHash('sha256').update(bytes).digest('hex');
  assert.equal((await h.call('POST', '/api/v1/filters', { name: 'tagger2', wasm: Buffer.from(bytes).toString('base64') })).status, 201);
  assert.equal((await h.call('POST', '/api/v1/filter-bindings', { name: 'tag', service: 'orders', direction: 'inbound', filter: 'tagger2' })).status, 201);
  const rev = h.store.revision();

  const bound = await h.call('DELETE', '/api/v1/filters/tagger2');
  assert.equal(bound.status, 422);
  assert.equal(bound.json.error.code, 'INVALID_REFERENCE');
  assert.match(bound.json.error.message, /FilterBinding default\/tag uses it/);
  assert.deepEqual(bound.json.error.details.map((d: { path: string }) => d.path), ['FilterBinding/default/tag.filter']);
  assert.equal(h.store.revision(), rev, 'nothing changed');
  assert.equal((await h.call('DELETE', '/api/v1/filters/tagger2', undefined, h.viewer)).status, 403, 'a viewer cannot');

  assert.equal((await h.call('DELETE', '/api/v1/filter-bindings/tag')).status, 200);
  const deleted = await h.call('DELETE', '/api/v1/filters/tagger2');
  assert.equal(deleted.status, 200, deleted.body);
  assert.deepEqual((await h.call('GET', '/api/v1/filters')).json.items.map((f: { name: string }) => f.name), []);
  assert.match(h.store.history()[0]!.summary, /delete filter tagger2/);
  assert.equal((await h.call('DELETE', '/api/v1/filters/tagger2')).status, 404);
  assert.equal((await h.app.inject({ method: 'GET', url: `/wasm/${sha}.wasm` })).statusCode, 200, 'a proxy still loading it gets it');
  // A binding to it now is refused as to any unknown filter.
  const rebind = await h.call('POST', '/api/v1/filter-bindings', { name: 'tag', service: 'orders', direction: 'inbound', filter: 'tagger2' });
  assert.equal(rebind.status, 422);
  assert.match(rebind.json.error.message, /unknown filter "tagger2"/);
});

test("a binding whose config the filter itself refuses (its proxy_on_configure) is refused at apply, with what the filter logged; nothing is stored", async (t) => {
  // The real built-in auth filter (npm test builds filters/dist first).
  const dist = fileURLToPath(new URL('../../filters/dist/', import.meta.url));
  const dir = await mkdtemp(join(tmpdir(), 'weft-configure-'));
  const catalog = new FilterCatalog({ dataDir: dir, manifestPath: join(dist, 'manifest.json') });
  const h = await startApi();
  t.after(async () => {
    await h.close();
    await rm(dir, { recursive: true, force: true });
  });
  const deps = { ...h.deps, filters: filterCatalogPort(h.store, catalog) };
  await syncBuiltinFilters(h.store, catalog, 'weft-control');
  const app = await buildApp(deps);
  t.after(() => app.close());
  const call = (method: 'POST' | 'PUT', url: string, payload: unknown, type = 'application/json') =>
    app.inject({ method, url, headers: { authorization: `Bearer ${h.admin}`, 'content-type': type }, payload: typeof payload === 'string' ? payload : JSON.stringify(payload) });
  assert.equal((await call('POST', '/api/v1/services', { name: 'b', ports: [{ port: 80, protocol: 'http' }] })).statusCode, 201);
  const revision = h.store.revision();

  // Passes the JSON schema (an RSA JWK with n and e), but n is no 2048-bit modulus: the filter's on_configure returns false.
  const refused = { name: 'b-auth', service: 'b', direction: 'inbound', filter: 'auth', config: { jwt: { jwks: { keys: [{ kty: 'RSA', n: 'AQAB', e: 'AQAB' }] } } } };
  const res = await call('POST', '/api/v1/filter-bindings', refused);
  assert.equal(res.statusCode, 422, res.body);
  const detail = res.json().error.details[0];
  assert.equal(detail.path, 'config');
  assert.match(detail.message, /the filter refuses this config \(.*proxy_on_configure.*\)/);
  assert.equal(h.store.revision(), revision, 'nothing stored');

  const manifest = `apiVersion: weft.dev/v1\nkind: FilterBinding\nmetadata: {name: b-auth}\nspec:\n  service: b\n  direction: inbound\n  filter: auth\n  config: {jwt: {jwks: {keys: [{kty: RSA, n: AQAB, e: AQAB}]}}}\n`;
  const dry = await call('POST', '/api/v1/apply?dryRun=true', manifest, 'application/yaml');
  assert.equal(dry.statusCode, 422, 'a dry run says so too');
  assert.equal(dry.json().error.details[0].path, 'documents[0].spec.config');

  const accepted = await call('POST', '/api/v1/filter-bindings', { ...refused, config: { apiKeys: { keys: [{ name: 'ci', sha256: 'a'.repeat(64) }] } } });
  assert.equal(accepted.statusCode, 201, accepted.body);
});

test('a new build of a bound filter must take every config bound to it, or the upload is refused and the old build stays', async (t) => {
  const h = await startApi();
  t.after(() => h.close());
  await h.call('POST', '/api/v1/services', { name: 'orders', ports: [{ port: 8080, protocol: 'http' }] });
  const bytes = await minimalFilter();
  assert.equal((await h.call('POST', '/api/v1/filters', { name: 'tagger', wasm: Buffer.from(bytes).toString('base64'), configSchema: schema })).status, 201);
  assert.equal((await h.call('POST', '/api/v1/filter-bindings', { name: 'tag', service: 'orders', direction: 'inbound', filter: 'tagger', config: { header: 'x-tag' } })).status, 201);
  const revision = h.store.revision();

  const stricter = { ...schema, required: ['header', 'percent'] };
  const refused = await h.call('POST', '/api/v1/filters', { name: 'tagger', wasm: Buffer.from(bytes).toString('base64'), configSchema: stricter });
  assert.equal(refused.status, 422, refused.body);
  assert.deepEqual(refused.json.error.details.map((d: { path: string }) => d.path), ['FilterBinding/default/tag.config.percent']);
  assert.equal(h.store.revision(), revision, 'nothing stored');
  assert.deepEqual((await h.call('GET', '/api/v1/filters/tagger')).json.configSchema, schema, 'the bound build stays');

  const compatible = { ...schema, properties: { ...schema.properties, mode: { type: 'string' } } };
  assert.equal((await h.call('POST', '/api/v1/filters', { name: 'tagger', wasm: Buffer.from(bytes).toString('base64'), configSchema: compatible })).status, 201);
});

test("a module whose proxy_on_configure never returns is refused with a deadline, and the API keeps answering while it runs", { timeout: 120_000 }, async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'weft-configure-loop-'));
  const catalog = new FilterCatalog({ dataDir: dir, manifestPath: join(dir, 'no-builtins.json'), configureTimeoutMs: 1_000 });
  const h = await startApi();
  const deps = { ...h.deps, filters: filterCatalogPort(h.store, catalog) };
  const app = await buildApp(deps);
  t.after(async () => {
    await app.close();
    await h.close();
    await catalog.close();
    await rm(dir, { recursive: true, force: true });
  });
  const call = (method: 'GET' | 'POST', url: string, payload?: unknown) =>
    app.inject({ method, url, headers: { authorization: `Bearer ${h.admin}` }, ...(payload === undefined ? {} : { payload: payload as object }) });
  const spinner = await parse(`(module
    (memory (export "memory") 1)
    (func (export "malloc") (param i32) (result i32) (i32.const 1024))
    (func (export "proxy_on_memory_allocate") (param i32) (result i32) (i32.const 1024))
    (func (export "proxy_abi_version_0_2_1"))
    (func (export "proxy_on_context_create") (param i32 i32))
    (func (export "proxy_on_configure") (param i32 i32) (result i32) (loop (br 0)) (i32.const 1)))`);
  assert.equal((await call('POST', '/api/v1/services', { name: 'orders', ports: [{ port: 8080, protocol: 'http' }] })).statusCode, 201);
  assert.equal((await call('POST', '/api/v1/filters', { name: 'spinner', wasm: Buffer.from(spinner).toString('base64') })).statusCode, 201);
  assert.equal((await call('POST', '/api/v1/filters', { name: 'tagger', wasm: Buffer.from(await minimalFilter()).toString('base64'), configSchema: schema })).statusCode, 201);
  const revision = h.store.revision();

  const binding = call('POST', '/api/v1/filter-bindings', { name: 'spin', service: 'orders', direction: 'inbound', filter: 'spinner', config: {} });
  // While the module spins (in the check's worker), the API answers.
  const during = await call('GET', '/api/v1/services');
  assert.equal(during.statusCode, 200);
  let settled = false;
  void binding.then(() => (settled = true));
  await new Promise((r) => setImmediate(r));
  assert.equal(settled, false, 'the read was answered before the check gave up');

  const res = await binding;
  assert.equal(res.statusCode, 422, res.body);
  assert.equal(res.json().error.details[0].path, 'config');
  assert.match(res.json().error.details[0].message, /did not finish starting and proxy_on_configure within 1 s/);
  assert.equal(h.store.revision(), revision, 'nothing stored');

  // The stuck worker was replaced: the next check runs.
  const tagged = await call('POST', '/api/v1/filter-bindings', { name: 'tag', service: 'orders', direction: 'inbound', filter: 'tagger', config: { header: 'x-tag' } });
  assert.equal(tagged.statusCode, 201, tagged.body);
});

test('a weft build whose built-in filters refuse a stored binding says so at start, naming the binding', { timeout: 60_000 }, async (t) => {
  const { builtinBindingWarnings } = await import('../../control/main.ts');
  const dist = fileURLToPath(new URL('../../filters/dist/', import.meta.url));
  const dir = await mkdtemp(join(tmpdir(), 'weft-builtin-'));
  const catalog = new FilterCatalog({ dataDir: dir, manifestPath: join(dist, 'manifest.json') });
  const h = await startApi();
  t.after(async () => {
    await h.close();
    await catalog.close();
    await rm(dir, { recursive: true, force: true });
  });
  const deps = { ...h.deps, filters: filterCatalogPort(h.store, catalog) };
  await syncBuiltinFilters(h.store, catalog, 'weft-control');
  const binding = (name: string, config: unknown) => ({
    op: 'put' as const, kind: 'FilterBinding', namespace: 'default', name,
    spec: { name, namespace: 'default', service: 'b', direction: 'inbound', filter: 'auth', order: 0, failurePolicy: 'fail_closed', config },
  });
  await h.store.commit([{ op: 'put', kind: 'Service', namespace: 'default', name: 'b', spec: { name: 'b', namespace: 'default', ports: [{ port: 80, protocol: 'http' }] } }], { actor: 't', summary: 's' });
  assert.deepEqual(await builtinBindingWarnings(deps, catalog.builtins()), [], 'nothing bound: nothing to say');

  // Stored by an older build that took it; this build's auth filter refuses a 24-bit RSA modulus.
  await h.store.commit([binding('b-keys', { apiKeys: { keys: [{ name: 'ci', sha256: 'a'.repeat(64) }] } }), binding('b-auth', { jwt: { jwks: { keys: [{ kty: 'RSA', n: 'AQAB', e: 'AQAB' }] } } })], { actor: 'older-build', summary: 'bindings' });
  const warnings = await builtinBindingWarnings(deps, catalog.builtins());
  assert.equal(warnings.length, 1, warnings.join('\n'));
  assert.match(warnings[0]!, /^warning: .*FilterBinding\/default\/b-auth\.config: the filter refuses this config .*modulus must be at least 2048 bits/);
});
