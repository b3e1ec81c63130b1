// Admin /stats in Envoy's own formats: dotted stat names, `name: value`
// lines, histograms as quantiles, Envoy's JSON, and the filter, usedonly and
// type parameters an operator greps with. Through a real sidecar.

import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { collectStats, statsText } from '../../sidecar/admin-stats.ts';
import { Histogram } from '../../sidecar/metrics.ts';
import { defaultTranslator, type Translator } from '../../control/xds/index.ts';
import { TestMesh, admin, callerToApi, eventually, get, instance, service, startApp, withFields } from './harness.ts';

const closers: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of closers.reverse()) await c();
});

test("/stats: Envoy's stat names and lines; filter, usedonly, type and format=json", { timeout: 30_000 }, async () => {
  const app = await startApp('api', (req, res) => {
    res.statusCode = req.url === '/fail' ? 503 : 200;
    res.end('ok');
  });
  closers.push(() => app.close());
  const mesh = await TestMesh.start();
  closers.push(() => mesh.close());
  mesh.model.update({ services: [service('caller', 8000), service('api', 7000)], instances: [instance('api', app.port)], routes: [] });
  const sc = await mesh.sidecar('caller', 8000);
  for (let i = 0; i < 3; i++) assert.equal((await get(sc.outboundPort, 'api', '/')).status, 200);
  assert.equal((await get(sc.outboundPort, 'api', '/fail')).status, 503);
  assert.equal((await get(sc.outboundPort, 'nowhere', '/')).status, 404);

  const text = await admin(sc.adminPort, '/stats');
  assert.equal(text.status, 200);
  const lines = text.body.trimEnd().split('\n');
  const value = (name: string) => lines.find((l) => l.startsWith(`${name}: `))?.slice(name.length + 2);
  const cluster = 'cluster.outbound|7000||api.default';
  assert.equal(value(`${cluster}.upstream_rq_200`), '3');
  assert.equal(value(`${cluster}.upstream_rq_503`), '1');
  assert.equal(value(`${cluster}.upstream_rq_2xx`), '3');
  assert.equal(value(`${cluster}.upstream_rq_5xx`), '1');
  assert.equal(value(`${cluster}.upstream_rq_total`), '4');
  assert.equal(value(`${cluster}.membership_healthy`), '1');
  // Four requests one after another over one kept-alive upstream connection, still open in the pool.
  assert.equal(value(`${cluster}.upstream_cx_total`), '1');
  assert.equal(value(`${cluster}.upstream_cx_active`), '1');
  assert.equal(value('http.outbound.downstream_rq_total'), '5');
  assert.equal(value('http.outbound.downstream_rq_4xx'), '1');
  assert.equal(value('listener_manager.total_listeners_active'), '2');
  assert.ok(Number(value('cluster_manager.cds.update_success')) >= 1);
  assert.match(value(`${cluster}.upstream_rq_time`) ?? '', /^P0\(nan,[\d.]+\) P25\(nan,[\d.]+\) P50\(nan,[\d.]+\) P75.* P100\(nan,[\d.]+\)$/);
  // Counters and gauges sorted by name, then the histograms.
  const firstHistogram = lines.findIndex((l) => /: (P0\(|No recorded values)/.test(l));
  const scalars = lines.slice(0, firstHistogram).map((l) => l.slice(0, l.lastIndexOf(': ')));
  assert.deepEqual(scalars, [...scalars].sort());
  assert.ok(lines.slice(firstHistogram).every((l) => /: (P0\(|No recorded values)/.test(l)));

  const filtered = await admin(sc.adminPort, '/stats?filter=upstream_rq_\\d\\d\\d$');
  assert.deepEqual(filtered.body.trimEnd().split('\n').map((l) => l.split(': ')[0]), [`${cluster}.upstream_rq_200`, `${cluster}.upstream_rq_503`]);

  const used = (await admin(sc.adminPort, '/stats?usedonly')).body.trimEnd().split('\n');
  assert.ok(used.length < lines.length);
  assert.ok(!used.some((l) => l.endsWith('No recorded values')), 'no histogram without a sample');
  // Envoy's used is "written at least once": never-incremented counters go, a gauge set or moved stays at 0 too
  // (admin-usedonly.test.ts).
  assert.ok(!used.some((l) => l.startsWith(`${cluster}.upstream_rq_timeout:`) || l.startsWith(`${cluster}.upstream_rq_1xx:`)), 'counters never written go');
  assert.ok(used.includes('server.state: 0') && used.includes(`${cluster}.upstream_rq_active: 0`), 'written gauges at 0 stay');

  const histograms = (await admin(sc.adminPort, '/stats?type=Histograms')).body.trimEnd().split('\n');
  assert.ok(histograms.length >= 2 && histograms.every((l) => /: (P0\(|No recorded values)/.test(l)));

  const json = JSON.parse((await admin(sc.adminPort, '/stats?format=json&filter=^cluster\\.outbound\\|7000')).body) as { stats: any[] };
  assert.deepEqual(json.stats.find((s) => s.name === `${cluster}.upstream_rq_200`), { name: `${cluster}.upstream_rq_200`, value: 3 });
  const h = json.stats.find((s) => s.histograms)?.histograms;
  assert.deepEqual(h.supported_quantiles, [0, 25, 50, 75, 90, 95, 99, 99.5, 99.9, 100]);
  const rqTime = h.computed_quantiles.find((q: { name: string }) => q.name === `${cluster}.upstream_rq_time`);
  assert.ok(rqTime, 'upstream_rq_time among the histograms');
  assert.equal(rqTime.values.length, 10);

  assert.equal((await admin(sc.adminPort, '/stats?filter=(')).status, 400);
  assert.match((await admin(sc.adminPort, '/stats?filter=(')).body, /^filter: /);
  assert.match((await admin(sc.adminPort, '/stats?type=Timers')).body, /^invalid &type= param: type must be All, Counters, Gauges, Histograms or TextReadouts, got "Timers"$/m);
  // Envoy's fifth type: the sidecar keeps no text readouts, so there is nothing to list (not a 400)
  assert.deepEqual(await admin(sc.adminPort, '/stats?type=TextReadouts'), { status: 200, body: '' });
  assert.deepEqual(JSON.parse((await admin(sc.adminPort, '/stats?type=TextReadouts&format=json')).body), { stats: [] });
  assert.match((await admin(sc.adminPort, '/stats?format=prometheus')).body, /^# HELP envoy_/m);

  // /stats/prometheus takes Envoy's filter (on the Envoy stat name) and usedonly too, so a scrape can ask for less
  const only = (await admin(sc.adminPort, `/stats/prometheus?filter=${encodeURIComponent('^cluster\\.outbound\\|7000\\|\\|api\\.default\\.upstream_rq_total$')}`)).body;
  assert.deepEqual(only.split('\n').filter((l) => l && !l.startsWith('#')), ['envoy_cluster_upstream_rq_total{envoy_cluster_name="outbound|7000||api.default"} 4']);
  assert.deepEqual(only.split('\n').filter((l) => l.startsWith('# TYPE')), ['# TYPE envoy_cluster_upstream_rq_total counter'], 'families with nothing left are left out');
  const full = (await admin(sc.adminPort, '/stats/prometheus')).body;
  const usedProm = (await admin(sc.adminPort, '/stats/prometheus?usedonly')).body;
  assert.ok(usedProm.length < full.length);
  const has = (text: string, line: string) => text.split('\n').includes(line);
  const zero = 'envoy_http_downstream_rq_too_large{envoy_http_conn_manager_prefix="outbound"} 0';
  assert.ok(has(full, zero) && !usedProm.includes('envoy_http_downstream_rq_too_large'), 'a counter never written goes, with its family');
  const classes = (n: number) => `envoy_cluster_upstream_rq_xx{envoy_cluster_name="outbound|7000||api.default",envoy_response_code_class="${n}"}`;
  assert.ok(has(full, `${classes(1)} 0`) && !usedProm.includes(classes(1)) && has(usedProm, `${classes(2)} 3`), 'per series: the 1xx class goes, the 2xx stays');
  assert.match(usedProm, /^envoy_cluster_upstream_rq_total\{envoy_cluster_name="outbound\|7000\|\|api\.default"\} 4$/m);
  assert.match(usedProm, /^envoy_cluster_upstream_rq_time_count\{envoy_cluster_name="outbound\|7000\|\|api\.default"\} 4$/m);
  const both = (await admin(sc.adminPort, '/stats/prometheus?usedonly&filter=upstream_rq_50')).body;
  assert.deepEqual(both.split('\n').filter((l) => l && !l.startsWith('#')).map((l) => l.replace(/\{.*/, '')).sort(), ['envoy_cluster_upstream_rq'], 'cluster.<name>.upstream_rq_503 is the one Envoy name that matches');
  assert.equal((await admin(sc.adminPort, '/stats/prometheus?filter=(')).status, 400);
  const unknown = await admin(sc.adminPort, '/stats/prometheus?used_only');
  assert.equal(unknown.status, 400);
  assert.match(unknown.body, /^used_only: unknown parameter \(it takes filter, usedonly, text_readouts, histogram_buckets\)/);
});

test("a cluster's and a connection manager's stats are there at 0 before any request, as Envoy creates them with the cluster", { timeout: 30_000 }, async () => {
  const { sc } = await callerToApi(closers);
  const lines = (await admin(sc.adminPort, '/stats/prometheus')).body.split('\n');
  const api = 'envoy_cluster_name="outbound|7000||api.default"';
  // A series born at 1 is no increase to Prometheus: the first timeout, overflow or unroutable request would go unseen.
  for (const name of ['upstream_rq_total', 'upstream_rq_timeout', 'upstream_rq_per_try_timeout', 'upstream_rq_retry', 'upstream_rq_retry_overflow', 'upstream_cx_overflow', 'upstream_rq_pending_overflow', 'upstream_cx_connect_fail', 'upstream_cx_none_healthy', 'outlier_detection_ejections_enforced_total', 'outlier_detection_ejections_detected_consecutive_5xx']) {
    assert.ok(lines.includes(`envoy_cluster_${name}{${api}} 0`), `envoy_cluster_${name} at 0`);
  }
  assert.ok(lines.includes(`envoy_cluster_upstream_rq_time_count{${api}} 0`));
  // Envoy's default bucket bounds, up to an hour, so a long request is in a bucket (a dashboard's le="300000" exists).
  const bounds = lines.filter((l) => l.startsWith('envoy_cluster_upstream_rq_time_bucket{') && l.includes(api)).map((l) => /le="([^"]+)"/.exec(l)![1]);
  assert.deepEqual(bounds, ['0.5', '1', '5', '10', '25', '50', '100', '250', '500', '1000', '2500', '5000', '10000', '30000', '60000', '300000', '600000', '1800000', '3600000', '+Inf']);
  assert.ok(lines.includes('envoy_http_no_route{envoy_http_conn_manager_prefix="outbound"} 0'));
  // As in Envoy, only what the cluster has: the inbound cluster has no outlier detection, no cluster has health checks.
  assert.ok(!lines.some((l) => l.startsWith('envoy_cluster_outlier_detection_ejections_enforced_total{envoy_cluster_name="inbound|')));
  assert.ok(!lines.some((l) => l.startsWith('envoy_cluster_health_check_success{')));
  assert.ok(!(await admin(sc.adminPort, '/stats/prometheus?usedonly')).body.includes('upstream_rq_timeout'), 'usedonly still leaves them out');
});

test("a cluster CDS removes takes its series with it, as Envoy deletes a cluster's stats; the others keep theirs", { timeout: 30_000 }, async () => {
  const app = await startApp('api');
  closers.push(() => app.close());
  const mesh = await TestMesh.start();
  closers.push(() => mesh.close());
  mesh.model.update({ services: [service('caller', 8000), service('api', 7000), service('old', 7001)], instances: [instance('api', app.port), instance('old', app.port)], routes: [] });
  const sc = await mesh.sidecar('caller', 8000);
  assert.equal((await get(sc.outboundPort, 'old', '/')).status, 200);
  assert.equal((await get(sc.outboundPort, 'api', '/')).status, 200);
  const prom = async () => (await admin(sc.adminPort, '/stats/prometheus')).body;
  assert.match(await prom(), /^envoy_cluster_membership_healthy\{envoy_cluster_name="outbound\|7001\|\|old\.default"\} 1$/m);

  mesh.model.update({ services: [service('caller', 8000), service('api', 7000)], instances: [instance('api', app.port)] });
  await eventually(async () => !(await prom()).includes('old.default'), 5000, "old's series gone");
  assert.ok(!(await admin(sc.adminPort, '/stats')).body.includes('old.default'), 'from /stats too');
  // A gauge left behind would say the removed cluster still has a healthy member.
  const after = await prom();
  assert.match(after, /^envoy_cluster_upstream_rq_total\{envoy_cluster_name="outbound\|7000\|\|api\.default"\} 1$/m);
  assert.match(after, /^envoy_cluster_membership_healthy\{envoy_cluster_name="outbound\|7000\|\|api\.default"\} 1$/m);
});

test('histogram quantiles come from the buckets, linear within the one that holds them', () => {
  const h = new Histogram('envoy_cluster_upstream_rq_time', 'time', ['envoy_cluster_name'], [1, 5, 10]);
  h.envoyName = (l) => `cluster.${l.envoy_cluster_name}.upstream_rq_time`;
  for (let i = 0; i < 100; i++) h.observe({ envoy_cluster_name: 'c' }, 3);
  h.series({ envoy_cluster_name: 'empty' });
  const text = statsText(collectStats([h], []));
  // All 100 samples in (1, 5]: P50 halfway, P0 at the bucket's floor, P100 at its bound.
  assert.match(text, /^cluster\.c\.upstream_rq_time: P0\(nan,1\) P25\(nan,2\) P50\(nan,3\) P75\(nan,4\) P90\(nan,4\.6\) .* P100\(nan,5\)$/m);
  assert.match(text, /^cluster\.empty\.upstream_rq_time: No recorded values$/m);
});

test("alt_stat_name: the cluster's stats go under it, in /stats and /stats/prometheus; /clusters gives it as observability_name", { timeout: 30_000 }, async () => {
  const app = await startApp('api');
  closers.push(() => app.close());
  const named = (c: Record<string, any>) => (String(c.name).includes('api.default') ? { ...c, alt_stat_name: 'api_stats' } : c);
  const mesh = await TestMesh.start({ translator: withFields({}, {}, named) });
  closers.push(() => mesh.close());
  mesh.model.update({ services: [service('caller', 8000), service('api', 7000)], instances: [instance('api', app.port)], routes: [] });
  const sc = await mesh.sidecar('caller', 8000);
  for (let i = 0; i < 2; i++) assert.equal((await get(sc.outboundPort, 'api', '/')).status, 200);

  const text = (await admin(sc.adminPort, '/stats?filter=upstream_rq_200')).body;
  assert.equal(text, 'cluster.api_stats.upstream_rq_200: 2\n');
  const prom = (await admin(sc.adminPort, '/stats/prometheus')).body;
  assert.match(prom, /^envoy_cluster_upstream_rq_total\{envoy_cluster_name="api_stats"\} 2$/m);
  assert.doesNotMatch(prom, /envoy_cluster_name="outbound\|7000\|\|api\.default"/);
  assert.match((await admin(sc.adminPort, '/clusters')).body, /^outbound\|7000\|\|api\.default::observability_name::api_stats$/m);
});

/** The default translator, plus (while `extra.on`) a copy of the outbound listener named "extra" on a port of its own with stat_prefix "extra_http", and `alt.name` as the api cluster's alt_stat_name. */
function switchableTranslator(extra: { on: boolean }, alt: { name: string | undefined }): Translator {
  const base = defaultTranslator({ wasmBaseUrl: 'http://127.0.0.1:1', wasmClusterName: 'weft-control' });
  const restamp = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(restamp);
    if (v === null || typeof v !== 'object') return v;
    const o = Object.fromEntries(Object.entries(v).map(([k, x]) => [k, restamp(x)]));
    if (String(o['@type']).endsWith('HttpConnectionManager')) o.stat_prefix = 'extra_http';
    return o;
  };
  return {
    translateEndpoints: (m, n) => base.translateEndpoints(m, n),
    translateProxy: (m, p) => {
      const out = base.translateProxy(m, p);
      const outbound = out.listeners.find((l) => l.name === 'outbound')!;
      const copy = restamp(outbound.value) as Record<string, any>;
      copy.name = 'extra';
      copy.address = { socket_address: { address: '127.0.0.1', port_value: 0 } };
      const clusters = out.clusters.map((c) => (String(c.name).includes('api.default') && alt.name ? { ...c, value: { ...(c.value as object), alt_stat_name: alt.name } } : c));
      return { ...out, clusters, listeners: extra.on ? [...out.listeners, { ...outbound, name: 'extra', value: copy }] : out.listeners };
    },
  };
}

test("a listener LDS removes takes its series with it (its connection manager's http.<stat_prefix>.*), as Envoy deletes a listener's scopes; the others keep theirs", { timeout: 30_000 }, async () => {
  const app = await startApp('api');
  closers.push(() => app.close());
  const extra = { on: true };
  const mesh = await TestMesh.start({ translator: switchableTranslator(extra, { name: undefined }) });
  closers.push(() => mesh.close());
  const model = { services: [service('caller', 8000), service('api', 7000)], instances: [instance('api', app.port)], routes: [] };
  mesh.model.update(model);
  const sc = await mesh.sidecar('caller', 8000);
  const prom = async () => (await admin(sc.adminPort, '/stats/prometheus')).body;
  await eventually(async () => (await prom()).includes('envoy_http_conn_manager_prefix="extra_http"'), 5000, "the extra listener's series");
  assert.equal((await get(sc.outboundPort, 'api', '/')).status, 200);

  extra.on = false;
  mesh.model.update({ ...model, services: [...model.services, service('other', 7001)] });
  await eventually(async () => !(await prom()).includes('extra_http'), 5000, "the removed listener's series gone from /stats/prometheus");
  assert.ok(!(await admin(sc.adminPort, '/stats')).body.includes('http.extra_http.'), 'from /stats too');
  const after = await prom();
  assert.match(after, /^envoy_http_downstream_rq_total\{envoy_http_conn_manager_prefix="outbound"\} 1$/m, 'the outbound listener keeps its counts');
  assert.match(after, /^envoy_http_no_route\{envoy_http_conn_manager_prefix="inbound"\} 0$/m);
});

test("a cluster whose alt_stat_name changes: its series move to the new name and none is left under the old one, as Envoy's old cluster scope goes", { timeout: 30_000 }, async () => {
  const app = await startApp('api');
  closers.push(() => app.close());
  const alt = { name: 'api_stats' as string | undefined };
  const mesh = await TestMesh.start({ translator: switchableTranslator({ on: false }, alt) });
  closers.push(() => mesh.close());
  const model = { services: [service('caller', 8000), service('api', 7000)], instances: [instance('api', app.port)], routes: [] };
  mesh.model.update(model);
  const sc = await mesh.sidecar('caller', 8000);
  const prom = async () => (await admin(sc.adminPort, '/stats/prometheus')).body;
  assert.equal((await get(sc.outboundPort, 'api', '/')).status, 200);
  assert.match(await prom(), /^envoy_cluster_upstream_rq_total\{envoy_cluster_name="api_stats"\} 1$/m);

  alt.name = 'api_v2';
  mesh.model.update({ ...model, services: [...model.services, service('other', 7001)] });
  await eventually(async () => (await prom()).includes('envoy_cluster_name="api_v2"'), 5000, 'the series under the new alt_stat_name');
  assert.doesNotMatch(await prom(), /envoy_cluster_name="api_stats"/, 'nothing left under the old name');
  assert.ok(!(await admin(sc.adminPort, '/stats')).body.includes('cluster.api_stats.'), 'in /stats either');
  assert.match(await prom(), /^envoy_cluster_upstream_rq_total\{envoy_cluster_name="api_v2"\} 0$/m, 'they start over under the new name');

  alt.name = undefined;
  mesh.model.update(model);
  await eventually(async () => (await prom()).includes('envoy_cluster_name="outbound|7000||api.default"'), 5000, "the series under the cluster's own name");
  assert.doesNotMatch(await prom(), /envoy_cluster_name="api_v2"/);
});
