// A module whose import has the host's name but not its type loads nowhere:
// Envoy refuses it ("Failed to load Wasm module due to an import type
// mismatch", proxy-wasm-cpp-host's link step), so the test kit, the sidecar
// and the control plane's upload gate refuse it too, naming the import and
// both types. JavaScript host functions take any arguments, so before this the
// module loaded here and its calls got garbage arguments.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadFilter } from 'weft/testing';
import { checkModule } from '../../control/filters/check.ts';
import { functionImports } from '../../sidecar/wasm/import-signatures.ts';
import { wasmApi } from '../../sidecar/wasm/wasm-api.ts';
import { wat } from './wat.ts';

const wrongTypes = () =>
  wat({
    rawImports: `
  (import "env" "proxy_get_property" (func $get_property (param i32 i32 i32) (result i32)))
  (import "env" "proxy_increment_metric" (func $increment (param i32 i32) (result i32)))`,
    body: () => `
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (drop (call $get_property (i32.const 0) (i32.const 0) (i32.const 0)))
    (drop (call $increment (i32.const 1) (i32.const 1)))
    (i32.const 0))`,
  });

test('the test kit refuses a module whose imports have the wrong types, naming each', async () => {
  const bytes = await wrongTypes();
  await assert.rejects(loadFilter(bytes), (err: Error) => {
    assert.equal(err.name, 'WasmLoadError');
    assert.match(err.message, /^imports: import env\.proxy_get_property: type \(i32, i32, i32\) -> i32, but the host's is \(i32, i32, i32, i32\) -> i32 \(Envoy refuses to load it: import type mismatch\)/);
    assert.match(err.message, /import env\.proxy_increment_metric: type \(i32, i32\) -> i32, but the host's is \(i32, i64\) -> i32/);
    return true;
  });
});

test('the upload gate gives the same reasons', async () => {
  const check = checkModule(await wrongTypes());
  assert.equal(check.ok, false);
  assert.ok(!check.ok && check.reasons.some((r) => r.startsWith('import env.proxy_get_property: type (i32, i32, i32) -> i32')), JSON.stringify(check));
});

test('the import reader sees what WebAssembly sees, and a module with the right types loads', async () => {
  const good = await wat({ imports: ['proxy_get_property', 'proxy_increment_metric'], body: () => '' });
  const imports = functionImports(good)!;
  assert.deepEqual(
    imports.map((i) => `${i.module}.${i.name}`),
    wasmApi.Module.imports(await wasmApi.compile(good)).filter((i) => i.kind === 'function').map((i) => `${i.module}.${i.name}`),
  );
  assert.deepEqual(imports.find((i) => i.name === 'proxy_increment_metric'), { module: 'env', name: 'proxy_increment_metric', params: ['i32', 'i64'], results: ['i32'] });
  await loadFilter(good);
});
