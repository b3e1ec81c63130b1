// A cluster with active health checks initializes, as Envoy's
// (ClusterImplBase::onInitDone), only once its hosts' first round of checks
// has completed, passed or failed: at start the sidecar is not ready until
// then (/ready 503 PRE_INITIALIZING, /init_dump says why), and a cluster CDS
// adds or changes later warms until then (503 NC, warming_clusters, the CDS
// ACK held), its previous version serving. A changed cluster is a new cluster
// (ClusterManagerImpl::addOrUpdateCluster): its hosts start afresh, outlier
// ejections included. cluster_manager.active_clusters counts the bootstrap's
// xds_cluster too.

import assert from 'node:assert/strict';
import type http from 'node:http';
import { after, test } from 'node:test';
import { TypeUrl } from '../../control/xds/index.ts';
import type { HttpHealthCheck } from '../../control/model/types.ts';
import { healthFlags } from '../../sidecar/admin-clusters.ts';
import { Cluster } from '../../sidecar/clusters.ts';
import { DataPlane } from '../../sidecar/dataplane.ts';
import { accept } from '../../sidecar/fidelity.ts';
import { SidecarStats } from '../../sidecar/stats.ts';
import { TestMesh, clusterConfig, eventually, freePort, get, healthCheckConfig, instance, metric, policy, service, startApp, withTimeout } from './harness.ts';

const closers: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of closers.reverse()) await c();
});

type Json = Record<string, any>;

/** An app whose health checks are held unanswered until release(); `served` counts its other requests. */
async function gatedApp(name: string) {
  const held: http.ServerResponse[] = [];
  let open = false;
  const state = { held, served: 0, checks: 0, release: () => undefined as void };
  const app = await startApp(name, (req, res) => {
    if (req.url === '/healthz') {
      state.checks++;
      if (open) res.end('ok');
      else held.push(res);
      return;
    }
    state.served++;
    res.end(name);
  });
  state.release = () => {
    open = true;
    for (const res of held.splice(0)) res.end('ok');
  };
  closers.push(() => app.close());
  return Object.assign(state, { port: app.port });
}

// A check that waits far longer than any test step: only its answer ends it.
const slowCheck: HttpHealthCheck = { path: '/healthz', intervalMs: 60_000, timeoutMs: 30_000, healthyThreshold: 1, unhealthyThreshold: 1 };
const initDump = async (adminPort: number) => (await get(adminPort, 'admin', '/init_dump')).body;

test("at start the sidecar is not ready until its health-checked clusters' first round completed; a host that fails it does not hold it up", { timeout: 60_000 }, async () => {
  const checked = await gatedApp('checked');
  const nobody = await freePort();
  const mesh = await TestMesh.start();
  closers.push(() => mesh.close());
  mesh.model.update({
    services: [service('caller', 8000), service('checked', 7000), service('down', 7100)],
    instances: [instance('checked', checked.port), instance('down', nobody)],
    destinationPolicies: [policy('checked', { healthCheck: slowCheck }), policy('down', { healthCheck: { ...slowCheck, timeoutMs: 1000 } })],
  });
  const caller = await mesh.sidecar('caller', 8000, { wait: false });
  await eventually(() => checked.held.length >= 1, 15_000, 'the first check of checked');
  // Everything else is there; the one check still running is all it waits for.
  await eventually(async () => !/EDS|RDS|LDS|CDS|down/.test(await initDump(caller.adminPort)), 15_000, 'everything but the checks held');
  const waiting = await get(caller.adminPort, 'admin', '/ready');
  assert.equal(waiting.status, 503);
  assert.match(waiting.body, /PRE_INITIALIZING/);
  assert.match(await initDump(caller.adminPort), /health checks: cluster outbound\|7000\|\|checked\.default, its hosts' first round \(1 checks to complete\)/);
  assert.equal(await metric(caller.adminPort, 'envoy_server_live'), 0);
  assert.equal(checked.served, 0);
  // As Envoy's cluster manager at start: under warming_clusters until its round completed, not in /clusters.
  assert.equal(await metric(caller.adminPort, 'envoy_cluster_manager_warming_clusters'), 1);
  assert.doesNotMatch((await get(caller.adminPort, 'admin', '/clusters')).body, /checked\.default::/);
  assert.match((await get(caller.adminPort, 'admin', '/clusters')).body, /down\.default::/);

  checked.release();
  await withTimeout(caller.ready, 15_000, 'ready once the round completed');
  assert.equal((await get(caller.adminPort, 'admin', '/ready')).status, 200);
  assert.equal(await initDump(caller.adminPort), '{}\n');
  assert.equal(await metric(caller.adminPort, 'envoy_cluster_manager_warming_clusters'), 0);
  const r = await get(caller.outboundPort, 'checked');
  assert.equal(r.status, 200);
  assert.equal(r.body, 'checked');
  // The host nobody listens on failed its first check: initialization went on, with it unhealthy.
  assert.match((await get(caller.adminPort, 'admin', '/clusters')).body, /outbound\|7100\|\|down\.default::127\.0\.0\.1:\d+::health_flags::\/failed_active_hc/);

  // Envoy's active_clusters counts the bootstrap's xds_cluster with the CDS ones.
  const dump = JSON.parse((await get(caller.adminPort, 'admin', '/config_dump')).body).configs.find((c: Json) => c['@type'].endsWith('ClustersConfigDump')) as Json;
  const cds = dump.dynamic_active_clusters.length;
  assert.ok(cds >= 3);
  assert.match((await get(caller.adminPort, 'admin', '/stats?filter=active_clusters')).body, new RegExp(`^cluster_manager\\.active_clusters: ${cds + 1}$`, 'm'));
  assert.equal(await metric(caller.adminPort, 'envoy_cluster_manager_active_clusters'), cds + 1);
});

// The route to a cluster CDS added waits for the CDS ACK, which waits for the cluster's first round of checks:
// held here, the route comes when the wait runs out (routesWaitMs, 15 s by default: 3 s here), the cluster still warming.
test("a health-checked cluster added after start warms through its hosts' first round: 503 NC meanwhile, never a host no check has passed", { timeout: 60_000 }, async () => {
  const svc = await startApp('svc');
  const fresh = await gatedApp('fresh');
  const mesh = await TestMesh.start({ routesWaitMs: 3000 });
  closers.push(() => mesh.close());
  mesh.track(() => svc.close());
  mesh.model.update({ services: [service('client', 8000), service('svc', 7000)], instances: [instance('svc', svc.port)] });
  const client = await mesh.sidecar('client', 8000, { sotw: true });
  const acked = () => mesh.xds.status.get(client.nodeId)!.ackedVersions;
  const cdsBefore = acked()[TypeUrl.cluster];

  mesh.model.update({
    services: [service('client', 8000), service('svc', 7000), service('fresh', 7300)],
    instances: [instance('svc', svc.port), instance('fresh', fresh.port)],
    destinationPolicies: [policy('fresh', { healthCheck: slowCheck })],
  });
  // Its assignment came (the new cluster checks its host); the route to it waits for the CDS ACK, then for no more than routesWaitMs.
  await eventually(() => fresh.held.length >= 1, 15_000, "the new cluster's first check");
  assert.equal((await get(client.outboundPort, 'fresh')).status, 404, 'no route yet: the CDS response that added fresh is unanswered');
  await eventually(async () => (await get(client.outboundPort, 'fresh')).status !== 404, 15_000, 'the route to fresh');
  const warming = await get(client.outboundPort, 'fresh');
  assert.equal(warming.status, 503);
  assert.equal(warming.body, '', "Envoy's cluster_not_found (NC), not a request to a host no check has passed");
  assert.equal(fresh.served, 0);
  assert.equal(await metric(client.adminPort, 'envoy_cluster_manager_warming_clusters'), 1);
  assert.match(await initDump(client.adminPort), /health checks: cluster outbound\|7300\|\|fresh\.default/);
  assert.equal(acked()[TypeUrl.cluster], cdsBefore, 'the CDS ACK waits for the cluster to warm');
  assert.equal((await get(client.adminPort, 'admin', '/ready')).status, 200, 'warming after start leaves the sidecar ready');

  fresh.release();
  await eventually(async () => (await get(client.outboundPort, 'fresh')).status === 200, 15_000, 'fresh served once its first check passed');
  assert.ok(fresh.served >= 1);
  assert.equal(await metric(client.adminPort, 'envoy_cluster_manager_warming_clusters'), 0);
  await eventually(() => acked()[TypeUrl.cluster] !== cdsBefore, 15_000, 'the CDS ACK sent once the cluster is warm');
});

// A cluster of one host at `port` (127.0.0.1), EDS-fed, outlier detection ejecting at the first 5xx.
const NAME = 'outbound|7400||changed.default';
const clusterResource = (version: string, connectTimeout: string, healthChecks?: Json[]) => ({
  name: NAME,
  version,
  value: {
    name: NAME,
    type: 'EDS',
    eds_cluster_config: { eds_config: { ads: {}, initial_fetch_timeout: '0s', resource_api_version: 'V3' }, service_name: NAME },
    connect_timeout: connectTimeout,
    outlier_detection: { consecutive_5xx: 1, interval: '10s', base_ejection_time: '30s', max_ejection_percent: 100 },
    ...(healthChecks ? { health_checks: healthChecks } : {}),
  },
});
const assignment = (version: string, port: number) => ({
  name: NAME,
  version,
  value: { cluster_name: NAME, endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: port } } } }] }] },
});
const listener = { name: 'outbound', version: 'v1', value: { name: 'outbound', address: { socket_address: { address: '127.0.0.1', port_value: 0 } }, filter_chains: [{ filters: [{ name: 'envoy.filters.network.tcp_proxy', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy', stat_prefix: 'changed', cluster: NAME } }] }] } };

test('a changed cluster is a new one: its hosts start afresh (an ejection ends), and with health checks it warms through their first round, the previous version serving', { timeout: 60_000 }, async () => {
  const app = await gatedApp('changed');
  const stats = new SidecarStats();
  const dp = new DataPlane(stats, { node: { id: 'web-1', cluster: 'web' } });
  closers.push(() => dp.close());
  assert.deepEqual(await dp.apply('cluster', [clusterResource('v1', '1s')], [], true), { errors: [] });
  assert.deepEqual(await dp.apply('listener', [listener], [], true), { errors: [] });
  assert.deepEqual(await dp.apply('endpoint', [assignment('v1', app.port)], [], false), { errors: [] });
  assert.equal(dp.ready(), true);

  const first = dp.clusters.get(NAME)!;
  first.recordResult(first.hosts[0]!, 503);
  assert.equal(first.isEjected(first.hosts[0]!), true, 'ejected at its first 5xx');
  assert.equal(stats.ejectionsActive.get(stats.clusterLabel(NAME)), 1);

  // Changed: it warms until the next assignment, then is a new cluster whose host was never ejected.
  assert.deepEqual(await dp.apply('cluster', [clusterResource('v2', '2s')], [], true), { errors: [] });
  assert.equal(dp.clusters.get(NAME), first, 'the previous version serves while it warms');
  assert.deepEqual(await dp.apply('endpoint', [assignment('v2', app.port)], [], false), { errors: [] });
  const second = dp.clusters.get(NAME)!;
  assert.notEqual(second, first);
  assert.equal(second.config.connectTimeoutMs, 2000);
  assert.equal(second.usableHosts().length, 1, 'the new cluster has the host in');
  assert.equal(second.isEjected(second.hosts[0]!), false);
  assert.equal(stats.ejectionsActive.get(stats.clusterLabel(NAME)), 0);

  // Changed again, now with a health check: after its assignment it warms until the check answers.
  const hc = { timeout: '30s', interval: '60s', healthy_threshold: 1, unhealthy_threshold: 1, http_health_check: { path: '/healthz' } };
  assert.deepEqual(await dp.apply('cluster', [clusterResource('v3', '2s', [hc])], [], true), { errors: [] });
  assert.deepEqual(await dp.apply('endpoint', [assignment('v3', app.port)], [], false), { errors: [] });
  await eventually(() => app.held.length >= 1, 15_000, "the new cluster's first check");
  assert.equal(dp.clusters.get(NAME), second, 'the previous version serves through the first round');
  assert.equal(stats.warmingClusters.get(), 1);
  const warmingDump = (dp.configDump({ id: 'web-1', cluster: 'web' }).configs[1] as Json).dynamic_warming_clusters as Json[];
  assert.deepEqual(warmingDump.map((c) => c.version_info), ['v3']);
  app.release();
  await eventually(() => stats.warmingClusters.get() === 0, 15_000, 'warm once its first check passed');
  const third = dp.clusters.get(NAME)!;
  assert.notEqual(third, second);
  assert.equal(third.hosts[0]!.activeHealthy, true);
  assert.equal(third.usableHosts().length, 1);
});

test('a STATIC cluster with health checks added after start warms through its first round too', { timeout: 60_000 }, async () => {
  const app = await gatedApp('static');
  const stats = new SidecarStats();
  const dp = new DataPlane(stats, { node: { id: 'web-1', cluster: 'web' } });
  closers.push(() => dp.close());
  assert.deepEqual(await dp.apply('cluster', [clusterResource('v1', '1s')], [], true), { errors: [] });
  assert.deepEqual(await dp.apply('listener', [listener], [], true), { errors: [] });
  assert.deepEqual(await dp.apply('endpoint', [assignment('v1', app.port)], [], false), { errors: [] });
  assert.equal(dp.ready(), true);

  const name = 'static|checked';
  const hc = { timeout: '30s', interval: '60s', healthy_threshold: 1, unhealthy_threshold: 1, http_health_check: { path: '/healthz' } };
  const staticCluster = {
    name,
    version: 'v2',
    value: { name, type: 'STATIC', connect_timeout: '1s', health_checks: [hc], load_assignment: { cluster_name: name, endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: app.port } } } }] }] } },
  };
  assert.deepEqual(await dp.apply('cluster', [clusterResource('v1', '1s'), staticCluster], [], true), { errors: [] });
  await eventually(() => app.held.length >= 1, 15_000, 'its first check');
  assert.equal(dp.clusters.get(name), undefined, 'not routed to while it warms');
  assert.equal(stats.warmingClusters.get(), 1);
  app.release();
  await eventually(() => dp.clusters.get(name) !== undefined, 15_000, 'active once the round completed');
  assert.equal(stats.warmingClusters.get(), 0);
  assert.equal(dp.clusters.get(name)!.usableHosts().length, 1);
});

test('ignore_new_hosts_until_first_hc: hosts EDS adds are left out of the host count until their first check, so they do not tip the cluster into panic', { timeout: 60_000 }, async () => {
  const raw = { ...clusterResource('v1', '1s').value, common_lb_config: { ignore_new_hosts_until_first_hc: true } };
  const accepted = accept('cluster', raw);
  assert.ok(accepted.ok, 'accepted');
  assert.equal((accepted.value as { ignoreNewHostsUntilFirstHc?: boolean }).ignoreNewHostsUntilFirstHc, true);

  const first = await startApp('first', (_req, res) => res.end('ok'));
  closers.push(() => first.close());
  const added = [await gatedApp('b'), await gatedApp('c'), await gatedApp('d')];
  const ep = (port: number) => ({ address: '127.0.0.1', port, health: 'HEALTHY' as const, weight: 1, priority: 0 });
  const cluster = new Cluster(clusterConfig({ name: 'pending', edsServiceName: 'pending', healthChecks: [healthCheckConfig({ timeoutMs: 30_000 })], ignoreNewHostsUntilFirstHc: true }), new SidecarStats());
  closers.push(async () => cluster.close());
  const usable = () => cluster.usableHosts().map((h) => h.port).sort();
  cluster.setEndpoints([ep(first.port)]);
  await eventually(() => usable().length === 1, 15_000, 'the first host in after its check');

  cluster.setEndpoints([ep(first.port), ...added.map((a) => ep(a.port))]);
  await eventually(() => added.every((a) => a.held.length >= 1), 15_000, "the new hosts' first checks");
  // Without the option 1 healthy host of 4 is below the 50% panic threshold, and panic would send to the unchecked ones.
  assert.equal(cluster.hostSets().panic, false);
  assert.deepEqual(usable(), [first.port]);
  const flags = cluster.hosts.map((h) => healthFlags(cluster, h));
  assert.deepEqual(flags, ['healthy', '/failed_active_hc/pending_active_hc', '/failed_active_hc/pending_active_hc', '/failed_active_hc/pending_active_hc']);

  for (const a of added) a.release();
  await eventually(() => usable().length === 4, 15_000, 'in once their first checks passed');
  assert.deepEqual(cluster.hosts.map((h) => healthFlags(cluster, h)), ['healthy', 'healthy', 'healthy', 'healthy']);
});

test('a host left out until its first check is in at once when the cluster no longer has health checks', { timeout: 60_000 }, async () => {
  const app = await gatedApp('unchecked');
  const config = clusterConfig({ name: 'dropped', edsServiceName: 'dropped', healthChecks: [healthCheckConfig({ timeoutMs: 30_000 })], ignoreNewHostsUntilFirstHc: true });
  const cluster = new Cluster(config, new SidecarStats());
  closers.push(async () => cluster.close());
  cluster.setEndpoints([{ address: '127.0.0.1', port: app.port, health: 'HEALTHY', weight: 1, priority: 0 }]);
  await eventually(() => app.held.length >= 1, 15_000, 'its first check');
  assert.equal(healthFlags(cluster, cluster.hosts[0]!), '/failed_active_hc/pending_active_hc');
  cluster.update({ ...config, healthChecks: [] });
  assert.equal(healthFlags(cluster, cluster.hosts[0]!), 'healthy');
  assert.deepEqual(cluster.usableHosts().map((h) => h.port), [app.port]);
});
