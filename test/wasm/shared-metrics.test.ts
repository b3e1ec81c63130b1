// Shared data with CAS, shared queues with on_queue_ready, and metrics
// (counter, gauge, histogram) with their error codes and Prometheus text.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SharedState, WasmPlugin, WasmResult as R } from '../../sidecar/wasm/index.ts';
import { codes, texts, wat } from './wat.ts';

test('shared data: NOT_FOUND, set, CAS_MISMATCH, CAS match', async () => {
  const bytes = await wat({
    imports: ['proxy_get_shared_data', 'proxy_set_shared_data'],
    strings: { key: 'k', v1: 'one', v2: 'two' },
    body: (s) => `
  (func (export "proxy_on_configure") (param i32 i32) (result i32)
    (call $report (call $proxy_get_shared_data ${s.key} (i32.const 0) (i32.const 4) (i32.const 8)))
    (call $report (call $proxy_set_shared_data ${s.key} ${s.v1} (i32.const 0)))
    (call $report (call $proxy_get_shared_data ${s.key} (i32.const 0) (i32.const 4) (i32.const 8)))
    (call $log_returned)
    (call $report (call $proxy_set_shared_data ${s.key} ${s.v2} (i32.add (i32.load (i32.const 8)) (i32.const 1))))
    (call $report (call $proxy_set_shared_data ${s.key} ${s.v2} (i32.load (i32.const 8))))
    (call $report (call $proxy_get_shared_data ${s.key} (i32.const 0) (i32.const 4) (i32.const 0x7ffffff0)))
    (i32.const 1))`,
  });
  const shared = new SharedState();
  const plugin = await WasmPlugin.load(bytes, { name: 'shared' }, { shared });
  assert.deepEqual(codes(plugin.logs), [R.NotFound, R.Ok, R.Ok, R.CasMismatch, R.Ok, R.InvalidMemoryAccess]);
  assert.deepEqual(texts(plugin.logs), ['one']);
  assert.equal(Buffer.from(shared.getData('', 'k')!.value).toString(), 'two');
});

test('shared queues: register, resolve, EMPTY, NOT_FOUND, on_queue_ready', async () => {
  const bytes = await wat({
    imports: ['proxy_register_shared_queue', 'proxy_resolve_shared_queue', 'proxy_enqueue_shared_queue', 'proxy_dequeue_shared_queue'],
    strings: { q: 'events', other: 'nope', vm: '', item: 'hello' },
    body: (s) => `
  (func (export "proxy_on_configure") (param i32 i32) (result i32)
    (call $report (call $proxy_register_shared_queue ${s.q} (i32.const 16)))
    (call $report (call $proxy_resolve_shared_queue ${s.vm} ${s.other} (i32.const 20)))
    (call $report (call $proxy_resolve_shared_queue ${s.vm} ${s.q} (i32.const 20)))
    (call $report (i32.eq (i32.load (i32.const 16)) (i32.load (i32.const 20))))
    (call $report (call $proxy_dequeue_shared_queue (i32.load (i32.const 16)) (i32.const 0) (i32.const 4)))
    (call $report (call $proxy_dequeue_shared_queue (i32.const 4242) (i32.const 0) (i32.const 4)))
    (call $report (call $proxy_enqueue_shared_queue (i32.const 4242) ${s.item}))
    (call $report (call $proxy_enqueue_shared_queue (i32.load (i32.const 16)) ${s.item}))
    (i32.const 1))
  (func (export "proxy_on_queue_ready") (param i32 i32)
    (call $report (call $proxy_dequeue_shared_queue (local.get 1) (i32.const 0) (i32.const 4)))
    (call $log_returned))`,
  });
  const plugin = await WasmPlugin.load(bytes, { name: 'queues', vmId: 'q-vm' }, { shared: new SharedState() });
  // An empty vm_id resolves in the plugin's own VM (q-vm), as cpp-host does.
  assert.deepEqual(codes(plugin.logs), [R.Ok, R.NotFound, R.Ok, 1, R.Empty, R.NotFound, R.NotFound, R.Ok]);
  await new Promise((resolve) => setImmediate(resolve));
  assert.deepEqual(codes(plugin.logs).slice(8), [R.Ok]);
  assert.deepEqual(texts(plugin.logs), ['hello']);
});

test('metrics: define, increment, record, get, errors, Prometheus text', async () => {
  const bytes = await wat({
    imports: ['proxy_define_metric', 'proxy_increment_metric', 'proxy_record_metric', 'proxy_get_metric'],
    strings: { c: 'requests_total', g: 'in_flight', h: 'latency_ms' },
    body: (s) => `
  (func (export "proxy_on_configure") (param i32 i32) (result i32)
    (call $report (call $proxy_define_metric (i32.const 0) ${s.c} (i32.const 16)))
    (call $report (call $proxy_define_metric (i32.const 1) ${s.g} (i32.const 20)))
    (call $report (call $proxy_define_metric (i32.const 2) ${s.h} (i32.const 24)))
    (call $report (call $proxy_define_metric (i32.const 3) ${s.h} (i32.const 28)))
    (call $report (call $proxy_increment_metric (i32.load (i32.const 16)) (i64.const 3)))
    (call $report (call $proxy_increment_metric (i32.load (i32.const 16)) (i64.const -1)))
    (call $report (call $proxy_increment_metric (i32.load (i32.const 20)) (i64.const 5)))
    (call $report (call $proxy_increment_metric (i32.load (i32.const 20)) (i64.const -2)))
    (call $report (call $proxy_record_metric (i32.load (i32.const 24)) (i64.const 7)))
    (call $report (call $proxy_record_metric (i32.load (i32.const 24)) (i64.const 700)))
    (call $report (call $proxy_increment_metric (i32.const 4096) (i64.const 1)))
    (call $report (call $proxy_get_metric (i32.load (i32.const 24)) (i32.const 32)))
    (call $report (call $proxy_get_metric (i32.load (i32.const 16)) (i32.const 32)))
    (call $report (i32.wrap_i64 (i64.load (i32.const 32))))
    (i32.const 1))`,
  });
  const plugin = await WasmPlugin.load(bytes, { name: 'metrics' });
  assert.deepEqual(codes(plugin.logs), [R.Ok, R.Ok, R.Ok, R.BadArgument, R.Ok, R.BadArgument, R.Ok, R.Ok, R.Ok, R.Ok, R.NotFound, R.BadArgument, R.Ok, 3]);
  assert.equal(plugin.metrics.find('in_flight')?.value, 3n);
  const text = plugin.prometheus();
  assert.match(text, /^# TYPE requests_total counter\nrequests_total\{plugin="metrics"\} 3$/m);
  assert.match(text, /^in_flight\{plugin="metrics"\} 3$/m);
  assert.match(text, /^latency_ms_bucket\{plugin="metrics",le="10"\} 1$/m);
  assert.match(text, /^latency_ms_bucket\{plugin="metrics",le="\+Inf"\} 2$/m);
  assert.match(text, /^latency_ms_sum\{plugin="metrics"\} 707$/m);
  assert.match(text, /^weft_wasm_vm_created_total\{plugin="metrics"\} 1$/m);
});
