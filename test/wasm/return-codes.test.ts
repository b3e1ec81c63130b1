// What the host makes of a callback's return value, as proxy-wasm-cpp-host's
// convertVmCallResultTo*Status: headers continue on 0 (and ContinueAndEndStream,
// 2) and stop on anything else, an unknown value included (cpp-host maps it to
// StopAllIterationAndWatermark); trailers stop on any non-zero value.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WasmPlugin } from '../../sidecar/wasm/index.ts';
import { wat } from './wat.ts';

/** Every callback returns what the stream's first header count says (the count of the map it was given). */
const module = () =>
  wat({
    body: () => `
  (global $answer (mut i32) (i32.const 0))
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (global.set $answer (i32.sub (local.get 1) (i32.const 1)))
    (global.get $answer))
  (func (export "proxy_on_request_trailers") (param i32 i32) (result i32) (global.get $answer))
  (func (export "proxy_on_response_headers") (param i32 i32 i32) (result i32) (global.get $answer))
  (func (export "proxy_on_response_trailers") (param i32 i32) (result i32) (global.get $answer))`,
  });

/** Request headers with `answer + 1` entries, so the module answers `answer` in every phase. */
const headers = (answer: number): [string, string][] => Array.from({ length: answer + 1 }, (_, i) => [`x-${i}`, '1']);

test('headers: 0 and 2 continue, 1, 3, 4 and unknown values stop; trailers: any non-zero stops', async () => {
  const plugin = await WasmPlugin.load(await module(), { name: 'return-codes' });
  const seen: Record<number, string[]> = {};
  for (const answer of [0, 1, 2, 3, 4, 5, 9]) {
    const stream = plugin.newHttpStream();
    const request = (await stream.onRequestHeaders(headers(answer), false)).action;
    const trailers = (await stream.onRequestTrailers([['grpc-status', '0']])).action;
    const response = (await stream.onResponseHeaders([[':status', '200']], false)).action;
    const responseTrailers = (await stream.onResponseTrailers([['grpc-status', '0']])).action;
    seen[answer] = [request, trailers, response, responseTrailers];
    stream.complete();
  }
  assert.deepEqual(seen, {
    0: ['continue', 'continue', 'continue', 'continue'],
    1: ['pause', 'pause', 'pause', 'pause'],
    2: ['continue', 'pause', 'continue', 'pause'],
    3: ['pause', 'pause', 'pause', 'pause'],
    4: ['pause', 'pause', 'pause', 'pause'],
    5: ['pause', 'pause', 'pause', 'pause'],
    9: ['pause', 'pause', 'pause', 'pause'],
  });
});
