// A trap in a stream callback, under each failure policy, as Envoy's
// FailurePolicy: fail_closed answers 503 and fail_open lets the stream
// through, from then on, on the failed VM (until the plugin is configured
// again); fail_reload answers 503 and runs the next stream on a new VM.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WasmPlugin } from '../../sidecar/wasm/index.ts';
import { wat } from './wat.ts';

/** Traps on the first request it sees (global flag), passes every later one; asks for a 1 s tick in proxy_on_configure. */
const trapOnce = () =>
  wat({
    imports: ['proxy_set_tick_period_milliseconds'],
    body: () => `
  (global $seen (mut i32) (i32.const 0))
  (func (export "proxy_on_configure") (param i32 i32) (result i32)
    (drop (call $proxy_set_tick_period_milliseconds (i32.const 1000)))
    (i32.const 1))
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (if (i32.eqz (global.get $seen)) (then (global.set $seen (i32.const 1)) (unreachable)))
    (i32.const 0))`,
  });

for (const [policy, expected] of [
  ['fail_closed', 'local_reply'],
  ['fail_open', 'continue'],
] as const) {
  test(`a trap with ${policy} gives ${expected} for that stream and every later one, on the failed VM (as Envoy)`, async () => {
    const plugin = await WasmPlugin.load(await trapOnce(), { name: 'trap', failurePolicy: policy });
    const first = plugin.newHttpStream();
    const outcome = await first.onRequestHeaders([[':path', '/']], false);
    assert.equal(outcome.action, expected);
    if (outcome.action === 'local_reply') {
      assert.equal(outcome.reply.status, 503);
      assert.equal(outcome.reply.details, 'wasm_fail_stream');
    }
    // The rest of the trapped stream never re-enters the failed VM.
    assert.equal((await first.onRequestBody('x', true)).action, expected);
    first.complete();
    assert.equal(plugin.failed, true);
    assert.ok(plugin.logs.some((l) => l.level === 'critical' && l.message.includes('proxy_on_request_headers')));

    // The next streams get the same policy without entering the module: a new VM would pass them (its $seen is set after one trap).
    for (let i = 0; i < 3; i++) {
      const next = plugin.newHttpStream();
      assert.equal((await next.onRequestHeaders([[':path', '/']], true)).action, expected);
      next.complete();
    }
    assert.equal(plugin.vmsCreated, 1, 'no new VM');
    assert.equal(plugin.vmFailures, 1);
    assert.match(plugin.prometheus(), /weft_wasm_vm_failed_total\{plugin="trap"\} 1/);
    await plugin.close();
  });
}

test('a trap with fail_reload gives a 503 for that stream, and the next stream runs on a new VM that ticks again', async () => {
  const plugin = await WasmPlugin.load(await trapOnce(), { name: 'trap', failurePolicy: 'fail_reload' });
  assert.equal(plugin.tickPeriodMs, 1000);
  const first = plugin.newHttpStream();
  const outcome = await first.onRequestHeaders([[':path', '/']], true);
  assert.equal(outcome.action, 'local_reply');
  first.complete();
  // New VM: its $seen flag is 0 again, so it traps once more, proving it was re-instantiated.
  const second = plugin.newHttpStream();
  assert.equal(plugin.vmsCreated, 2);
  assert.equal(plugin.tickPeriodMs, 1000, "the new VM's own proxy_on_configure asked for ticks, and keeps them");
  assert.equal((await second.onRequestHeaders([[':path', '/']], true)).action, 'local_reply');
  second.complete();
  assert.equal(plugin.vmFailures, 2);
  plugin.newHttpStream().complete();
  assert.equal(plugin.vmsCreated, 3, 'one new VM per failure');
  await plugin.close();
});

test('an unknown failure policy is refused by name', async () => {
  await assert.rejects(WasmPlugin.load(await trapOnce(), { name: 'trap', failurePolicy: 'fail_later' as never }), /config\.failurePolicy: must be one of "fail_closed", "fail_open", "fail_reload"/);
});

test('a VM that did not trap is kept across streams', async () => {
  const plugin = await WasmPlugin.load(await wat({ body: () => '' }), { name: 'calm' });
  for (let i = 0; i < 3; i++) assert.deepEqual(await plugin.newHttpStream().onRequestHeaders([[':path', '/']], true), { action: 'continue' });
  assert.equal(plugin.failed, false);
  assert.equal(plugin.vmsCreated, 1);
});
