// Header-derived attributes follow the maps the filter reaches, as Envoy's
// wasm Context hands its StreamActivation the live header maps (or, in
// proxy_on_log, the logged ones): request.path is NOT_FOUND once the filter
// continued past the request headers, response.code stays (stream info), and
// request.size is the content-length or else the body bytes received so far.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WasmPlugin, WasmResult as R } from '../../sidecar/wasm/index.ts';
import { codes, texts, wat } from './wat.ts';

const module = () =>
  wat({
    imports: ['proxy_get_property'],
    strings: { path: 'request\0path', size: 'request\0size', code: 'response\0code' },
    body: (s) => {
      const get = (name: string) => `(call $report (call $proxy_get_property ${s[name]} (i32.const 0) (i32.const 4)))`;
      const show = (name: string) => `${get(name)} (call $log_returned)`;
      return `
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    ${show('path')} (i32.const 0))
  (func (export "proxy_on_request_body") (param i32 i32 i32) (result i32)
    ${get('path')} ${show('size')} (i32.const 0))
  (func (export "proxy_on_response_headers") (param i32 i32 i32) (result i32)
    ${get('path')} ${show('code')} (i32.const 0))
  (func (export "proxy_on_response_body") (param i32 i32 i32) (result i32)
    ${show('code')} (i32.const 0))
  (func (export "proxy_on_log") (param i32)
    ${show('path')} ${show('size')})`;
    },
  });

const int64 = (n: number) => String.fromCharCode(n & 0xff, n >> 8, 0, 0, 0, 0, 0, 0);

test('request.* from the headers is NOT_FOUND after the filter continued past them, back in proxy_on_log; response.code stays', async () => {
  const plugin = await WasmPlugin.load(await module(), { name: 'property-phases' });
  plugin.logs.length = 0;
  const stream = plugin.newHttpStream();
  await stream.onRequestHeaders([[':path', '/p'], ['content-length', '5']], false);
  await stream.onRequestBody('hello', true);
  await stream.onResponseHeaders([[':status', '302']], false);
  await stream.onResponseBody('ok', true);
  stream.complete();
  assert.deepEqual(codes(plugin.logs), [
    R.Ok, // request headers: request.path
    R.NotFound, // body: request.path
    R.Ok, // body: request.size (bytes received)
    R.NotFound, // response headers: request.path
    R.Ok, // response headers: response.code
    R.Ok, // response body: response.code, from the stream
    R.Ok, // log: request.path from the logged headers
    R.Ok, // log: request.size, the content-length
  ]);
  assert.deepEqual(texts(plugin.logs), ['/p', int64(5), int64(302), int64(302), '/p', int64(5)]);
});

test('request.size without a content-length is every body byte received, not what the filter still holds', async () => {
  const plugin = await WasmPlugin.load(await module(), { name: 'property-phases' });
  const stream = plugin.newHttpStream();
  await stream.onRequestHeaders([[':path', '/q']], false);
  await stream.onRequestBody('abc', false);
  plugin.logs.length = 0;
  await stream.onRequestBody('de', true);
  stream.complete();
  assert.deepEqual(texts(plugin.logs), [int64(5), '/q', int64(5)]);
});

test('request.duration once the request is complete (proxy_on_log), request.total_size, source.port from source.address', async () => {
  const bytes = await wat({
    imports: ['proxy_get_property'],
    strings: { duration: 'request\0duration', total: 'request\0total_size', port: 'source\0port' },
    body: (s) => {
      const show = (name: string) => `(call $report (call $proxy_get_property ${s[name]} (i32.const 0) (i32.const 4))) (call $log_returned)`;
      return `
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (call $report (call $proxy_get_property ${s.duration} (i32.const 0) (i32.const 4))) ${show('port')} (i32.const 0))
  (func (export "proxy_on_log") (param i32) ${show('duration')} ${show('total')})`;
    },
  });
  let nowNs = 1_700_000_000_000_000_000n;
  const plugin = await WasmPlugin.load(bytes, { name: 'property-phases' }, { now: () => nowNs });
  plugin.logs.length = 0;
  const stream = plugin.newHttpStream({ 'source.address': '10.0.0.7:4660' });
  await stream.onRequestHeaders([[':path', '/p']], false);
  await stream.onRequestBody('hello', true);
  nowNs += 1_000_000n; // 1 ms (log lines are text: every byte of the value stays below 0x80)
  stream.complete();
  const raw = (text: string) => Buffer.from(text, 'latin1');
  const [port, duration, total] = texts(plugin.logs).map(raw);
  assert.deepEqual(codes(plugin.logs), [R.NotFound, R.Ok, R.Ok, R.Ok]);
  assert.equal(port!.readBigInt64LE(0), 4660n);
  assert.equal(duration!.readBigInt64LE(0), 1_000_000n);
  assert.equal(total!.readBigInt64LE(0), 12n); // ':path' + '/p' (7) and the 5 body bytes
});

test('set_property is the stream\'s filter state: another filter of the same request reads it; it never hides an attribute', async () => {
  const bytes = await wat({
    imports: ['proxy_get_property', 'proxy_set_property'],
    strings: { who: 'auth_user', alice: 'alice', path: 'request\0path', fake: '/fake', nested: 'auth_user\0x' },
    body: (s) => `
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (if (i32.eq (call $proxy_get_property ${s.who} (i32.const 0) (i32.const 4)) (i32.const 1))
      (then
        (call $report (call $proxy_set_property ${s.who} ${s.alice}))
        (call $report (call $proxy_set_property ${s.path} ${s.fake})))
      (else
        (call $log_returned)
        (call $report (call $proxy_get_property ${s.nested} (i32.const 0) (i32.const 4)))))
    (call $report (call $proxy_get_property ${s.path} (i32.const 0) (i32.const 4)))
    (call $log_returned)
    (i32.const 0))`,
  });
  const first = await WasmPlugin.load(bytes, { name: 'authn' });
  const second = await WasmPlugin.load(bytes, { name: 'audit' });
  const request = { 'source.address': '10.0.0.1:1000' };
  first.logs.length = second.logs.length = 0;
  await first.newHttpStream(request).onRequestHeaders([[':path', '/real']], true);
  await second.newHttpStream(request).onRequestHeaders([[':path', '/real']], true);
  assert.deepEqual(codes(first.logs), [R.Ok, R.Ok, R.Ok]);
  assert.deepEqual(texts(first.logs), ['/real']);
  assert.deepEqual(codes(second.logs), [R.NotFound, R.Ok]);
  assert.deepEqual(texts(second.logs), ['alice', '/real']);
  // Another request (its own attributes) starts with none.
  second.logs.length = 0;
  await second.newHttpStream({}).onRequestHeaders([[':path', '/other']], true);
  assert.deepEqual(codes(second.logs), [R.Ok, R.Ok, R.Ok]);
});

test('request.headers.<name> of a repeated header is its values joined with a comma, as Envoy\'s header wrapper', async () => {
  const bytes = await wat({
    imports: ['proxy_get_property'],
    strings: { xff: 'request\0headers\0X-Forwarded-For' },
    body: (s) => `
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (call $report (call $proxy_get_property ${s.xff} (i32.const 0) (i32.const 4))) (call $log_returned) (i32.const 0))`,
  });
  const plugin = await WasmPlugin.load(bytes, { name: 'xff' });
  plugin.logs.length = 0;
  await plugin.newHttpStream().onRequestHeaders([[':path', '/'], ['x-forwarded-for', '10.0.0.1'], ['x-forwarded-for', '10.0.0.2']], true);
  assert.deepEqual(codes(plugin.logs), [R.Ok]);
  assert.deepEqual(texts(plugin.logs), ['10.0.0.1,10.0.0.2']);
});
