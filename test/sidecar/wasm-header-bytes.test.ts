// Header bytes cross the wasm boundary unchanged, as in Envoy, whose header
// maps hold bytes: a UTF-8 value a client sends is the same UTF-8 bytes in a
// filter (and in what the filter copies from it), and a UTF-8 value a filter
// writes leaves the sidecar as those bytes. Before, the sidecar handed the
// filter each wire byte UTF-8-encoded again ("José" read as 7 bytes) and sent
// a filter's "é" as the single byte E9; a value past latin1 could not be sent.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, test } from 'node:test';
import { defaultTranslator } from '../../control/xds/index.ts';
import { TestMesh, freePort, get, instance, service, startApp, moduleServer } from './harness.ts';
import { wat } from '../wasm/wat.ts';

const closers: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of closers.reverse()) await c();
});
const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
/** What node's HTTP stack writes and reads for these bytes: one character per byte. */
const wire = (text: string) => Buffer.from(text, 'utf8').toString('latin1');
const text = (onWire: string) => Buffer.from(onWire, 'latin1').toString('utf8');

test('a UTF-8 header value reaches a filter as its bytes, and a UTF-8 value a filter sets leaves as its bytes', { timeout: 60_000 }, async () => {
  const copier = await wat({
    imports: ['proxy_get_header_map_value', 'proxy_add_header_map_value'],
    strings: { name: 'x-name', copy: 'x-name-copy', greeting: 'x-greeting', hello: 'こんにちは José' },
    body: (s) => `
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (if (i32.eqz (call $proxy_get_header_map_value (i32.const 0) ${s.name} (i32.const 0) (i32.const 4)))
      (then (drop (call $proxy_add_header_map_value (i32.const 0) ${s.copy} (i32.load (i32.const 0)) (i32.load (i32.const 4))))))
    (i32.const 0))
  (func (export "proxy_on_response_headers") (param i32 i32 i32) (result i32)
    (drop (call $proxy_add_header_map_value (i32.const 2) ${s.greeting} ${s.hello}))
    (if (i32.eqz (call $proxy_get_header_map_value (i32.const 2) ${s.greeting} (i32.const 0) (i32.const 4)))
      (then (drop (call $proxy_add_header_map_value (i32.const 2) ${s.copy} (i32.load (i32.const 0)) (i32.load (i32.const 4))))))
    (i32.const 0))`,
  });
  const served = await moduleServer(new Map([[sha(copier), copier]]));
  closers.push(served.close);
  const mesh = await TestMesh.start({ translator: defaultTranslator({ wasmBaseUrl: served.url, wasmClusterName: 'weft-control' }) });
  closers.push(() => mesh.close());
  const app = await startApp('people');
  mesh.track(() => app.close());
  const inbound = await freePort();
  mesh.model.update({
    services: [service('people', 7995)],
    instances: [instance('people', inbound)],
    filterModules: [{ name: 'copier', sha256: sha(copier), size: copier.length, abiVersion: '0.2.1' }],
    filterBindings: [{ name: 'people-copier', namespace: 'default', service: 'people', direction: 'inbound', filter: 'copier', order: 0, config: {}, failurePolicy: 'fail_closed' }],
  });
  await mesh.sidecar('people', app.port, { inboundPort: inbound });

  const res = await get(inbound, 'people', '/', { headers: { 'x-name': wire('José 山田') } });
  assert.equal(res.status, 200, res.body);
  const seen = JSON.parse(res.body).headers as Record<string, string>;
  assert.equal(text(seen['x-name']!), 'José 山田', 'the original passes untouched');
  assert.equal(text(seen['x-name-copy']!), 'José 山田', "the filter's copy is the same bytes");
  assert.equal(text(res.headers['x-greeting'] as string), 'こんにちは José', "the filter's UTF-8 value is sent as UTF-8");
  assert.equal(text(res.headers['x-name-copy'] as string), 'こんにちは José', 'and reads back as the bytes it wrote');
});
