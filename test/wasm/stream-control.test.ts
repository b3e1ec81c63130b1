// send_local_response (stops iteration), continue_stream, close_stream and
// http_call: dispatched through the pluggable dispatcher, answered on the
// root context, resumed with set_effective_context + continue_stream; a
// timeout delivers a response with no headers.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WasmPlugin, WasmResult as R, type HttpCallRequest } from '../../sidecar/wasm/index.ts';
import { serializePairs } from '../../sidecar/wasm/headers.ts';
import { codes, texts, wat } from './wat.ts';

const latin1 = (bytes: Uint8Array) => String.fromCharCode(...bytes);
const OUT = '(i32.const 0x7ffffff0) (i32.const 64)';

test('send_local_response stops iteration even when the callback returns Continue', async () => {
  const bytes = await wat({
    imports: ['proxy_send_local_response'],
    strings: { details: 'denied_by_test', body: 'nope', headers: latin1(serializePairs([['x-why', 'test']])) },
    body: (s) => `
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (call $report (call $proxy_send_local_response (i32.const 403) ${s.details} ${OUT} ${s.headers} (i32.const -1)))
    (call $report (call $proxy_send_local_response (i32.const 403) ${s.details} ${s.body} ${s.headers} (i32.const -1)))
    (i32.const 0))`,
  });
  const plugin = await WasmPlugin.load(bytes, { name: 'reply' });
  const stream = plugin.newHttpStream();
  const outcome = await stream.onRequestHeaders([[':path', '/']], true);
  assert.equal(outcome.action, 'local_reply');
  assert.ok(outcome.action === 'local_reply');
  assert.equal(outcome.reply.status, 403);
  assert.equal(Buffer.from(outcome.reply.body).toString(), 'nope');
  assert.deepEqual(outcome.reply.headers, [['x-why', 'test']]);
  assert.equal(outcome.reply.details, 'denied_by_test');
  assert.equal(outcome.reply.grpcStatus, undefined);
  assert.deepEqual(codes(plugin.logs), [R.InvalidMemoryAccess, R.Ok]);
  // Later request phases do not reach the module once a reply is sent.
  assert.equal((await stream.onRequestBody('x', true)).action, 'local_reply');
});

const callout = (timeoutMs: number) =>
  wat({
    imports: ['proxy_http_call', 'proxy_get_header_map_value', 'proxy_get_buffer_bytes', 'proxy_set_effective_context', 'proxy_continue_stream', 'proxy_send_local_response', 'proxy_close_stream', 'proxy_get_status'],
    strings: {
      authz: 'authz',
      unknown: 'nowhere',
      headers: latin1(serializePairs([[':method', 'POST'], [':path', '/check'], [':authority', 'authz']])),
      partial: latin1(serializePairs([[':method', 'GET']])),
      query: 'who?',
      status: ':status',
      details: 'callout_failed',
    },
    body: (s) => `
  (global $stream (mut i32) (i32.const 0))
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (global.set $stream (local.get 0))
    (call $report (call $proxy_http_call ${s.unknown} ${s.headers} ${s.query} (i32.const 0) (i32.const 0) (i32.const 100) (i32.const 16)))
    (call $report (call $proxy_http_call ${s.authz} ${s.partial} ${s.query} (i32.const 0) (i32.const 0) (i32.const 100) (i32.const 16)))
    (call $report (call $proxy_http_call ${s.authz} ${s.headers} ${s.query} (i32.const 0) (i32.const 0) (i32.const ${timeoutMs}) (i32.const 16)))
    (call $report (call $proxy_continue_stream (i32.const 9)))
    (i32.const 1))
  (func (export "proxy_on_http_call_response") (param i32 i32 i32 i32 i32)
    ;; reports: delivered to root context (1 = yes), token matches, header count
    (call $report (i32.eq (local.get 0) (i32.const 1)))
    (call $report (i32.eq (local.get 1) (i32.load (i32.const 16))))
    (call $report (local.get 2))
    (call $report (call $proxy_set_effective_context (i32.const 999)))
    (call $report (call $proxy_set_effective_context (global.get $stream)))
    (if (i32.eqz (local.get 2)) (then
      (call $report (call $proxy_get_status (i32.const 24) (i32.const 0) (i32.const 4)))
      (call $report (i32.load (i32.const 24)))
      (call $log_returned)
      (call $report (call $proxy_send_local_response (i32.const 504) ${s.details} ${s.details} (i32.const 0) (i32.const 0) (i32.const -1)))
      (return)))
    (call $report (call $proxy_get_header_map_value (i32.const 6) ${s.status} (i32.const 0) (i32.const 4)))
    (call $log_returned)
    (call $report (call $proxy_get_buffer_bytes (i32.const 4) (i32.const 0) (local.get 3) (i32.const 0) (i32.const 4)))
    (call $log_returned)
    (call $report (call $proxy_continue_stream (i32.const 0))))`,
  });

test('http_call pauses the stream, the response reaches the root context, continue_stream resumes', async () => {
  const calls: HttpCallRequest[] = [];
  const plugin = await WasmPlugin.load(await callout(1000), { name: 'callout' }, {
    hasCluster: (name) => name === 'authz',
    httpCall: async (req) => {
      calls.push(req);
      return { headers: [[':status', '200']], body: 'allowed' };
    },
  });
  plugin.logs.length = 0;
  const stream = plugin.newHttpStream();
  const outcome = await stream.onRequestHeaders([[':path', '/orders']], true);
  assert.deepEqual(outcome, { action: 'continue' });
  assert.equal(calls.length, 1);
  assert.equal(calls[0]!.cluster, 'authz');
  assert.deepEqual(calls[0]!.headers, [[':method', 'POST'], [':path', '/check'], [':authority', 'authz']]);
  assert.equal(Buffer.from(calls[0]!.body).toString(), 'who?');
  assert.equal(calls[0]!.timeoutMs, 1000);
  assert.deepEqual(codes(plugin.logs), [
    R.BadArgument, // unknown cluster
    R.BadArgument, // no :path / :authority
    R.Ok, // dispatched
    R.BadArgument, // continue_stream(9)
    1, // on_http_call_response got the root context id
    1, // and the token http_call returned
    1, // one response header
    R.BadArgument, // set_effective_context to an unknown id
    R.Ok,
    R.Ok,
    R.Ok,
    R.Ok, // continue_stream(Request)
  ]);
  assert.deepEqual(texts(plugin.logs), ['200', 'allowed']);
  assert.equal(stream.paused.request, false);
});

test('an http_call that times out gets the 504 Envoy answers with; a failed one gets no headers', async () => {
  const timedOut = await WasmPlugin.load(await callout(30), { name: 'callout' }, {
    hasCluster: (name) => name === 'authz',
    httpCall: (req) => new Promise((_, reject) => req.signal.addEventListener('abort', () => reject(new Error('aborted')))),
  });
  timedOut.logs.length = 0;
  assert.deepEqual(await timedOut.newHttpStream().onRequestHeaders([[':path', '/']], true), { action: 'continue' });
  assert.deepEqual(texts(timedOut.logs), ['504', 'upstream request timeout']);
  assert.equal(timedOut.pendingHttpCalls, 0);

  const failed = await WasmPlugin.load(await callout(1000), { name: 'callout' }, {
    hasCluster: (name) => name === 'authz',
    httpCall: async () => {
      throw new Error('connection refused');
    },
  });
  failed.logs.length = 0;
  const outcome = await failed.newHttpStream().onRequestHeaders([[':path', '/']], true);
  assert.ok(outcome.action === 'local_reply' && outcome.reply.status === 504);
  // proxy_get_status inside the callback: OK, code BROKEN_CONNECTION, message "reset"; then the 504 reply.
  assert.deepEqual(codes(failed.logs).slice(-3), [R.Ok, R.BrokenConnection, R.Ok]);
  assert.deepEqual(texts(failed.logs), ['reset']);
});

test('close_stream resets the stream', async () => {
  const bytes = await wat({
    imports: ['proxy_close_stream'],
    body: () => `
  (func (export "proxy_on_response_headers") (param i32 i32 i32) (result i32)
    (call $report (call $proxy_close_stream (i32.const 7)))
    (call $report (call $proxy_close_stream (i32.const 1)))
    (i32.const 0))`,
  });
  const plugin = await WasmPlugin.load(bytes, { name: 'close' });
  const stream = plugin.newHttpStream();
  assert.deepEqual(await stream.onRequestHeaders([[':path', '/']], true), { action: 'continue' });
  assert.deepEqual(await stream.onResponseHeaders([[':status', '200']], true), { action: 'close' });
  assert.equal(stream.closed, true);
  assert.deepEqual(codes(plugin.logs), [R.BadArgument, R.Ok]);
});
