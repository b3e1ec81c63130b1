import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { parse } from '@bytecodealliance/jco';
import { FilterCatalog, validateConfig } from '../../../control/filters/index.ts';
import { filterBytes } from '../../wasm/filters/kit.ts';

const dirs: string[] = [];
function dataDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'weft-filters-'));
  dirs.push(d);
  return d;
}
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

const userModule = async (extra = ''): Promise<Uint8Array> =>
  parse(`(module (import "env" "proxy_log" (func (param i32 i32 i32) (result i32)))
    (memory (export "memory") 1)
    (func (export "proxy_on_memory_allocate") (param i32) (result i32) i32.const 0)
    (func (export "proxy_abi_version_0_2_0")) ${extra})`);

describe('FilterCatalog', () => {
  it('lists the built-in filters from the build manifest with their schemas', async () => {
    await filterBytes('auth');
    const catalog = new FilterCatalog({ dataDir: dataDir() });
    const names = (await catalog.list()).map((f) => f.name);
    assert.deepEqual(names, ['auth', 'route', 'telemetry']);
    const auth = (await catalog.get('auth'))!;
    assert.equal(auth.abiVersion, '0.2.1');
    assert.match(auth.sha256, /^[0-9a-f]{64}$/);
    assert.deepEqual(await catalog.read(auth.sha256), await filterBytes('auth'));
  });

  it('stores an uploaded module content-addressed, lists it and serves its bytes', async () => {
    const dir = dataDir();
    const catalog = new FilterCatalog({ dataDir: dir });
    const bytes = await userModule();
    const schema = { type: 'object', properties: { limit: { type: 'integer', minimum: 1 } }, additionalProperties: false };
    const r = await catalog.upload('rate-limit', bytes, schema);
    assert.ok(r.ok, JSON.stringify(r));
    assert.equal(r.module.abiVersion, '0.2.0');
    assert.equal(r.module.size, bytes.byteLength);
    assert.ok(existsSync(join(dir, 'wasm', `${r.module.sha256}.wasm`)));
    assert.deepEqual(readdirSync(join(dir, 'wasm')).filter((f) => f.endsWith('.tmp')), [], 'no temporary files left');
    assert.deepEqual(new Uint8Array(readFileSync(join(dir, 'wasm', `${r.module.sha256}.wasm`))), bytes);

    const again = new FilterCatalog({ dataDir: dir });
    const listed = (await again.list()).find((f) => f.name === 'rate-limit');
    assert.deepEqual(listed, r.module, 'survives a restart');
    assert.deepEqual(await again.read(r.module.sha256), bytes);
    assert.deepEqual(again.validateConfig(listed!, { limit: 0, burst: 2 }), [
      { path: 'burst', message: 'unknown field' },
      { path: 'limit', message: 'must be >= 1' },
    ]);

    const v2 = await catalog.upload('rate-limit', await userModule('(func (export "proxy_on_tick") (param i32))'));
    assert.ok(v2.ok);
    const after = (await catalog.list()).filter((f) => f.name === 'rate-limit');
    assert.equal(after.length, 1);
    assert.equal(after[0]!.sha256, v2.module.sha256, 'a new upload replaces the earlier one');
    assert.ok(await catalog.remove('rate-limit'));
    assert.equal((await catalog.get('rate-limit')), undefined);
  });

  it('refuses a module that fails a check, a built-in name, a bad name and a broken schema, with every reason', async () => {
    const catalog = new FilterCatalog({ dataDir: dataDir() });
    const foreign = await parse(`(module (import "env" "emscripten_memcpy" (func)) (memory (export "memory") 1))`);
    const r = await catalog.upload('auth', foreign, { type: 'object', properties: { a: { type: 'nonsense' } } });
    assert.ok(!r.ok);
    assert.deepEqual(r.errors.map((e) => e.path), ['name', 'wasm', 'wasm', 'wasm', 'configSchema']);
    assert.match(r.errors[0]!.message, /"auth" is a built-in filter/);
    assert.match(r.errors[1]!.message, /no supported proxy-wasm ABI version/);
    assert.match(r.errors[2]!.message, /import env.emscripten_memcpy/);
    const bad = await catalog.upload('Bad_Name', await userModule());
    assert.ok(!bad.ok);
    assert.equal(bad.errors[0]!.path, 'name');
    assert.deepEqual((await catalog.list()).map((f) => f.name), ['auth', 'route', 'telemetry'], 'nothing stored');
  });

  it('a damaged catalog.json (a secondary index) is ignored with a warning naming it: uploads still work and rewrite it', async () => {
    const dir = dataDir();
    const warnings: string[] = [];
    const catalog = new FilterCatalog({ dataDir: dir, warn: (line) => void warnings.push(line) });
    assert.ok((await catalog.upload('first', await userModule())).ok);
    const index = join(dir, 'wasm', 'catalog.json');
    writeFileSync(index, readFileSync(index, 'utf8').slice(0, 20));

    const r = await catalog.upload('second', await userModule('(func (export "proxy_on_tick") (param i32))'));
    assert.ok(r.ok, JSON.stringify(r));
    assert.equal(warnings.length, 1, JSON.stringify(warnings));
    assert.ok(warnings[0]!.includes(`filter index ${index} is damaged`), warnings[0]);
    assert.deepEqual((JSON.parse(readFileSync(index, 'utf8')) as { filters: { name: string }[] }).filters.map((f) => f.name), ['second']);
  });
});

describe('validateConfig against the built-in schemas', () => {
  it('accepts the documented examples and reports field paths for mistakes', async () => {
    await filterBytes('route');
    const catalog = new FilterCatalog({ dataDir: dataDir() });
    const route = (await catalog.get('route'))!;
    const auth = (await catalog.get('auth'))!;
    const telemetry = (await catalog.get('telemetry'))!;
    assert.deepEqual(catalog.validateConfig(route, {
      canary: { hashOn: { header: 'x-user-id' }, splits: [{ subset: 'v2', percent: 10 }], defaultSubset: 'v1' },
      override: { allowedIdentities: ['spiffe://weft.local/ns/default/sa/qa'] },
      tenant: { subsets: { acme: 'dedicated' } },
    }), []);
    assert.deepEqual(catalog.validateConfig(route, { canary: { hashOn: { header: 'x' }, splits: [{ subset: 'v 2', percent: 101 }] } }), [
      { path: 'canary.splits[0].subset', message: 'must match pattern "^[A-Za-z0-9._-]{1,63}$"' },
      { path: 'canary.splits[0].percent', message: 'must be <= 100' },
    ]);
    assert.deepEqual(catalog.validateConfig(auth, { jwt: { jwks: { keys: [{ kty: 'RSA', n: 'x' }] } }, rules: [{ prefix: '/a', action: 'block' }] }), [
      { path: 'jwt.jwks.keys[0].e', message: 'required' },
      { path: 'rules[0].action', message: 'must be one of "require", "allow", "deny"' },
    ]);
    assert.deepEqual(catalog.validateConfig(telemetry, { service: 'orders', accessLog: false }), []);
    assert.deepEqual(validateConfig(undefined, { anything: 1 }), []);
  });
});
