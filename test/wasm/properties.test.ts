// proxy_get_property / proxy_set_property: NUL-separated paths, Envoy value
// encodings, the peer's SPIFFE ID, plugin attributes, and NOT_FOUND.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WasmPlugin, WasmResult as R } from '../../sidecar/wasm/index.ts';
import { codes, texts, wat } from './wat.ts';

const paths = {
  path: 'request\0path',
  san: 'connection\0uri_san_peer_certificate',
  code: 'response\0code',
  port: 'source\0port',
  ua: 'request\0headers\0user-agent',
  root: 'plugin_root_id',
  cluster: 'xds\0cluster_name',
  alias: 'cluster_name',
  mtls: 'connection\0mtls',
  missing: 'request\0nope',
  mine: 'my_key',
  val: 'stored',
};

const module = () =>
  wat({
    imports: ['proxy_get_property', 'proxy_set_property'],
    strings: paths,
    body: (s) => {
      const get = (name: string) => `(call $report (call $proxy_get_property ${s[name]} (i32.const 0) (i32.const 4))) (call $log_returned)`;
      return `
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    ${get('path')} ${get('san')} ${get('ua')} ${get('root')} ${get('cluster')} ${get('alias')}
    (call $report (call $proxy_get_property ${s.missing} (i32.const 0) (i32.const 4)))
    (call $report (call $proxy_get_property ${s.port} (i32.const 0) (i32.const 4)))
    (call $report (call $proxy_get_property ${s.mtls} (i32.const 0) (i32.const 4)))
    (call $report (call $proxy_set_property ${s.mine} ${s.val}))
    ${get('mine')}
    (call $report (call $proxy_get_property (i32.const 0x7ffffff0) (i32.const 64) (i32.const 0) (i32.const 4)))
    (i32.const 0))
  (func (export "proxy_on_response_headers") (param i32 i32 i32) (result i32)
    (call $report (call $proxy_get_property ${s.code} (i32.const 0) (i32.const 4)))
    (i32.const 0))
  (global (export "scratch") i32 (i32.const 0))`;
    },
  });

test('properties resolve with Envoy encodings and NUL-separated paths', async () => {
  const plugin = await WasmPlugin.load(await module(), { name: 'props', rootId: 'authz' }, { properties: { 'xds.cluster_name': 'inbound|8080||orders' } });
  plugin.logs.length = 0;
  const stream = plugin.newHttpStream({ 'connection.uri_san_peer_certificate': 'spiffe://weft.local/ns/default/sa/web', 'source.port': 43210 });
  await stream.onRequestHeaders([[':path', '/orders/1'], ['User-Agent', 'curl/8']], true);
  assert.deepEqual(codes(plugin.logs), [R.Ok, R.Ok, R.Ok, R.Ok, R.Ok, R.Ok, R.NotFound, R.Ok, R.Ok, R.Ok, R.Ok, R.InvalidMemoryAccess]);
  assert.deepEqual(texts(plugin.logs), ['/orders/1', 'spiffe://weft.local/ns/default/sa/web', 'curl/8', 'authz', 'inbound|8080||orders', 'inbound|8080||orders', 'stored']);
});

test('integers are 8-byte little-endian and booleans one byte', async () => {
  // Read the raw bytes through a stream the module sees, by asking the host directly.
  const { lookupProperty, encodeProperty } = await import('../../sidecar/wasm/properties.ts');
  assert.deepEqual([...encodeProperty(43210)], [0xca, 0xa8, 0, 0, 0, 0, 0, 0]);
  assert.deepEqual([...encodeProperty(true)], [1]);
  const { HeaderMap } = await import('../../sidecar/wasm/headers.ts');
  const sources = {
    plugin: { name: 'p', rootId: '', vmId: '' },
    given: {},
    filterState: new Map(),
    responseHeaders: new HeaderMap([[':status', '404']]),
  };
  assert.deepEqual([...lookupProperty('response\0code', sources)!], [0x94, 0x01, 0, 0, 0, 0, 0, 0]);
  assert.equal(lookupProperty('connection\0mtls', sources)![0], 0);
  assert.equal(lookupProperty('request\0path', sources), undefined);
});

test('a stream sees its own properties over the plugin-level ones, and request.time from its start', async () => {
  const { lookupProperty } = await import('../../sidecar/wasm/properties.ts');
  const start = 1_767_225_600_123n * 1_000_000n; // 2026-01-01T00:00:00.123Z
  const plugin = await WasmPlugin.load(await module(), { name: 'props' }, { properties: { 'xds.cluster_name': 'plugin-level', 'xds.node.id': 'node-1' }, now: () => start });
  const stream = plugin.newHttpStream({ 'xds.cluster_name': 'stream-level' }) as unknown as { properties(): import('../../sidecar/wasm/properties.ts').PropertySources };
  const text = (v: unknown) => (typeof v === 'string' ? v : new TextDecoder().decode(v as Uint8Array));
  assert.equal(text(lookupProperty('xds\0cluster_name', stream.properties())), 'stream-level');
  assert.equal(text(lookupProperty('cluster_name', stream.properties())), 'stream-level');
  assert.equal(text(lookupProperty('node\0id', stream.properties())), 'node-1');
  const time = lookupProperty('request\0time', stream.properties()) as Uint8Array;
  assert.equal(new DataView(time.buffer, time.byteOffset, 8).getBigInt64(0, true), start);
  // Another stream of the same plugin does not see the first one's properties.
  const other = plugin.newHttpStream() as unknown as { properties(): import('../../sidecar/wasm/properties.ts').PropertySources };
  assert.equal(text(lookupProperty('xds\0cluster_name', other.properties())), 'plugin-level');
});
