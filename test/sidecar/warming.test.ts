// Warming after start, as Envoy's. A cluster CDS adds warms until its first
// EDS assignment: it is not routed to (a request for it is answered 503 NC,
// counted in http.<prefix>.no_cluster), the cluster_manager.warming_clusters
// gauge counts it, config_dump shows it under dynamic_warming_clusters and
// /clusters leaves it out; its assignment makes it active. A changed cluster
// keeps its previous version serving until the next assignment for it, and
// initial_fetch_timeout bounds the wait. A listener LDS adds or changes warms
// until its route configuration is there: a new one is not bound, a changed
// one's previous version serves (config_dump's warming_state,
// listener_manager.total_listeners_warming).

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, test } from 'node:test';
import { TypeUrl, defaultTranslator } from '../../control/xds/index.ts';
import type { Translator } from '../../control/xds/index.ts';
import { DataPlane } from '../../sidecar/dataplane.ts';
import { SidecarStats } from '../../sidecar/stats.ts';
import { TestMesh, eventually, get, instance, metric, service, startApp, withTimeout } from './harness.ts';

const closers: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of closers.reverse()) await c();
});

type Json = Record<string, any>;
const NEW = 'outbound|7100||fresh.default';

/** The real control plane's translator, holding back one cluster's assignment until release() (SotW: nothing says it is absent). */
function holdingBack(name: string): { translator: Translator; release(): void } {
  let hold = true;
  const base = defaultTranslator({ wasmBaseUrl: 'http://127.0.0.1:1', wasmClusterName: 'weft-control' });
  return {
    translator: {
      translateProxy: (m, p) => base.translateProxy(m, p),
      translateEndpoints: (m, names) => {
        const out = base.translateEndpoints(m, names);
        return hold ? { ...out, endpoints: out.endpoints.filter((e) => e.name !== name) } : out;
      },
    },
    release: () => {
      hold = false;
    },
  };
}

for (const routesWait of [true, false]) {
  test(routesWait
    ? 'a cluster added after start warms until its assignment (warming gauge, config_dump, /clusters, CDS ACK held); the route to it waits for the CDS ACK, so no request meets it cold'
    : 'a route that names a cluster still warming (a control plane that does not wait, as Istio) gets 503 NC, with no body, until the assignment comes', { timeout: 30_000 }, async () => {
    const held = holdingBack(NEW);
    const mesh = await TestMesh.start({ translator: held.translator, ...(routesWait ? {} : { routesWaitMs: 0 }) });
    closers.push(() => mesh.close());
    const old = await startApp('svc');
    const fresh = await startApp('fresh');
    mesh.track(() => old.close());
    mesh.track(() => fresh.close());
    mesh.model.update({ services: [service('client', 8000), service('svc', 7000)], instances: [instance('svc', old.port)] });
    const client = await mesh.sidecar('client', 8000, { sotw: true });
    assert.equal((await get(client.outboundPort, 'svc')).status, 200);
    assert.equal(await metric(client.adminPort, 'envoy_cluster_manager_warming_clusters'), 0);
    const activeBefore = await metric(client.adminPort, 'envoy_cluster_manager_active_clusters');
    const acked = () => mesh.xds.status.get(client.nodeId)!.ackedVersions;
    const cdsBefore = acked()[TypeUrl.cluster];
    const rdsBefore = acked()[TypeUrl.route];

    mesh.model.update({ services: [service('client', 8000), service('svc', 7000), service('fresh', 7100)], instances: [instance('svc', old.port), instance('fresh', fresh.port)] });
    await eventually(async () => (await metric(client.adminPort, 'envoy_cluster_manager_warming_clusters')) === 1, 5000, 'the new cluster warming');
    if (routesWait) {
      // The server holds the route back until the CDS response is answered, which the sidecar does once the cluster
      // has warmed (as Envoy pauses CDS meanwhile): no route to fresh yet, so 404 NR, not a 503 from a cold cluster.
      await new Promise((r) => setTimeout(r, 300));
      assert.equal((await get(client.outboundPort, 'fresh')).status, 404);
      assert.equal(acked()[TypeUrl.route], rdsBefore, 'the route waits for the cluster');
    } else {
      // Once its route is there (404 NR before), the route names a cluster that is still warming.
      await eventually(async () => (await get(client.outboundPort, 'fresh')).status !== 404, 5000, 'the route to fresh');
      const warming = await get(client.outboundPort, 'fresh');
      assert.equal(warming.status, 503);
      assert.equal(warming.body, '', "Envoy's cluster_not_found reply has no body (not 'no healthy upstream')");
      assert.ok((await metric(client.adminPort, 'envoy_http_no_cluster')) >= 1);
      await eventually(() => acked()[TypeUrl.route] !== rdsBefore, 5000, 'the new routes ACKed');
    }
    assert.equal(fresh.hits, 0);
    assert.equal(await metric(client.adminPort, 'envoy_cluster_manager_active_clusters'), activeBefore);
    assert.match((await get(client.adminPort, 'admin', '/stats?filter=warming')).body, /^cluster_manager\.warming_clusters: 1$/m);
    const dump = async () => JSON.parse((await get(client.adminPort, 'admin', '/config_dump')).body).configs.find((c: Json) => c['@type'].endsWith('ClustersConfigDump')) as Json;
    let clusters = await dump();
    assert.deepEqual(clusters.dynamic_warming_clusters.map((c: Json) => c.cluster.name), [NEW]);
    assert.ok(!clusters.dynamic_active_clusters.some((c: Json) => c.cluster?.name === NEW));
    assert.doesNotMatch((await get(client.adminPort, 'admin', '/clusters')).body, /fresh/);
    // As Envoy pauses CDS while a cluster warms: the clusters are not ACKed yet.
    assert.equal(acked()[TypeUrl.cluster], cdsBefore, 'the CDS ACK waits for the cluster to warm');
    assert.equal(mesh.xds.status.get(client.nodeId)!.status, 'STALE');

    held.release();
    mesh.model.update({ instances: [instance('svc', old.port), instance('fresh', fresh.port, { v: '2' })] });
    await eventually(async () => (await get(client.outboundPort, 'fresh')).status === 200, 5000, 'fresh served once its assignment came');
    assert.ok(fresh.hits >= 1);
    assert.equal(await metric(client.adminPort, 'envoy_cluster_manager_warming_clusters'), 0);
    assert.equal(await metric(client.adminPort, 'envoy_cluster_manager_active_clusters'), activeBefore + 1);
    clusters = await dump();
    assert.deepEqual(clusters.dynamic_warming_clusters, []);
    assert.ok(clusters.dynamic_active_clusters.some((c: Json) => c.cluster?.name === NEW));
    assert.match((await get(client.adminPort, 'admin', '/clusters')).body, /fresh/);
    await eventually(() => acked()[TypeUrl.cluster] !== cdsBefore, 5000, 'the CDS ACK sent once the cluster is warm');
    await eventually(() => acked()[TypeUrl.route] !== rdsBefore, 5000, 'the route ACKed');
  });
}

// The golden minimal-http config, applied straight to a data plane.
const golden = (file: string): { name: string; value: Json }[] => JSON.parse(readFileSync(new URL(`../golden/minimal-http/${file}`, import.meta.url), 'utf8'));
const resources = (file: string, version = 'v1', listener = false) =>
  golden(file).map((r) => ({ name: r.name, version, value: listener ? { ...r.value, address: { socket_address: { address: '127.0.0.1', port_value: 0 } } } : r.value }));

async function started(): Promise<{ dp: DataPlane; stats: SidecarStats }> {
  const stats = new SidecarStats();
  const dp = new DataPlane(stats, { node: { id: 'web-1', cluster: 'web' } });
  assert.deepEqual(await dp.apply('cluster', resources('clusters.json'), [], true), { errors: [] });
  assert.deepEqual(await dp.apply('listener', resources('listeners.json', 'v1', true), [], true), { errors: [] });
  assert.deepEqual(await dp.apply('route', resources('routes.json'), [], false), { errors: [] });
  assert.deepEqual(await dp.apply('endpoint', resources('endpoints.json'), [], false), { errors: [] });
  assert.equal(dp.ready(), true);
  return { dp, stats };
}

/** The golden clusters with one EDS cluster moved to another assignment (`service_name`), its eds_config given `extra`. */
function moved(name: string, serviceName: string, extra: Json = {}) {
  return resources('clusters.json', 'v2').map((r) => {
    if (r.name !== name) return r;
    const eds = (r.value as Json).eds_cluster_config ?? {};
    return { ...r, value: { ...r.value, eds_cluster_config: { ...eds, service_name: serviceName, eds_config: { ...(eds.eds_config ?? { ads: {} }), ...extra } } } };
  });
}

const edsCluster = (dp: DataPlane) => {
  const name = golden('clusters.json').find((c) => c.value.type === 'EDS' && golden('endpoints.json').some((e) => e.name === (c.value.eds_cluster_config?.service_name ?? c.name) && JSON.stringify(e.value).includes('socket_address')))?.name;
  assert.ok(name && dp.clusters.get(name)!.hosts.length > 0, 'the golden case has an EDS cluster with hosts');
  return name;
};

test('an updated cluster waiting for its new assignment keeps the previous version serving until it comes', async () => {
  const { dp, stats } = await started();
  try {
    const name = edsCluster(dp);
    const before = dp.clusters.get(name)!;
    const hosts = before.hosts.map((h) => h.key);
    assert.deepEqual(await dp.apply('cluster', moved(name, 'elsewhere'), [], true), { errors: [] });
    assert.equal(dp.clusters.get(name), before);
    assert.notEqual(before.config.edsServiceName, 'elsewhere', 'the previous version still routed to');
    assert.deepEqual(dp.clusters.get(name)!.hosts.map((h) => h.key), hosts);
    assert.equal(stats.warmingClusters.get(), 1);
    assert.ok(dp.wanted('endpoint').includes('elsewhere'), 'the new assignment is asked for');
    const dump = dp.configDump({ id: 'web-1', cluster: 'web' }).configs[1] as Json;
    assert.equal(dump.dynamic_active_clusters.find((c: Json) => c.cluster.name === name).version_info, 'v1');
    assert.equal(dump.dynamic_active_clusters.find((c: Json) => c.cluster.name === name).cluster.eds_cluster_config?.service_name, golden('clusters.json').find((c) => c.name === name)!.value.eds_cluster_config?.service_name);
    assert.deepEqual(dump.dynamic_warming_clusters.map((c: Json) => [c.cluster.name, c.version_info, c.cluster.eds_cluster_config.service_name]), [[name, 'v2', 'elsewhere']]);
    // The same CDS again (SotW resends everything) changes nothing.
    assert.deepEqual(await dp.apply('cluster', moved(name, 'elsewhere'), [], true), { errors: [] });
    assert.equal(stats.warmingClusters.get(), 1);
    assert.notEqual(dp.clusters.get(name)!.config.edsServiceName, 'elsewhere');

    const assignment = { name: 'elsewhere', version: 'v2', value: { cluster_name: 'elsewhere', endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: '127.0.0.9', port_value: 9 } } } }] }] } };
    assert.deepEqual(await dp.apply('endpoint', [assignment], [], false), { errors: [] });
    assert.equal(dp.clusters.get(name)!.config.edsServiceName, 'elsewhere', 'the new version took its place');
    assert.deepEqual(dp.clusters.get(name)!.hosts.map((h) => h.key), ['127.0.0.9:9']);
    assert.equal(stats.warmingClusters.get(), 0);
    const after = dp.configDump({ id: 'web-1', cluster: 'web' }).configs[1] as Json;
    assert.equal(after.dynamic_active_clusters.find((c: Json) => c.cluster.name === name).version_info, 'v2');
    assert.deepEqual(after.dynamic_warming_clusters, []);
  } finally {
    await dp.close();
  }
});

test('a warming cluster the control plane says has no assignment, or whose initial_fetch_timeout passes, becomes active without hosts', async () => {
  const { dp, stats } = await started();
  try {
    const name = edsCluster(dp);
    assert.deepEqual(await dp.apply('cluster', moved(name, 'absent'), [], true), { errors: [] });
    assert.equal(stats.warmingClusters.get(), 1);
    assert.deepEqual(await dp.apply('endpoint', [], ['absent'], false), { errors: [] });
    assert.equal(stats.warmingClusters.get(), 0);
    assert.deepEqual(dp.clusters.get(name)!.hosts, []);
    assert.equal(dp.clusters.get(name)!.config.edsServiceName, 'absent');

    assert.deepEqual(await dp.apply('cluster', moved(name, 'late', { initial_fetch_timeout: '0.05s' }), [], true), { errors: [] });
    assert.equal(stats.warmingClusters.get(), 1);
    assert.equal(dp.clusters.get(name)!.config.edsServiceName, 'absent');
    await eventually(() => stats.warmingClusters.get() === 0, 5000, 'warming ended by initial_fetch_timeout');
    assert.equal(dp.clusters.get(name)!.config.edsServiceName, 'late');
    assert.deepEqual(dp.clusters.get(name)!.hosts, []);

    // Bad input names its field and changes nothing.
    const bad = await dp.apply('cluster', moved(name, 'other', { initial_fetch_timeout: 'soon' }), [], true);
    assert.match(bad.errors.join('\n'), /eds_cluster_config\.eds_config\.initial_fetch_timeout: invalid duration/);
    assert.equal(dp.clusters.get(name)!.config.edsServiceName, 'late');
    assert.equal(stats.warmingClusters.get(), 0);
  } finally {
    await dp.close();
  }
});

test('a cluster changed but fed the same assignment warms until that assignment comes again, as Envoy needs (envoy#13009)', async () => {
  const { dp, stats } = await started();
  try {
    const name = edsCluster(dp);
    const timeout = (ms: string) => resources('clusters.json', 'v2').map((r) => (r.name === name ? { ...r, value: { ...r.value, connect_timeout: ms } } : r));
    const hosts = dp.clusters.get(name)!.hosts.map((h) => h.key);
    assert.deepEqual(await dp.apply('cluster', timeout('7s'), [], true), { errors: [] });
    assert.equal(stats.warmingClusters.get(), 1);
    assert.equal(dp.clusters.get(name)!.config.connectTimeoutMs, 1000, 'the previous version serving');
    assert.deepEqual(dp.clusters.get(name)!.hosts.map((h) => h.key), hosts);

    const eds = dp.clusters.get(name)!.config.edsServiceName!;
    assert.deepEqual(await dp.apply('endpoint', resources('endpoints.json', 'v1').filter((e) => e.name === eds), [], false), { errors: [] });
    assert.equal(stats.warmingClusters.get(), 0);
    assert.equal(dp.clusters.get(name)!.config.connectTimeoutMs, 7000);
    assert.deepEqual(dp.clusters.get(name)!.hosts.map((h) => h.key), hosts);
  } finally {
    await dp.close();
  }
});

/** The golden outbound listener as `name` (version `version`), reading its routes from `rds`. */
function outboundListener(name: string, rds: string, version: string, initialFetchTimeout?: string) {
  const l = resources('listeners.json', version, true).find((r) => r.name === 'outbound')!;
  const hcm = (l.value as Json).filter_chains[0].filters[0].typed_config;
  const configSource = initialFetchTimeout ? { ...hcm.rds.config_source, initial_fetch_timeout: initialFetchTimeout } : hcm.rds.config_source;
  const chains = [{ ...(l.value as Json).filter_chains[0], filters: [{ ...(l.value as Json).filter_chains[0].filters[0], typed_config: { ...hcm, rds: { ...hcm.rds, route_config_name: rds, config_source: configSource } } }] }];
  return { name, version, value: { ...(l.value as Json), name, filter_chains: chains } };
}
const listeners = (dp: DataPlane) => (dp.configDump({ id: 'web-1', cluster: 'web' }).configs.find((c) => String(c['@type']).endsWith('ListenersConfigDump')) as Json).dynamic_listeners as Json[];

test('a changed listener waiting for its route configuration keeps the previous version serving; a new one is bound once its routes come', async () => {
  const { dp, stats } = await started();
  try {
    const port = dp.listenerPort('outbound')!;
    // The golden route to web: a cluster without hosts.
    const web = async (p: number) => {
      const r = await get(p, 'web');
      return `${r.status} ${r.body}`;
    };
    assert.equal(await web(port), '503 no healthy upstream');

    const others = resources('listeners.json', 'v2', true).filter((r) => r.name !== 'outbound');
    assert.deepEqual(await dp.apply('listener', [...others, outboundListener('outbound', 'outbound-v2', 'v2'), outboundListener('extra', 'extra-routes', 'v2')], [], true), { errors: [] });
    assert.equal(dp.listenerPort('outbound'), port);
    assert.equal(await web(port), '503 no healthy upstream', 'the previous version, with its routes, serves');
    assert.equal(dp.listenerPort('extra'), undefined, 'a new listener is not bound while it warms');
    assert.equal(stats.listenersWarming.get(), 2);
    const outbound = listeners(dp).find((l) => l.name === 'outbound')!;
    assert.equal(outbound.active_state.version_info, 'v1');
    assert.equal(outbound.warming_state.version_info, 'v2');
    const extra = listeners(dp).find((l) => l.name === 'extra')!;
    assert.equal(extra.active_state, undefined);
    assert.equal(extra.warming_state.version_info, 'v2');
    assert.ok(dp.wanted('route').includes('outbound-v2') && dp.wanted('route').includes('extra-routes'), 'their routes are asked for');
    assert.deepEqual(dp.unready(), [...dp.wanted('route').filter((r) => r !== 'outbound').map((r) => `RDS route_configuration ${r}`)]);
    assert.equal(dp.ready(), true, 'warming does not take the sidecar out of ready');

    const renamed = (name: string) => resources('routes.json', 'v2').map((r) => ({ ...r, name, value: { ...r.value, name } }));
    assert.deepEqual(await dp.apply('route', [...renamed('outbound-v2'), ...renamed('extra-routes')], [], false), { errors: [] });
    assert.equal(stats.listenersWarming.get(), 0);
    const extraPort = dp.listenerPort('extra');
    assert.ok(extraPort);
    assert.equal(await web(extraPort), '503 no healthy upstream');
    assert.equal(listeners(dp).find((l) => l.name === 'outbound')!.active_state.version_info, 'v2');
    assert.equal(listeners(dp).find((l) => l.name === 'outbound')!.warming_state, undefined);
  } finally {
    await dp.close();
  }
});

test("a warming listener whose route configuration does not come by its RDS initial_fetch_timeout serves without it (404 NR), as Envoy's", async () => {
  const { dp, stats } = await started();
  try {
    const all = resources('listeners.json', 'v2', true);
    assert.deepEqual(await dp.apply('listener', [...all, outboundListener('extra', 'never', 'v2', '0.05s')], [], true), { errors: [] });
    assert.equal(dp.listenerPort('extra'), undefined);
    await eventually(() => stats.listenersWarming.get() === 0, 5000, 'warming ended by initial_fetch_timeout');
    const port = dp.listenerPort('extra');
    assert.ok(port);
    const r = await get(port, 'web');
    assert.equal(r.status, 404);
    assert.equal(listeners(dp).find((l) => l.name === 'extra')!.active_state.version_info, 'v2');
  } finally {
    await dp.close();
  }
});

test('a cluster CDS removes while it warms is gone, with its series', async () => {
  const { dp, stats } = await started();
  try {
    const name = edsCluster(dp);
    const all = resources('clusters.json', 'v2');
    const extra = { ...all.find((r) => r.name === name)!, name: 'outbound|9|gone|reviews.default' };
    extra.value = { ...extra.value, name: extra.name, eds_cluster_config: { ...(extra.value as Json).eds_cluster_config, service_name: extra.name } };
    assert.deepEqual(await dp.apply('cluster', [...all, extra], [], true), { errors: [] });
    assert.equal(stats.warmingClusters.get(), 1);
    assert.match(stats.registry.metrics(), /envoy_cluster_name="outbound\|9\|gone\|reviews\.default"/);
    // A refused update of it is shown next to the version warming, as for an active one.
    const refused = { ...extra, version: 'v3', value: { ...extra.value, connect_timeout: 'soon' } };
    assert.equal((await dp.apply('cluster', [...all, refused], [], true)).errors.length, 1);
    const warming = (dp.configDump({ id: 'web-1', cluster: 'web' }).configs[1] as Json).dynamic_warming_clusters as Json[];
    assert.deepEqual(warming.map((c) => [c.cluster.name, c.version_info, c.client_status, c.error_state?.version_info]), [[extra.name, 'v2', 'NACKED', 'v3']]);
    assert.deepEqual(await dp.apply('cluster', all, [], true), { errors: [] });
    assert.equal(stats.warmingClusters.get(), 0);
    assert.equal(dp.clusters.get(extra.name), undefined);
    assert.doesNotMatch(stats.registry.metrics(), /gone/);
    assert.ok(!dp.wanted('endpoint').includes(extra.name));
  } finally {
    await dp.close();
  }
});

test("at start a cluster is under warming_clusters until it initialized, as Envoy's cluster manager: not active, not in /clusters, config_dump's dynamic_warming_clusters; /ready waits for it", { timeout: 30_000 }, async () => {
  const held = holdingBack(NEW);
  const mesh = await TestMesh.start({ translator: held.translator });
  closers.push(() => mesh.close());
  const old = await startApp('svc');
  const fresh = await startApp('fresh');
  mesh.track(() => old.close());
  mesh.track(() => fresh.close());
  mesh.model.update({ services: [service('client', 8000), service('svc', 7000), service('fresh', 7100)], instances: [instance('svc', old.port), instance('fresh', fresh.port)] });
  const client = await mesh.sidecar('client', 8000, { sotw: true, wait: false });
  const awaited = async () => (JSON.parse((await get(client.adminPort, 'admin', '/init_dump')).body) as Json).unready_targets_dumps?.[0]?.target_names as string[] | undefined;
  await eventually(async () => JSON.stringify(await awaited()) === JSON.stringify([`EDS cluster_load_assignment ${NEW}`]), 10_000, 'all but the held assignment');
  assert.equal((await get(client.adminPort, 'admin', '/ready')).status, 503);
  assert.equal(await metric(client.adminPort, 'envoy_cluster_manager_warming_clusters'), 1);
  assert.match((await get(client.adminPort, 'admin', '/stats?filter=cluster_manager')).body, /^cluster_manager\.warming_clusters: 1$/m);
  const dump = async () => JSON.parse((await get(client.adminPort, 'admin', '/config_dump')).body).configs.find((c: Json) => c['@type'].endsWith('ClustersConfigDump')) as Json;
  let clusters = await dump();
  assert.deepEqual(clusters.dynamic_warming_clusters.map((c: Json) => c.cluster.name), [NEW]);
  assert.ok(!clusters.dynamic_active_clusters.some((c: Json) => c.cluster?.name === NEW));
  const active = clusters.dynamic_active_clusters.length;
  // The bootstrap's xds_cluster is active from the start; the CDS clusters as they initialize.
  assert.equal(await metric(client.adminPort, 'envoy_cluster_manager_active_clusters'), active + 1);
  assert.doesNotMatch((await get(client.adminPort, 'admin', '/clusters')).body, /fresh/);
  assert.ok(!JSON.parse((await get(client.adminPort, 'admin', '/clusters?format=json')).body).cluster_statuses.some((c: Json) => c.name === NEW));
  assert.match((await get(client.adminPort, 'admin', '/clusters')).body, /svc\.default::/);

  held.release();
  mesh.model.update({ instances: [instance('svc', old.port), instance('fresh', fresh.port, { v: '2' })] });
  await withTimeout(client.ready, 10_000, 'ready once the assignment came');
  assert.equal(await metric(client.adminPort, 'envoy_cluster_manager_warming_clusters'), 0);
  assert.equal(await metric(client.adminPort, 'envoy_cluster_manager_active_clusters'), active + 2);
  clusters = await dump();
  assert.deepEqual(clusters.dynamic_warming_clusters, []);
  assert.ok(clusters.dynamic_active_clusters.some((c: Json) => c.cluster?.name === NEW));
  assert.match((await get(client.adminPort, 'admin', '/clusters')).body, /fresh\.default::/);
  assert.equal((await get(client.outboundPort, 'fresh')).status, 200);
});

test("a new cluster whose assignment the sidecar already holds (another cluster's) warms until a response for it, as Envoy's EDS cluster; on its initial_fetch_timeout it takes the held one", async () => {
  const { dp, stats } = await started();
  try {
    const name = edsCluster(dp);
    const eds = dp.clusters.get(name)!.config.edsServiceName!;
    const hosts = dp.clusters.get(name)!.hosts.map((h) => h.key);
    // A second cluster reading the same ClusterLoadAssignment.
    const twin = (clusterName: string, extra: Json = {}) => {
      const base = resources('clusters.json', 'v2').find((r) => r.name === name)!;
      const value = base.value as Json;
      return { name: clusterName, version: 'v2', value: { ...value, name: clusterName, eds_cluster_config: { ...value.eds_cluster_config, service_name: eds, eds_config: { ...(value.eds_cluster_config?.eds_config ?? { ads: {} }), ...extra } } } };
    };
    const TWIN = 'outbound|9|twin|reviews.default';
    assert.deepEqual(await dp.apply('cluster', [...resources('clusters.json', 'v2'), twin(TWIN)], [], true), { errors: [] });
    assert.equal(stats.warmingClusters.get(), 1);
    assert.equal(dp.clusters.get(TWIN), undefined, 'not active on the assignment it holds');
    assert.deepEqual((dp.configDump({ id: 'web-1', cluster: 'web' }).configs[1] as Json).dynamic_warming_clusters.map((c: Json) => c.cluster.name), [TWIN]);
    // The control plane's next response for the name (unchanged, as weft resends it) ends the wait.
    assert.deepEqual(await dp.apply('endpoint', resources('endpoints.json', 'v1').filter((e) => e.name === eds), [], false), { errors: [] });
    assert.equal(stats.warmingClusters.get(), 0);
    assert.deepEqual(dp.clusters.get(TWIN)!.hosts.map((h) => h.key), hosts);

    // Without one, its eds_config's initial_fetch_timeout ends it, with the assignment held (Envoy's EDS resources cache).
    const LATE = 'outbound|9|late|reviews.default';
    assert.deepEqual(await dp.apply('cluster', [...resources('clusters.json', 'v2'), twin(TWIN), twin(LATE, { initial_fetch_timeout: '0.05s' })], [], true), { errors: [] });
    assert.equal(stats.warmingClusters.get(), 1);
    assert.equal(dp.clusters.get(LATE), undefined);
    await eventually(() => stats.warmingClusters.get() === 0, 5000, 'warming ended by initial_fetch_timeout');
    assert.deepEqual(dp.clusters.get(LATE)!.hosts.map((h) => h.key), hosts);
  } finally {
    await dp.close();
  }
});

test('a cluster CDS removes and later adds again does not come back with the hosts it had: its assignment went with it, as Envoy drops an EDS resource no cluster watches', async () => {
  const { dp } = await started();
  try {
    const name = edsCluster(dp);
    const eds = dp.clusters.get(name)!.config.edsServiceName!;
    assert.deepEqual(await dp.apply('cluster', resources('clusters.json', 'v2').filter((r) => r.name !== name), [], true), { errors: [] });
    assert.equal(dp.clusters.get(name), undefined);
    assert.ok(!dp.wanted('endpoint').includes(eds), 'its EDS subscription ends');
    // Back, and no assignment comes for it before its initial_fetch_timeout: it starts without hosts. Before, it took
    // the assignment held since its removal, hosts that may be long gone (kept, one piled up per service that came
    // and went: bench:soak).
    assert.deepEqual(await dp.apply('cluster', moved(name, eds, { initial_fetch_timeout: '0.05s' }), [], true), { errors: [] });
    assert.equal(dp.clusters.get(name), undefined, 'it warms first');
    await eventually(() => dp.clusters.get(name) !== undefined, 5000, 'warming ended by initial_fetch_timeout');
    assert.deepEqual(dp.clusters.get(name)!.hosts.map((h) => h.key), []);
  } finally {
    await dp.close();
  }
});
