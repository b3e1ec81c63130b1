// Header map host functions: get / add / replace / remove / pairs / set-all /
// size, lowercased names, repeated values, and every error path.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WasmPlugin, WasmResult as R } from '../../sidecar/wasm/index.ts';
import { deserializePairs, serializePairs } from '../../sidecar/wasm/headers.ts';
import { codes, texts, wat } from './wat.ts';

const latin1 = (bytes: Uint8Array) => String.fromCharCode(...bytes);
const OUT_OF_RANGE = '(i32.const 0x7ffffff0)';

const module = () =>
  wat({
    imports: [
      'proxy_get_header_map_value',
      'proxy_add_header_map_value',
      'proxy_replace_header_map_value',
      'proxy_remove_header_map_value',
      'proxy_get_header_map_pairs',
      'proxy_set_header_map_pairs',
      'proxy_get_header_map_size',
    ],
    strings: {
      path: ':path',
      missing: 'x-missing',
      added: 'X-Added',
      a: 'a',
      b: 'b',
      rep: 'x-rep',
      r: 'r',
      gone: 'x-remove-me',
      pairs: latin1(serializePairs([['x-only', '1'], [':status', '201']])),
    },
    body: (s) => `
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (call $report (call $proxy_get_header_map_value (i32.const 0) ${s.path} (i32.const 0) (i32.const 4)))
    (call $log_returned)
    (call $report (call $proxy_get_header_map_value (i32.const 0) ${s.missing} (i32.const 0) (i32.const 4)))
    (call $report (call $proxy_add_header_map_value (i32.const 0) ${s.added} ${s.a}))
    (call $report (call $proxy_add_header_map_value (i32.const 0) ${s.added} ${s.b}))
    (call $report (call $proxy_replace_header_map_value (i32.const 0) ${s.rep} ${s.r}))
    (call $report (call $proxy_remove_header_map_value (i32.const 0) ${s.gone}))
    (call $report (call $proxy_get_header_map_value (i32.const 9) ${s.path} (i32.const 0) (i32.const 4)))
    (call $report (call $proxy_get_header_map_value (i32.const 0) ${OUT_OF_RANGE} (i32.const 64) (i32.const 0) (i32.const 4)))
    (call $report (call $proxy_get_header_map_value (i32.const 2) ${s.path} (i32.const 0) (i32.const 4)))
    (call $report (call $proxy_get_header_map_pairs (i32.const 0) ${OUT_OF_RANGE} (i32.const 4)))
    (call $report (call $proxy_get_header_map_size (i32.const 0) (i32.const 8)))
    (call $report (call $proxy_get_header_map_pairs (i32.const 0) (i32.const 0) (i32.const 4)))
    (call $log_returned)
    (i32.const 0))
  (func (export "proxy_on_response_headers") (param i32 i32 i32) (result i32)
    (call $report (call $proxy_set_header_map_pairs (i32.const 2) ${s.pairs}))
    (call $report (call $proxy_set_header_map_pairs (i32.const 2) ${OUT_OF_RANGE} (i32.const 64)))
    (i32.const 0))`,
  });

test('header maps: get, add, replace, remove, pairs, size and their error codes', async () => {
  const plugin = await WasmPlugin.load(await module(), { name: 'headers' });
  plugin.logs.length = 0;
  const stream = plugin.newHttpStream();
  const outcome = await stream.onRequestHeaders([[':path', '/x'], ['X-Remove-Me', '1'], ['accept', 'a'], ['Accept', 'b']], true);
  assert.deepEqual(outcome, { action: 'continue' });
  assert.deepEqual(codes(plugin.logs), [
    R.Ok, // get :path
    R.NotFound, // missing key
    R.Ok,
    R.Ok, // add twice
    R.Ok, // replace of an absent key adds it
    R.Ok, // remove
    R.BadArgument, // map type 9
    R.InvalidMemoryAccess, // key out of range
    R.BadArgument, // response headers do not exist yet
    R.InvalidMemoryAccess, // return pointer out of range
    R.Ok, // size
    R.Ok, // pairs
  ]);
  const logged = texts(plugin.logs);
  assert.equal(logged[0], '/x');
  const pairs = deserializePairs(Buffer.from(logged[1]!, 'latin1'));
  assert.deepEqual(pairs, stream.requestHeaders);
  assert.deepEqual(stream.requestHeaders, [
    [':path', '/x'],
    ['accept', 'a'],
    ['accept', 'b'],
    ['x-added', 'a'],
    ['x-added', 'b'],
    ['x-rep', 'r'],
  ]);

  plugin.logs.length = 0;
  await stream.onResponseHeaders([[':status', '200'], ['server', 'up']], true);
  assert.deepEqual(codes(plugin.logs), [R.Ok, R.InvalidMemoryAccess]);
  assert.deepEqual(stream.responseHeaders, [['x-only', '1'], [':status', '201']]);
});
