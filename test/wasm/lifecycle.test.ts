// Lifecycle order as proxy-wasm-cpp-host drives it: root context create,
// on_vm_start, on_configure at load; per stream context create, request
// headers, body, response headers, body, then on_done, on_log, on_delete.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WasmPlugin } from '../../sidecar/wasm/index.ts';
import { wat } from './wat.ts';

const callbacks: [string, string, string][] = [
  ['_initialize', '', ''],
  ['proxy_on_context_create', '(param i32 i32)', ''],
  ['proxy_on_vm_start', '(param i32 i32) (result i32)', '(i32.const 1)'],
  ['proxy_on_configure', '(param i32 i32) (result i32)', '(i32.const 1)'],
  ['proxy_on_request_headers', '(param i32 i32 i32) (result i32)', '(i32.const 0)'],
  ['proxy_on_request_body', '(param i32 i32 i32) (result i32)', '(i32.const 0)'],
  ['proxy_on_request_trailers', '(param i32 i32) (result i32)', '(i32.const 0)'],
  ['proxy_on_response_headers', '(param i32 i32 i32) (result i32)', '(i32.const 0)'],
  ['proxy_on_response_body', '(param i32 i32 i32) (result i32)', '(i32.const 0)'],
  ['proxy_on_response_trailers', '(param i32 i32) (result i32)', '(i32.const 0)'],
  ['proxy_on_done', '(param i32) (result i32)', '(i32.const 1)'],
  ['proxy_on_log', '(param i32)', ''],
  ['proxy_on_delete', '(param i32)', ''],
];

/** A module whose every callback logs its own name. */
export async function tracingModule(): Promise<Uint8Array> {
  return wat({
    imports: ['proxy_log'],
    strings: Object.fromEntries(callbacks.map(([name]) => [name, name])),
    body: (s) =>
      callbacks
        .map(([name, sig, result]) => `(func (export "${name}") ${sig} (drop (call $proxy_log (i32.const 2) ${s[name]})) ${result})`)
        .join('\n'),
  });
}

test('load runs _initialize, root context create, on_vm_start, on_configure in order', async () => {
  const plugin = await WasmPlugin.load(await tracingModule(), { name: 'trace' });
  assert.deepEqual(
    plugin.logs.map((l) => l.message),
    ['_initialize', 'proxy_on_context_create', 'proxy_on_vm_start', 'proxy_on_configure'],
  );
  assert.equal(plugin.abiVersion, '0.2.1');
});

test('a stream runs create, request, response, then done, log, delete', async () => {
  const plugin = await WasmPlugin.load(await tracingModule(), { name: 'trace' });
  plugin.logs.length = 0;
  const stream = plugin.newHttpStream();
  assert.deepEqual(await stream.onRequestHeaders([[':path', '/']], false), { action: 'continue' });
  assert.equal((await stream.onRequestBody('hi', false)).action, 'continue');
  await stream.onRequestTrailers([['x-t', '1']]);
  await stream.onResponseHeaders([[':status', '200']], false);
  await stream.onResponseBody('ok', true);
  stream.complete();
  assert.deepEqual(
    plugin.logs.map((l) => l.message),
    [
      'proxy_on_context_create',
      'proxy_on_request_headers',
      'proxy_on_request_body',
      'proxy_on_request_trailers',
      'proxy_on_response_headers',
      'proxy_on_response_body',
      'proxy_on_done',
      'proxy_on_log',
      'proxy_on_delete',
    ],
  );
  assert.deepEqual(
    plugin.logs.map((l) => l.contextId),
    [2, 2, 2, 2, 2, 2, 2, 2, 2],
  );
});

test('a stream paused with nothing in flight resolves "pause", then resumes from a tick', async () => {
  const bytes = await wat({
    imports: ['proxy_set_effective_context', 'proxy_continue_stream'],
    body: () => `
  (global $stream (mut i32) (i32.const 0))
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (global.set $stream (local.get 0))
    (i32.const 1))
  (func (export "proxy_on_tick") (param i32)
    (if (global.get $stream) (then
      (drop (call $proxy_set_effective_context (global.get $stream)))
      (drop (call $proxy_continue_stream (i32.const 0))))))`,
  });
  const plugin = await WasmPlugin.load(bytes, { name: 'later' });
  const stream = plugin.newHttpStream();
  assert.deepEqual(await stream.onRequestHeaders([[':path', '/']], true), { action: 'pause' });
  assert.equal(stream.paused.request, true);
  const resumed = stream.resumed('request');
  plugin.tick();
  assert.deepEqual(await resumed, { action: 'continue' });
  assert.equal(stream.paused.request, false);
});

test('close: root on_done returning false waits for proxy_done, then on_delete', async () => {
  const bytes = await wat({
    imports: ['proxy_done'],
    strings: { done: 'on_done', del: 'on_delete', tick: 'tick' },
    body: (s) => `
  (func (export "proxy_on_done") (param i32) (result i32)
    (drop (call $proxy_log (i32.const 2) ${s.done}))
    (i32.const 0))
  (func (export "proxy_on_delete") (param i32)
    (drop (call $proxy_log (i32.const 2) ${s.del})))
  (func (export "proxy_on_tick") (param i32)
    (drop (call $proxy_log (i32.const 2) ${s.tick}))
    (call $report (call $proxy_done)))`,
  });
  const plugin = await WasmPlugin.load(bytes, { name: 'closing' });
  plugin.tick();
  const closing = plugin.close(5000);
  plugin.tick();
  await closing;
  assert.deepEqual(
    plugin.logs.map((l) => l.message),
    ['tick', '#1', 'on_done', 'tick', '#0', 'on_delete'],
  );
});
