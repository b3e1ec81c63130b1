// Buffer host functions: bodies with StopIterationAndBuffer, Envoy's set
// semantics (prepend, append, replace, no splice), configuration buffers, and
// the NOT_FOUND / BAD_ARGUMENT / INVALID_MEMORY_ACCESS paths.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WasmPlugin, WasmResult as R } from '../../sidecar/wasm/index.ts';
import { codes, texts, wat } from './wat.ts';

const OUT = '(i32.const 0x7ffffff0)';

const module = () =>
  wat({
    imports: ['proxy_get_buffer_bytes', 'proxy_set_buffer_bytes', 'proxy_get_buffer_status'],
    strings: { pre: '<<', post: '>>', zz: 'zz', whole: 'replaced' },
    body: (s) => `
  (func (export "proxy_on_vm_start") (param i32 i32) (result i32)
    (call $report (call $proxy_get_buffer_bytes (i32.const 6) (i32.const 0) (local.get 1) (i32.const 0) (i32.const 4)))
    (call $log_returned)
    (i32.const 1))
  (func (export "proxy_on_configure") (param i32 i32) (result i32)
    (call $report (call $proxy_get_buffer_bytes (i32.const 7) (i32.const 0) (local.get 1) (i32.const 0) (i32.const 4)))
    (call $log_returned)
    (call $report (call $proxy_set_buffer_bytes (i32.const 7) (i32.const 0) (i32.const 0) ${s.zz}))
    (i32.const 1))
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (call $report (call $proxy_get_buffer_bytes (i32.const 0) (i32.const 0) (i32.const 10) (i32.const 0) (i32.const 4)))
    (i32.const 0))
  (func (export "proxy_on_request_body") (param i32 i32 i32) (result i32)
    (if (i32.eqz (local.get 2)) (then
      (call $report (call $proxy_get_buffer_status (i32.const 0) (i32.const 8) (i32.const 12)))
      (return (i32.const 1))))
    (call $report (call $proxy_get_buffer_bytes (i32.const 0) (i32.const 0) (local.get 1) (i32.const 0) (i32.const 4)))
    (call $log_returned)
    (call $report (call $proxy_set_buffer_bytes (i32.const 0) (i32.const 0) (i32.const 0) ${s.pre}))
    (call $report (call $proxy_set_buffer_bytes (i32.const 0) (i32.const 1000) (i32.const 0) ${s.post}))
    (call $report (call $proxy_set_buffer_bytes (i32.const 0) (i32.const 3) (i32.const 2) ${s.zz}))
    (call $report (call $proxy_get_buffer_bytes (i32.const 7) (i32.const 0) (i32.const 10) (i32.const 0) (i32.const 4)))
    (call $report (call $proxy_get_buffer_bytes (i32.const 9) (i32.const 0) (i32.const 10) (i32.const 0) (i32.const 4)))
    (call $report (call $proxy_get_buffer_bytes (i32.const 0) (i32.const 0) (i32.const 10) ${OUT} (i32.const 4)))
    (call $report (call $proxy_set_buffer_bytes (i32.const 0) (i32.const 0) (i32.const 0) ${OUT} (i32.const 64)))
    (i32.const 0))
  (func (export "proxy_on_response_body") (param i32 i32 i32) (result i32)
    (call $report (call $proxy_set_buffer_bytes (i32.const 1) (i32.const 0) (local.get 1) ${s.whole}))
    (i32.const 0))`,
  });

test('configuration buffers are readable at start and read-only', async () => {
  const plugin = await WasmPlugin.load(await module(), { name: 'buffers', vmConfiguration: 'vm-conf', configuration: '{"a":1}' });
  // Writing a read-only buffer is BAD_ARGUMENT, as cpp-host's BufferBase::copyFrom.
  assert.deepEqual(codes(plugin.logs), [R.Ok, R.Ok, R.BadArgument]);
  assert.deepEqual(texts(plugin.logs), ['vm-conf', '{"a":1}']);
});

test('bodies: buffering, prepend, append, replace and error codes', async () => {
  const plugin = await WasmPlugin.load(await module(), { name: 'buffers' });
  plugin.logs.length = 0;
  const stream = plugin.newHttpStream();
  await stream.onRequestHeaders([[':path', '/']], false);
  // No body yet: Envoy still hands out a (empty) buffer.
  assert.deepEqual(codes(plugin.logs), [R.Ok]);
  plugin.logs.length = 0;

  assert.deepEqual(await stream.onRequestBody('hello ', false), { action: 'pause' });
  const done = await stream.onRequestBody('world', true);
  assert.deepEqual(codes(plugin.logs), [
    R.Ok, // status while buffering
    R.Ok, // read whole buffered body
    R.Ok, // prepend
    R.Ok, // append
    R.BadArgument, // splice in the middle
    R.NotFound, // plugin configuration is not a stream buffer
    R.BadArgument, // buffer type 9
    R.InvalidMemoryAccess,
    R.InvalidMemoryAccess,
  ]);
  assert.deepEqual(texts(plugin.logs), ['hello world']);
  assert.equal(done.action, 'continue');
  assert.equal(done.action === 'continue' && Buffer.from(done.body).toString(), '<<hello world>>');

  await stream.onResponseHeaders([[':status', '200']], false);
  const response = await stream.onResponseBody('original', true);
  assert.equal(response.action === 'continue' && Buffer.from(response.body).toString(), 'replaced');
});

test('trailers can be added with the last body chunk when the request has none', async () => {
  const bytes = await wat({
    imports: ['proxy_add_header_map_value'],
    strings: { name: 'x-checksum', value: 'abc' },
    body: (s) => `
  (func (export "proxy_on_request_body") (param i32 i32 i32) (result i32)
    (call $report (call $proxy_add_header_map_value (i32.const 1) ${s.name} ${s.value}))
    (i32.const 0))`,
  });
  const plugin = await WasmPlugin.load(bytes, { name: 'trailers' });
  const stream = plugin.newHttpStream();
  await stream.onRequestHeaders([[':path', '/']], false);
  await stream.onRequestBody('a', false);
  await stream.onRequestBody('b', true);
  assert.deepEqual(codes(plugin.logs), [R.BadArgument, R.Ok]);
  assert.deepEqual(stream.requestTrailers, [['x-checksum', 'abc']]);
});
