// A trap in a stream callback: fail_closed answers 503, fail_open lets the
// stream through; either way the trapped VM is replaced for the next stream.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WasmPlugin } from '../../sidecar/wasm/index.ts';
import { wat } from './wat.ts';

/** Traps on the first request it sees (global flag), passes every later one. */
const trapOnce = () =>
  wat({
    body: () => `
  (global $seen (mut i32) (i32.const 0))
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (if (i32.eqz (global.get $seen)) (then (global.set $seen (i32.const 1)) (unreachable)))
    (i32.const 0))`,
  });

for (const [policy, expected] of [
  ['fail_closed', 'local_reply'],
  ['fail_open', 'continue'],
] as const) {
  test(`a trap with ${policy} gives ${expected}, and the next stream runs on a fresh VM`, async () => {
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

    // Fresh VM: its $seen flag is 0 again, so it traps once more, proving it was re-instantiated.
    const second = plugin.newHttpStream();
    assert.equal(plugin.vmsCreated, 2);
    assert.equal((await second.onRequestHeaders([[':path', '/']], true)).action, expected);
    assert.equal(plugin.vmFailures, 2);
    assert.match(plugin.prometheus(), /weft_wasm_vm_failed_total\{plugin="trap"\} 2/);
  });
}

test('a VM that did not trap is kept across streams', async () => {
  const plugin = await WasmPlugin.load(await wat({ body: () => '' }), { name: 'calm' });
  for (let i = 0; i < 3; i++) assert.deepEqual(await plugin.newHttpStream().onRequestHeaders([[':path', '/']], true), { action: 'continue' });
  assert.equal(plugin.failed, false);
  assert.equal(plugin.vmsCreated, 1);
});
