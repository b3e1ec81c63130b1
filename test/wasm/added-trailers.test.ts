// Trailers a filter adds in its last body call (end_of_stream) of a stream
// without trailers, as Envoy's wasm host allows (context.cc getMap: a change
// to the trailer map there makes it, addDecodedTrailers / addEncodedTrailers;
// getConstMap: a read before that finds no map, BAD_ARGUMENT).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadFilter } from 'weft/testing';
import { codes, wat } from './wat.ts';

/**
 * In each body call: reports what a read of the trailer map gets (2:
 * BAD_ARGUMENT, 1: NOT_FOUND), then what adding x-added gets, then the read
 * again; map 1 on the request, 3 on the response.
 */
async function adder(): Promise<Uint8Array> {
  return wat({
    imports: ['proxy_get_header_map_value', 'proxy_add_header_map_value'],
    strings: { name: 'x-added', value: 'yes' },
    body: (s) => `
  (func $probe (param $map i32)
    (call $report (call $proxy_get_header_map_value (local.get $map) ${s.name} (i32.const 0) (i32.const 4)))
    (call $report (call $proxy_add_header_map_value (local.get $map) ${s.name} ${s.value}))
    (call $report (call $proxy_get_header_map_value (local.get $map) ${s.name} (i32.const 0) (i32.const 4))))
  (func (export "proxy_on_request_body") (param i32 i32 i32) (result i32)
    (call $probe (i32.const 1))
    (i32.const 0))
  (func (export "proxy_on_response_body") (param i32 i32 i32) (result i32)
    (call $probe (i32.const 3))
    (i32.const 0))`,
  });
}

test('in the last body call a read of the trailer map finds none (BAD_ARGUMENT) until an add makes it; the added trailers are forwarded (request) and answered (response)', async () => {
  const filter = await loadFilter(await adder());
  const res = await filter.request({ method: 'POST', body: 'abc' }, { body: 'def' });
  assert.deepEqual(res.forwarded?.trailers, [['x-added', 'yes']]);
  assert.deepEqual(res.response?.trailers, [['x-added', 'yes']]);
  assert.deepEqual(codes(filter.logs), [2, 0, 0, 2, 0, 0], 'request: read BAD_ARGUMENT, add OK, read OK; the same on the response');
});

test('in a body call that is not the last there is no trailer map: the add fails and nothing is added', async () => {
  const filter = await loadFilter(await adder());
  // Trailers of their own: the body call before them is not end_of_stream (and the map is theirs only at the trailers).
  const res = await filter.request({ method: 'POST', body: 'abc', trailers: { 'x-own': '1' } }, { body: 'def', trailers: { 'grpc-status': '0' } });
  assert.deepEqual(res.forwarded?.trailers, [['x-own', '1']]);
  assert.deepEqual(res.response?.trailers, [['grpc-status', '0']]);
  assert.deepEqual(codes(filter.logs), [2, 2, 2, 2, 2, 2]);
});
