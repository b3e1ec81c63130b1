// Envoy's runtime read where the route table and the fault filter read it, on
// a live sidecar: a route match's runtime_fraction (canary by runtime, the
// share changed with POST /runtime_modify), and the fault filter's
// upstream_cluster, downstream_nodes, fault.http.<downstream cluster>.* keys
// and runtime http_status (source/extensions/filters/http/fault/fault_filter.cc);
// and the stream's one random value, which a route match, the weighted pick
// and a mirror all read, as Envoy's stream_id_.

import assert from 'node:assert/strict';
import http from 'node:http';
import http2 from 'node:http2';
import { after, test } from 'node:test';
import { TestMesh, get, instance, load, meshEditingRoutes, metric, route, runtimeModify as modify, service, startApp, tap, type TestApp } from './harness.ts';

const closers: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of closers.reverse()) await c().catch(() => undefined);
});

async function app(name: string): Promise<TestApp> {
  const a = await startApp(name);
  closers.push(() => a.close());
  return a;
}

/**
 * A mesh whose translator's routes go through `edit` (each route object of each route configuration): weft's
 * translator writes neither runtime_fraction nor a fault's targets, an operator's Envoy config might.
 */
async function mesh(edit: (r: Record<string, any>) => void): Promise<TestMesh> {
  const m = await meshEditingRoutes(edit);
  closers.push(() => m.close());
  return m;
}

/** Which app answered each of n requests (x-app), and the statuses of those the sidecar answered itself. */
async function spread(port: number, n: number, headers: Record<string, string> = {}): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const r of await load(n, 8, () => get(port, 'shop', '/', { headers }))) {
    const k = typeof r.headers['x-app'] === 'string' ? r.headers['x-app'] : String(r.status);
    out.set(k, (out.get(k) ?? 0) + 1);
  }
  return out;
}

test('runtime_fraction: a canary route takes its default_value share of requests, the runtime key over it (percent, FractionalPercent, over 100: all), the catch-all the rest', { timeout: 60_000 }, async () => {
  const v1 = await app('v1');
  const v2 = await app('v2');
  const m = await mesh((r) => {
    if (r.name === 'default/shop/canary') r.match.runtime_fraction = { default_value: { numerator: 10 }, runtime_key: 'routing.shop.canary' };
  });
  m.model.update({
    services: [service('caller', 8000), service('shop', 7000), service('shop-next', 7001)],
    instances: [instance('shop', v1.port), instance('shop-next', v2.port)],
    routes: [route('shop', [{ name: 'canary', destinations: [{ service: 'shop-next', weight: 1 }] }])],
  });
  const sc = await m.sidecar('caller', 8000);
  const n = 600;
  // default_value 10%: the canary takes about 60 of 600 (binomial sd ~7.3), the catch-all the rest.
  const first = await spread(sc.outboundPort, n);
  assert.equal((first.get('v1') ?? 0) + (first.get('v2') ?? 0), n, JSON.stringify([...first]));
  assert.ok((first.get('v2') ?? 0) >= 30 && (first.get('v2') ?? 0) <= 95, `10% to the canary: ${first.get('v2')} of ${n}`);

  // The runtime key, an integer percent: 50% (about 300, sd ~12).
  await modify(sc.adminPort, 'routing.shop.canary=50');
  const half = await spread(sc.outboundPort, n);
  assert.ok((half.get('v2') ?? 0) >= 240 && (half.get('v2') ?? 0) <= 360, `50% to the canary: ${half.get('v2')} of ${n}`);

  // 0: none; over 100: all, as Envoy's featureEnabled.
  await modify(sc.adminPort, 'routing.shop.canary=0');
  assert.deepEqual([...(await spread(sc.outboundPort, 100))], [['v1', 100]]);
  await modify(sc.adminPort, 'routing.shop.canary=250');
  assert.deepEqual([...(await spread(sc.outboundPort, 100))], [['v2', 100]]);

  // A FractionalPercent value: 2500/10000 is 25% (about 150, sd ~10.6).
  await modify(sc.adminPort, 'routing.shop.canary=numerator: 2500%0Adenominator: TEN_THOUSAND');
  const quarter = await spread(sc.outboundPort, n);
  assert.ok((quarter.get('v2') ?? 0) >= 100 && (quarter.get('v2') ?? 0) <= 200, `25% to the canary: ${quarter.get('v2')} of ${n}`);

  // A value that is neither leaves default_value in force; removing the override too.
  await modify(sc.adminPort, 'routing.shop.canary=');
  const back = await spread(sc.outboundPort, n);
  assert.ok((back.get('v2') ?? 0) >= 30 && (back.get('v2') ?? 0) <= 95, `10% again: ${back.get('v2')} of ${n}`);
});

test("fault filter: upstream_cluster limits the fault to requests the route sends to that cluster (the weighted pick made before the filters run, as Envoy's route entry)", { timeout: 60_000 }, async () => {
  const v1 = await app('v1');
  const v2 = await app('v2');
  const m = await mesh((r) => {
    const f = r.typed_per_filter_config?.['envoy.filters.http.fault'];
    if (f) f.upstream_cluster = 'outbound|7001||shop-next.default';
  });
  m.model.update({
    services: [service('caller', 8000), service('shop', 7000), service('shop-next', 7001)],
    instances: [instance('shop', v1.port), instance('shop-next', v2.port)],
    routes: [route('shop', [{ name: 'split', destinations: [{ service: 'shop', weight: 50 }, { service: 'shop-next', weight: 50 }], fault: { abort: { httpStatus: 503, percentage: 100 } } }])],
  });
  const sc = await m.sidecar('caller', 8000);
  const n = 200;
  const seen = await spread(sc.outboundPort, n);
  // Every request for shop-next is aborted, none for shop is: shop-next's app is never reached.
  assert.equal(v2.hits, 0, 'no request reached the cluster under fault');
  assert.equal(seen.get('v2'), undefined);
  assert.equal((seen.get('v1') ?? 0) + (seen.get('503') ?? 0), n, JSON.stringify([...seen]));
  assert.ok((seen.get('503') ?? 0) >= 60 && (seen.get('503') ?? 0) <= 140, `about half aborted: ${seen.get('503')} of ${n}`);
  assert.equal(await metric(sc.adminPort, 'envoy_http_fault_aborts_injected', { envoy_http_conn_manager_prefix: 'outbound' }), seen.get('503'));
});

test('fault filter: downstream_nodes matches x-envoy-downstream-service-node; x-envoy-downstream-service-cluster makes the filter read fault.http.<cluster>.* in place of its own keys', { timeout: 60_000 }, async () => {
  const shop = await app('shop');
  const m = await mesh((r) => {
    const f = r.typed_per_filter_config?.['envoy.filters.http.fault'];
    if (f && r.name === 'default/shop/nodes') f.downstream_nodes = ['web-1', 'web-3'];
  });
  m.model.update({
    services: [service('caller', 8000), service('shop', 7000)],
    instances: [instance('shop', shop.port)],
    routes: [route('shop', [
      { name: 'nodes', match: [{ headers: [{ name: 'x-test', match: { exact: 'nodes' } }] }], destinations: [{ service: 'shop', weight: 1 }], fault: { abort: { httpStatus: 503, percentage: 100 } } },
      { name: 'keys', destinations: [{ service: 'shop', weight: 1 }], fault: { delay: { fixedDelayMs: 20, percentage: 0 }, abort: { httpStatus: 503, percentage: 0 } } },
    ])],
  });
  const sc = await m.sidecar('caller', 8000);
  const status = async (headers: Record<string, string>) => (await get(sc.outboundPort, 'shop', '/', { headers })).status;

  // downstream_nodes: only a request from one of those nodes is faulted; none without the header.
  assert.equal(await status({ 'x-test': 'nodes' }), 200);
  assert.equal(await status({ 'x-test': 'nodes', 'x-envoy-downstream-service-node': 'web-2' }), 200);
  assert.equal(await status({ 'x-test': 'nodes', 'x-envoy-downstream-service-node': 'web-1' }), 503);
  assert.equal(await status({ 'x-test': 'nodes', 'x-envoy-downstream-service-node': 'web-3' }), 503);

  // The downstream cluster's keys: its abort_percent and http_status over the configured 0% and 503.
  const web = { 'x-envoy-downstream-service-cluster': 'web' };
  await modify(sc.adminPort, 'fault.http.web.abort.abort_percent=100');
  assert.equal(await status(web), 503);
  assert.equal(await status({ 'x-envoy-downstream-service-cluster': 'batch' }), 200, "another downstream cluster: its own (unset) key, the configured 0%");
  assert.equal(await status({}), 200, 'no downstream cluster: the filter\'s own key');
  await modify(sc.adminPort, 'fault.http.web.abort.http_status=429');
  assert.equal(await status(web), 429);
  // With a downstream cluster its key replaces the filter's (Envoy's isAbortEnabled): the general key no longer counts.
  await modify(sc.adminPort, 'fault.http.web.abort.abort_percent=&fault.http.abort.abort_percent=100');
  assert.equal(await status({}), 503);
  assert.equal(await status(web), 200);
  // ... and the status too: the downstream cluster's key over the configured one, not over fault.http.abort.http_status.
  await modify(sc.adminPort, 'fault.http.abort.http_status=418&fault.http.web.abort.abort_percent=100&fault.http.web.abort.http_status=');
  assert.equal(await status({}), 418);
  assert.equal(await status(web), 503);

  // Delay: the downstream cluster's fixed_delay_percent in place of the filter's, its fixed_duration_ms read over the filter's.
  await modify(sc.adminPort, 'fault.http.abort.abort_percent=&fault.http.web.abort.abort_percent=&fault.http.abort.http_status=&fault.http.web.delay.fixed_delay_percent=100');
  const flags = async (headers: Record<string, string>) => {
    const watching = await tap(sc.adminPort, '?authority=shop&max=1');
    assert.equal(await status(headers), 200);
    await watching.ended;
    return watching.lines[0]!.response_flags;
  };
  assert.equal(await flags(web), 'DI');
  assert.equal(await flags({}), '-');
  await modify(sc.adminPort, 'fault.http.web.delay.fixed_duration_ms=0');
  assert.equal(await flags(web), '-', 'a duration of 0 is no delay');
  await modify(sc.adminPort, 'fault.http.web.delay.fixed_duration_ms=&fault.http.web.delay.fixed_delay_percent=&fault.http.delay.fixed_delay_percent=100');
  assert.equal(await flags({}), 'DI');
  assert.equal(await flags(web), '-', "the filter's key does not count for a downstream cluster");
});

test("fault filter: a runtime http_status outside 200..599 is sent as Envoy sends it, on HTTP/1 up to 999 ('<status> Unknown'); otherwise the configured one", { timeout: 30_000 }, async () => {
  const shop = await app('shop');
  const m = await mesh(() => undefined);
  m.model.update({
    services: [service('caller', 8000), service('shop', 7000)],
    instances: [instance('shop', shop.port)],
    routes: [route('shop', [{ name: 'faulty', destinations: [{ service: 'shop', weight: 1 }], fault: { abort: { httpStatus: 503, percentage: 100 } } }])],
  });
  const sc = await m.sidecar('caller', 8000);
  const h1 = () =>
    new Promise<{ status: number; reason: string; body: string }>((resolve, reject) => {
      http.get({ host: '127.0.0.1', port: sc.outboundPort, headers: { host: 'shop' }, agent: false }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, reason: res.statusMessage ?? '', body }));
      }).on('error', reject);
    });
  const h2 = async () => {
    const session = http2.connect(`http://127.0.0.1:${sc.outboundPort}`);
    try {
      return await new Promise<number>((resolve, reject) => {
        const req = session.request({ ':path': '/', ':authority': 'shop' });
        req.on('response', (h) => resolve(Number(h[':status'])));
        req.on('error', reject);
        req.resume();
        req.end();
      });
    } finally {
      session.close();
    }
  };
  await modify(sc.adminPort, 'fault.http.abort.http_status=600');
  assert.deepEqual(await h1(), { status: 600, reason: 'Unknown', body: 'fault filter abort' });
  assert.equal(await h2(), 503, "Node's HTTP/2 sends no :status 600: the configured status");
  await modify(sc.adminPort, 'fault.http.abort.http_status=999');
  assert.equal((await h1()).status, 999);
  for (const status of ['1000', '150', '0']) {
    await modify(sc.adminPort, `fault.http.abort.http_status=${status}`);
    assert.equal((await h1()).status, 503, `${status}: the configured status`);
  }
  await modify(sc.adminPort, 'fault.http.abort.http_status=429');
  assert.deepEqual(await h1(), { status: 429, reason: 'Too Many Requests', body: 'fault filter abort' });
  assert.equal(await h2(), 429);
});

test("one random value per stream, as Envoy's stream_id: a route's runtime_fraction and its mirror's share read the same one, so at 50% each every request the route takes is mirrored and no other", { timeout: 60_000 }, async () => {
  const v1 = await app('v1');
  const v2 = await app('v2');
  const shadow = await app('shadow');
  const m = await mesh((r) => {
    if (r.name === 'default/shop/canary') r.match.runtime_fraction = { default_value: { numerator: 50 } };
  });
  m.model.update({
    services: [service('caller', 8000), service('shop', 7000), service('shop-next', 7001), service('shop-shadow', 7002)],
    instances: [instance('shop', v1.port), instance('shop-next', v2.port), instance('shop-shadow', shadow.port)],
    routes: [route('shop', [{ name: 'canary', destinations: [{ service: 'shop-next', weight: 1 }], mirror: { service: 'shop-shadow', percentage: 50 } }])],
  });
  const sc = await m.sidecar('caller', 8000);
  const n = 200;
  const seen = await spread(sc.outboundPort, n);
  assert.ok((seen.get('v2') ?? 0) >= 60 && (seen.get('v2') ?? 0) <= 140, `about half to the canary: ${seen.get('v2')} of ${n}`);
  // An independent draw would mirror about half of the canary's requests; the stream's one value mirrors each of them.
  const deadline = Date.now() + 5000;
  while (shadow.hits < v2.hits && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(shadow.hits, v2.hits, 'every request the canary route took was mirrored, and no other');
});
