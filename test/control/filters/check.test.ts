import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { parse } from '@bytecodealliance/jco';
import { checkModule } from '../../../control/filters/index.ts';
import { filterBytes } from '../../wasm/filters/kit.ts';

const wat = async (body: string): Promise<Uint8Array> => parse(`(module ${body})`);
const base = `(memory (export "memory") 1)
  (func (export "malloc") (param i32) (result i32) i32.const 0)
  (func (export "proxy_on_memory_allocate") (param i32) (result i32) i32.const 0)
  (func (export "_initialize"))`;

describe('checkModule', () => {
  it('accepts a module importing ABI host functions and Envoy WASI calls', async () => {
    const r = checkModule(await wat(`
      (import "env" "proxy_log" (func (param i32 i32 i32) (result i32)))
      (import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))
      (import "wasi_snapshot_preview1" "proc_exit" (func (param i32)))
      ${base}
      (func (export "proxy_abi_version_0_2_0"))`));
    assert.ok(r.ok, JSON.stringify(r));
    assert.equal(r.abiVersion, '0.2.0');
    assert.deepEqual(r.imports.map((i) => `${i.module}.${i.name}`), ['env.proxy_log', 'wasi_snapshot_preview1.fd_write', 'wasi_snapshot_preview1.proc_exit']);
    assert.ok(r.exports.some((e) => e.name === 'memory' && e.kind === 'memory'));
  });

  it('refuses a module with a foreign import, naming it', async () => {
    const r = checkModule(await wat(`
      (import "env" "abort" (func (param i32 i32 i32 i32)))
      (import "env" "proxy_get_log_level" (func (param i32) (result i32)))
      (import "js" "random" (func (result f64)))
      (import "wasi_snapshot_preview1" "path_open" (func))
      ${base}
      (func (export "proxy_abi_version_0_2_0"))`));
    assert.equal(r.ok, false);
    assert.ok(!r.ok);
    assert.deepEqual(r.reasons, [
      'import env.abort: not a proxy-wasm ABI 0.2.0 host function',
      'import env.proxy_get_log_level: not a proxy-wasm ABI 0.2.0 host function',
      'import js.random: unknown import module "js"',
      'import wasi_snapshot_preview1.path_open: not a WASI call Envoy provides',
    ]);
  });

  it('refuses a module without an ABI version export or allocator', async () => {
    const r = checkModule(await wat(`(memory (export "memory") 1) (func (export "proxy_abi_version_0_1_0"))`));
    assert.ok(!r.ok);
    assert.match(r.reasons[0]!, /exports no supported proxy-wasm ABI version/);
    assert.match(r.reasons[1]!, /neither malloc nor proxy_on_memory_allocate/);
  });

  it('refuses bytes that are not WebAssembly, and truncated modules', async () => {
    const notWasm = checkModule(new TextEncoder().encode('#!/bin/sh\necho hi\n'));
    assert.deepEqual(notWasm, { ok: false, reasons: ['not a WebAssembly module (bad magic or version)'] });
    const good = await wat(`${base} (func (export "proxy_abi_version_0_2_1"))`);
    const truncated = checkModule(good.slice(0, good.length - 3));
    assert.deepEqual(truncated, { ok: false, reasons: ['module does not validate as WebAssembly'] });
  });

  it('holds built-ins to the build contract in strict mode', async () => {
    const r = checkModule(await wat(`
      (import "wasi_snapshot_preview1" "proc_exit" (func (param i32)))
      (memory (export "memory") 1)
      (func (export "malloc") (param i32) (result i32) i32.const 0)
      (func (export "proxy_abi_version_0_2_0"))`), { strict: true, maxBytes: 64 });
    assert.ok(!r.ok);
    assert.deepEqual(r.reasons.map((s) => s.replace(/\d+ bytes/, 'N bytes')), [
      'built-in filters must export proxy_abi_version_0_2_1',
      'import wasi_snapshot_preview1.proc_exit: built-in filters must not exit the VM',
      'does not export proxy_on_memory_allocate',
      'does not export _initialize',
      'module is N bytes; the budget is under 64',
    ]);
  });

  it('passes every built filter in strict mode with the 32 KB budget', async () => {
    for (const name of ['auth', 'route', 'telemetry']) {
      const bytes = await filterBytes(name);
      const r = checkModule(bytes, { strict: true, maxBytes: 32 * 1024 });
      assert.ok(r.ok, `${name}: ${JSON.stringify(r)}`);
      assert.equal(r.abiVersion, '0.2.1');
      assert.ok(r.imports.every((i) => i.module === 'env' && i.name.startsWith('proxy_')), `${name} imports only proxy_* host functions`);
    }
    const manifest = JSON.parse(readFileSync(new URL('../../../filters/dist/manifest.json', import.meta.url), 'utf8')) as { filters: { name: string; size: number; configSchema: unknown }[] };
    assert.deepEqual(manifest.filters.map((f) => f.name), ['auth', 'route', 'telemetry']);
    for (const f of manifest.filters) assert.equal(typeof f.configSchema, 'object', `${f.name} schema in manifest`);
  });
});
