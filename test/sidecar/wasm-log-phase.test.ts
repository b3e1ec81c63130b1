// What a wasm filter's proxy_on_log reads when other wasm filters share the
// request, as Envoy: the access log's maps (the request headers as the last
// filter left them: filters/http wasm Context::log reads
// log_context.requestHeaders(), one map for the whole stream), and the
// stream's filter state, where another filter's set_property went.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, test } from 'node:test';
import { defaultTranslator } from '../../control/xds/index.ts';
import type { FilterBinding } from '../../control/model/types.ts';
import { TestMesh, eventually, freePort, get, instance, service, startApp, moduleServer as serveModules } from './harness.ts';
import { wat } from '../wasm/wat.ts';

const closers: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of closers.reverse()) await c();
});

const sha = (b: Uint8Array | string) => createHash('sha256').update(b).digest('hex');

/** Adds x-user: alice to the request and stores the property user = alice. */
const stamp = () =>
  wat({
    imports: ['proxy_add_header_map_value', 'proxy_set_property'],
    strings: { header: 'x-user', property: 'user', alice: 'alice' },
    body: (s) => `
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (drop (call $proxy_add_header_map_value (i32.const 0) ${s.header} ${s.alice}))
    (drop (call $proxy_set_property ${s.property} ${s.alice}))
    (i32.const 0))`,
  });

/** In on_log: logs "audit:" then what it reads of the x-user header and the user property ("#1" when NOT_FOUND). */
const audit = () =>
  wat({
    imports: ['proxy_get_header_map_value', 'proxy_get_property'],
    strings: { header: 'x-user', property: 'user', tag: 'audit:' },
    body: (s) => `
  (func $show (param $code i32)
    (if (i32.eqz (local.get $code)) (then (call $log_returned)) (else (call $report (local.get $code)))))
  (func (export "proxy_on_log") (param i32)
    (drop (call $proxy_log (i32.const 2) ${s.tag}))
    (call $show (call $proxy_get_header_map_value (i32.const 0) ${s.header} (i32.const 0) (i32.const 4)))
    (call $show (call $proxy_get_property ${s.property} (i32.const 0) (i32.const 4))))`,
  });

test("a filter's on_log reads the request headers and the filter state another filter of the request wrote", { timeout: 60_000 }, async () => {
  const modules = { audit: await audit(), stamp: await stamp() };
  const served = await serveModules(new Map(Object.values(modules).map((b) => [sha(b), b] as [string, Uint8Array])));
  closers.push(served.close);
  const mesh = await TestMesh.start({ translator: defaultTranslator({ wasmBaseUrl: served.url, wasmClusterName: 'weft-control' }) });
  closers.push(() => mesh.close());
  const app = await startApp('ledger');
  mesh.track(() => app.close());
  const inbound = await freePort();
  const bind = (filter: keyof typeof modules, order: number): FilterBinding => ({ name: `ledger-${filter}`, namespace: 'default', service: 'ledger', direction: 'inbound', filter, order, config: {}, failurePolicy: 'fail_closed' });
  mesh.model.update({
    services: [service('ledger', 7970)],
    instances: [instance('ledger', inbound)],
    filterModules: Object.entries(modules).map(([name, b]) => ({ name, sha256: sha(b), size: b.length, abiVersion: '0.2.1' })),
    // audit runs first: its own request headers never had x-user.
    filterBindings: [bind('audit', 0), bind('stamp', 1)],
  });
  const lines: string[] = [];
  await mesh.sidecar('ledger', app.port, { inboundPort: inbound, log: (l) => lines.push(l) });
  const wasmLines = () => lines.filter((l) => l.includes('"source":"wasm"')).map((l) => JSON.parse(l).msg as string);

  assert.equal((await get(inbound, 'ledger', '/books')).status, 200);
  await eventually(() => wasmLines().includes('audit:') && wasmLines().length >= wasmLines().indexOf('audit:') + 3, 5000, "audit's on_log");
  const at = wasmLines().indexOf('audit:');
  assert.deepEqual(wasmLines().slice(at, at + 3), ['audit:', 'alice', 'alice']);
});

test("the access log's %FILTER_STATE(wasm.user)% prints what a wasm filter of the request stored with set_property, in both forms", { timeout: 60_000 }, async () => {
  const module = await stamp();
  const served = await serveModules(new Map([[sha(module), module]]));
  closers.push(served.close);
  const mesh = await TestMesh.start({
    translator: defaultTranslator({
      wasmBaseUrl: served.url,
      wasmClusterName: 'weft-control',
      accessLog: { fields: { path: '%REQ(:PATH)%', user: '%FILTER_STATE(wasm.user:PLAIN)%', typed: '%FILTER_STATE(wasm.user)%', missing: '%FILTER_STATE(wasm.nobody:PLAIN)%' } },
    }),
  });
  closers.push(() => mesh.close());
  const app = await startApp('ledger');
  mesh.track(() => app.close());
  const inbound = await freePort();
  mesh.model.update({
    services: [service('ledger', 7970)],
    instances: [instance('ledger', inbound)],
    filterModules: [{ name: 'stamp', sha256: sha(module), size: module.length, abiVersion: '0.2.1' }],
    filterBindings: [{ name: 'ledger-stamp', namespace: 'default', service: 'ledger', direction: 'inbound', filter: 'stamp', order: 0, config: {}, failurePolicy: 'fail_closed' }],
  });
  const lines: string[] = [];
  await mesh.sidecar('ledger', app.port, { inboundPort: inbound, accessLog: (l) => lines.push(l) });
  assert.equal((await get(inbound, 'ledger', '/books')).status, 200);
  await eventually(() => lines.some((l) => l.includes('/books')), 5000, 'the access log line');
  const line = JSON.parse(lines.find((l) => l.includes('/books'))!);
  assert.equal(line.user, 'alice');
  assert.deepEqual(line.typed, { '@type': 'type.googleapis.com/google.protobuf.BytesValue', value: Buffer.from('alice').toString('base64') });
  assert.equal(line.missing, null);
});
