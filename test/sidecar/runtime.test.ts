// Envoy's layered runtime on a live sidecar: GET /runtime and POST
// /runtime_modify as Envoy's admin answers them (runtime_handler.cc), the
// runtime.* stats, --layered-runtime (static, disk and admin layers; an
// rtds_layer refused naming the field), and each consumer reading its keys
// per request or check, so that a /runtime_modify shows in the traffic that
// follows: the fault filter, a mirror's runtime_key, outlier detection,
// upstream.healthy_panic_threshold and the tracing sampling keys.

import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { defaultTranslator, type Translator } from '../../control/xds/index.ts';
import { accept } from '../../sidecar/fidelity.ts';
import { runSidecar } from '../../sidecar/main.ts';
import { TestMesh, admin, eventually, get, instance, load, metric, policy, route, runtimeModify as modify, service, startApp, tap, type TestApp } from './harness.ts';
import { startCollector } from './otlp-collector.ts';

const closers: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of closers.reverse()) await c().catch(() => undefined);
});

const dir = mkdtempSync(join(tmpdir(), 'weft-runtime-'));
closers.push(async () => rmSync(dir, { recursive: true, force: true }));

type RuntimeDump = { entries: Record<string, { final_value: string; layer_values: string[] }>; layers: string[] };

async function runtime(adminPort: number): Promise<RuntimeDump> {
  const r = await admin(adminPort, '/runtime');
  assert.equal(r.status, 200);
  return JSON.parse(r.body) as RuntimeDump;
}

async function app(name: string, handler?: Parameters<typeof startApp>[1]): Promise<TestApp> {
  const a = await startApp(name, handler);
  closers.push(() => a.close());
  return a;
}

async function mesh(translator?: Translator): Promise<TestMesh> {
  const m = await TestMesh.start(translator ? { translator } : {});
  closers.push(() => m.close());
  return m;
}

/** A --layered-runtime file with this content. */
function layersFile(name: string, content: string): string {
  const path = join(dir, name);
  writeFileSync(path, content);
  return path;
}

test('GET /runtime and POST /runtime_modify answer as Envoy: the layers, each key per layer and its final value; an empty value removes the override; the runtime.* stats follow', { timeout: 30_000 }, async () => {
  const api = await app('api');
  const m = await mesh();
  m.model.update({ services: [service('caller', 8000), service('api', 7000)], instances: [instance('api', api.port)], routes: [] });
  const sc = await m.sidecar('caller', 8000);

  // The default layers are weft's Envoy bootstrap's: a static layer `weft`, then `admin`.
  const start = await runtime(sc.adminPort);
  assert.deepEqual(start.layers, ['weft', 'admin']);
  assert.deepEqual(start.entries['re2.max_program_size.error_level'], { final_value: '32768', layer_values: ['32768', ''] });
  assert.equal(await metric(sc.adminPort, 'envoy_runtime_num_layers'), 2);
  assert.equal(await metric(sc.adminPort, 'envoy_runtime_num_keys'), 1);
  assert.equal(await metric(sc.adminPort, 'envoy_runtime_admin_overrides_active'), 0);
  const loads = await metric(sc.adminPort, 'envoy_runtime_load_success');
  assert.equal(loads, 1);

  // What changes state is a POST (Envoy's 405); no parameters is Envoy's 400 with its usage text.
  assert.equal((await admin(sc.adminPort, '/runtime_modify?a=1')).status, 405);
  const usage = await admin(sc.adminPort, '/runtime_modify', 'POST');
  assert.equal(usage.status, 400);
  assert.match(usage.body, /^usage: \/runtime_modify\?key1=value1&key2=value2&keyN=valueN\n/);

  await modify(sc.adminPort, 're2.max_program_size.error_level=100&feature.x=on');
  const changed = await runtime(sc.adminPort);
  assert.deepEqual(changed.entries['re2.max_program_size.error_level'], { final_value: '100', layer_values: ['32768', '100'] });
  assert.deepEqual(changed.entries['feature.x'], { final_value: 'on', layer_values: ['', 'on'] });
  assert.equal(await metric(sc.adminPort, 'envoy_runtime_admin_overrides_active'), 1);
  assert.equal(await metric(sc.adminPort, 'envoy_runtime_num_keys'), 2);
  assert.equal(await metric(sc.adminPort, 'envoy_runtime_load_success'), loads + 1);
  assert.match((await admin(sc.adminPort, '/stats?filter=^runtime\\.')).body, /^runtime\.admin_overrides_active: 1$/m);

  // Form values work as the query does (Envoy reads them when the query has none).
  const form = await fetch(`http://127.0.0.1:${sc.adminPort}/runtime_modify`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'feature.y=2' });
  assert.equal(form.status, 200);
  assert.equal((await runtime(sc.adminPort)).entries['feature.y']?.final_value, '2');

  // An empty value removes the admin override: the static layer's value is back, an admin-only key is gone.
  await modify(sc.adminPort, 're2.max_program_size.error_level=&feature.x=&feature.y=');
  const back = await runtime(sc.adminPort);
  assert.deepEqual(back, start);
  assert.equal(await metric(sc.adminPort, 'envoy_runtime_admin_overrides_active'), 0);

  const help = (await admin(sc.adminPort, '/help')).body;
  assert.match(help, /^ {2}\/runtime: /m);
  assert.match(help, /^ {2}\/runtime_modify \(POST\): /m);
});

test('--layered-runtime: an rtds_layer, a duplicate layer name or a bad static value is refused at start naming the field; without an admin layer /runtime_modify is 503 "No admin layer specified"', { timeout: 30_000 }, async () => {
  const start = (file: string) => runSidecar({ service: 's', xds: '127.0.0.1:1', appPort: 9, layeredRuntime: file, log: () => undefined, accessLog: false });
  await assert.rejects(start(layersFile('rtds.yaml', 'layers:\n- name: base\n  static_layer: {a: 1}\n- name: rtds\n  rtds_layer: {name: r, rtds_config: {ads: {}}}\n')), /layered_runtime\.layers\[1\]\.rtds_layer: not supported by the weft sidecar/);
  await assert.rejects(start(layersFile('dup.yaml', 'layers:\n- {name: a, admin_layer: {}}\n- {name: a, static_layer: {}}\n')), /layered_runtime\.layers\[1\]\.name: Duplicate layer name: a/);
  await assert.rejects(start(layersFile('list.yaml', 'layers:\n- {name: a, static_layer: {x: [1, 2]}}\n')), /layered_runtime\.layers\[0\]\.static_layer: Invalid runtime entry value for x/);
  await assert.rejects(start(layersFile('unknown.yaml', 'layers:\n- {name: a, bogus_layer: {}}\n')), /layered_runtime\.layers\[0\]\.bogus_layer: unknown field/);
  await assert.rejects(start(join(dir, 'absent.yaml')), /layered-runtime: .*absent\.yaml: no such file/);

  const api = await app('api');
  const m = await mesh();
  m.model.update({ services: [service('caller', 8000), service('api', 7000)], instances: [instance('api', api.port)], routes: [] });
  const sc = await m.sidecar('caller', 8000, { layeredRuntime: layersFile('static.json', JSON.stringify({ layers: [{ name: 'base', static_layer: { upstream: { healthy_panic_threshold: 40 }, f: { numerator: 5, denominator: 'TEN_THOUSAND' } } }] })) });
  const dump = await runtime(sc.adminPort);
  assert.deepEqual(dump.layers, ['base']);
  assert.deepEqual(Object.keys(dump.entries), ['f', 'upstream.healthy_panic_threshold'], 'nested keys joined with dots; a FractionalPercent kept whole');
  const refused = await admin(sc.adminPort, '/runtime_modify?a=1', 'POST');
  assert.deepEqual(refused, { status: 503, body: 'No admin layer specified' });
  // The bootstrap in /config_dump says which layers it runs with.
  const dump0 = JSON.parse((await admin(sc.adminPort, '/config_dump')).body) as { configs: { bootstrap?: { layered_runtime?: unknown } }[] };
  assert.deepEqual(dump0.configs[0]!.bootstrap!.layered_runtime, { layers: [{ name: 'base', static_layer: { upstream: { healthy_panic_threshold: 40 }, f: { numerator: 5, denominator: 'TEN_THOUSAND' } } }] });
});

test('a disk_layer reads symlink_root/subdirectory (append_service_cluster adds the service) and is read again when the symlink is swapped', { timeout: 30_000 }, async () => {
  const root = join(dir, 'disk');
  for (const v of ['v1', 'v2']) {
    mkdirSync(join(root, v, 'envoy', 'upstream'), { recursive: true });
    mkdirSync(join(root, v, 'override', 'caller'), { recursive: true });
  }
  writeFileSync(join(root, 'v1', 'envoy', 'upstream', 'healthy_panic_threshold'), '# a comment line\n30\n');
  writeFileSync(join(root, 'v1', 'override', 'caller', 'feature'), 'one');
  writeFileSync(join(root, 'v2', 'envoy', 'upstream', 'healthy_panic_threshold'), '20');
  writeFileSync(join(root, 'v2', 'override', 'caller', 'feature'), 'two');
  symlinkSync(join(root, 'v1'), join(root, 'current'));
  const file = layersFile('disk.yaml', `layers:\n- name: disk\n  disk_layer: {symlink_root: ${join(root, 'current')}, subdirectory: envoy}\n- name: override\n  disk_layer: {symlink_root: ${join(root, 'current')}, subdirectory: override, append_service_cluster: true}\n- name: admin\n  admin_layer: {}\n`);
  const api = await app('api');
  const m = await mesh();
  m.model.update({ services: [service('caller', 8000), service('api', 7000)], instances: [instance('api', api.port)], routes: [] });
  const sc = await m.sidecar('caller', 8000, { layeredRuntime: file });
  const first = await runtime(sc.adminPort);
  assert.deepEqual(first.layers, ['disk', 'override', 'admin']);
  assert.deepEqual(first.entries['upstream.healthy_panic_threshold'], { final_value: '30', layer_values: ['30', '', ''] });
  assert.deepEqual(first.entries.feature, { final_value: 'one', layer_values: ['', 'one', ''] });
  // Two disk layers loaded: Envoy's override_dir_exists.
  assert.equal(await metric(sc.adminPort, 'envoy_runtime_override_dir_exists'), 1);
  assert.equal(await metric(sc.adminPort, 'envoy_runtime_load_success'), 1);

  // The deploy's atomic swap: a new symlink renamed over the old one.
  symlinkSync(join(root, 'v2'), join(root, 'next'));
  renameSync(join(root, 'next'), join(root, 'current'));
  await eventually(async () => (await runtime(sc.adminPort)).entries.feature?.final_value === 'two', 10_000, 'the swapped directory read');
  assert.equal((await runtime(sc.adminPort)).entries['upstream.healthy_panic_threshold']?.final_value, '20');
});

test('fault filter: fault.http.abort.abort_percent, .http_status, fault.http.delay.fixed_delay_percent and .fixed_duration_ms override the route\'s fault per request', { timeout: 30_000 }, async () => {
  const shop = await app('shop');
  const m = await mesh();
  m.model.update({
    services: [service('caller', 8000), service('shop', 7000)],
    instances: [instance('shop', shop.port)],
    routes: [route('shop', [{ name: 'faulty', destinations: [{ service: 'shop', weight: 1 }], fault: { delay: { fixedDelayMs: 20, percentage: 0 }, abort: { httpStatus: 503, percentage: 0 } } }])],
  });
  const sc = await m.sidecar('caller', 8000);
  const statuses = async (n: number) => (await load(n, 2, () => get(sc.outboundPort, 'shop'))).map((r) => r.status);
  assert.deepEqual(await statuses(6), Array(6).fill(200), 'configured at 0%: no fault');

  await modify(sc.adminPort, 'fault.http.abort.abort_percent=100');
  assert.deepEqual(await statuses(6), Array(6).fill(503));
  await modify(sc.adminPort, 'fault.http.abort.http_status=429');
  const aborted = await get(sc.outboundPort, 'shop');
  assert.equal(aborted.status, 429);
  assert.equal(aborted.body, 'fault filter abort');

  // Delay on, abort off: each request is delayed (DI) and then served.
  await modify(sc.adminPort, 'fault.http.abort.abort_percent=0&fault.http.delay.fixed_delay_percent=100&fault.http.delay.fixed_duration_ms=30');
  const watching = await tap(sc.adminPort, '?authority=shop&max=3');
  assert.deepEqual(await statuses(3), [200, 200, 200]);
  await watching.ended;
  assert.deepEqual(watching.lines.map((l) => l.response_flags), ['DI', 'DI', 'DI']);
  // A duration of 0 is no delay, as Envoy's.
  await modify(sc.adminPort, 'fault.http.delay.fixed_duration_ms=0');
  const undelayed = await tap(sc.adminPort, '?authority=shop&max=1');
  assert.equal((await get(sc.outboundPort, 'shop')).status, 200);
  await undelayed.ended;
  assert.equal(undelayed.lines[0]!.response_flags, '-');

  // Overrides removed: the route's 0% again.
  await modify(sc.adminPort, 'fault.http.abort.abort_percent=&fault.http.abort.http_status=&fault.http.delay.fixed_delay_percent=&fault.http.delay.fixed_duration_ms=');
  assert.deepEqual(await statuses(6), Array(6).fill(200));
});

test('a mirror policy\'s runtime_fraction.runtime_key is read per request over its default_value', { timeout: 30_000 }, async () => {
  const main = await app('main');
  let shadowed = 0;
  const shadow = await app('shadow', (_req, res) => {
    shadowed++;
    res.end('shadow');
  });
  // weft's translator writes no runtime_key; an operator's Envoy config might.
  const base = defaultTranslator({ wasmBaseUrl: 'http://127.0.0.1:1', wasmClusterName: 'weft-control' });
  const withKey = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(withKey);
    if (v === null || typeof v !== 'object') return v;
    const o = Object.fromEntries(Object.entries(v).map(([k, x]) => [k, withKey(x)]));
    if (Array.isArray(o.request_mirror_policies)) o.request_mirror_policies = o.request_mirror_policies.map((p: any) => ({ ...p, runtime_fraction: { ...p.runtime_fraction, runtime_key: 'shadow.shop' } }));
    return o;
  };
  const m = await mesh({ translateEndpoints: (x, n) => base.translateEndpoints(x, n), translateProxy: (x, p) => {
    const out = base.translateProxy(x, p);
    return { ...out, routes: out.routes.map((r) => ({ ...r, value: withKey(r.value) })) };
  } });
  m.model.update({
    services: [service('caller', 8000), service('shop', 7000), service('shop-next', 7001)],
    instances: [instance('shop', main.port), instance('shop-next', shadow.port)],
    routes: [route('shop', [{ name: 'mirrored', destinations: [{ service: 'shop', weight: 1 }], mirror: { service: 'shop-next', percentage: 0 } }])],
  });
  const sc = await m.sidecar('caller', 8000);
  await load(5, 1, () => get(sc.outboundPort, 'shop'));
  await modify(sc.adminPort, 'shadow.shop=100');
  await load(5, 1, () => get(sc.outboundPort, 'shop'));
  await eventually(() => shadowed === 5, 5000, 'five mirrored requests');
  // Off again by the runtime, whatever default_value says.
  await modify(sc.adminPort, 'shadow.shop=0');
  const before = main.hits;
  await load(5, 1, () => get(sc.outboundPort, 'shop'));
  assert.equal(main.hits - before, 5);
  await new Promise((r) => setTimeout(r, 200));
  assert.equal(shadowed, 5, 'none mirrored at 0 and none before the override');
});

test('outlier detection reads outlier_detection.enforcing_consecutive_5xx and consecutive_5xx at each failure', { timeout: 30_000 }, async () => {
  const good = await app('good');
  const bad = await app('bad', (_req, res) => {
    res.statusCode = 500;
    res.end('bad');
  });
  const m = await mesh();
  m.model.update({
    services: [service('caller', 8000), service('api', 7000)],
    instances: [instance('api', good.port), instance('api', bad.port)],
    routes: [],
    destinationPolicies: [policy('api', { outlierDetection: { consecutive5xx: 5, intervalMs: 60_000, baseEjectionTimeMs: 60_000, maxEjectionPercent: 50 } })],
  });
  const sc = await m.sidecar('caller', 8000);
  const cluster = { envoy_cluster_name: 'outbound|7000||api.default' };
  await modify(sc.adminPort, 'outlier_detection.enforcing_consecutive_5xx=0');
  await load(30, 1, () => get(sc.outboundPort, 'api'));
  assert.ok(bad.hits >= 10, `the failing host keeps its share: ${bad.hits} of 30`);
  assert.ok((await metric(sc.adminPort, 'envoy_cluster_outlier_detection_ejections_detected_consecutive_5xx', cluster)) >= 2, 'detected');
  assert.equal(await metric(sc.adminPort, 'envoy_cluster_outlier_detection_ejections_active', cluster), 0, 'never ejected at 0% enforcing');

  // Enforced again, and after 2 consecutive 5xx rather than 5: the failing host goes.
  await modify(sc.adminPort, 'outlier_detection.enforcing_consecutive_5xx=&outlier_detection.consecutive_5xx=2');
  await load(6, 1, () => get(sc.outboundPort, 'api'));
  assert.equal(await metric(sc.adminPort, 'envoy_cluster_outlier_detection_ejections_active', cluster), 1);
  const badBefore = bad.hits;
  const after5 = await load(10, 1, () => get(sc.outboundPort, 'api'));
  assert.equal(bad.hits, badBefore, 'ejected: no more requests');
  assert.ok(after5.every((r) => r.status === 200));
});

test('upstream.healthy_panic_threshold: raised over the share of healthy hosts, the cluster is in panic and the unhealthy host gets requests too', { timeout: 30_000 }, async () => {
  const healthy = await app('healthy');
  const unhealthy = await app('unhealthy');
  const m = await mesh();
  m.model.update({
    services: [service('caller', 8000), service('api', 7000)],
    instances: [instance('api', healthy.port), instance('api', unhealthy.port, {}, { health: 'unhealthy' })],
    routes: [],
  });
  const sc = await m.sidecar('caller', 8000);
  // Half the hosts healthy is not below Envoy's default threshold, 50: no panic.
  await load(10, 1, () => get(sc.outboundPort, 'api'));
  assert.equal(unhealthy.hits, 0);
  await modify(sc.adminPort, 'upstream.healthy_panic_threshold=80');
  await load(20, 1, () => get(sc.outboundPort, 'api'));
  assert.ok(unhealthy.hits > 0, 'panic: every host');
  await modify(sc.adminPort, 'upstream.healthy_panic_threshold=');
  const before = unhealthy.hits;
  await load(10, 1, () => get(sc.outboundPort, 'api'));
  assert.equal(unhealthy.hits, before, 'back to the configured threshold');
});

test('tracing: tracing.random_sampling and tracing.global_enabled decide over the connection manager\'s sampling', { timeout: 40_000 }, async () => {
  const collector = await startCollector();
  closers.push(() => collector.close());
  const api = await app('api', (req, res) => {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ traceparent: req.headers.traceparent ?? null }));
  });
  const m = await mesh(defaultTranslator({ wasmBaseUrl: 'http://127.0.0.1:1', wasmClusterName: 'weft-control', tracing: { collectorCluster: 'weft_otel', samplingPercent: 0 } }));
  m.model.update({ services: [service('caller', 8000), service('api', 7000)], instances: [instance('api', api.port)], routes: [] });
  const sc = await m.sidecar('caller', 8000, { otelCollector: `127.0.0.1:${collector.port}` });
  const sampledFlags = async (n: number) => (await load(n, 1, () => get(sc.outboundPort, 'api'))).map((r) => (JSON.parse(r.body) as { traceparent: string }).traceparent.slice(-2));
  assert.deepEqual(await sampledFlags(4), Array(4).fill('00'), 'sampling 0%');
  await modify(sc.adminPort, 'tracing.random_sampling=100');
  assert.deepEqual(await sampledFlags(4), Array(4).fill('01'));
  assert.equal(await metric(sc.adminPort, 'envoy_http_tracing_random_sampling', { envoy_http_conn_manager_prefix: 'outbound' }), 4);
  // The global switch off: nothing traced, whatever the sampling said.
  await modify(sc.adminPort, 'tracing.global_enabled=0');
  assert.deepEqual(await sampledFlags(4), Array(4).fill('00'));
  // A FractionalPercent value is taken too: 10000/10000.
  await modify(sc.adminPort, 'tracing.global_enabled=&tracing.random_sampling=numerator: 10000%0Adenominator: TEN_THOUSAND');
  assert.deepEqual(await sampledFlags(2), ['01', '01']);
});

test("fault filter: fault.http.max_active_faults caps the faults in progress in the connection manager (faults_overflow); the HTTPFault's own *_runtime keys and max_active_faults are taken", { timeout: 30_000 }, async () => {
  // The fields as decoded: the keys named by the filter, and max_active_faults.
  const rc = accept('route', {
    name: 'r',
    virtual_hosts: [{
      name: 'v',
      domains: ['*'],
      routes: [{
        match: { prefix: '/' },
        route: { cluster: 'c' },
        typed_per_filter_config: {
          'envoy.filters.http.fault': {
            '@type': 'type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault',
            abort: { http_status: 503, percentage: { numerator: 0 } },
            abort_percent_runtime: 'my.abort',
            abort_http_status_runtime: 'my.status',
            abort_grpc_status_runtime: 'my.grpc',
            delay_percent_runtime: 'my.delay',
            delay_duration_runtime: 'my.duration',
            max_active_faults_runtime: 'my.max',
            response_rate_limit_percent_runtime: 'my.rl',
            max_active_faults: 3,
          },
        },
      }],
    }],
  });
  assert.ok(rc.ok, JSON.stringify(!rc.ok && rc.errors));
  const fault = rc.value.virtualHosts[0]!.routes[0]!.fault!;
  assert.deepEqual(fault.runtime, { delayPercent: 'my.delay', delayDuration: 'my.duration', abortPercent: 'my.abort', abortHttpStatus: 'my.status', abortGrpcStatus: 'my.grpc', maxActiveFaults: 'my.max', responseRateLimitPercent: 'my.rl' });
  assert.equal(fault.maxActiveFaults, 3);

  const shop = await app('shop');
  const m = await mesh();
  m.model.update({
    services: [service('caller', 8000), service('shop', 7000)],
    instances: [instance('shop', shop.port)],
    routes: [route('shop', [{ name: 'slow', destinations: [{ service: 'shop', weight: 1 }], fault: { delay: { fixedDelayMs: 400, percentage: 100 } } }])],
  });
  const sc = await m.sidecar('caller', 8000);
  const prefix = { envoy_http_conn_manager_prefix: 'outbound' };
  await modify(sc.adminPort, 'fault.http.max_active_faults=1');
  const watching = await tap(sc.adminPort, '?authority=shop&max=3');
  // The first is delayed; while it is, the other two find the one fault allowed in progress and go undelayed.
  const first = get(sc.outboundPort, 'shop');
  await eventually(async () => (await metric(sc.adminPort, 'envoy_http_fault_active_faults', prefix)) === 1, 5000, 'one fault active');
  assert.deepEqual((await load(2, 2, () => get(sc.outboundPort, 'shop'))).map((r) => r.status), [200, 200]);
  assert.equal((await first).status, 200);
  await watching.ended;
  assert.deepEqual(watching.lines.map((l) => l.response_flags).sort(), ['-', '-', 'DI']);
  assert.equal(await metric(sc.adminPort, 'envoy_http_fault_faults_overflow', prefix), 2);
  assert.equal(await metric(sc.adminPort, 'envoy_http_fault_delays_injected', prefix), 1);
  assert.equal(await metric(sc.adminPort, 'envoy_http_fault_active_faults', prefix), 0, 'given back when the request ended');
  assert.match((await admin(sc.adminPort, '/stats?filter=fault')).body, /^http\.outbound\.fault\.faults_overflow: 2$/m);
});
