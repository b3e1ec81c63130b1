// The filter test kit (weft/testing): request/answer round trips, body
// chunks and trailers, mocked http calls (answer, function, timeout), the
// fake clock and ticks, stalled streams.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadFilter } from 'weft/testing';
import { serializePairs } from '../../sidecar/wasm/headers.ts';
import { codes, wat } from './wat.ts';

const latin1 = (bytes: Uint8Array) => String.fromCharCode(...bytes);

test('a pass-through filter forwards body chunks and trailers and returns the upstream answer', async () => {
  const filter = await loadFilter(await wat({ body: () => '' }));
  const res = await filter.request(
    { method: 'POST', path: '/items', headers: { 'content-type': 'text/plain' }, body: ['hel', 'lo'], trailers: { 'x-sum': '1' } },
    (forwarded) => ({ status: 201, headers: { 'x-echo': forwarded.body }, body: forwarded.body.toUpperCase(), trailers: [['grpc-status', '0']] }),
  );
  assert.equal(res.forwarded?.body, 'hello');
  assert.equal(res.forwarded?.header(':method'), 'POST');
  assert.equal(res.forwarded?.header('Content-Type'), 'text/plain');
  assert.deepEqual(res.forwarded?.trailers, [['x-sum', '1']]);
  assert.equal(res.response?.status, 201);
  assert.equal(res.response?.header('x-echo'), 'hello');
  assert.equal(res.response?.body, 'HELLO');
  assert.deepEqual(res.response?.trailers, [['grpc-status', '0']]);
  assert.deepEqual(
    res.phases.map((p) => p.phase),
    ['request_headers', 'request_body', 'request_body', 'request_trailers', 'response_headers', 'response_body', 'response_trailers'],
  );
});

const callout = (timeoutMs: number) =>
  wat({
    imports: ['proxy_http_call', 'proxy_set_effective_context', 'proxy_continue_stream', 'proxy_get_header_map_value', 'proxy_add_header_map_value'],
    strings: { authz: 'authz', headers: latin1(serializePairs([[':method', 'GET'], [':path', '/check'], [':authority', 'authz']])), status: ':status', verdict: 'x-verdict' },
    body: (s) => `
  (global $stream (mut i32) (i32.const 0))
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (global.set $stream (local.get 0))
    (drop (call $proxy_http_call ${s.authz} ${s.headers} (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const ${timeoutMs}) (i32.const 16)))
    (i32.const 1))
  (func (export "proxy_on_http_call_response") (param i32 i32 i32 i32 i32)
    (drop (call $proxy_set_effective_context (global.get $stream)))
    (drop (call $proxy_get_header_map_value (i32.const 6) ${s.status} (i32.const 0) (i32.const 4)))
    (drop (call $proxy_add_header_map_value (i32.const 0) ${s.verdict} (i32.load (i32.const 0)) (i32.load (i32.const 4))))
    (drop (call $proxy_continue_stream (i32.const 0))))`,
  });

test('mocked http calls are recorded and their answers reach the filter', async () => {
  const filter = await loadFilter(await callout(500), { httpCalls: { authz: async (call) => ({ status: call.header(':path') === '/check' ? 204 : 500 }) } });
  const res = await filter.request({ path: '/orders' });
  assert.equal(filter.httpCalls.length, 1);
  assert.equal(filter.httpCalls[0]!.cluster, 'authz');
  assert.equal(filter.httpCalls[0]!.timeoutMs, 500);
  assert.equal(res.forwarded?.header('x-verdict'), '204');
});

test("a 'timeout' mock makes the call time out on the fake clock (Envoy's 504 reaches the filter, the clock moves by the timeout)", async () => {
  const filter = await loadFilter(await callout(20), { httpCalls: { authz: 'timeout' } });
  const start = filter.nowNs;
  const res = await filter.request();
  assert.equal(res.forwarded?.header('x-verdict'), '504');
  assert.equal(filter.nowNs - start, 20_000_000n, 'the call took its 20 ms timeout, on the fake clock');
  // A ten-minute timeout takes no real time: the clock jumps to it once nothing else can happen.
  const slow = await loadFilter(await callout(600_000), { httpCalls: { authz: 'timeout' } });
  assert.equal((await slow.request()).forwarded?.header('x-verdict'), '504');
  assert.equal(slow.nowNs - start, 600_000_000_000n);
});

test('an async mock that takes real time still answers before a call timeout on the fake clock', async () => {
  const filter = await loadFilter(await callout(20), {
    httpCalls: { authz: async () => new Promise((resolve) => setTimeout(() => resolve({ status: 204 }), 50)) },
  });
  const start = filter.nowNs;
  const res = await filter.request();
  assert.equal(res.forwarded?.header('x-verdict'), '204', 'real time does not move the fake clock');
  assert.equal(filter.nowNs, start);
});

test('an unmocked cluster is refused, so the filter stalls: the kit reports it', async () => {
  const filter = await loadFilter(await callout(20), { httpCalls: {} });
  const res = await filter.request();
  assert.equal(res.stalled, true);
  assert.equal(res.forwarded, undefined);
  assert.equal(filter.httpCalls.length, 0);
});

test('the fake clock: advance fires the ticks the module asked for, each at its own time', async () => {
  // Each tick reports how many 100 ms periods have passed since configure, by the clock the module reads.
  const bytes = await wat({
    imports: ['proxy_set_tick_period_milliseconds', 'proxy_get_current_time_nanoseconds'],
    body: () => `
  (global $start (mut i64) (i64.const 0))
  (func (export "proxy_on_configure") (param i32 i32) (result i32)
    (drop (call $proxy_get_current_time_nanoseconds (i32.const 0)))
    (global.set $start (i64.load (i32.const 0)))
    (drop (call $proxy_set_tick_period_milliseconds (i32.const 100)))
    (i32.const 1))
  (func (export "proxy_on_tick") (param i32)
    (drop (call $proxy_get_current_time_nanoseconds (i32.const 0)))
    (call $report (i32.wrap_i64 (i64.div_u (i64.sub (i64.load (i32.const 0)) (global.get $start)) (i64.const 100000000)))))`,
  });
  const filter = await loadFilter(bytes, { startTime: new Date('2030-01-01T00:00:00Z') });
  const start = filter.nowNs;
  filter.advance(250);
  assert.deepEqual(codes(filter.logs), [1, 2], 'ticks at 100 and 200 ms, not both at 250');
  filter.advance(50);
  assert.deepEqual(codes(filter.logs), [1, 2, 3]);
  filter.tick(2);
  assert.deepEqual(codes(filter.logs), [1, 2, 3, 3, 3], 'tick() runs at the current time');
  filter.advance(1000);
  assert.deepEqual(codes(filter.logs).slice(5), [4, 5, 6, 7, 8, 9, 10, 11, 12, 13]);
  assert.equal(filter.nowNs - start, 1_300_000_000n);
});

/** Holds every body chunk (StopIterationAndBuffer) until the trailers, which it continues. */
const holdUntilTrailers = () =>
  wat({
    body: () => `
  (func (export "proxy_on_request_body") (param i32 i32 i32) (result i32) (i32.const 1))
  (func (export "proxy_on_request_trailers") (param i32 i32) (result i32) (i32.const 0))
  (func (export "proxy_on_response_body") (param i32 i32 i32) (result i32) (select (i32.const 0) (i32.const 1) (local.get 2)))
  (func (export "proxy_on_response_trailers") (param i32 i32) (result i32) (i32.const 0))`,
  });

test('a body the filter held until the trailers goes on ahead of them (request and response)', async () => {
  const filter = await loadFilter(await holdUntilTrailers());
  const res = await filter.request({ method: 'POST', body: ['hel', 'lo'], trailers: { 'x-sum': '1' } }, (forwarded) => ({ body: forwarded.body.toUpperCase(), trailers: { 'grpc-status': '0' } }));
  assert.equal(res.forwarded?.body, 'hello');
  assert.equal(res.response?.body, 'HELLO');
  assert.equal(res.stalled, false);
});

test('holding more than the buffer limit: 413 for a request, a reset for a response (as the sidecar)', async () => {
  const limit = { bufferLimitBytes: 1024 };
  const request = await (await loadFilter(await holdUntilTrailers(), limit)).request({ method: 'POST', body: ['x'.repeat(600), 'y'.repeat(600)], trailers: { a: '1' } });
  assert.equal(request.localReply?.status, 413);
  assert.equal(request.localReply?.bodyText, 'Payload Too Large');
  assert.equal(request.forwarded, undefined);

  const big = { body: 'z'.repeat(2048), trailers: { 'grpc-status': '0' } };

  const started = await (await loadFilter(await holdUntilTrailers(), limit)).request({}, big);
  assert.equal(started.closed, true);
  // Within the limit the same filter lets everything through.
  const fine = await (await loadFilter(await holdUntilTrailers())).request({}, big);
  assert.equal(fine.response?.body, big.body);
});

/** Returns `headers` from the request headers callback and `body` from both body callbacks; nothing continues a stop. */
const statuses = (headers: number, body: number) =>
  wat({
    body: () => `
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32) (i32.const ${headers}))
  (func (export "proxy_on_request_body") (param i32 i32 i32) (result i32) (i32.const ${body}))
  (func (export "proxy_on_response_body") (param i32 i32 i32) (result i32) (i32.const ${body}))`,
  });

test('StopAllIterationAndBuffer (3) past the buffer limit: 413 for a request and 500 for a response at once, as the sidecar and Envoy', async () => {
  const limit = { bufferLimitBytes: 1024 };
  const request = await (await loadFilter(await statuses(3, 0), limit)).request({ method: 'POST', body: ['x'.repeat(600), 'y'.repeat(600)] });
  assert.equal(request.localReply?.status, 413);
  assert.equal(request.forwarded, undefined);
  assert.equal(request.stalled, false);
  // Within the limit the same stop holds the request, and nothing here continues it.
  const small = await (await loadFilter(await statuses(3, 0), limit)).request({ method: 'POST', body: 'x'.repeat(600) });
  assert.equal(small.stalled, true);
  assert.equal(small.localReply, undefined);

  // The request goes on (its headers continue); the response headers are held with 3 and the body is too large.
  const response = await (await loadFilter(await wat({ body: () => '(func (export "proxy_on_response_headers") (param i32 i32 i32) (result i32) (i32.const 3))' }), limit)).request({}, { body: 'z'.repeat(2048) });
  assert.equal(response.response?.status, 500);
  assert.equal(response.response?.body, 'Internal Server Error');
  assert.equal(response.localReply?.details, 'response_payload_too_large');
  assert.equal(response.closed, false);
});

test('StopIterationAndWatermark (2) past the buffer limit is backpressure, not 413 or a reset: the stream waits for the filter', async () => {
  const limit = { bufferLimitBytes: 1024 };
  const request = await (await loadFilter(await statuses(0, 2), limit)).request({ method: 'POST', body: ['x'.repeat(600), 'y'.repeat(600), 'z'] });
  assert.equal(request.localReply, undefined, 'no 413');
  assert.equal(request.stalled, true, 'held until the filter lets go, which nothing here does');
  const response = await (await loadFilter(await wat({ body: () => '(func (export "proxy_on_response_body") (param i32 i32 i32) (result i32) (i32.const 2))' }), limit)).request({}, { body: 'z'.repeat(2048), trailers: { 'grpc-status': '0' } });
  assert.equal(response.closed, false, 'not reset');
  assert.equal(response.stalled, true);
});

test('a configuration the module refuses: loadFilter says what the module logged while refusing it', async () => {
  const bytes = await wat({
    strings: { why: 'limit: must be between 1 and 1000000', chatter: 'reading config' },
    body: (s) => `
  (func (export "proxy_on_configure") (param i32 i32) (result i32)
    (drop (call $proxy_log (i32.const 1) ${s.chatter}))
    (drop (call $proxy_log (i32.const 3) ${s.why}))
    (i32.const 0))`,
  });
  await assert.rejects(loadFilter(bytes, { configuration: '{"limit":0}' }), (err: Error & { logs?: { level: string; message: string }[] }) => {
    assert.equal(err.name, 'WasmLoadError');
    assert.match(err.message, /^proxy_on_configure: module returned false \(plugin configuration rejected\); the module logged: warn: limit: must be between 1 and 1000000$/);
    assert.deepEqual(err.logs?.map((l) => l.message), ['reading config', 'limit: must be between 1 and 1000000'], 'every line, debug included, on err.logs');
    return true;
  });
});

test('two filters given one SharedState see each other\'s shared data, as plugins with one vm_id in a proxy; without it each has its own', async () => {
  const { SharedState } = await import('weft/testing');
  const { probeBytes } = await import('./filters/kit.ts');
  const bytes = await probeBytes();
  const shared = new SharedState();
  const a = await loadFilter(bytes, { shared });
  const b = await loadFilter(bytes, { shared });
  const alone = await loadFilter(bytes);
  const count = async (f: typeof a) => (await f.request({ path: '/count' })).forwarded?.header('x-count');
  assert.equal(await count(a), '1');
  assert.equal(await count(b), '2', "b's CAS increment saw a's value");
  assert.equal(await count(a), '3');
  assert.equal(await count(alone), '1', 'a filter without the shared store counts on its own');
});
