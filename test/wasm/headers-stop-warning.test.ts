// A filter that stops its headers without a callout and then gets its body
// callback is told, once, that Envoy would never make that call: Envoy's host
// turns StopIteration from a headers callback into StopAllIterationAndWatermark.
// The test kit (and the sidecar) still deliver the body, so the warning is
// what keeps the pattern from passing its unit tests unnoticed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadFilter } from 'weft/testing';
import { wat } from './wat.ts';

const filterStopping = (stopHeaders: boolean) =>
  wat({
    body: () => `
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32) (i32.const ${stopHeaders ? 1 : 0}))
  (func (export "proxy_on_request_body") (param i32 i32 i32) (result i32) (i32.const 0))
  (func (export "proxy_on_response_headers") (param i32 i32 i32) (result i32) (i32.const ${stopHeaders ? 1 : 0}))
  (func (export "proxy_on_response_body") (param i32 i32 i32) (result i32) (i32.const 0))`,
  });

const warnings = (logs: readonly { level: string; message: string }[]) => logs.filter((l) => l.level === 'warn').map((l) => l.message);

test('stopping the headers and continuing from the body callback: one warning per direction that Envoy would not call the body callback', async () => {
  const filter = await loadFilter(await filterStopping(true));
  for (let i = 0; i < 3; i++) await filter.request({ method: 'POST', body: 'hello' }, { status: 200, body: 'world' });
  const warned = warnings(filter.logs);
  assert.equal(warned.length, 2, JSON.stringify(warned));
  assert.match(warned[0]!, /^proxy_on_request_body while proxy_on_request_headers holds the headers: Envoy calls no body callback until the filter continues/);
  assert.match(warned[1]!, /^proxy_on_response_body while proxy_on_response_headers holds the headers/);
});

test('a filter that continues its headers and buffers the body gets no warning', async () => {
  const filter = await loadFilter(await filterStopping(false));
  const res = await filter.request({ method: 'POST', body: 'hello' }, { status: 200, body: 'world' });
  assert.equal(res.response?.body, 'world');
  assert.deepEqual(warnings(filter.logs), []);
});
