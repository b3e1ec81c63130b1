// Envoy's wasm host turns StopIteration from a headers callback into
// StopAllIterationAndWatermark (proxy-wasm-cpp-host,
// convertVmCallResultToFilterHeadersStatus): a filter that stops its headers
// gets no body or trailers callback until it continues the stream itself,
// from a tick or an http_call's answer; then the body that came meanwhile
// reaches it in one call. The test kit holds the stream the same way, moving
// its fake clock through the module's ticks, and says `stalled` (with a
// warning, once per direction) when nothing could continue it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadFilter } from 'weft/testing';
import { codes, wat } from './wat.ts';

interface Holder {
  /** Stop the request (response) headers. */
  stopRequest?: boolean;
  stopResponse?: boolean;
  /** Tick period (ms) set in proxy_on_configure; 0 for none. */
  tickMs?: number;
  /** Whether a tick continues the stream it holds (adding x-continued to the held headers first). */
  continueOnTick?: boolean;
  /** Answer every request itself (401 `nope`) from its request headers. */
  reply?: boolean;
}

/** Body callbacks report their size and end_of_stream as codes (`#` + char(48 + n)). */
const holder = ({ stopRequest = false, stopResponse = false, tickMs = 0, continueOnTick = true, reply = false }: Holder) =>
  wat({
    imports: ['proxy_set_tick_period_milliseconds', 'proxy_set_effective_context', 'proxy_continue_stream', 'proxy_add_header_map_value', 'proxy_send_local_response'],
    strings: { name: 'x-continued', value: 'tick', nope: 'nope' },
    body: (s) => `
  (global $stream (mut i32) (i32.const 0))
  (global $direction (mut i32) (i32.const 0))
  (func (export "proxy_on_configure") (param i32 i32) (result i32)
    (drop (call $proxy_set_tick_period_milliseconds (i32.const ${tickMs})))
    (i32.const 1))
  (func $hold (param $id i32) (param $direction i32) (result i32)
    (global.set $stream (local.get $id))
    (global.set $direction (local.get $direction))
    (i32.const 1))
  (func (export "proxy_on_request_headers") (param $id i32) (param i32 i32) (result i32)
    ${reply ? `(drop (call $proxy_send_local_response (i32.const 401) ${s.nope} ${s.nope} (i32.const 0) (i32.const 0) (i32.const -1))) (return (i32.const 1))` : ''}
    ${stopRequest ? '(call $hold (local.get $id) (i32.const 0))' : '(i32.const 0)'})
  (func (export "proxy_on_response_headers") (param $id i32) (param i32 i32) (result i32)
    ${stopResponse ? '(call $hold (local.get $id) (i32.const 1))' : '(i32.const 0)'})
  (func (export "proxy_on_request_body") (param i32) (param $size i32) (param $eos i32) (result i32)
    (call $report (local.get $size)) (call $report (local.get $eos)) (i32.const 0))
  (func (export "proxy_on_response_body") (param i32) (param $size i32) (param $eos i32) (result i32)
    (call $report (local.get $size)) (call $report (local.get $eos)) (i32.const 0))
  (func (export "proxy_on_tick") (param i32)
    ${
      continueOnTick
        ? `(if (global.get $stream) (then
      (drop (call $proxy_set_effective_context (global.get $stream)))
      (drop (call $proxy_add_header_map_value (i32.mul (global.get $direction) (i32.const 2)) ${s.name} ${s.value}))
      (drop (call $proxy_continue_stream (global.get $direction)))
      (global.set $stream (i32.const 0))))`
        : ''
    })`,
  });

const warnings = (logs: readonly { level: string; message: string }[]) => logs.filter((l) => l.level === 'warn').map((l) => l.message);
const phases = (r: { phases: { phase: string; outcome: string }[] }) => r.phases.map((p) => `${p.phase}:${p.outcome}`);

test('a filter that stops its request headers and continues from a tick: no body callback until then, the body after it in one call, with the header it added while holding', async () => {
  const filter = await loadFilter(await holder({ stopRequest: true, tickMs: 100 }));
  filter.logs.length = 0;
  const before = filter.nowNs;
  const r = await filter.request({ method: 'POST', body: ['he', 'llo'] });
  assert.equal(r.stalled, false);
  assert.deepEqual(phases(r).slice(0, 3), ['request_headers:pause', 'request_continued:continue', 'request_body:continue']);
  assert.deepEqual(codes(filter.logs).slice(0, 2), [5, 1], 'one body call: both chunks (5 bytes), end_of_stream');
  assert.equal(r.forwarded?.body, 'hello');
  assert.equal(r.forwarded?.header('x-continued'), 'tick');
  assert.equal(r.response?.status, 200);
  assert.equal(filter.nowNs - before, 100_000_000n, 'the fake clock moved to the first tick');
  assert.deepEqual(warnings(filter.logs), []);
});

test('a filter that stops its response headers and continues from a tick: the response body reaches it whole after that', async () => {
  const filter = await loadFilter(await holder({ stopResponse: true, tickMs: 50 }));
  filter.logs.length = 0;
  const r = await filter.request({}, { status: 200, body: 'world' });
  assert.deepEqual(phases(r), ['request_headers:continue', 'response_headers:pause', 'response_continued:continue', 'response_body:continue']);
  assert.deepEqual(codes(filter.logs), [5, 1]);
  assert.equal(r.response?.body, 'world');
  assert.equal(r.response?.header('x-continued'), 'tick');
});

test('stopping the headers with nothing to continue them: stalled, no body callback, and one warning per direction that Envoy would hold the stream', async () => {
  const requests = await loadFilter(await holder({ stopRequest: true }));
  for (let i = 0; i < 3; i++) {
    const r = await requests.request({ method: 'POST', body: 'hello' });
    assert.equal(r.stalled, true);
    assert.equal(r.forwarded, undefined);
    assert.deepEqual(phases(r), ['request_headers:pause', 'request_continued:pause']);
  }
  assert.deepEqual(codes(requests.logs), [], 'proxy_on_request_body never ran');
  const warned = warnings(requests.logs);
  assert.equal(warned.length, 1, JSON.stringify(warned));
  assert.match(warned[0]!, /^proxy_on_request_headers stopped the request with no http_call in flight, no gRPC stream open and no tick period, so nothing can continue it: Envoy calls no body callback/);

  const responses = await loadFilter(await holder({ stopResponse: true }));
  const r = await responses.request({}, { status: 200, body: 'world' });
  assert.equal(r.stalled, true);
  assert.equal(r.response, undefined);
  assert.match(warnings(responses.logs).join('\n'), /^proxy_on_response_headers stopped the response/);
});

test('a filter with ticks that never continues: stalled after stallAfterMs of fake time (default 5 min, Envoy\'s stream_idle_timeout)', async () => {
  const filter = await loadFilter(await holder({ stopRequest: true, tickMs: 1000, continueOnTick: false }));
  const before = filter.nowNs;
  const r = await filter.request({ method: 'POST', body: 'x' });
  assert.equal(r.stalled, true);
  assert.equal(filter.nowNs - before, 300n * 1_000_000_000n);
  assert.deepEqual(warnings(filter.logs), [], 'a tick could have continued it');

  const quick = await loadFilter(await holder({ stopRequest: true, tickMs: 1000, continueOnTick: false }), { stallAfterMs: 5000 });
  const start = quick.nowNs;
  assert.equal((await quick.request()).stalled, true);
  assert.equal(quick.nowNs - start, 5n * 1_000_000_000n);
});

test('a filter that continues its headers and buffers the body gets it chunk by chunk, and no warning', async () => {
  const filter = await loadFilter(await holder({}));
  filter.logs.length = 0;
  const res = await filter.request({ method: 'POST', body: ['he', 'llo'] }, { status: 200, body: 'world' });
  assert.deepEqual(codes(filter.logs), [2, 0, 3, 1, 5, 1]);
  assert.equal(res.response?.body, 'world');
  assert.deepEqual(warnings(filter.logs), []);
});

test('a filter that holds the response headers of its own local reply: sent once it continues them from a tick, stalled if nothing could', async () => {
  const ticking = await loadFilter(await holder({ reply: true, stopResponse: true, tickMs: 20 }));
  const r = await ticking.request();
  assert.equal(r.localReply?.status, 401);
  assert.equal(r.stalled, false);
  assert.deepEqual(phases(r), ['request_headers:local_reply', 'response_headers:pause', 'response_continued:continue', 'response_body:continue']);
  assert.equal(r.response?.header('x-continued'), 'tick');
  assert.equal(r.response?.body, 'nope');

  const stuck = await loadFilter(await holder({ reply: true, stopResponse: true }));
  const s = await stuck.request();
  assert.equal(s.localReply?.status, 401);
  assert.equal(s.stalled, true);
});
