// Wasm filters in the sidecar's HTTP filter chain: the built-in auth filter,
// bound with a FilterBinding, reaches the sidecar over ECDS, its module is
// fetched over HTTP and checked against the sha256, and it decides requests.
// A module whose bytes do not match the sha256 is NACKed.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { defaultTranslator } from '../../control/xds/index.ts';
import type { FilterBinding, FilterModule } from '../../control/model/types.ts';
import { TestMesh, eventually, freePort, get, instance, service, startApp, tap, moduleServer as serveModules } from './harness.ts';
import { wat } from '../wasm/wat.ts';

const authWasm = fileURLToPath(new URL('../../filters/dist/auth.wasm', import.meta.url));
const closers: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of closers.reverse()) await c();
});

const sha = (b: Uint8Array | string) => createHash('sha256').update(b).digest('hex');

/** A module server for this file's tests, closed after them. */
async function moduleServer(bytesBySha: Map<string, Uint8Array>): Promise<string> {
  const served = await serveModules(bytesBySha);
  closers.push(served.close);
  return served.url;
}

/** Counts requests in `reqs`; says goodbye (its name) as its root context is deleted; marks responses with its name. */
const counter = (name: string) =>
  wat({
    imports: ['proxy_define_metric', 'proxy_increment_metric', 'proxy_add_header_map_value'],
    strings: { metric: 'reqs', bye: `bye ${name}`, header: 'x-counted-by', name },
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

test('the auth filter bound through ECDS runs in the inbound chain: 401 without a key, 200 with one', { timeout: 60_000, skip: !existsSync(authWasm) && 'filters/dist/auth.wasm not built' }, async () => {
  const bytes = new Uint8Array(readFileSync(authWasm));
  const digest = sha(bytes);
  const served = new Map([[digest, bytes]]);
  const base = await moduleServer(served);
  const mesh = await TestMesh.start({ translator: defaultTranslator({ wasmBaseUrl: base, wasmClusterName: 'weft-control' }) });
  closers.push(() => mesh.close());
  const app = await startApp('api');
  mesh.track(() => app.close());
  const inbound = await freePort();
  const module: FilterModule = { name: 'auth', sha256: digest, size: bytes.length, abiVersion: '0.2.1' };
  const binding: FilterBinding = {
    name: 'api-auth',
    namespace: 'default',
    service: 'api',
    direction: 'inbound',
    filter: 'auth',
    order: 0,
    config: { apiKeys: { keys: [{ name: 'tester', sha256: sha('s3cret') }] }, rules: [{ prefix: '/public', action: 'allow' }], defaultAction: 'require' },
    failurePolicy: 'fail_closed',
  };
  mesh.model.update({ services: [service('api', 7700)], instances: [instance('api', inbound)], filterModules: [module], filterBindings: [binding] });
  const sc = await mesh.sidecar('api', app.port, { inboundPort: inbound });

  const denied = await get(inbound, 'api', '/orders');
  assert.equal(denied.status, 401);
  assert.equal(app.hits, 0, 'the filter answered before the app saw anything');
  const allowed = await get(inbound, 'api', '/orders', { headers: { 'x-api-key': 's3cret' } });
  assert.equal(allowed.status, 200, allowed.body);
  assert.equal((await get(inbound, 'api', '/public/x')).status, 200);

  // A module whose bytes do not hash to the configured sha256 is refused; the running filter stays.
  const evil = new Uint8Array([...bytes, 0]);
  served.set(sha(bytes.subarray(1)), evil);
  const liar: FilterModule = { ...module, sha256: sha(bytes.subarray(1)) };
  mesh.model.update({ filterModules: [liar] });
  await eventually(() => JSON.stringify(mesh.xds.status.get(sc.nodeId)?.lastNacks ?? {}).includes('sha256'), 10_000, 'ECDS NACK for the sha256 mismatch');
  assert.equal((await get(inbound, 'api', '/orders')).status, 401, 'previous filter still enforcing');
});

const telemetryWasm = fileURLToPath(new URL('../../filters/dist/telemetry.wasm', import.meta.url));

test('the telemetry filter in a sidecar sees the proxy node and the response status; its metrics and log lines come out', { timeout: 60_000, skip: !existsSync(telemetryWasm) && 'filters/dist/telemetry.wasm not built' }, async () => {
  const bytes = new Uint8Array(readFileSync(telemetryWasm));
  const digest = sha(bytes);
  const base = await moduleServer(new Map([[digest, bytes]]));
  const mesh = await TestMesh.start({ translator: defaultTranslator({ wasmBaseUrl: base, wasmClusterName: 'weft-control' }) });
  closers.push(() => mesh.close());
  const app = await startApp('orders', (req, res) => {
    res.statusCode = req.url === '/missing' ? 404 : 200;
    res.end('ok');
  });
  mesh.track(() => app.close());
  const inbound = await freePort();
  mesh.model.update({
    services: [service('orders', 7800)],
    instances: [instance('orders', inbound)],
    filterModules: [{ name: 'telemetry', sha256: digest, size: bytes.length, abiVersion: '0.2.1' }],
    filterBindings: [{ name: 'orders-telemetry', namespace: 'default', service: 'orders', direction: 'inbound', filter: 'telemetry', order: 0, config: {}, failurePolicy: 'fail_open' }],
  });
  const lines: string[] = [];
  const sc = await mesh.sidecar('orders', app.port, { inboundPort: inbound, log: (l) => lines.push(l) });
  const ok = await get(inbound, 'orders', '/a');
  assert.equal(ok.status, 200);
  assert.match(ok.headers['x-request-id'] as string, /^[0-9a-f-]{36}$/, 'the filter echoes the request id on the response');
  assert.equal((await get(inbound, 'orders', '/missing')).status, 404);

  // Its access log lines: the service is node.cluster (no service in the config), the status is the upstream's.
  await eventually(() => lines.filter((l) => l.includes('"source":"wasm"')).length >= 2, 5000, 'two wasm log lines');
  const access = lines.filter((l) => l.includes('"source":"wasm"')).map((l) => JSON.parse(JSON.parse(l).msg) as { service: string; status: number; path: string; upstream: string | null });
  assert.deepEqual(access.map((a) => [a.service, a.path, a.status]), [['orders', '/a', 200], ['orders', '/missing', 404]]);
  // upstream.address: the host the request went to, as Envoy reports it.
  assert.deepEqual(access.map((a) => a.upstream), [`127.0.0.1:${app.port}`, `127.0.0.1:${app.port}`]);

  // Its custom metrics are on the sidecar's Prometheus endpoint, by status class.
  const stats = await (await fetch(`http://127.0.0.1:${sc.adminPort}/stats/prometheus`)).text();
  assert.match(stats, /^weft_requests_total\{[^}]*status_class="2xx"[^}]*\} 1$/m);
  assert.match(stats, /^weft_requests_total\{[^}]*status_class="4xx"[^}]*\} 1$/m);
  assert.equal(stats.split('\n').filter((l) => l.startsWith('# TYPE weft_requests_total ')).length, 1, 'one TYPE line per family');
  // ?filter matches a plugin's metric by its Envoy name, wasmcustom.<name> (tags folded in, as Istio's stats do)
  const own = await (await fetch(`http://127.0.0.1:${sc.adminPort}/stats/prometheus?filter=${encodeURIComponent('^wasmcustom\\.weft_requests_total.*status_class=\\.=2xx')}`)).text();
  assert.deepEqual(own.split('\n').filter((l) => l && !l.startsWith('#')).map((l) => l.replace(/\{.*\}/, '')), ['weft_requests_total 1']);
  assert.doesNotMatch(own, /^envoy_|weft_wasm_vm_created_total/m, "the sidecar's own families and the host counters are filtered too");
});

test('a filter that traps under fail_closed answers 503 from then on, as Envoy does, until it is configured again; the 503 carries no grpc-status for an HTTP caller', { timeout: 60_000 }, async () => {
  // Passes its first request, traps on its second (a per-VM counter): a new VM would pass again.
  const bytes = await wat({
    body: () => `
  (global $n (mut i32) (i32.const 0))
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (global.set $n (i32.add (global.get $n) (i32.const 1)))
    (if (i32.eq (global.get $n) (i32.const 2)) (then (unreachable)))
    (i32.const 0))`,
  });
  const digest = sha(bytes);
  const base = await moduleServer(new Map([[digest, bytes]]));
  const mesh = await TestMesh.start({ translator: defaultTranslator({ wasmBaseUrl: base, wasmClusterName: 'weft-control' }) });
  closers.push(() => mesh.close());
  const app = await startApp('shop');
  mesh.track(() => app.close());
  const inbound = await freePort();
  const binding: FilterBinding = { name: 'shop-trap', namespace: 'default', service: 'shop', direction: 'inbound', filter: 'trap', order: 0, config: { round: 1 }, failurePolicy: 'fail_closed' };
  mesh.model.update({
    services: [service('shop', 7900)],
    instances: [instance('shop', inbound)],
    filterModules: [{ name: 'trap', sha256: digest, size: bytes.length, abiVersion: '0.2.1' }],
    filterBindings: [binding],
  });
  const sc = await mesh.sidecar('shop', app.port, { inboundPort: inbound });
  const watched = await tap(sc.adminPort, '?max=5');
  assert.equal((await get(inbound, 'shop', '/')).status, 200, 'first request passes');
  const trapped = await get(inbound, 'shop', '/');
  assert.equal(trapped.status, 503, 'the trap answers 503');
  assert.equal(trapped.headers['grpc-status'], undefined, 'no grpc-status for a plain HTTP caller');
  for (let i = 0; i < 3; i++) assert.equal((await get(inbound, 'shop', '/')).status, 503, 'and so does every later request: the VM stays failed');
  const hits = app.hits;
  const stats = await (await fetch(`http://127.0.0.1:${sc.adminPort}/stats/prometheus`)).text();
  assert.match(stats, /^weft_wasm_vm_failed_total\{plugin="shop-trap"\} 1$/m);
  assert.match(stats, /^weft_wasm_vm_created_total\{plugin="shop-trap"\} 1$/m, 'no new VM');
  // What an operator sees: each refused request counted as a failure of the filter, and logged with Envoy's
  // details for it (no response flag, as Envoy's wasm host sets none). Until 2026-11-29 neither said anything.
  assert.deepEqual(stats.match(/^envoy_wasm_filter_failures\{.*$/gm), ['envoy_wasm_filter_failures{filter="weft.wasm.default.shop-trap"} 4'], 'the trapping request and the three the failed VM refused');
  await watched.ended;
  assert.deepEqual(watched.lines.map((l) => [l.response_code, l.response_flags, l.response_code_details]), [
    [200, '-', 'via_upstream'],
    ...Array.from({ length: 4 }, () => [503, '-', 'wasm_fail_stream']),
  ]);

  // A new configuration of the filter is a new plugin, on a new VM.
  mesh.model.update({ filterBindings: [{ ...binding, config: { round: 2 } }] });
  await eventually(async () => (await get(inbound, 'shop', '/')).status === 200, 10_000, 'the reconfigured filter passing requests');
  assert.ok(app.hits > hits);

  // The first configuration pushed again is configured again too: a new VM, not the one that failed under it (that
  // one was kept and handed back, so every request after such a push got 503).
  const round2 = JSON.stringify([...sc.dataPlane.versions('extension')]);
  mesh.model.update({ filterBindings: [binding] });
  await eventually(() => JSON.stringify([...sc.dataPlane.versions('extension')]) !== round2, 10_000, 'round 1 applied');
  assert.equal((await get(inbound, 'shop', '/')).status, 200, 'its first request passes, on a new VM');
  const after = await (await fetch(`http://127.0.0.1:${sc.adminPort}/stats/prometheus`)).text();
  assert.equal(after.match(/^weft_wasm_vm_created_total\{plugin="shop-trap"\} \d+$/gm)?.length, 1, 'one series for the binding');
});

test('a filter replaced by a new module keeps one series per metric, counting on (as Envoy\'s stat of the same name), and the replaced plugin\'s VM is closed once its streams are done', { timeout: 60_000 }, async () => {
  const a = await counter('a');
  const b = await counter('b');
  const base = await moduleServer(new Map([[sha(a), a], [sha(b), b]]));
  const mesh = await TestMesh.start({ translator: defaultTranslator({ wasmBaseUrl: base, wasmClusterName: 'weft-control' }) });
  closers.push(() => mesh.close());
  const app = await startApp('till');
  mesh.track(() => app.close());
  const inbound = await freePort();
  const binding: FilterBinding = { name: 'till-count', namespace: 'default', service: 'till', direction: 'inbound', filter: 'count-a', order: 0, config: {}, failurePolicy: 'fail_closed' };
  mesh.model.update({
    services: [service('till', 7901)],
    instances: [instance('till', inbound)],
    filterModules: [{ name: 'count-a', sha256: sha(a), size: a.length, abiVersion: '0.2.1' }, { name: 'count-b', sha256: sha(b), size: b.length, abiVersion: '0.2.1' }],
    filterBindings: [binding],
  });
  const lines: string[] = [];
  const sc = await mesh.sidecar('till', app.port, { inboundPort: inbound, log: (l) => lines.push(l) });
  for (let i = 0; i < 3; i++) assert.equal((await get(inbound, 'till', '/')).headers['x-counted-by'], 'a');

  mesh.model.update({ filterBindings: [{ ...binding, filter: 'count-b' }] });
  await eventually(async () => (await get(inbound, 'till', '/')).headers['x-counted-by'] === 'b', 10_000, 'module b in place');
  for (let i = 0; i < 2; i++) await get(inbound, 'till', '/');
  const prometheus = await (await fetch(`http://127.0.0.1:${sc.adminPort}/stats/prometheus`)).text();
  const series = (name: string) => prometheus.match(new RegExp(`^${name}\\{plugin="till-count"\\} \\d+$`, 'gm'));
  // Every request went through a or b, once: the one counter has them all (it was listed twice, a's and b's).
  assert.deepEqual(series('reqs'), [`reqs{plugin="till-count"} ${app.hits}`]);
  assert.deepEqual(series('weft_wasm_vm_created_total'), ['weft_wasm_vm_created_total{plugin="till-count"} 2']);
  const stats = (await get(sc.adminPort, 'admin', '/stats?filter=wasmcustom')).body;
  assert.match(stats, new RegExp(`^wasmcustom\\.reqs: ${app.hits}$`, 'm'), '/stats says the same');
  // a's VM is let go of (its root context deleted) once nothing configures it and no stream runs on it; b's is not.
  await eventually(() => lines.some((l) => l.includes('bye a')), 10_000, "module a's VM closed");
  assert.ok(!lines.some((l) => l.includes('bye b')));
});

test('a FilterBinding removed: the sidecar drops its ECDS config, closes its VM (proxy_on_delete) and drops its series, as Envoy ends the subscription with its last listener', { timeout: 60_000 }, async () => {
  const mod = await counter('tagger');
  const mesh = await TestMesh.start({ translator: defaultTranslator({ wasmBaseUrl: await moduleServer(new Map([[sha(mod), mod]])), wasmClusterName: 'weft-control' }) });
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
  await eventually(async () => (await get(inbound, 'till', '/')).headers['x-counted-by'] === undefined, 10_000, 'the filter out of the chain');
  // Until 2026-11-29 the config stayed (in /config_dump, so weft proxy-status said EXTRA for good) and its VM ran on.
  await eventually(async () => !(await get(sc.adminPort, 'admin', '/config_dump?resource=ecds_filters')).body.includes('till-tagger'), 10_000, "the removed binding's ECDS config gone from /config_dump");
  await eventually(() => lines.some((l) => l.includes('bye tagger')), 10_000, "the removed binding's VM closed (proxy_on_delete)");
  assert.doesNotMatch(await (await fetch(`http://127.0.0.1:${sc.adminPort}/stats/prometheus`)).text(), /plugin="till-tagger"/, 'a binding removed takes its series with it');
});
