// Smaller return-code and argument edges, each as proxy-wasm-cpp-host
// (src/exports.cc, src/context.cc) and Envoy's wasm Context
// (source/extensions/common/wasm/context.cc) answer them.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SharedState, WasmPlugin, WasmResult as R } from '../../sidecar/wasm/index.ts';
import { codes, wat } from './wat.ts';

test('resolve_shared_queue with an empty vm_id finds the queue in the caller\'s own VM', async () => {
  const bytes = await wat({
    imports: ['proxy_register_shared_queue', 'proxy_resolve_shared_queue'],
    strings: { name: 'jobs', vm: 'jobs-vm', empty: '' },
    body: (s) => `
  (func (export "proxy_on_configure") (param i32 i32) (result i32)
    (call $report (call $proxy_register_shared_queue ${s.name} (i32.const 16)))
    (call $report (call $proxy_resolve_shared_queue ${s.empty} ${s.name} (i32.const 20)))
    (call $report (i32.eq (i32.load (i32.const 16)) (i32.load (i32.const 20))))
    (call $report (call $proxy_resolve_shared_queue ${s.vm} ${s.name} (i32.const 24)))
    (call $report (i32.eq (i32.load (i32.const 16)) (i32.load (i32.const 24))))
    (i32.const 1))`,
  });
  const plugin = await WasmPlugin.load(bytes, { name: 'queues', vmId: 'jobs-vm' }, { shared: new SharedState() });
  assert.deepEqual(codes(plugin.logs), [R.Ok, R.Ok, 1, R.Ok, 1]);
});
