// Logging levels, time, tick period and proxy_on_tick, foreign functions,
// gRPC (UNIMPLEMENTED by design), and the WASI calls: fd_write to the log,
// clock, random, environment, proc_exit failing the VM.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WasmPlugin, WasmResult as R } from '../../sidecar/wasm/index.ts';
import { codes, texts, wat } from './wat.ts';

test('log levels: below the host level is dropped; bad level is BAD_ARGUMENT; get_log_level', async () => {
  const bytes = await wat({
    imports: ['proxy_get_log_level'],
    strings: { dbg: 'debug line', warn: 'warn line' },
    body: (s) => `
  (func (export "proxy_on_configure") (param i32 i32) (result i32)
    (drop (call $proxy_log (i32.const 1) ${s.dbg}))
    (drop (call $proxy_log (i32.const 3) ${s.warn}))
    (call $report (call $proxy_log (i32.const 6) ${s.warn}))
    (call $report (call $proxy_log (i32.const 2) (i32.const 0x7ffffff0) (i32.const 8)))
    (call $report (call $proxy_get_log_level (i32.const 16)))
    (call $report (i32.load (i32.const 16)))
    (i32.const 1))`,
  });
  const plugin = await WasmPlugin.load(bytes, { name: 'log' }, { logLevel: 'info' });
  assert.deepEqual(texts(plugin.logs), ['warn line']);
  assert.equal(plugin.logs[0]!.level, 'warn');
  assert.deepEqual(codes(plugin.logs), [R.BadArgument, R.InvalidMemoryAccess, R.Ok, 2]);
});

test('setLogLevel changes a running plugin\'s level: what it drops and what proxy_get_log_level tells it (critical when off)', async () => {
  const bytes = await wat({
    imports: ['proxy_get_log_level', 'proxy_call_foreign_function'],
    strings: { dbg: 'debug line', crit: 'critical line', level: 'level' },
    body: (s) => `
  (func (export "proxy_on_tick") (param i32)
    (drop (call $proxy_log (i32.const 1) ${s.dbg}))
    (drop (call $proxy_log (i32.const 5) ${s.crit}))
    (drop (call $proxy_get_log_level (i32.const 16)))
    (i32.store8 (i32.const 20) (i32.load (i32.const 16)))
    (drop (call $proxy_call_foreign_function ${s.level} (i32.const 20) (i32.const 1) (i32.const 0) (i32.const 4))))`,
  });
  const told: number[] = [];
  const plugin = await WasmPlugin.load(bytes, { name: 'levels' }, { logLevel: 'info', foreignFunctions: { level: (args) => void told.push(args[0]!) } });
  const tick = () => {
    const from = plugin.logs.length;
    plugin.tick();
    return texts(plugin.logs.slice(from));
  };
  assert.deepEqual(tick(), ['critical line']);
  plugin.setLogLevel(1);
  assert.deepEqual(tick(), ['debug line', 'critical line']);
  plugin.setLogLevel(6);
  assert.deepEqual(tick(), [], 'off drops critical too');
  assert.deepEqual(told, [2, 1, 5]);
  assert.equal(plugin.logLevel, 6);
  assert.throws(() => plugin.setLogLevel(7), /log level must be 0\.\.6, got 7/);
  assert.equal(plugin.logLevel, 6, 'a bad level changes nothing');
  const off = await WasmPlugin.load(bytes, { name: 'off' }, { logLevel: 'off', foreignFunctions: { level: (args) => void told.push(args[0]!) } });
  off.tick();
  assert.deepEqual(off.logs, []);
  assert.equal(told.at(-1), 5);
});

test('time, tick period, on_tick, foreign functions, a gRPC call to a cluster the host does not know', async () => {
  const bytes = await wat({
    imports: ['proxy_get_current_time_nanoseconds', 'proxy_set_tick_period_milliseconds', 'proxy_call_foreign_function', 'proxy_grpc_call', 'proxy_get_status'],
    strings: { echo: 'echo', missing: 'nope', arg: 'ping', tick: 'tick' },
    body: (s) => `
  (func (export "proxy_on_configure") (param i32 i32) (result i32)
    (call $report (call $proxy_get_current_time_nanoseconds (i32.const 32)))
    (call $report (i64.eq (i64.load (i32.const 32)) (i64.const 1767225600000000000)))
    (call $report (call $proxy_set_tick_period_milliseconds (i32.const 250)))
    (call $report (call $proxy_call_foreign_function ${s.missing} ${s.arg} (i32.const 0) (i32.const 4)))
    (call $report (call $proxy_call_foreign_function ${s.echo} ${s.arg} (i32.const 0) (i32.const 4)))
    (call $log_returned)
    (call $report (call $proxy_grpc_call ${s.arg} ${s.arg} ${s.arg} ${s.arg} ${s.arg} (i32.const 100) (i32.const 16)))
    (call $report (call $proxy_get_status (i32.const 16) (i32.const 0) (i32.const 4)))
    (i32.const 1))
  (func (export "proxy_on_tick") (param i32)
    (drop (call $proxy_log (i32.const 2) ${s.tick})))`,
  });
  const plugin = await WasmPlugin.load(bytes, { name: 'misc' }, {
    now: () => 1767225600000000000n,
    foreignFunctions: { echo: (args) => new Uint8Array([...Buffer.from('echo:'), ...args]) },
  });
  // "ping" is no GrpcService, so a cluster name, and no cluster has it: PARSE_FAILURE, as Envoy's.
  assert.deepEqual(codes(plugin.logs), [R.Ok, 1, R.Ok, R.NotFound, R.Ok, R.ParseFailure, R.Ok]);
  assert.deepEqual(texts(plugin.logs), ['echo:ping']);
  assert.equal(plugin.tickPeriodMs, 250);
  plugin.tick();
  plugin.tick();
  assert.deepEqual(texts(plugin.logs).slice(1), ['tick', 'tick']);
});

test('WASI: fd_write logs, clocks, random, environment; proc_exit fails the VM', async () => {
  const bytes = await wat({
    rawImports: `(import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_unstable" "clock_time_get" (func $clock (param i32 i64 i32) (result i32)))
  (import "wasi_snapshot_preview1" "random_get" (func $random (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_sizes_get" (func $env_sizes (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_get" (func $env_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))`,
    strings: { out: 'to stdout\n', err: 'to stderr' },
    body: (s) => {
      const nums = (ref: string) => [...ref.matchAll(/const (\d+)/g)].map((m) => m[1]);
      const [outPtr, outLen] = nums(s.out!);
      const [errPtr, errLen] = nums(s.err!);
      return `
  (func (export "proxy_on_configure") (param i32 i32) (result i32)
    (i32.store (i32.const 100) (i32.const ${outPtr})) (i32.store (i32.const 104) (i32.const ${outLen}))
    (call $report (call $fd_write (i32.const 1) (i32.const 100) (i32.const 1) (i32.const 108)))
    (i32.store (i32.const 100) (i32.const ${errPtr})) (i32.store (i32.const 104) (i32.const ${errLen}))
    (call $report (call $fd_write (i32.const 2) (i32.const 100) (i32.const 1) (i32.const 108)))
    (call $report (call $fd_write (i32.const 5) (i32.const 100) (i32.const 1) (i32.const 108)))
    (call $report (call $clock (i32.const 0) (i64.const 1) (i32.const 32)))
    (call $report (i64.eq (i64.load (i32.const 32)) (i64.const 42)))
    (call $report (call $clock (i32.const 7) (i64.const 1) (i32.const 32)))
    (call $report (call $random (i32.const 200) (i32.const 16)))
    (call $report (call $env_sizes (i32.const 40) (i32.const 44)))
    (call $report (i32.load (i32.const 40)))
    (call $report (call $env_get (i32.const 300) (i32.const 400)))
    (drop (call $proxy_log (i32.const 2) (i32.const 400) (i32.sub (i32.load (i32.const 44)) (i32.const 1))))
    (i32.const 1))
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (call $exit (i32.const 3))
    (i32.const 0))`;
    },
  });
  const plugin = await WasmPlugin.load(bytes, { name: 'wasi', environment: { MODE: 'test' } }, { now: () => 42n });
  assert.deepEqual(codes(plugin.logs), [0, 0, 8, 0, 1, 28, 0, 0, 1, 0]);
  assert.deepEqual(
    plugin.logs.filter((l) => !l.message.startsWith('#')).map((l) => [l.level, l.message]),
    [
      ['info', 'to stdout'],
      ['error', 'to stderr'],
      ['info', 'MODE=test'],
    ],
  );
  const outcome = await plugin.newHttpStream().onRequestHeaders([[':path', '/']], true);
  assert.equal(outcome.action, 'local_reply');
  assert.ok(plugin.logs.some((l) => l.level === 'critical' && /proc_exit\(3\)/.test(l.message)));
});

test('a gRPC stream to a cluster the host cannot reach is PARSE_FAILURE (as a grpc_call); sending on a call token BAD_ARGUMENT, cancelling or closing a call that is not there NOT_FOUND; 0.1.0-era calls still work as cpp-host registers them', async () => {
  const bytes = await wat({
    imports: ['proxy_grpc_stream', 'proxy_grpc_send', 'proxy_grpc_cancel', 'proxy_grpc_close', 'proxy_get_configuration', 'proxy_continue_request', 'proxy_continue_response', 'proxy_clear_route_cache', 'proxy_set_property'],
    strings: { x: 'x' },
    body: (s) => `
  (func (export "proxy_on_configure") (param i32 i32) (result i32)
    (call $report (call $proxy_grpc_stream ${s.x} ${s.x} ${s.x} ${s.x} (i32.const 16)))
    (call $report (call $proxy_grpc_send (i32.const 1) ${s.x} (i32.const 0)))
    (call $report (call $proxy_grpc_cancel (i32.const 1)))
    (call $report (call $proxy_grpc_close (i32.const 1)))
    (call $report (call $proxy_get_configuration (i32.const 0) (i32.const 4)))
    (call $log_returned)
    (call $report (call $proxy_set_property (i32.const 0) (i32.const 0) ${s.x}))
    (i32.const 1))
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (call $report (call $proxy_clear_route_cache))
    (call $report (call $proxy_continue_response))
    (call $report (call $proxy_continue_request))
    (i32.const 1))`,
  });
  const plugin = await WasmPlugin.load(bytes, { name: 'legacy', configuration: 'conf' });
  // Token 1 is a gRPC call's kind (Envoy's CalloutType 1): sending on it BAD_ARGUMENT, cancelling or closing it NOT_FOUND.
  assert.deepEqual(codes(plugin.logs), [R.ParseFailure, R.BadArgument, R.NotFound, R.NotFound, R.Ok, R.BadArgument]);
  assert.deepEqual(texts(plugin.logs), ['conf']);
  plugin.logs.length = 0;
  // continue_request inside the callback that paused resumes at once.
  assert.deepEqual(await plugin.newHttpStream().onRequestHeaders([[':path', '/']], true), { action: 'continue' });
  assert.deepEqual(codes(plugin.logs), [R.Ok, R.Ok, R.Ok]);
});
