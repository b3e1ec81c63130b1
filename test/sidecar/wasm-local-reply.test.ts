// A local reply sent while the request is handled goes through the response
// side of the filter chain, as in Envoy: filter_manager.cc encodes it from the
// first encoder filter (sendLocalReplyViaFilterChain, encodeHeaders(nullptr)),
// and Envoy's wasm filter runs its response callbacks only once its own
// request headers ran (context.cc, http_request_started_). So the filter that
// replied, and the filters before it, see the reply in on_response_headers and
// may change it; filters after it do not; every filter's on_log reads the
// reply's response.code. The test kit (sendLocalReply) has always done this.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { defaultTranslator } from '../../control/xds/index.ts';
import type { FilterBinding } from '../../control/model/types.ts';
import { serializePairs } from '../../sidecar/wasm/headers.ts';
import { TestMesh, eventually, freePort, get, instance, service, startApp, withTimeout, moduleServer as serveModules } from './harness.ts';
import { wat } from '../wasm/wat.ts';

const closers: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of closers.reverse()) await c();
});

const sha = (b: Uint8Array | string) => createHash('sha256').update(b).digest('hex');
const latin1 = (bytes: Uint8Array) => String.fromCharCode(...bytes);

/** A module server for this file's tests, closed after them. */
async function moduleServer(bytesBySha: Map<string, Uint8Array>): Promise<string> {
  const served = await serveModules(bytesBySha);
  closers.push(served.close);
  return served.url;
}

/** Replies 429 (with `headers`) from its request headers unless the request has x-pass; adds `name: yes` to whatever response it sees. */
function limiter(name: string, headers: [string, string][] = [['retry-after', '60']]): Promise<Uint8Array> {
  return wat({
    imports: ['proxy_send_local_response', 'proxy_get_header_map_value', 'proxy_add_header_map_value'],
    strings: { details: 'rate_limited', body: 'slow down', headers: latin1(serializePairs(headers)), pass: 'x-pass', name, yes: 'yes' },
    body: (s) => `
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (if (call $proxy_get_header_map_value (i32.const 0) ${s.pass} (i32.const 0) (i32.const 4))
      (then (drop (call $proxy_send_local_response (i32.const 429) ${s.details} ${s.body} ${s.headers} (i32.const -1)))))
    (i32.const 0))
  (func (export "proxy_on_response_headers") (param i32 i32 i32) (result i32)
    (drop (call $proxy_add_header_map_value (i32.const 2) ${s.name} ${s.yes}))
    (i32.const 0))`,
  });
}

/** Adds `name: yes` to the response headers; never replies. */
function tagger(name: string): Promise<Uint8Array> {
  return wat({
    imports: ['proxy_add_header_map_value'],
    strings: { name, yes: 'yes' },
    body: (s) => `
  (func (export "proxy_on_response_headers") (param i32 i32 i32) (result i32)
    (drop (call $proxy_add_header_map_value (i32.const 2) ${s.name} ${s.yes}))
    (i32.const 0))`,
  });
}

test("a filter's 429 from its request headers goes through its own response headers and those of the filters before it, not after it", { timeout: 60_000 }, async () => {
  const modules = { before: await tagger('x-before'), limiter: await limiter('x-limited', [['retry-after', '60'], ['content-type', 'application/json'], ['content-length', '999']]), after: await tagger('x-after') };
  const served = new Map(Object.values(modules).map((b) => [sha(b), b] as [string, Uint8Array]));
  const base = await moduleServer(served);
  const mesh = await TestMesh.start({ translator: defaultTranslator({ wasmBaseUrl: base, wasmClusterName: 'weft-control' }) });
  closers.push(() => mesh.close());
  const app = await startApp('quota');
  mesh.track(() => app.close());
  const inbound = await freePort();
  const bind = (filter: keyof typeof modules, order: number): FilterBinding => ({ name: `quota-${filter}`, namespace: 'default', service: 'quota', direction: 'inbound', filter, order, config: {}, failurePolicy: 'fail_closed' });
  mesh.model.update({
    services: [service('quota', 7950)],
    instances: [instance('quota', inbound)],
    filterModules: Object.entries(modules).map(([name, b]) => ({ name, sha256: sha(b), size: b.length, abiVersion: '0.2.1' })),
    filterBindings: [bind('before', 0), bind('limiter', 1), bind('after', 2)],
  });
  await mesh.sidecar('quota', app.port, { inboundPort: inbound });

  const limited = await get(inbound, 'quota', '/');
  assert.equal(limited.status, 429);
  assert.equal(limited.body, 'slow down');
  assert.equal(limited.headers['retry-after'], '60', "the reply's own header");
  const onWire = (name: string) => limited.rawHeaders.filter((h, i) => i % 2 === 0 && h.toLowerCase() === name).length;
  assert.equal(onWire('content-type'), 1, `one content-type, the filter's, as Envoy's local reply keeps it (it went out with text/plain beside it): ${limited.rawHeaders}`);
  assert.equal(limited.headers['content-type'], 'application/json');
  assert.equal(onWire('content-length'), 1);
  assert.equal(limited.headers['content-length'], String('slow down'.length), "the body's length, not the filter's");
  assert.equal(limited.headers['x-limited'], 'yes', "the replying filter's on_response_headers saw its reply");
  assert.equal(limited.headers['x-before'], 'yes', 'so did the filter before it');
  assert.equal(limited.headers['x-after'], undefined, 'the filter after it never saw the request, and does not see the reply');
  assert.equal(app.hits, 0);

  // An upstream response goes through all three, as before.
  const passed = await get(inbound, 'quota', '/', { headers: { 'x-pass': '1' } });
  assert.equal(passed.status, 200);
  assert.deepEqual([passed.headers['x-before'], passed.headers['x-limited'], passed.headers['x-after']], ['yes', 'yes', 'yes']);
});

const authWasm = fileURLToPath(new URL('../../filters/dist/auth.wasm', import.meta.url));
const telemetryWasm = fileURLToPath(new URL('../../filters/dist/telemetry.wasm', import.meta.url));

test("the telemetry filter logs the auth filter's 401 as 401, before it in the chain or after it", { timeout: 60_000, skip: (!existsSync(authWasm) || !existsSync(telemetryWasm)) && 'filters/dist not built (npm run build:filters)' }, async () => {
  const auth = new Uint8Array(readFileSync(authWasm));
  const telemetry = new Uint8Array(readFileSync(telemetryWasm));
  const base = await moduleServer(new Map([[sha(auth), auth], [sha(telemetry), telemetry]]));
  const mesh = await TestMesh.start({ translator: defaultTranslator({ wasmBaseUrl: base, wasmClusterName: 'weft-control' }) });
  closers.push(() => mesh.close());
  const app = await startApp('ledger');
  mesh.track(() => app.close());
  const inbound = await freePort();
  const bindings = (telemetryOrder: number, authOrder: number): FilterBinding[] => [
    { name: 'ledger-telemetry', namespace: 'default', service: 'ledger', direction: 'inbound', filter: 'telemetry', order: telemetryOrder, config: {}, failurePolicy: 'fail_open' },
    { name: 'ledger-auth', namespace: 'default', service: 'ledger', direction: 'inbound', filter: 'auth', order: authOrder, config: { apiKeys: { keys: [{ name: 'tester', sha256: sha('s3cret') }] }, defaultAction: 'require' }, failurePolicy: 'fail_closed' },
  ];
  mesh.model.update({
    services: [service('ledger', 7960)],
    instances: [instance('ledger', inbound)],
    filterModules: [
      { name: 'auth', sha256: sha(auth), size: auth.length, abiVersion: '0.2.1' },
      { name: 'telemetry', sha256: sha(telemetry), size: telemetry.length, abiVersion: '0.2.1' },
    ],
    filterBindings: bindings(0, 1),
  });
  const lines: string[] = [];
  await mesh.sidecar('ledger', app.port, { inboundPort: inbound, log: (l) => lines.push(l) });
  const access = () => lines.filter((l) => l.includes('"source":"wasm"') && l.includes('\\"type\\":\\"access\\"')).map((l) => JSON.parse(JSON.parse(l).msg) as { status: number; path: string; request_id: string });

  // Telemetry first: it saw the request, and the 401 passes its on_response_headers (it echoes x-request-id there).
  const denied = await get(inbound, 'ledger', '/books');
  assert.equal(denied.status, 401);
  assert.match(denied.headers['www-authenticate'] as string, /ApiKey/);
  assert.match(denied.headers['x-request-id'] as string, /^[0-9a-f-]{36}$/, "telemetry's response headers ran on the 401");
  assert.equal((await get(inbound, 'ledger', '/books', { headers: { 'x-api-key': 's3cret' } })).status, 200);
  await eventually(() => access().length >= 2, 5000, 'two telemetry access lines');
  assert.deepEqual(access().map((a) => [a.path, a.status]), [['/books', 401], ['/books', 200]]);
  assert.equal(access()[0]!.request_id, denied.headers['x-request-id']);

  // Auth first: telemetry never sees the request or the response, but its on_log reads response.code, as in Envoy.
  mesh.model.update({ filterBindings: bindings(10, 0) });
  await eventually(async () => (await get(inbound, 'ledger', '/books')).headers['x-request-id'] === undefined, 10_000, 'auth ahead of telemetry');
  // Its line for that request has no path: telemetry's on_request_headers never ran.
  await eventually(() => access().at(-1)?.path === '', 5000, "telemetry's line for a request it did not see");
  assert.equal(access().at(-1)!.status, 401, 'response.code in on_log is the reply sent');
});

test("a request no route matches runs the filters first, as Envoy's router is the last filter: a filter's own reply wins, and the 404 goes through their response phase", { timeout: 60_000 }, async () => {
  const modules = { limiter: await limiter('x-limited') };
  const base = await moduleServer(new Map(Object.values(modules).map((b) => [sha(b), b] as [string, Uint8Array])));
  // weft's own route configurations end every virtual host with a catch-all; an operator's need not.
  // Here every route matches /api only, so any other path is the router's 404 (NR).
  const base0 = defaultTranslator({ wasmBaseUrl: base, wasmClusterName: 'weft-control' });
  const apiOnly = (v: unknown): unknown =>
    JSON.parse(JSON.stringify(v), (k, x) => (k === 'match' && x && typeof x === 'object' && (x as { prefix?: string }).prefix === '/' ? { ...x, prefix: '/api' } : x));
  const mesh = await TestMesh.start({
    translator: {
      translateEndpoints: (m, n) => base0.translateEndpoints(m, n),
      translateProxy: (m, p) => {
        const out = base0.translateProxy(m, p);
        return { ...out, routes: out.routes.map((r) => ({ ...r, value: apiOnly(r.value) })) };
      },
    },
  });
  closers.push(() => mesh.close());
  const app = await startApp('shop');
  mesh.track(() => app.close());
  const target = await startApp('stock');
  mesh.track(() => target.close());
  mesh.model.update({
    services: [service('shop', 7970), service('stock', 7971)],
    instances: [instance('stock', target.port)],
    filterModules: [{ name: 'limiter', sha256: sha(modules.limiter), size: modules.limiter.length, abiVersion: '0.2.1' }],
    filterBindings: [{ name: 'shop-limiter', namespace: 'default', service: 'shop', direction: 'outbound', filter: 'limiter', order: 0, config: {}, failurePolicy: 'fail_closed' }],
  });
  const sc = await mesh.sidecar('shop', app.port);

  // Without its pass header the filter answers 429: before the router could say 404.
  const limited = await get(sc.outboundPort, 'stock', '/other');
  assert.equal(limited.status, 429);
  assert.equal(limited.headers['x-limited'], 'yes');

  // It lets the request through; the router finds no route; the filter sees the 404 on its way out.
  const missing = await get(sc.outboundPort, 'stock', '/other', { headers: { 'x-pass': '1' } });
  assert.equal(missing.status, 404);
  assert.equal(missing.headers['x-limited'], 'yes', "the 404 went through the filter's on_response_headers");
  const stats = await (await fetch(`http://127.0.0.1:${sc.adminPort}/stats/prometheus`)).text();
  assert.match(stats, /envoy_http_no_route\{[^}]*\} 1\b/, 'counted once: the 429 was no no_route');

  // A routed request through the same filter still reaches its service.
  const routed = await get(sc.outboundPort, 'stock', '/api/items', { headers: { 'x-pass': '1' } });
  assert.equal(routed.status, 200);
  assert.equal(target.hits, 1);
});

test('a filter that changes :authority sends the request to the virtual host of the new authority, as Envoy chooses the route again from the whole route configuration', { timeout: 60_000 }, async () => {
  const redirector = await wat({
    imports: ['proxy_get_header_map_value', 'proxy_replace_header_map_value'],
    strings: { to: 'x-to', authority: ':authority', stock: 'stock' },
    body: (s) => `
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (if (i32.eqz (call $proxy_get_header_map_value (i32.const 0) ${s.to} (i32.const 0) (i32.const 4)))
      (then (drop (call $proxy_replace_header_map_value (i32.const 0) ${s.authority} ${s.stock}))))
    (i32.const 0))`,
  });
  const base = await moduleServer(new Map([[sha(redirector), redirector]]));
  const mesh = await TestMesh.start({ translator: defaultTranslator({ wasmBaseUrl: base, wasmClusterName: 'weft-control' }) });
  closers.push(() => mesh.close());
  const app = await startApp('shop');
  mesh.track(() => app.close());
  const stock = await startApp('stock');
  mesh.track(() => stock.close());
  mesh.model.update({
    services: [service('shop', 7980), service('stock', 7981)],
    instances: [instance('stock', stock.port)],
    filterModules: [{ name: 'redirector', sha256: sha(redirector), size: redirector.length, abiVersion: '0.2.1' }],
    filterBindings: [{ name: 'shop-redirector', namespace: 'default', service: 'shop', direction: 'outbound', filter: 'redirector', order: 0, config: {}, failurePolicy: 'fail_closed' }],
  });
  const sc = await mesh.sidecar('shop', app.port);
  // Sent to an authority no service has (weft's 404 virtual host); the filter points it at stock.
  const moved = await get(sc.outboundPort, 'no-such-service', '/items', { headers: { 'x-to': '1' } });
  assert.equal(moved.status, 200, moved.body);
  assert.equal(stock.hits, 1);
  const stayed = await get(sc.outboundPort, 'no-such-service', '/items');
  assert.equal(stayed.status, 404, 'without the header the filter leaves it alone');
});

test('a header value node cannot write (DEL), from a filter\'s local reply or added to a response, is left out and the sidecar keeps serving', { timeout: 60_000 }, async () => {
  const bad = 'a\x7fb';
  const replier = await wat({
    imports: ['proxy_send_local_response', 'proxy_get_header_map_value'],
    strings: { details: 'refused', body: 'no', headers: latin1(serializePairs([['x-bad', bad], ['x-good', 'yes']])), refuse: 'x-refuse' },
    body: (s) => `
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (if (i32.eqz (call $proxy_get_header_map_value (i32.const 0) ${s.refuse} (i32.const 0) (i32.const 4)))
      (then (drop (call $proxy_send_local_response (i32.const 403) ${s.details} ${s.body} ${s.headers} (i32.const -1)))))
    (i32.const 0))`,
  });
  const spoiler = await wat({
    imports: ['proxy_add_header_map_value'],
    strings: { name: 'x-spoiled', value: bad },
    body: (s) => `
  (func (export "proxy_on_response_headers") (param i32 i32 i32) (result i32)
    (drop (call $proxy_add_header_map_value (i32.const 2) ${s.name} ${s.value}))
    (i32.const 0))`,
  });
  const modules = { replier, spoiler };
  const base = await moduleServer(new Map(Object.values(modules).map((b) => [sha(b), b] as [string, Uint8Array])));
  const mesh = await TestMesh.start({ translator: defaultTranslator({ wasmBaseUrl: base, wasmClusterName: 'weft-control' }) });
  closers.push(() => mesh.close());
  const app = await startApp('vault');
  mesh.track(() => app.close());
  const inbound = await freePort();
  mesh.model.update({
    services: [service('vault', 7990)],
    instances: [instance('vault', inbound)],
    filterModules: Object.entries(modules).map(([name, b]) => ({ name, sha256: sha(b), size: b.length, abiVersion: '0.2.1' })),
    filterBindings: [
      { name: 'vault-spoiler', namespace: 'default', service: 'vault', direction: 'inbound', filter: 'spoiler', order: 0, config: {}, failurePolicy: 'fail_closed' },
      { name: 'vault-replier', namespace: 'default', service: 'vault', direction: 'inbound', filter: 'replier', order: 1, config: {}, failurePolicy: 'fail_closed' },
    ],
  });
  await mesh.sidecar('vault', app.port, { inboundPort: inbound });

  for (let i = 0; i < 2; i++) {
    const refused = await withTimeout(get(inbound, 'vault', '/secret', { headers: { 'x-refuse': '1' } }), 5000, 'the local reply');
    assert.equal(refused.status, 403);
    assert.equal(refused.body, 'no');
    assert.equal(refused.headers['x-good'], 'yes', 'the headers that can be written are');
    assert.equal(refused.headers['x-bad'], undefined);
    assert.equal(refused.headers['x-spoiled'], undefined);
    const passed = await withTimeout(get(inbound, 'vault', '/secret'), 5000, 'the upstream response');
    assert.equal(passed.status, 200);
    assert.equal(passed.headers['x-spoiled'], undefined);
  }
  assert.equal(app.hits, 2);
});
