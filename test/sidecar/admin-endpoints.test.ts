// /config_dump?include_eds as Envoy's ConfigDumpHandler::dumpEndpointConfigs
// writes it: one ClusterLoadAssignment per cluster (STATIC ones too), rebuilt
// from the hosts the cluster has now, each with the health Envoy's host
// reports (an ejected or check-failing host is UNHEALTHY whatever EDS said),
// placed after the ECDS dump and before the listeners.

import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { clustersJson, clustersText } from '../../sidecar/admin-clusters.ts';
import { endpointsConfigDump } from '../../sidecar/admin-endpoints.ts';
import { ClusterManager } from '../../sidecar/clusters.ts';
import { ENVOY_OUTLIER_DEFAULTS, type EndpointConfig } from '../../sidecar/config.ts';
import { SidecarStats } from '../../sidecar/stats.ts';
import { TestMesh, clusterConfig, freePort, get, instance, service, startApp } from './harness.ts';

type Json = Record<string, any>;

const closers: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of closers.reverse()) await c();
});

const ep = (port: number, extra: Partial<EndpointConfig> = {}): EndpointConfig => ({ address: '127.0.0.1', port, health: 'HEALTHY', weight: 1, priority: 0, ...extra });

test('each cluster\'s endpoints as its hosts are now: an ejected host UNHEALTHY, EDS DEGRADED and DRAINING as Envoy\'s coarse health, by priority and locality; STATIC clusters too', () => {
  const cm = new ClusterManager(new SidecarStats());
  try {
    cm.applyClusters(
      new Map([
        ['outbound|80||web', clusterConfig({ name: 'outbound|80||web', edsServiceName: 'outbound|80||web', outlierDetection: { ...ENVOY_OUTLIER_DEFAULTS, maxEjectionPercent: 100 } })],
        ['inbound|9000||web', clusterConfig({ name: 'inbound|9000||web', type: 'STATIC', edsServiceName: undefined, staticEndpoints: [ep(9000)] })],
      ]),
    );
    cm.applyEndpoints('outbound|80||web', [ep(8001, { zone: 'a', weight: 3 }), ep(8002, { zone: 'a', health: 'DEGRADED' }), ep(8003, { zone: 'b', health: 'DRAINING' }), ep(8004, { priority: 1, hostname: 'backup.web' })], {
      overprovisioningFactor: 200,
      weightedPriorityHealth: false,
    });
    const web = cm.get('outbound|80||web')!;
    // Five 5xx in a row from 8001: ejected (consecutive_5xx), though EDS says HEALTHY.
    for (let i = 0; i < 5; i++) web.recordResult(web.hosts[0]!, 503);
    assert.ok(web.isEjected(web.hosts[0]!));

    const eds = (name: string): Json => (name === 'outbound|80||web' ? { version_info: 'v7', last_updated: '2026-11-27T10:00:00.000Z' } : {});
    const dump = endpointsConfigDump(cm, eds) as Json;
    assert.equal(dump['@type'], 'type.googleapis.com/envoy.admin.v3.EndpointsConfigDump');
    assert.deepEqual(dump.dynamic_endpoint_configs, [
      {
        version_info: 'v7',
        endpoint_config: {
          '@type': 'type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment',
          cluster_name: 'outbound|80||web',
          endpoints: [
            {
              locality: { zone: 'a' },
              lb_endpoints: [
                { endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: 8001 } } }, health_status: 'UNHEALTHY', load_balancing_weight: 3 },
                { endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: 8002 } } }, health_status: 'DEGRADED', load_balancing_weight: 1 },
              ],
            },
            { locality: { zone: 'b' }, lb_endpoints: [{ endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: 8003 } } }, health_status: 'UNHEALTHY', load_balancing_weight: 1 }] },
            {
              locality: {},
              lb_endpoints: [{ endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: 8004 } }, hostname: 'backup.web' }, health_status: 'HEALTHY', load_balancing_weight: 1 }],
              priority: 1,
            },
          ],
          policy: { overprovisioning_factor: 200 },
        },
        last_updated: '2026-11-27T10:00:00.000Z',
      },
      {
        // A STATIC cluster's hosts are dumped under its name, with no EDS version.
        endpoint_config: {
          '@type': 'type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment',
          cluster_name: 'inbound|9000||web',
          endpoints: [{ locality: {}, lb_endpoints: [{ endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: 9000 } } }, health_status: 'HEALTHY', load_balancing_weight: 1 }] }],
          policy: { overprovisioning_factor: 140 },
        },
      },
    ]);
  } finally {
    cm.close();
  }
});

test('an EDS cluster whose assignment was refused shows the refusal next to the hosts it keeps', () => {
  const cm = new ClusterManager(new SidecarStats());
  try {
    cm.applyClusters(new Map([['outbound|80||web', clusterConfig({ name: 'outbound|80||web', edsServiceName: 'outbound|80||web' })]]));
    // Initialized (an empty assignment): a cluster still warming is not dumped, as Envoy dumps only active_clusters_.
    cm.applyEndpoints('outbound|80||web', []);
    const refused = { error_state: { details: 'endpoints[0].lb_endpoints[0]: no address', version_info: 'v2', last_update_attempt: '2026-11-27T10:00:00.000Z' }, client_status: 'NACKED' };
    const dump = endpointsConfigDump(cm, () => refused) as Json;
    assert.deepEqual(dump.dynamic_endpoint_configs, [
      { endpoint_config: { '@type': 'type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment', cluster_name: 'outbound|80||web', endpoints: [], policy: { overprovisioning_factor: 140 } }, ...refused },
    ]);
  } finally {
    cm.close();
  }
});

test('through a running sidecar: include_eds puts EndpointsConfigDump where Envoy does, with the inbound STATIC cluster and the EDS version', { timeout: 30_000 }, async () => {
  const app = await startApp('web');
  closers.push(() => app.close());
  const mesh = await TestMesh.start();
  closers.push(() => mesh.close());
  const inbound = await freePort();
  mesh.model.update({ services: [service('web', 7000), service('api', 7100)], instances: [instance('web', inbound), instance('api', app.port)], routes: [] });
  const sc = await mesh.sidecar('web', app.port, { inboundPort: inbound });
  const dump = JSON.parse((await get(sc.adminPort, 'admin', '/config_dump?include_eds')).body) as { configs: Json[] };
  const types = dump.configs.map((c) => (c['@type'] as string).replace('type.googleapis.com/envoy.admin.v3.', ''));
  assert.deepEqual(types, ['BootstrapConfigDump', 'ClustersConfigDump', 'EcdsConfigDump', 'EndpointsConfigDump', 'ListenersConfigDump', 'RoutesConfigDump', 'SecretsConfigDump']);
  const items = dump.configs[3]!.dynamic_endpoint_configs as Json[];
  const byName = new Map(items.map((i) => [i.endpoint_config.cluster_name as string, i]));
  const inboundCluster = [...byName.keys()].find((n) => n.startsWith('inbound|'));
  assert.ok(inboundCluster, `the inbound STATIC cluster is there: ${[...byName.keys()].join(', ')}`);
  assert.equal(byName.get(inboundCluster)!.endpoint_config.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.port_value, app.port);
  const api = byName.get('outbound|7100||api.default')!;
  assert.match(api.version_info, /./, 'an EDS-fed assignment carries the version the sidecar runs');
  assert.deepEqual(api.endpoint_config.endpoints[0].lb_endpoints[0], { endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: app.port } } }, health_status: 'HEALTHY', load_balancing_weight: 1 });
  // Envoy's parameters still apply to it.
  const one = JSON.parse((await get(sc.adminPort, 'admin', '/config_dump?include_eds&resource=dynamic_endpoint_configs&name_regex=inbound.*&mask=endpoint_config.cluster_name')).body) as { configs: Json[] };
  assert.deepEqual(one.configs, [{ '@type': 'type.googleapis.com/envoy.admin.v3.EndpointsConfigDump.DynamicEndpointConfig', endpoint_config: { '@type': 'type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment', cluster_name: inboundCluster } }]);
});

test("admin /clusters: an endpoint's EDS hostname, and (JSON) failed_active_degraded_check for a host its check called degraded, as Envoy's ClustersHandler writes them", () => {
  const cm = new ClusterManager(new SidecarStats());
  try {
    cm.applyClusters(new Map([['c', clusterConfig({ name: 'c', edsServiceName: 'c' })]]));
    cm.applyEndpoints('c', [ep(8001, { hostname: 'web-0.web.default.svc' }), ep(8002)]);
    const c = cm.get('c')!;
    // Its last passing check answered x-envoy-degraded (degraded.test.ts drives a real one).
    c.hosts[1]!.activeDegraded = true;
    const text = clustersText(cm).split('\n');
    assert.ok(text.includes('c::127.0.0.1:8001::hostname::web-0.web.default.svc'), text.join('\n'));
    assert.ok(text.includes('c::127.0.0.1:8002::hostname::'));
    assert.ok(text.includes('c::127.0.0.1:8002::health_flags::/degraded_active_hc'));
    const hosts = (clustersJson(cm) as Json).cluster_statuses[0].host_statuses as Json[];
    assert.equal(hosts[0]!.hostname, 'web-0.web.default.svc');
    assert.deepEqual(hosts[0]!.health_status, { eds_health_status: 'HEALTHY' });
    assert.equal(hosts[1]!.hostname, undefined);
    assert.deepEqual(hosts[1]!.health_status, { eds_health_status: 'HEALTHY', failed_active_degraded_check: true });
  } finally {
    cm.close();
  }
});
