// Which header maps a filter reaches in which phase, as Envoy's wasm Context
// (source/extensions/common/wasm/context.cc getMap / getConstMap): a stream's
// map is there from its phase until the filter continues past it; after that
// a lookup or a change is BAD_ARGUMENT (the Rust SDK panics on it, so a filter
// that works here must not trap in Envoy), listing it gives no pairs, and in
// proxy_on_log the logged maps are read, a missing one NOT_FOUND.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WasmPlugin, WasmResult as R } from '../../sidecar/wasm/index.ts';
import { codes, wat } from './wat.ts';

const module = () =>
  wat({
    imports: ['proxy_get_header_map_value', 'proxy_add_header_map_value', 'proxy_get_header_map_pairs', 'proxy_get_header_map_size', 'proxy_continue_stream'],
    strings: { path: ':path', status: ':status', added: 'x-added', v: 'v', grpc: 'grpc-status' },
    body: (s) => `
  (func $pairs_count (param $type i32) (result i32)
    ;; the status, then the number of pairs listed (0 for none)
    (call $report (call $proxy_get_header_map_pairs (local.get $type) (i32.const 0) (i32.const 4)))
    (if (result i32) (i32.eqz (i32.load (i32.const 4))) (then (i32.const 0)) (else (i32.load (i32.load (i32.const 0))))))
  ;; two headers: stop; three: continue_stream from inside, then look; otherwise continue
  (func (export "proxy_on_request_headers") (param i32) (param $n i32) (param i32) (result i32)
    (if (i32.eq (local.get $n) (i32.const 3))
      (then
        (call $report (call $proxy_continue_stream (i32.const 0)))
        (call $report (call $proxy_get_header_map_value (i32.const 0) ${s.path} (i32.const 0) (i32.const 4)))))
    (i32.eq (local.get $n) (i32.const 2)))
  (func (export "proxy_on_request_body") (param i32 i32 i32) (result i32)
    (call $report (call $proxy_get_header_map_value (i32.const 0) ${s.path} (i32.const 0) (i32.const 4)))
    (call $report (call $pairs_count (i32.const 0)))
    (call $report (call $proxy_add_header_map_value (i32.const 0) ${s.added} ${s.v}))
    (call $report (call $proxy_get_header_map_size (i32.const 0) (i32.const 8)))
    (i32.const 0))
  (func (export "proxy_on_response_headers") (param i32 i32 i32) (result i32)
    (call $report (call $proxy_get_header_map_value (i32.const 0) ${s.path} (i32.const 0) (i32.const 4)))
    (call $report (call $proxy_get_header_map_value (i32.const 2) ${s.status} (i32.const 0) (i32.const 4)))
    (i32.const 0))
  (func (export "proxy_on_response_body") (param i32 i32 i32) (result i32)
    (call $report (call $proxy_get_header_map_value (i32.const 2) ${s.status} (i32.const 0) (i32.const 4)))
    (i32.const 0))
  (func (export "proxy_on_log") (param i32)
    (call $report (call $proxy_get_header_map_value (i32.const 0) ${s.path} (i32.const 0) (i32.const 4)))
    (call $report (call $proxy_get_header_map_value (i32.const 2) ${s.status} (i32.const 0) (i32.const 4)))
    (call $report (call $proxy_get_header_map_value (i32.const 1) ${s.path} (i32.const 0) (i32.const 4)))
    (call $report (call $proxy_get_header_map_value (i32.const 3) ${s.grpc} (i32.const 0) (i32.const 4)))
    (call $report (call $proxy_add_header_map_value (i32.const 2) ${s.added} ${s.v})))`,
  });

test('after a filter continues past a phase its map is gone: BAD_ARGUMENT, no pairs; proxy_on_log reads the logged maps', async () => {
  const plugin = await WasmPlugin.load(await module(), { name: 'map-phases' });
  plugin.logs.length = 0;
  const stream = plugin.newHttpStream();
  assert.deepEqual(await stream.onRequestHeaders([[':path', '/a']], false), { action: 'continue' });
  await stream.onRequestBody('x', true);
  assert.deepEqual(codes(plugin.logs), [
    R.BadArgument, // get: the request headers went on
    R.Ok, // pairs: listed as empty
    0,
    R.BadArgument, // add
    R.BadArgument, // size
  ]);
  // The forwarded headers are untouched.
  assert.deepEqual(stream.requestHeaders, [[':path', '/a']]);

  plugin.logs.length = 0;
  await stream.onResponseHeaders([[':status', '200']], false);
  await stream.onResponseBody('y', true);
  assert.deepEqual(codes(plugin.logs), [R.BadArgument, R.Ok, R.BadArgument]);

  plugin.logs.length = 0;
  stream.complete();
  assert.deepEqual(codes(plugin.logs), [
    R.Ok, // request headers as logged
    R.Ok, // response headers as logged
    R.NotFound, // the log has no request trailers
    R.NotFound, // nor response trailers here
    R.BadArgument, // and nothing is changed any more
  ]);
});

test('a filter that stopped the request headers gets no body callback while it holds them (the body waits in the buffer); continue_stream lets go of them at once', async () => {
  const plugin = await WasmPlugin.load(await module(), { name: 'map-phases' });
  plugin.logs.length = 0;
  const stopped = plugin.newHttpStream();
  assert.deepEqual(await stopped.onRequestHeaders([[':path', '/b'], ['a', '1']], false), { action: 'pause' });
  // Envoy's host turns the headers' StopIteration into StopAllIterationAndWatermark: proxy_on_request_body does not run.
  assert.deepEqual(await stopped.onRequestBody('x', true), { action: 'pause' });
  assert.deepEqual(codes(plugin.logs), []);
  assert.equal(stopped.bufferedBytes('request'), 1, 'the body waits for the filter');
  assert.deepEqual(stopped.requestHeaders, [[':path', '/b'], ['a', '1']]);

  plugin.logs.length = 0;
  const resumed = plugin.newHttpStream();
  await resumed.onRequestHeaders([[':path', '/c'], ['a', '1'], ['b', '2']], false);
  assert.deepEqual(codes(plugin.logs), [R.Ok, R.BadArgument]);
});
