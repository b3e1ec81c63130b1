// The comparison behind `weft proxy-status PROXY`: an Envoy ConfigDump (as
// Envoy and the weft sidecar serve it) against what the control plane means
// the proxy to run and what it last sent it. Each state from the module's
// header, from dumps in Envoy's own shapes; the end-to-end run against real
// sidecars is test/cli/proxy-sync.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compareConfig, parseConfigDump, type RunningResource } from '../../control/api/proxy-sync.ts';
import type { ConfigType } from '../../control/api/deps.ts';

const A = 'type.googleapis.com/envoy.admin.v3.';
const CLUSTER = 'type.googleapis.com/envoy.config.cluster.v3.Cluster';

const eds = (name: string, timeout = '5s') => ({ name, type: 'EDS', connect_timeout: timeout, eds_cluster_config: { eds_config: { ads: {}, resource_api_version: 'V3' } } });
const listener = (name: string, port: number) => ({ name, address: { socket_address: { address: '127.0.0.1', port_value: port } } });
const none = { listeners: [], routes: [], clusters: [], endpoints: [], 'extension-configs': [] } as Record<ConfigType, { name: string; value: unknown }[]>;
const named = (values: { name: string }[]) => values.map((value) => ({ name: value.name, value }));

function dump(...configs: Record<string, unknown>[]) {
  return { configs: [{ '@type': `${A}BootstrapConfigDump`, bootstrap: { node: { id: 'p' }, static_resources: { clusters: [{ name: 'xds' }] } } }, ...configs] };
}

test('parseConfigDump reads every dynamic resource of an Envoy ConfigDump, warming and refused ones included', () => {
  const running = parseConfigDump(
    dump(
      {
        '@type': `${A}ClustersConfigDump`,
        static_clusters: [{ cluster: { '@type': CLUSTER, name: 'xds' } }],
        dynamic_active_clusters: [{ version_info: 'v1', cluster: { '@type': CLUSTER, ...eds('a') }, last_updated: '2026-11-27T07:00:00Z' }],
        dynamic_warming_clusters: [{ version_info: 'v2', cluster: { '@type': CLUSTER, ...eds('b') } }],
      },
      {
        '@type': `${A}ListenersConfigDump`,
        dynamic_listeners: [
          { name: 'inbound', warming_state: { version_info: 'l1', listener: listener('inbound', 1) } },
          { name: 'outbound', error_state: { failed_configuration: { name: 'outbound' }, details: 'cannot bind', version_info: 'l2', last_update_attempt: '2026-11-27T07:01:00Z' } },
        ],
      },
      { '@type': `${A}RoutesConfigDump`, dynamic_route_configs: [{ version_info: 'r1', route_config: { name: 'outbound' } }] },
      { '@type': `${A}EndpointsConfigDump`, dynamic_endpoint_configs: [{ version_info: 'e1', endpoint_config: { cluster_name: 'a' } }] },
      { '@type': `${A}EcdsConfigDump`, ecds_filters: [{ version_info: 'x1', ecds_filter: { name: 'f' } }] },
      { '@type': `${A}SecretsConfigDump`, dynamic_active_secrets: [{ name: 's', secret: { name: 's' } }] },
    ),
  );
  const brief = running.map((r) => [r.type, r.name, r.version ?? null, !!r.warming, r.error?.details ?? null]);
  assert.deepEqual(brief, [
    ['clusters', 'a', 'v1', false, null],
    ['clusters', 'b', 'v2', true, null],
    ['listeners', 'inbound', 'l1', true, null],
    ['listeners', 'outbound', null, false, 'cannot bind'],
    ['routes', 'outbound', 'r1', false, null],
    ['endpoints', 'a', 'e1', false, null],
    ['extension-configs', 'f', 'x1', false, null],
  ]);
  assert.equal(running[0]!.lastUpdated, '2026-11-27T07:00:00Z');
  assert.deepEqual(running[3]!.error, { details: 'cannot bind', version: 'l2', time: '2026-11-27T07:01:00Z' });
});

test('parseConfigDump names what is wrong with something that is not a ConfigDump', () => {
  assert.throws(() => parseConfigDump({ hello: 1 }), /^Error: configs: not an Envoy ConfigDump/);
  assert.throws(() => parseConfigDump({ configs: [{ '@type': `${A}ClustersConfigDump`, dynamic_active_clusters: {} }] }), /configs\[0\]\.dynamic_active_clusters: not a list/);
  assert.throws(() => parseConfigDump({ configs: [{ '@type': `${A}RoutesConfigDump`, dynamic_route_configs: [{ route_config: {} }] }] }), /configs\[0\]\.dynamic_route_configs\[0\]: a resource without a name/);
});

function states(desired: Partial<typeof none>, sent: Partial<typeof none>, running: RunningResource[]) {
  const result = compareConfig({ ...none, ...desired }, sent, running);
  return { result, by: Object.fromEntries(result.resources.map((r) => [`${r.type}/${r.name}`, r.state])) };
}

test('the same resource spelt differently is SYNCED: both sides go through Envoy\'s protos', () => {
  const running: RunningResource[] = [{ type: 'clusters', name: 'a', value: { '@type': CLUSTER, eds_cluster_config: { eds_config: { resource_api_version: 'V3', ads: {} } }, connect_timeout: '5.000s', type: 'EDS', name: 'a' }, version: 'v1' }];
  const { result, by } = states({ clusters: named([eds('a')]) }, { clusters: named([eds('a')]) }, running);
  assert.deepEqual(by, { 'clusters/a': 'SYNCED' });
  assert.equal(result.inSync, true);
  assert.deepEqual(result.summary.clusters, { SYNCED: 1 });
  assert.equal(result.resources[0]!.desired, undefined, 'a synced resource carries no copies');
});

test('each way a proxy can be out of sync has its own state', () => {
  const running: RunningResource[] = [
    { type: 'clusters', name: 'nacked', value: eds('nacked', '1s'), version: 'old', error: { details: 'connect_timeout: too short', version: 'new' } },
    { type: 'clusters', name: 'pending', value: eds('pending', '1s') },
    { type: 'clusters', name: 'behind', value: eds('behind', '1s') },
    { type: 'clusters', name: 'differs', value: eds('differs', '9s') },
    { type: 'clusters', name: 'extra', value: eds('extra') },
    { type: 'clusters', name: 'removing', value: eds('removing') },
    { type: 'clusters', name: 'warming', value: eds('warming'), warming: true },
  ];
  const desired = { clusters: named(['nacked', 'pending', 'behind', 'differs', 'missing', 'warming'].map((n) => eds(n))) };
  const sent = {
    clusters: [
      ...named([eds('pending', '1s'), eds('differs'), eds('missing'), eds('removing'), eds('warming')]),
      { name: 'behind', value: null }, // the server holds a newer body than the version the proxy has
    ],
  };
  const { result, by } = states(desired, sent, running);
  assert.deepEqual(by, {
    'clusters/behind': 'PENDING',
    'clusters/differs': 'DIFFERS',
    'clusters/extra': 'EXTRA',
    'clusters/missing': 'MISSING',
    'clusters/nacked': 'NACKED',
    'clusters/pending': 'PENDING',
    'clusters/removing': 'PENDING',
    'clusters/warming': 'WARMING',
  });
  assert.equal(result.inSync, false);
  assert.deepEqual(result.summary.clusters, { PENDING: 3, DIFFERS: 1, EXTRA: 1, MISSING: 1, NACKED: 1, WARMING: 1 });
  const differs = result.resources.find((r) => r.name === 'differs')!;
  assert.equal((differs.desired as { connect_timeout: string }).connect_timeout, '5s');
  assert.equal((differs.running as { connect_timeout: string }).connect_timeout, '9s', 'both sides, for the diff');
  const nacked = result.resources.find((r) => r.name === 'nacked')!;
  assert.deepEqual([nacked.runningVersion, nacked.error?.version], ['old', 'new']);
  assert.equal(result.resources.find((r) => r.name === 'missing')!.running, undefined);
});

test('a listener that was never accepted is NACKED with nothing running; a type the proxy never asked for is MISSING', () => {
  const { by } = states(
    { listeners: named([listener('inbound', 15006)]), 'extension-configs': [{ name: 'weft.wasm.default.f', value: { name: 'weft.wasm.default.f' } }] },
    {},
    [{ type: 'listeners', name: 'inbound', error: { details: 'cannot bind' } }],
  );
  assert.deepEqual(by, { 'listeners/inbound': 'NACKED', 'extension-configs/weft.wasm.default.f': 'MISSING' });
});

test('endpoints are compared by address and priority: Envoy rebuilds its EDS dump from its hosts', () => {
  const sent = (port: number) => ({ cluster_name: 'c', endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: '10.0.0.1', port_value: port } } } }] }] });
  // what Envoy's /config_dump?include_eds shows for the same assignment
  const rebuilt = (port: number) => ({
    '@type': 'type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment',
    cluster_name: 'c',
    endpoints: [{ locality: {}, lb_endpoints: [{ endpoint: { address: { socket_address: { address: '10.0.0.1', port_value: port } }, health_check_config: {} }, health_status: 'HEALTHY', load_balancing_weight: 1 }] }],
    policy: { overprovisioning_factor: 140 },
  });
  const same = states({ endpoints: [{ name: 'c', value: sent(9000) }] }, { endpoints: [{ name: 'c', value: sent(9000) }] }, [{ type: 'endpoints', name: 'c', value: rebuilt(9000) }]);
  assert.deepEqual(same.by, { 'endpoints/c': 'SYNCED' });
  const moved = states({ endpoints: [{ name: 'c', value: sent(9000) }] }, { endpoints: [{ name: 'c', value: sent(9000) }] }, [{ type: 'endpoints', name: 'c', value: rebuilt(9001) }]);
  assert.deepEqual(moved.by, { 'endpoints/c': 'DIFFERS' });
});

test("a STATIC cluster's assignment in an include_eds dump is not EXTRA: Envoy dumps one for every cluster, and it is no EDS resource", () => {
  const cla = (name: string, port: number) => ({ cluster_name: name, endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: port } } } }] }] });
  const inbound = { name: 'inbound|9000||web', type: 'STATIC', connect_timeout: '1s', load_assignment: cla('inbound|9000||web', 9000) };
  const running = parseConfigDump(
    dump(
      { '@type': `${A}ClustersConfigDump`, dynamic_active_clusters: [{ version_info: 'c1', cluster: { '@type': CLUSTER, ...inbound } }, { version_info: 'c1', cluster: { '@type': CLUSTER, ...eds('web') } }] },
      {
        '@type': `${A}EndpointsConfigDump`,
        dynamic_endpoint_configs: [{ endpoint_config: cla('inbound|9000||web', 9000) }, { version_info: 'e1', endpoint_config: cla('web', 8000) }, { version_info: 'e0', endpoint_config: cla('gone', 8100) }],
      },
    ),
  );
  const desired = { ...none, clusters: named([inbound, eds('web')]), endpoints: [{ name: 'web', value: cla('web', 8000) }] };
  const result = compareConfig(desired, desired, running);
  const by = Object.fromEntries(result.resources.map((r) => [`${r.type}/${r.name}`, r.state]));
  // the EDS assignment nobody sends any more is still EXTRA
  assert.deepEqual(by, { 'clusters/inbound|9000||web': 'SYNCED', 'clusters/web': 'SYNCED', 'endpoints/gone': 'EXTRA', 'endpoints/web': 'SYNCED' });
});

test("an EDS cluster still waiting for its assignment is MISSING, not DIFFERS: the include_eds dump has an empty, unversioned entry for it", () => {
  const cla = (port?: number) => ({ cluster_name: 'web', endpoints: port === undefined ? [] : [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: port } } } }] }] });
  const running = parseConfigDump(dump({ '@type': `${A}EndpointsConfigDump`, dynamic_endpoint_configs: [{ endpoint_config: { ...cla(), policy: { overprovisioning_factor: 140 } } }] }));
  const by = (desired: unknown) => compareConfig({ ...none, endpoints: [{ name: 'web', value: desired }] }, {}, running).resources.map((r) => r.state);
  assert.deepEqual(by(cla(8000)), ['MISSING']);
  // an assignment the control plane means to be empty is what the proxy runs
  assert.deepEqual(by(cla()), ['SYNCED']);
});
