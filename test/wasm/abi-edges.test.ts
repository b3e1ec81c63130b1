// Smaller return-code and argument edges, each as proxy-wasm-cpp-host
// (src/exports.cc, src/context.cc) and Envoy's wasm Context
// (source/extensions/common/wasm/context.cc) answer them.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SharedState, WasmPlugin, WasmResult as R } from '../../sidecar/wasm/index.ts';
import { serializePairs } from '../../sidecar/wasm/headers.ts';
import { codes, texts, wat } from './wat.ts';

test('resolve_shared_queue with an empty vm_id finds the queue in the caller\'s own VM', async () => {
  const bytes = await wat({
    imports: ['proxy_register_shared_queue', 'proxy_resolve_shared_queue'],
    strings: { name: 'jobs', vm: 'jobs-vm', empty: '' },
    body: (s) => `
  (func (export "proxy_on_configure") (param i32 i32) (result i32)
    (call $report (call $proxy_register_shared_queue ${s.name} (i32.const 16)))
    (call $report (call $proxy_resolve_shared_queue ${s.empty} ${s.name} (i32.const 20)))
    (call $report (i32.eq (i32.load (i32.const 16)) (i32.load (i32.const 20))))
    (call $report (call $proxy_resolve_shared_queue ${s.vm} ${s.name} (i32.const 24)))
    (call $report (i32.eq (i32.load (i32.const 16)) (i32.load (i32.const 24))))
    (i32.const 1))`,
  });
  const plugin = await WasmPlugin.load(bytes, { name: 'queues', vmId: 'jobs-vm' }, { shared: new SharedState() });
  assert.deepEqual(codes(plugin.logs), [R.Ok, R.Ok, 1, R.Ok, 1]);
});

test('send_local_response: a gRPC status past UNAUTHENTICATED is none, details lose their whitespace', async () => {
  const bytes = await wat({
    imports: ['proxy_send_local_response'],
    strings: { details: 'denied by\tpolicy', body: 'no', none: '' },
    body: (s) => `
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (call $report (call $proxy_send_local_response (i32.const 403) ${s.details} ${s.body} ${s.none} (local.get 1)))
    (i32.const 0))`,
  });
  const plugin = await WasmPlugin.load(bytes, { name: 'reply' });
  const replies = [];
  // The number of request headers is the gRPC status the module passes.
  for (const grpc of [16, 17]) {
    plugin.logs.length = 0;
    const outcome = await plugin.newHttpStream().onRequestHeaders(Array.from({ length: grpc }, (_, i): [string, string] => [`x-${i}`, '1']), true);
    assert.deepEqual(codes(plugin.logs), [R.Ok]);
    assert.ok(outcome.action === 'local_reply');
    replies.push({ grpc: outcome.reply.grpcStatus, details: outcome.reply.details, headers: outcome.reply.headers });
  }
  assert.deepEqual(replies, [
    { grpc: 16, details: 'denied_by_policy', headers: [] },
    { grpc: undefined, details: 'denied_by_policy', headers: [] },
  ]);
});

test('http_call with a timeout of 2^31 ms or more (0xffffffff) is BAD_ARGUMENT and sends nothing, as Envoy reads it signed', async () => {
  const headers = serializePairs([[':method', 'GET'], [':path', '/'], [':authority', 'authz']]);
  const bytes = await wat({
    imports: ['proxy_http_call'],
    strings: { authz: 'authz', headers: String.fromCharCode(...headers) },
    body: (s) => `
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (call $report (call $proxy_http_call ${s.authz} ${s.headers} (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const -1) (i32.const 16)))
    (call $report (call $proxy_http_call ${s.authz} ${s.headers} (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0x80000000) (i32.const 16)))
    (i32.const 0))`,
  });
  const sent: string[] = [];
  const plugin = await WasmPlugin.load(bytes, { name: 'callout' }, { httpCall: async (r) => (sent.push(r.cluster), { headers: [[':status', '200']] }) });
  plugin.logs.length = 0;
  assert.deepEqual(await plugin.newHttpStream().onRequestHeaders([[':path', '/']], true), { action: 'continue' });
  assert.deepEqual(codes(plugin.logs), [R.BadArgument, R.BadArgument]);
  assert.deepEqual(sent, []);
});

test('set_property from a root context is NOT_FOUND (Envoy keeps properties in a stream\'s filter state)', async () => {
  const bytes = await wat({
    imports: ['proxy_set_property', 'proxy_get_property'],
    strings: { key: 'my_key', value: 'v' },
    body: (s) => `
  (func (export "proxy_on_configure") (param i32 i32) (result i32)
    (call $report (call $proxy_set_property ${s.key} ${s.value}))
    (call $report (call $proxy_get_property ${s.key} (i32.const 0) (i32.const 4)))
    (i32.const 1))`,
  });
  const plugin = await WasmPlugin.load(bytes, { name: 'props' });
  assert.deepEqual(codes(plugin.logs), [R.NotFound, R.NotFound]);
});

test('the plugin configuration is there in proxy_on_configure only; the VM configuration in every context (Envoy getBuffer)', async () => {
  const bytes = await wat({
    imports: ['proxy_get_buffer_bytes', 'proxy_get_configuration'],
    body: () => {
      const both = `
    (call $report (call $proxy_get_buffer_bytes (i32.const 7) (i32.const 0) (i32.const 100) (i32.const 0) (i32.const 4)))
    (call $report (call $proxy_get_buffer_bytes (i32.const 6) (i32.const 0) (i32.const 100) (i32.const 0) (i32.const 4)))
    (drop (call $proxy_get_configuration (i32.const 0) (i32.const 4))) (call $log_returned)`;
      return `
  (func (export "proxy_on_vm_start") (param i32 i32) (result i32) ${both} (i32.const 1))
  (func (export "proxy_on_configure") (param i32 i32) (result i32) ${both} (i32.const 1))
  (func (export "proxy_on_tick") (param i32) ${both})
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32) ${both} (i32.const 0))`;
    },
  });
  const plugin = await WasmPlugin.load(bytes, { name: 'config', configuration: 'plugin-config', vmConfiguration: 'vm-config' });
  plugin.tick();
  await plugin.newHttpStream().onRequestHeaders([[':path', '/']], true);
  assert.deepEqual(codes(plugin.logs), [
    R.NotFound, R.Ok, // on_vm_start
    R.Ok, R.Ok, // on_configure
    R.NotFound, R.Ok, // on_tick
    R.NotFound, R.Ok, // a stream
  ]);
  assert.deepEqual(texts(plugin.logs), ['vm-config', 'plugin-config', 'vm-config', 'vm-config']);
});

test('a body outside its callback (nothing held) reads as empty and cannot be written, as Envoy hands out an empty buffer', async () => {
  const bytes = await wat({
    imports: ['proxy_get_buffer_status', 'proxy_set_buffer_bytes'],
    strings: { x: 'x' },
    body: (s) => `
  (func $look (param $type i32)
    (i32.store (i32.const 8) (i32.const 99))
    (call $report (call $proxy_get_buffer_status (local.get $type) (i32.const 8) (i32.const 12)))
    (call $report (i32.load (i32.const 8)))
    (call $report (call $proxy_set_buffer_bytes (local.get $type) (i32.const 0) (i32.const 0) ${s.x})))
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32) (call $look (i32.const 0)) (i32.const 0))
  (func (export "proxy_on_request_body") (param i32 i32 i32) (result i32) (i32.const 0))
  (func (export "proxy_on_response_headers") (param i32 i32 i32) (result i32) (call $look (i32.const 0)) (i32.const 0))`,
  });
  const plugin = await WasmPlugin.load(bytes, { name: 'bodies' });
  plugin.logs.length = 0;
  const stream = plugin.newHttpStream();
  await stream.onRequestHeaders([[':path', '/']], false);
  const body = await stream.onRequestBody('abc', true);
  await stream.onResponseHeaders([[':status', '200']], false);
  assert.deepEqual(codes(plugin.logs), [R.Ok, 0, R.BadArgument, R.Ok, 0, R.BadArgument]);
  // Nothing written reached the request body.
  assert.ok(body.action === 'continue');
  assert.equal(Buffer.from(body.body).toString(), 'abc');
});

test('get_buffer_bytes cuts a length past the end, however large (start 1, length 0xffffffff reads the rest)', async () => {
  const bytes = await wat({
    imports: ['proxy_get_buffer_bytes'],
    body: () => `
  (func (export "proxy_on_request_body") (param i32 i32 i32) (result i32)
    (call $report (call $proxy_get_buffer_bytes (i32.const 0) (i32.const 1) (i32.const -1) (i32.const 0) (i32.const 4)))
    (call $log_returned)
    (i32.const 0))`,
  });
  const plugin = await WasmPlugin.load(bytes, { name: 'bodies' });
  const stream = plugin.newHttpStream();
  await stream.onRequestHeaders([[':path', '/']], false);
  plugin.logs.length = 0;
  await stream.onRequestBody('hello', true);
  assert.deepEqual(codes(plugin.logs), [R.Ok]);
  assert.deepEqual(texts(plugin.logs), ['ello']);
});

test('an http_call response without trailers has no trailer map, and a failed call has no headers or body, as Envoy', async () => {
  const headers = serializePairs([[':method', 'GET'], [':path', '/'], [':authority', 'authz']]);
  const bytes = await wat({
    imports: ['proxy_http_call', 'proxy_get_header_map_value', 'proxy_get_header_map_pairs', 'proxy_get_buffer_bytes'],
    strings: { authz: 'authz', headers: String.fromCharCode(...headers), status: ':status', trailer: 'grpc-status' },
    body: (s) => `
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (drop (call $proxy_http_call ${s.authz} ${s.headers} (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 16)))
    (i32.const 0))
  (func (export "proxy_on_http_call_response") (param i32 i32 i32 i32 i32)
    (call $report (call $proxy_get_header_map_value (i32.const 6) ${s.status} (i32.const 0) (i32.const 4)))
    (call $report (call $proxy_get_header_map_value (i32.const 7) ${s.trailer} (i32.const 0) (i32.const 4)))
    (call $report (call $proxy_get_header_map_pairs (i32.const 7) (i32.const 0) (i32.const 4)))
    (call $report (call $proxy_get_buffer_bytes (i32.const 4) (i32.const 0) (i32.const 100) (i32.const 0) (i32.const 4))))`,
  });
  const answers = [async () => ({ headers: [[':status', '200']] as [string, string][], body: 'ok' }), async () => Promise.reject(new Error('reset'))];
  const plugin = await WasmPlugin.load(bytes, { name: 'callout' }, { httpCall: () => answers.shift()!() });
  const results: number[][] = [];
  for (let i = 0; i < 2; i++) {
    plugin.logs.length = 0;
    await plugin.newHttpStream().onRequestHeaders([[':path', '/']], true);
    await new Promise((resolve) => setTimeout(resolve, 20));
    results.push(codes(plugin.logs));
  }
  assert.deepEqual(results, [
    [R.Ok, R.BadArgument, R.Ok, R.Ok], // answered, no trailers
    [R.BadArgument, R.BadArgument, R.Ok, R.NotFound], // failed: nothing to read
  ]);
});

test('continue_stream / close_stream / send_local_response where there is no such stream answer as Envoy: OK, UNIMPLEMENTED for continuing the upstream', async () => {
  const bytes = await wat({
    imports: ['proxy_continue_stream', 'proxy_close_stream', 'proxy_send_local_response'],
    body: () => `
  (func (export "proxy_on_tick") (param i32)
    (call $report (call $proxy_continue_stream (i32.const 0)))
    (call $report (call $proxy_continue_stream (i32.const 3)))
    (call $report (call $proxy_close_stream (i32.const 1)))
    (call $report (call $proxy_send_local_response (i32.const 403) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const -1))))
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (call $report (call $proxy_continue_stream (i32.const 2)))
    (call $report (call $proxy_continue_stream (i32.const 3)))
    (call $report (call $proxy_close_stream (i32.const 2)))
    (call $report (call $proxy_close_stream (i32.const 3)))
    (call $report (call $proxy_continue_stream (i32.const 4)))
    (i32.const 0))`,
  });
  const plugin = await WasmPlugin.load(bytes, { name: 'streams' });
  plugin.logs.length = 0;
  plugin.tick();
  const outcome = await plugin.newHttpStream().onRequestHeaders([[':path', '/']], true);
  assert.deepEqual(codes(plugin.logs), [R.Ok, R.Unimplemented, R.Ok, R.Ok, R.Ok, R.Unimplemented, R.Ok, R.Ok, R.BadArgument]);
  // Closing the connections of a network filter does nothing to an HTTP stream.
  assert.deepEqual(outcome, { action: 'continue' });
});

test('metrics: an id of the histogram kind is BAD_ARGUMENT to increment or get even when undefined; other unknown ids NOT_FOUND', async () => {
  const bytes = await wat({
    imports: ['proxy_increment_metric', 'proxy_record_metric', 'proxy_get_metric'],
    body: () => `
  (func (export "proxy_on_configure") (param i32 i32) (result i32)
    (call $report (call $proxy_increment_metric (i32.const 4098) (i64.const 1)))
    (call $report (call $proxy_get_metric (i32.const 4098) (i32.const 32)))
    (call $report (call $proxy_record_metric (i32.const 4098) (i64.const 1)))
    (call $report (call $proxy_increment_metric (i32.const 4096) (i64.const 1)))
    (call $report (call $proxy_get_metric (i32.const 4097) (i32.const 32)))
    (i32.const 1))`,
  });
  const plugin = await WasmPlugin.load(bytes, { name: 'metrics' });
  assert.deepEqual(codes(plugin.logs), [R.BadArgument, R.BadArgument, R.NotFound, R.NotFound, R.NotFound]);
});

test('Envoy\'s own foreign functions: compress / uncompress (zlib) round-trip, bad input is SERIALIZATION_FAILURE, clear_route_cache OK', async () => {
  const bytes = await wat({
    imports: ['proxy_call_foreign_function'],
    strings: { compress: 'compress', uncompress: 'uncompress', clear: 'clear_route_cache', nope: 'no_such_function', text: 'hello hello hello hello', junk: 'not zlib' },
    body: (s) => `
  (func (export "proxy_on_configure") (param i32 i32) (result i32)
    (call $report (call $proxy_call_foreign_function ${s.compress} ${s.text} (i32.const 0) (i32.const 4)))
    (call $report (call $proxy_call_foreign_function ${s.uncompress} (i32.load (i32.const 0)) (i32.load (i32.const 4)) (i32.const 0) (i32.const 4)))
    (call $log_returned)
    (call $report (call $proxy_call_foreign_function ${s.uncompress} ${s.junk} (i32.const 0) (i32.const 4)))
    (call $report (call $proxy_call_foreign_function ${s.clear} (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 4)))
    (call $report (call $proxy_call_foreign_function ${s.nope} (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 4)))
    (i32.const 1))`,
  });
  const plugin = await WasmPlugin.load(bytes, { name: 'foreign' });
  assert.deepEqual(codes(plugin.logs), [R.Ok, R.Ok, R.SerializationFailure, R.Ok, R.NotFound]);
  assert.deepEqual(texts(plugin.logs), ['hello hello hello hello']);
});
