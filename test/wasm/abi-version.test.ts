// Load-time checks: ABI 0.2.0 and 0.2.1 run, anything else is refused with a
// clear error; unknown imports, missing memory/malloc and a refused
// configuration are load errors naming what is wrong.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WasmLoadError, WasmPlugin } from '../../sidecar/wasm/index.ts';
import { wat } from './wat.ts';

test('ABI 0.2.0 modules load', async () => {
  const plugin = await WasmPlugin.load(await wat({ abi: 'proxy_abi_version_0_2_0', body: () => '' }), { name: 'old' });
  assert.equal(plugin.abiVersion, '0.2.0');
});

test('ABI 0.1.0 is refused with the version in the message', async () => {
  await assert.rejects(WasmPlugin.load(await wat({ abi: 'proxy_abi_version_0_1_0', body: () => '' }), { name: 'x' }), (error: unknown) => {
    assert.ok(error instanceof WasmLoadError);
    assert.equal(error.path, 'abi_version');
    assert.match(error.message, /0\.1\.0.*not support/);
    return true;
  });
});

test('a module with no ABI marker is refused', async () => {
  await assert.rejects(WasmPlugin.load(await wat({ abi: null, body: () => '' }), { name: 'x' }), /abi_version: module exports no proxy_abi_version_/);
});

test('an import the host does not provide is refused, naming it', async () => {
  const bytes = await wat({ rawImports: '(import "env" "abort" (func (param i32 i32 i32 i32)))', body: () => '' });
  await assert.rejects(WasmPlugin.load(bytes, { name: 'x' }), /imports\[\d+\]: module imports function env\.abort/);
});

test('WASI imports resolve under both module names', async () => {
  const bytes = await wat({
    rawImports: `(import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))
  (import "wasi_unstable" "clock_time_get" (func (param i32 i64 i32) (result i32)))`,
    body: () => '',
  });
  assert.equal((await WasmPlugin.load(bytes, { name: 'x' })).abiVersion, '0.2.1');
});

test('a module without malloc or proxy_on_memory_allocate is refused', async () => {
  await assert.rejects(WasmPlugin.load(await wat({ noMalloc: true, body: () => '' }), { name: 'x' }), /exports\.malloc/);
});

test('proxy_on_memory_allocate serves as the allocator when malloc is absent', async () => {
  const bytes = await wat({
    noMalloc: true,
    imports: ['proxy_get_property'],
    strings: { p: 'plugin_name' },
    body: (s) => `
  (func (export "proxy_on_memory_allocate") (param i32) (result i32) (i32.const 2048))
  (func (export "proxy_on_configure") (param i32 i32) (result i32)
    (call $report (call $proxy_get_property ${s.p} (i32.const 0) (i32.const 4)))
    (call $log_returned)
    (i32.const 1))`,
  });
  const plugin = await WasmPlugin.load(bytes, { name: 'alloc' });
  assert.deepEqual(plugin.logs.map((l) => l.message), ['#0', 'alloc']);
});

test('on_configure returning false fails the load', async () => {
  const bytes = await wat({ body: () => '(func (export "proxy_on_configure") (param i32 i32) (result i32) (i32.const 0))' });
  await assert.rejects(WasmPlugin.load(bytes, { name: 'x', configuration: '{bad' }), /proxy_on_configure: module returned false/);
});

test('bad plugin config is rejected with the field path', async () => {
  const bytes = await wat({ body: () => '' });
  await assert.rejects(WasmPlugin.load(bytes, { name: '' }), /config\.name: is required/);
  await assert.rejects(WasmPlugin.load(bytes, { name: 'x', failurePolicy: 'maybe' as never }), /config\.failurePolicy/);
  await assert.rejects(WasmPlugin.load(new Uint8Array([1, 2, 3]), { name: 'x' }), /module: not a valid WebAssembly module/);
});
