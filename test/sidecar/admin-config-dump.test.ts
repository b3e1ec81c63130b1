// /config_dump's resource, mask and name_regex, as Envoy's admin applies them, on
// the dump a real DataPlane writes: the minimal-http golden case's clusters,
// endpoints, routes and listeners (bound to 127.0.0.1:0), two SDS secrets, and an
// ECDS filter added in DataPlane's shape (loading its wasm module is not the point).

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, test } from 'node:test';
import { parseConfigDumpQuery, shapeConfigDump } from '../../sidecar/admin-config-dump.ts';
import { DataPlane } from '../../sidecar/dataplane.ts';
import { SidecarStats } from '../../sidecar/stats.ts';

type Json = Record<string, any>;
type Dump = { configs: Json[] };

const ADMIN = 'type.googleapis.com/envoy.admin.v3.';
const node = { id: 'web-1', cluster: 'web' };
const golden = (file: string): { name: string; value: Json }[] => JSON.parse(readFileSync(new URL(`../golden/minimal-http/${file}`, import.meta.url), 'utf8'));
const pem = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';

let dp: DataPlane;
let dump: Dump;
let dumpWithEds: Dump;

before(async () => {
  dp = new DataPlane(new SidecarStats(), { node });
  const kinds = [['cluster', 'clusters.json'], ['endpoint', 'endpoints.json'], ['route', 'routes.json'], ['listener', 'listeners.json']] as const;
  for (const [kind, file] of kinds) {
    const resources = golden(file).map((r) => ({
      name: r.name,
      version: 'v1',
      value: kind === 'listener' ? { ...r.value, address: { socket_address: { address: '127.0.0.1', port_value: 0 } } } : r.value,
    }));
    assert.deepEqual(await dp.apply(kind, resources, [], true), { errors: [] });
  }
  const secrets = [
    { name: 'default', version: 's1', value: { name: 'default', tls_certificate: { certificate_chain: { inline_string: pem }, private_key: { inline_string: 'key' } } } },
    { name: 'ROOTCA', version: 's1', value: { name: 'ROOTCA', validation_context: { trusted_ca: { inline_string: pem } } } },
  ];
  assert.deepEqual(await dp.apply('secret', secrets, [], false), { errors: [] });
  const ecdsFilter = JSON.parse(readFileSync(new URL('../golden/wasm-inbound/extension_configs.json', import.meta.url), 'utf8'))[0].value;
  const withEcds = (d: Dump): Dump => {
    const ecds = d.configs.find((c) => c['@type'] === `${ADMIN}EcdsConfigDump`)!;
    ecds.ecds_filters = [{ version_info: 'e1', ecds_filter: { '@type': 'type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig', ...ecdsFilter }, last_updated: '2025-01-01T00:00:00.000Z' }];
    return d;
  };
  dump = withEcds(dp.configDump(node));
  dumpWithEds = withEcds(dp.configDump(node, true));
});

after(() => dp.close());

/** The configs for a query string, which must be accepted. */
function configs(query: string, from = dump): Json[] {
  const q = parseConfigDumpQuery(new URLSearchParams(query));
  assert.ok(!('error' in q), `${query}: ${JSON.stringify(q)}`);
  const out = shapeConfigDump(from, q);
  assert.ok(!('error' in out), `${query}: ${JSON.stringify(out)}`);
  return out.configs as Json[];
}

/** The error for a query string that parses but is refused. */
function refused(query: string, from = dump): { status: number; error: string } {
  const q = parseConfigDumpQuery(new URLSearchParams(query));
  assert.ok(!('error' in q), `${query}: ${JSON.stringify(q)}`);
  const out = shapeConfigDump(from, q);
  assert.ok('error' in out, `${query} was accepted`);
  return out;
}

const config = (d: Dump, type: string): Json => d.configs.find((c) => c['@type'] === `${ADMIN}${type}`)!;
const withoutType = ({ '@type': _, ...rest }: Json): Json => rest;

test('parseConfigDumpQuery: the four parameters; empty resource and mask are absent; each bad parameter is named', () => {
  assert.deepEqual(parseConfigDumpQuery(new URLSearchParams('resource=dynamic_listeners&mask=name&name_regex=in.*&include_eds')), {
    includeEds: true,
    resource: 'dynamic_listeners',
    mask: 'name',
    nameRegex: 'in.*',
  });
  assert.deepEqual(parseConfigDumpQuery(new URLSearchParams('resource=&mask=&name_regex=')), { includeEds: false });
  const unknown = parseConfigDumpQuery(new URLSearchParams('resources=dynamic_listeners'));
  assert.ok('error' in unknown, 'an unknown parameter is refused');
  assert.match(unknown.error, /^resources: unknown parameter \(config_dump takes resource, mask, name_regex, include_eds\)$/);
  const badRegex = parseConfigDumpQuery(new URLSearchParams('name_regex=a)(b'));
  assert.ok('error' in badRegex, 'a bad name_regex is refused');
  assert.match(badRegex.error, /^name_regex: not a regular expression: /);
  // Checked alone, not inside the group that makes the match whole.
  assert.ok('error' in parseConfigDumpQuery(new URLSearchParams('name_regex=(')), 'name_regex=( is refused');
});

test('no parameters: the dump as DataPlane wrote it, and the input is never changed', () => {
  const before = structuredClone(dumpWithEds);
  assert.deepEqual(configs('', dumpWithEds), dumpWithEds.configs);
  configs('resource=dynamic_active_clusters&mask=cluster.name&name_regex=outbound.*', dumpWithEds);
  configs('mask=dynamic_listeners&name_regex=inbound', dumpWithEds);
  assert.deepEqual(dumpWithEds, before);
});

test('resource: each item on its own with its message @type, otherwise unchanged', () => {
  const cases = [
    ['dynamic_active_clusters', 'ClustersConfigDump', 'ClustersConfigDump.DynamicCluster', 3],
    ['dynamic_listeners', 'ListenersConfigDump', 'ListenersConfigDump.DynamicListener', 2],
    ['dynamic_route_configs', 'RoutesConfigDump', 'RoutesConfigDump.DynamicRouteConfig', 1],
    ['dynamic_active_secrets', 'SecretsConfigDump', 'SecretsConfigDump.DynamicSecret', 2],
    ['ecds_filters', 'EcdsConfigDump', 'EcdsConfigDump.EcdsFilterConfig', 1],
    // Every cluster's, the inbound STATIC one too, as Envoy's (admin-endpoints.test.ts).
    ['dynamic_endpoint_configs', 'EndpointsConfigDump', 'EndpointsConfigDump.DynamicEndpointConfig', 3],
  ] as const;
  for (const [resource, dumpType, itemType, count] of cases) {
    const items = configs(`resource=${resource}&include_eds`, dumpWithEds);
    assert.equal(items.length, count, resource);
    for (const item of items) assert.equal(Object.keys(item)[0], '@type', resource);
    assert.deepEqual(items.map((i) => i['@type']), Array(count).fill(`${ADMIN}${itemType}`), resource);
    assert.deepEqual(items.map(withoutType), config(dumpWithEds, dumpType)[resource], resource);
  }
  assert.deepEqual(configs('resource=dynamic_listeners').map((l) => l.name), ['inbound', 'outbound']);
  assert.equal(configs('resource=dynamic_active_clusters')[1].cluster['@type'], 'type.googleapis.com/envoy.config.cluster.v3.Cluster');
  // A repeated field weft has nothing in: no configs, as Envoy.
  assert.deepEqual(configs('resource=static_clusters'), []);
  assert.deepEqual(configs('resource=dynamic_warming_secrets'), []);
});

test('name_regex: the whole name must match (RE2 FullMatch), per resource kind', () => {
  const names = (query: string, from = dump) => configs(query, from).map((c) => c.name ?? c.cluster?.name ?? c.route_config?.name ?? c.ecds_filter?.name ?? c.endpoint_config?.cluster_name);
  assert.deepEqual(names('resource=dynamic_listeners&name_regex=outbound'), ['outbound']);
  assert.deepEqual(names('resource=dynamic_active_clusters&name_regex=outbound'), []);
  assert.deepEqual(names('resource=dynamic_active_clusters&name_regex=outbound.*'), ['outbound|8080||web.default', 'outbound|9080||reviews.default']);
  assert.deepEqual(names('resource=dynamic_active_clusters&name_regex=.*\\|9080\\|.*|inbound.*'), ['inbound|8080||web.default', 'outbound|9080||reviews.default']);
  assert.deepEqual(names('resource=dynamic_route_configs&name_regex=out.*'), ['outbound']);
  assert.deepEqual(names('resource=dynamic_active_secrets&name_regex=ROOT.*'), ['ROOTCA']);
  assert.deepEqual(names('resource=ecds_filters&name_regex=weft\\.wasm\\..*'), ['weft.wasm.default.web-auth']);
  assert.deepEqual(names('resource=ecds_filters&name_regex=web-auth'), []);
  assert.deepEqual(names('resource=dynamic_endpoint_configs&include_eds&name_regex=.*reviews.*', dumpWithEds), ['outbound|9080||reviews.default']);

  // Without resource, every config's items are filtered and the bootstrap is left alone.
  const all = configs('name_regex=.*web.*', dumpWithEds);
  assert.deepEqual(all.map((c) => c['@type']), dumpWithEds.configs.map((c) => c['@type']));
  assert.deepEqual(all[0], dumpWithEds.configs[0]);
  const field = (type: string, name: string) => config({ configs: all }, type)[name] as Json[];
  assert.deepEqual(field('ClustersConfigDump', 'dynamic_active_clusters').map((c) => c.cluster.name), ['inbound|8080||web.default', 'outbound|8080||web.default']);
  assert.deepEqual(field('ListenersConfigDump', 'dynamic_listeners'), []);
  assert.deepEqual(field('EcdsConfigDump', 'ecds_filters').map((c) => c.ecds_filter.name), ['weft.wasm.default.web-auth']);
  assert.deepEqual(field('SecretsConfigDump', 'dynamic_active_secrets'), []);
  assert.deepEqual(field('EndpointsConfigDump', 'dynamic_endpoint_configs').map((c) => c.endpoint_config.cluster_name), ['inbound|8080||web.default', 'outbound|8080||web.default']);
  assert.equal(config({ configs: all }, 'ClustersConfigDump').version_info, 'v1');
});

test('mask without resource: each config trimmed, @type kept; configs the mask does not fit are left out', () => {
  assert.deepEqual(configs('mask=dynamic_active_clusters'), [{ '@type': `${ADMIN}ClustersConfigDump`, dynamic_active_clusters: config(dump, 'ClustersConfigDump').dynamic_active_clusters }]);
  assert.deepEqual(configs('mask=bootstrap.node.id'), [{ '@type': `${ADMIN}BootstrapConfigDump`, bootstrap: { node: { id: 'web-1' } } }]);
  assert.deepEqual(configs('mask=version_info'), [
    { '@type': `${ADMIN}ClustersConfigDump`, version_info: 'v1' },
    { '@type': `${ADMIN}ListenersConfigDump`, version_info: 'v1' },
  ]);
  // A path to a field this dump leaves unset still fits: it selects nothing.
  assert.deepEqual(configs('mask=static_listeners,dynamic_listeners').map((c) => Object.keys(c)), [['@type', 'dynamic_listeners']]);
});

test('mask with resource: applied to each item, into its resource (whose @type stays)', () => {
  const clusters = configs('resource=dynamic_active_clusters&mask=cluster.name,cluster.lb_policy,last_updated');
  const original = config(dump, 'ClustersConfigDump').dynamic_active_clusters as Json[];
  assert.deepEqual(
    clusters,
    original.map((c) => ({
      '@type': `${ADMIN}ClustersConfigDump.DynamicCluster`,
      cluster: { '@type': 'type.googleapis.com/envoy.config.cluster.v3.Cluster', name: c.cluster.name, ...(c.cluster.lb_policy ? { lb_policy: c.cluster.lb_policy } : {}) },
      last_updated: c.last_updated,
    })),
  );
  assert.equal(clusters[1].cluster.lb_policy, 'ROUND_ROBIN');
  // A singular message inside the resource is kept whole, or trimmed further.
  assert.deepEqual(configs('resource=dynamic_active_clusters&mask=cluster.eds_cluster_config.service_name&name_regex=outbound.*').map((c) => c.cluster.eds_cluster_config), [
    { service_name: 'outbound|8080||web.default' },
    { service_name: 'outbound|9080||reviews.default' },
  ]);
  // A shorter path covers a longer one under it (protobuf's FieldMaskTree).
  assert.deepEqual(configs('resource=dynamic_route_configs&mask=route_config,route_config.name'), configs('resource=dynamic_route_configs&mask=route_config'));
  assert.deepEqual(configs('resource=dynamic_listeners&mask=name,active_state.version_info'), [
    { '@type': `${ADMIN}ListenersConfigDump.DynamicListener`, name: 'inbound', active_state: { version_info: 'v1' } },
    { '@type': `${ADMIN}ListenersConfigDump.DynamicListener`, name: 'outbound', active_state: { version_info: 'v1' } },
  ]);
  // The secret is dumped redacted, and the mask does not undo that.
  assert.deepEqual(configs('resource=dynamic_active_secrets&mask=secret.tls_certificate.private_key&name_regex=default')[0].secret, {
    '@type': 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret',
    tls_certificate: { private_key: { inline_string: '[redacted]' } },
  });
});

test('resource, name_regex and mask together', () => {
  assert.deepEqual(configs('resource=dynamic_active_clusters&name_regex=.*reviews.*&mask=cluster.name,version_info&include_eds', dumpWithEds), [
    {
      '@type': `${ADMIN}ClustersConfigDump.DynamicCluster`,
      version_info: 'v1',
      cluster: { '@type': 'type.googleapis.com/envoy.config.cluster.v3.Cluster', name: 'outbound|9080||reviews.default' },
    },
  ]);
  assert.deepEqual(configs('resource=dynamic_endpoint_configs&name_regex=outbound\\|8080.*&mask=endpoint_config.cluster_name', dumpWithEds), [
    {
      '@type': `${ADMIN}EndpointsConfigDump.DynamicEndpointConfig`,
      endpoint_config: { '@type': 'type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment', cluster_name: 'outbound|8080||web.default' },
    },
  ]);
  // Without resource: filtered by name, then masked.
  assert.deepEqual(configs('mask=dynamic_listeners&name_regex=inbound').map((c) => c.dynamic_listeners.map((l: Json) => l.name)), [['inbound']]);
});

test('resource errors: a field no config has is 404 with the allowed values, a singular field 400', () => {
  const unknown = refused('resource=clusters');
  assert.equal(unknown.status, 404);
  assert.match(unknown.error, /^resource: "clusters" is not a repeated field of any config in the dump; one of /);
  for (const allowed of ['static_clusters', 'dynamic_active_clusters', 'dynamic_listeners', 'dynamic_route_configs', 'dynamic_active_secrets', 'ecds_filters']) {
    assert.ok(unknown.error.includes(allowed), allowed);
  }
  assert.ok(!unknown.error.includes('endpoint_configs'), 'endpoints are not in a dump without include_eds');
  assert.match(refused('resource=clusters', dumpWithEds).error, /dynamic_endpoint_configs/);

  const eds = refused('resource=dynamic_endpoint_configs');
  assert.deepEqual(eds, { status: 404, error: 'resource: dynamic_endpoint_configs is in the dump only with include_eds' });

  const singular = refused('resource=version_info');
  assert.deepEqual(singular, { status: 400, error: 'resource: version_info is not a repeated field of envoy.admin.v3.ClustersConfigDump; use mask=version_info to get only this field' });
  assert.equal(refused('resource=bootstrap').status, 400);
});

test('mask errors: a path that is no field, or goes through a repeated field or a leaf, is 400 naming it', () => {
  const bad = [
    ['resource=dynamic_active_clusters&mask=cluster.nme', 'mask: "cluster.nme" does not fit dynamic_active_clusters: envoy.config.cluster.v3.Cluster has no field "nme"'],
    ['resource=dynamic_active_clusters&mask=name', 'mask: "name" does not fit dynamic_active_clusters: envoy.admin.v3.ClustersConfigDump.DynamicCluster has no field "name"'],
    ['resource=dynamic_active_clusters&mask=cluster.load_assignment.endpoints.priority', 'mask: "cluster.load_assignment.endpoints.priority" does not fit dynamic_active_clusters: cluster.load_assignment.endpoints is a repeated field, where a mask path must end'],
    ['resource=dynamic_listeners&mask=active_state.listener.name', 'mask: "active_state.listener.name" does not fit dynamic_listeners: active_state.listener is a scalar, an enum, a well-known type or a nested Any, where a mask path must end'],
    ['resource=dynamic_active_clusters&mask=cluster..name', 'mask: "cluster..name" does not fit dynamic_active_clusters: envoy.config.cluster.v3.Cluster has no field ""'],
  ] as const;
  for (const [query, error] of bad) assert.deepEqual(refused(query), { status: 400, error }, query);
  // Checked against the item's message even when no item is there to trim.
  assert.equal(refused('resource=static_clusters&mask=cluster.nme').status, 400);

  assert.deepEqual(refused('mask=dynamic_active_clusters.cluster.name'), {
    status: 400,
    error: 'mask: "dynamic_active_clusters.cluster.name" fits no config in the dump (ClustersConfigDump: dynamic_active_clusters is a repeated field, where a mask path must end); to mask each of its items, use resource=dynamic_active_clusters&mask=cluster.name',
  });
  assert.match(refused('mask=nope').error, /^mask: "nope" fits no config in the dump: none of BootstrapConfigDump, ClustersConfigDump, .* has a field "nope"$/);
  // As Envoy: without resource the mask applies to each config whole, so paths of two configs fit neither.
  assert.deepEqual(refused('mask=dynamic_active_clusters,dynamic_listeners'), {
    status: 400,
    error: 'mask: no config has every path (dynamic_active_clusters is in ClustersConfigDump; dynamic_listeners is in ListenersConfigDump); without resource a config is dumped only if all paths fit it',
  });
});

test('shapeConfigDump refuses a bad name_regex it is handed directly', () => {
  const out = shapeConfigDump(dump, { nameRegex: '[' });
  assert.ok('error' in out, 'a bad nameRegex is refused');
  assert.equal(out.status, 400);
  assert.match(out.error, /^name_regex: not a regular expression: /);
});

test('through a running sidecar\'s admin port: resource, name_regex and mask shape /config_dump; a bad query is answered with its status and names the parameter', { timeout: 30_000 }, async () => {
  const { TestMesh, instance, service, startApp } = await import('./harness.ts');
  const mesh = await TestMesh.start();
  try {
    const app = await startApp('ledger');
    mesh.track(() => app.close());
    mesh.model.update({ services: [service('ledger', 7800), service('audit', 7900)], instances: [instance('ledger', app.port), instance('audit', app.port)] });
    const sc = await mesh.sidecar('ledger', app.port);
    const base = `http://127.0.0.1:${sc.adminPort}/config_dump`;
    const res = await fetch(`${base}?resource=dynamic_active_clusters&name_regex=.*audit.*&mask=cluster.name`);
    assert.equal(res.status, 200);
    const body = (await res.json()) as Dump;
    assert.ok(body.configs.length >= 1);
    for (const c of body.configs) {
      assert.equal(c['@type'], `${ADMIN}ClustersConfigDump.DynamicCluster`);
      assert.deepEqual(Object.keys(c.cluster), ['@type', 'name']);
      assert.match(c.cluster.name, /audit/);
    }
    for (const [query, status, message] of [
      ['resource=clusters', 404, /^resource: "clusters" is not a repeated field of any config in the dump; one of /],
      ['name_regex=(', 400, /^name_regex: not a regular expression/],
      ['resource=dynamic_active_clusters&mask=cluster.nope', 400, /^mask: "cluster\.nope" does not fit dynamic_active_clusters/],
      ['resources=dynamic_listeners', 400, /^resources: unknown parameter/],
    ] as const) {
      const r = await fetch(`${base}?${query}`);
      assert.equal(r.status, status, query);
      assert.match(await r.text(), message);
    }
  } finally {
    await mesh.close();
  }
});
