// Review: a FilterBinding removed from the mesh must leave the sidecar: Envoy drops an ECDS subscription's
// config when no listener names it any more (its FilterConfigSubscription goes with the last provider), and
// docs/writing-filters.md says "A plugin nothing configures any more is closed (proxy_on_done, proxy_on_delete,
// its ticks stopped) ...; a binding removed takes its series with it." `weft proxy-status` meanwhile reports
// the proxy not in sync (EXTRA extension-configs/...), so `weft apply --wait` after a delete times out.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, test } from 'node:test';
import { defaultTranslator } from '../../control/xds/index.ts';
import type { FilterBinding } from '../../control/model/types.ts';
import { TestMesh, eventually, freePort, get, instance, service, startApp, moduleServer } from './harness.ts';
import { wat } from '../wasm/wat.ts';

const closers: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of closers.reverse()) await c();
});
const sha = (b: Uint8Array | string) => createHash('sha256').update(b).digest('hex');

test('a FilterBinding removed: the sidecar drops its ECDS config, closes its VM and drops its series', { timeout: 60_000 }, async () => {
  const mod = await wat({
    imports: ['proxy_define_metric', 'proxy_increment_metric', 'proxy_add_header_map_value'],
    strings: { metric: 'reqs', bye: 'bye tagger', header: 'x-counted-by', name: 'tagger' },
    body: (s) => `
  (global $id (mut i32) (i32.const 0))
  (global $root (mut i32) (i32.const -1))
  (func (export "proxy_on_configure") (param $root i32) (param i32) (result i32)
    (global.set $root (local.get $root))
    (drop (call $proxy_define_metric (i32.const 0) ${s.metric} (i32.const 16)))
    (global.set $id (i32.load (i32.const 16)))
    (i32.const 1))
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (drop (call $proxy_increment_metric (global.get $id) (i64.const 1)))
    (i32.const 0))
  (func (export "proxy_on_response_headers") (param i32 i32 i32) (result i32)
    (drop (call $proxy_add_header_map_value (i32.const 2) ${s.header} ${s.name}))
    (i32.const 0))
  (func (export "proxy_on_delete") (param $id i32)
    (if (i32.eq (local.get $id) (global.get $root)) (then (drop (call $proxy_log (i32.const 2) ${s.bye})))))`,
  });
  const served = await moduleServer(new Map([[sha(mod), mod]]));
  closers.push(served.close);
  const mesh = await TestMesh.start({ translator: defaultTranslator({ wasmBaseUrl: served.url, wasmClusterName: 'weft-control' }) });
  closers.push(() => mesh.close());
  const app = await startApp('till');
  mesh.track(() => app.close());
  const inbound = await freePort();
  const binding: FilterBinding = { name: 'till-tagger', namespace: 'default', service: 'till', direction: 'inbound', filter: 'tagger', order: 0, config: {}, failurePolicy: 'fail_closed' };
  mesh.model.update({
    services: [service('till', 7911)],
    instances: [instance('till', inbound)],
    filterModules: [{ name: 'tagger', sha256: sha(mod), size: mod.length, abiVersion: '0.2.1' }],
    filterBindings: [binding],
  });
  const lines: string[] = [];
  const sc = await mesh.sidecar('till', app.port, { inboundPort: inbound, log: (l) => lines.push(l) });
  assert.equal((await get(inbound, 'till', '/')).headers['x-counted-by'], 'tagger');

  mesh.model.update({ filterBindings: [] });
  await eventually(async () => (await get(inbound, 'till', '/')).headers['x-counted-by'] === undefined, 10_000, 'filter out of the chain');
  // What Envoy would show: no ecds_filters entry for a config no listener names.
  await eventually(async () => {
    const dump = await (await fetch(`http://127.0.0.1:${sc.adminPort}/config_dump?resource=ecds_filters`)).text();
    return !dump.includes('till-tagger');
  }, 10_000, 'the removed binding\'s ECDS config gone from /config_dump');
  await eventually(() => lines.some((l) => l.includes('bye tagger')), 10_000, "the removed binding's VM closed (proxy_on_delete)");
  const prometheus = await (await fetch(`http://127.0.0.1:${sc.adminPort}/stats/prometheus`)).text();
  assert.ok(!prometheus.includes('plugin="till-tagger"'), 'a binding removed takes its series with it');
});
