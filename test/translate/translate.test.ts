// Unit tests of translateProxy / translateEndpoints beyond the golden cases:
// determinism, independence from instances, errors as values with paths,
// per-proxy scoping and the cluster naming others rely on.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseClusterName, outboundClusterName, translateEndpoints, translateProxy } from '../../control/translate/index.ts';
import type { MeshModel } from '../../control/model/types.ts';
import { buildCase } from '../golden/load-case.ts';

function bookinfo(): ReturnType<typeof buildCase> {
  return buildCase({
    model: {
      services: [
        { name: 'web', ports: [{ port: 8080, protocol: 'http' }] },
        { name: 'reviews', ports: [{ port: 9080, protocol: 'http' }] },
        { name: 'ratings', ports: [{ port: 9081, protocol: 'grpc' }] },
        { name: 'details', namespace: 'ops', ports: [{ port: 9082, protocol: 'http2' }] },
      ],
      instances: [
        { service: 'reviews', address: '10.0.0.1', port: 15006, labels: { version: 'v1' }, zone: 'b' },
        { service: 'reviews', address: '10.0.0.2', port: 15006, labels: { version: 'v2' }, zone: 'a' },
        { service: 'reviews', address: '10.0.0.3', port: 15006, labels: { version: 'v2' }, health: 'draining' },
      ],
      destinationPolicies: [{
        name: 'reviews', service: 'reviews', loadBalancer: { policy: 'least_request' },
        subsets: [{ name: 'v1', labels: { version: 'v1' } }, { name: 'v2', labels: { version: 'v2' } }],
      }],
      routes: [{
        name: 'reviews', service: 'reviews',
        rules: [
          { match: [{ headers: [{ name: 'x-user', match: { exact: 'jason' } }] }], destinations: [{ service: 'reviews', subset: 'v2', weight: 1 }], fault: { abort: { httpStatus: 503, percentage: 10 } } },
          { destinations: [{ service: 'reviews', subset: 'v1', weight: 90 }, { service: 'reviews', subset: 'v2', weight: 10 }] },
        ],
      }],
      filterModules: [{ name: 'auth', sha256: 'ab'.repeat(32) }],
      filterBindings: [
        { name: 'b2', service: 'web', direction: 'inbound', filter: 'auth', order: 2 },
        { name: 'b1', service: 'web', direction: 'inbound', filter: 'auth', order: 1 },
      ],
    },
    proxy: { service: 'web' },
  });
}

const reversed = (model: MeshModel): MeshModel => ({
  ...model,
  services: [...model.services].reverse(),
  instances: [...model.instances].reverse(),
  routes: [...model.routes].reverse(),
  destinationPolicies: [...model.destinationPolicies].reverse(),
  filterBindings: [...model.filterBindings].reverse(),
  filterModules: [...model.filterModules].reverse(),
});

test('translation is deterministic and independent of store order', () => {
  const { model, proxy, options } = bookinfo();
  const first = translateProxy(model, proxy, options);
  assert.deepEqual(first.errors, []);
  assert.equal(JSON.stringify(translateProxy(model, proxy, options)), JSON.stringify(first));
  assert.equal(JSON.stringify(translateProxy(reversed(model), proxy, options)), JSON.stringify(first));
  const eds = translateEndpoints(model, first.endpointNames);
  assert.equal(JSON.stringify(translateEndpoints(reversed(model), [...first.endpointNames].reverse())), JSON.stringify(eds));
});

test('translateProxy does not read instances: instance churn changes no listener, route or cluster', () => {
  const { model, proxy, options } = bookinfo();
  const before = translateProxy(model, proxy, options);
  const churned = { ...model, instances: [model.instances[0]!, { ...model.instances[1]!, health: 'unhealthy' as const }] };
  assert.equal(JSON.stringify(translateProxy(churned, proxy, options)), JSON.stringify(before));
  // ...while the endpoints do change.
  assert.notEqual(JSON.stringify(translateEndpoints(churned, before.endpointNames)), JSON.stringify(translateEndpoints(model, before.endpointNames)));
});

test('a route to an unknown subset comes back as an error value with the field path', () => {
  const { model, proxy, options } = bookinfo();
  model.routes[0]!.rules[1]!.destinations[1]!.subset = 'v9';
  const result = translateProxy(model, proxy, options);
  assert.equal(result.errors.length, 1);
  assert.equal(result.errors[0]!.path, 'routes[default/reviews].rules[1].destinations[1].subset');
  assert.match(result.errors[0]!.message, /v9/);
  // The broken rule is left out; the rest of the configuration is still built.
  const routeConfig = JSON.stringify(result.routes);
  assert.ok(!routeConfig.includes('v9'));
  assert.ok(routeConfig.includes('default/reviews/0'));
});

test('retriable status codes without retry_on "retriable-status-codes" are refused', () => {
  const { model, proxy, options } = bookinfo();
  model.routes[0]!.rules[0]!.retries = { attempts: 2, retryOn: ['5xx'], retriableStatusCodes: [409] };
  const result = translateProxy(model, proxy, options);
  assert.deepEqual(result.errors.map((e) => e.path), ['routes[default/reviews].rules[0].retries.retryOn']);
});

test('dependsOn scopes virtual hosts, clusters and EDS names to the declared upstreams', () => {
  const { model, proxy, options } = bookinfo();
  model.services.find((s) => s.name === 'web')!.dependsOn = ['details.ops'];
  const result = translateProxy(model, proxy, options);
  assert.deepEqual(result.endpointNames, ['outbound|9082||details.ops']);
  const hosts = (result.routes[0]!.value.virtual_hosts as { name: string }[]).map((vh) => vh.name);
  assert.deepEqual(hosts, ['details.ops:9082', 'not_found']);
  // The inbound app cluster is never an outbound destination.
  assert.deepEqual(result.clusters.map((c) => c.name), ['inbound|8080||web.default', 'outbound|9082||details.ops']);
});

test('http filters: the health check marker first on inbound, wasm bindings in order, fault only when a route has one, router last', () => {
  const { model, proxy, options } = bookinfo();
  const filterNames = (listenerName: string, m: MeshModel): string[] => {
    const listener = translateProxy(m, proxy, options).listeners.find((l) => l.name === listenerName)!;
    const chains = listener.value.filter_chains as { filters: { typed_config: { http_filters: { name: string }[] } }[] }[];
    return chains[0]!.filters[0]!.typed_config.http_filters.map((f) => f.name);
  };
  assert.deepEqual(filterNames('inbound', model), ['envoy.filters.http.health_check', 'weft.wasm.default.b1', 'weft.wasm.default.b2', 'envoy.filters.http.router']);
  assert.deepEqual(filterNames('outbound', model), ['envoy.filters.http.fault', 'envoy.filters.http.router']);
  delete model.routes[0]!.rules[0]!.fault;
  assert.deepEqual(filterNames('outbound', model), ['envoy.filters.http.router']);
});

test('endpoints: subset clusters carry only matching instances, grouped by zone, with health', () => {
  const { model } = bookinfo();
  const name = outboundClusterName('reviews', 'default', 9080, 'v2');
  const { endpoints, errors } = translateEndpoints(model, [name]);
  assert.deepEqual(errors, []);
  assert.deepEqual(endpoints[0]!.value, {
    cluster_name: name,
    endpoints: [
      { locality: {}, lb_endpoints: [{ endpoint: { address: { socket_address: { address: '10.0.0.3', port_value: 15006 } } }, health_status: 'DRAINING' }], load_balancing_weight: 1 },
      { locality: { zone: 'a' }, lb_endpoints: [{ endpoint: { address: { socket_address: { address: '10.0.0.2', port_value: 15006 } } }, health_status: 'HEALTHY' }], load_balancing_weight: 1 },
    ],
  });
});

test('endpoints: a vanished service gives an empty assignment; a foreign name is an error', () => {
  const { model } = bookinfo();
  const { endpoints, errors } = translateEndpoints(model, ['outbound|1||gone.default', 'not-a-weft-cluster']);
  assert.deepEqual(endpoints.map((e) => e.value), [{ cluster_name: 'outbound|1||gone.default', endpoints: [] }]);
  assert.deepEqual(errors.map((e) => e.path), ['endpoints[not-a-weft-cluster]']);
});

test('cluster names round-trip through parseClusterName', () => {
  assert.deepEqual(parseClusterName(outboundClusterName('reviews', 'shop', 9080, 'v2')),
    { direction: 'outbound', port: 9080, subset: 'v2', service: 'reviews', namespace: 'shop' });
  assert.deepEqual(parseClusterName('inbound|8080||web.default'),
    { direction: 'inbound', port: 8080, service: 'web', namespace: 'default' });
  assert.equal(parseClusterName('outbound|x||a.b'), undefined);
  assert.equal(parseClusterName('weft-control'), undefined);
});

test('proxyless gRPC clients get api_listeners for grpc ports only, and round robin instead of lb policies gRPC lacks', () => {
  const { model, options } = bookinfo();
  model.destinationPolicies.push({ name: 'ratings', namespace: 'default', service: 'ratings', loadBalancer: { policy: 'random' } });
  const proxy = { ...bookinfo().proxy, kind: 'proxyless-grpc' as const, service: 'client' };
  const result = translateProxy(model, proxy, options);
  assert.deepEqual(result.errors, []);
  assert.deepEqual(result.listeners.map((l) => l.name), ['ratings', 'ratings.default', 'ratings.default:9081', 'ratings:9081']);
  assert.deepEqual(result.routes, []);
  assert.deepEqual(result.extensionConfigs, []);
  const ratings = result.clusters.find((c) => c.name === 'outbound|9081||ratings.default')!;
  assert.equal(ratings.value.lb_policy, 'ROUND_ROBIN');
  const reviews = result.clusters.find((c) => c.name === 'outbound|9080||reviews.default')!;
  assert.equal(reviews.value.lb_policy, 'ROUND_ROBIN');
});

test('proxies of one service with the same ports get identical resources whatever their node id', () => {
  // The xDS server shares one snapshot per group of such proxies (control/xds groupKey).
  const { model, proxy, options } = bookinfo();
  const a = translateProxy(model, { ...proxy, id: 'web-1' }, options);
  const b = translateProxy(model, { ...proxy, id: 'web-2' }, options);
  assert.equal(JSON.stringify(a), JSON.stringify(b));
  // ...while the ports a sidecar reports do change its listeners.
  const moved = translateProxy(model, { ...proxy, inboundPort: 16006 }, options);
  assert.notEqual(JSON.stringify(moved.listeners), JSON.stringify(a.listeners));
});

test('two policies for one service: settings from the first by name, subsets from both', () => {
  const { model, proxy, options } = bookinfo();
  model.destinationPolicies.push({
    name: 'zz-extra', namespace: 'default', service: 'reviews', loadBalancer: { policy: 'random' },
    subsets: [{ name: 'v3', labels: { version: 'v3' } }],
  });
  model.routes[0]!.rules[1]!.destinations[1]!.subset = 'v3';
  const result = translateProxy(model, proxy, options);
  assert.deepEqual(result.errors, []);
  const names = result.clusters.map((c) => c.name);
  assert.ok(names.includes('outbound|9080|v3|reviews.default') && names.includes('outbound|9080|v1|reviews.default'));
  assert.equal(result.clusters.find((c) => c.name === 'outbound|9080||reviews.default')!.value.lb_policy, 'LEAST_REQUEST');
});

test('a binding may name its service as name.namespace', () => {
  const { model, proxy, options } = bookinfo();
  model.filterBindings = [{ ...model.filterBindings[0]!, service: 'web.default' }];
  const result = translateProxy(model, proxy, options);
  assert.deepEqual(result.extensionConfigs.map((e) => e.name), ['weft.wasm.default.b2']);
});

test('an error in a rule is reported once, even when the rule is built for several ports and listeners', () => {
  const { model, options } = bookinfo();
  const ratings = model.services.find((s) => s.name === 'ratings')!;
  ratings.ports.push({ port: 9091, protocol: 'grpc' });
  model.routes.push({ name: 'ratings', namespace: 'default', service: 'ratings', rules: [{ destinations: [{ service: 'ratings', subset: 'nope', weight: 1 }] }] });
  for (const proxy of [bookinfo().proxy, { ...bookinfo().proxy, kind: 'proxyless-grpc' as const }]) {
    const result = translateProxy(model, proxy, options);
    assert.deepEqual(result.errors.map((e) => e.path), ['routes[default/ratings].rules[0].destinations[0].subset'], proxy.kind);
  }
});

test('HTTP-only policy on a tcp service is an error, not silently ignored', () => {
  const { model, options } = buildCase({
    model: {
      services: [{ name: 'db', ports: [{ port: 5432, protocol: 'tcp' }] }, { name: 'web', ports: [{ port: 8080, protocol: 'http' }] }],
      routes: [{ name: 'db', service: 'db', rules: [{ destinations: [{ service: 'db', weight: 1 }], timeoutMs: 100 }] }],
      filterModules: [{ name: 'auth', sha256: 'cd'.repeat(32) }],
      filterBindings: [{ name: 'db-auth', service: 'db', direction: 'inbound', filter: 'auth', order: 1 }],
    },
    proxy: { service: 'web' },
  });
  const web = translateProxy(model, buildCase({ proxy: { service: 'web' } }).proxy, options);
  assert.deepEqual(web.errors.map((e) => e.path), ['routes[default/db].service']);
  const db = translateProxy(model, { ...buildCase({ proxy: { service: 'db', appPort: 5432 } }).proxy }, options);
  assert.deepEqual(db.errors.map((e) => e.path).sort(), ['filterBindings[default/db-auth].direction', 'routes[default/db].service']);
});

test("health checks probe with the service's name as Host, never Envoy's default (the cluster name)", () => {
  // Left empty, Envoy's Host is "outbound|9080||reviews.default": not a host
  // name, and a 400 from any app that validates Host, so every instance went
  // unhealthy on Envoy while the weft sidecar (which sent the address) passed.
  const c = buildCase({
    model: {
      services: [
        { name: 'web', ports: [{ port: 8080, protocol: 'http' }] },
        { name: 'reviews', namespace: 'shop', ports: [{ port: 9080, protocol: 'http' }, { port: 9081, protocol: 'http2' }], healthCheck: { path: '/healthz', intervalMs: 5000, timeoutMs: 1000, healthyThreshold: 2, unhealthyThreshold: 3 } },
      ],
    },
    proxy: { service: 'web' },
  });
  const out = translateProxy(c.model, c.proxy, c.options);
  const probes = out.clusters.filter((r) => r.name.endsWith('reviews.shop')).map((r) => (r.value.health_checks as { http_health_check: { host?: string } }[])[0]!.http_health_check);
  assert.equal(probes.length, 2);
  for (const probe of probes) assert.equal(probe.host, 'reviews.shop');
});

test("a destination without a port gets the service's first HTTP port, not a tcp port declared before it", () => {
  // orders declares its tcp port first: the rule used to send HTTP requests
  // (and their mirror) to 9091, a raw tcp listener.
  const c = buildCase({
    model: {
      services: [
        { name: 'web', ports: [{ port: 8080, protocol: 'http' }] },
        { name: 'orders', ports: [{ port: 9091, protocol: 'tcp' }, { port: 9090, protocol: 'http' }] },
      ],
      routes: [{ name: 'web', service: 'web', rules: [{ match: [{ path: { prefix: '/orders' } }], destinations: [{ service: 'orders', weight: 1 }], mirror: { service: 'orders', percentage: 5 } }] }],
    },
    proxy: { service: 'web' },
  });
  const out = translateProxy(c.model, c.proxy, c.options);
  assert.deepEqual(out.errors, []);
  const vhosts = (out.routes[0]!.value.virtual_hosts as { name: string; routes: { name: string; route?: { cluster?: string; request_mirror_policies?: { cluster: string }[] } }[] }[]);
  const rule = vhosts.find((v) => v.name === 'web.default:8080')!.routes.find((r) => r.name === 'default/web/0')!;
  assert.equal(rule.route!.cluster, 'outbound|9090||orders.default');
  assert.equal(rule.route!.request_mirror_policies![0]!.cluster, 'outbound|9090||orders.default');
});
