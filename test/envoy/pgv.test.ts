// One resource per kind of protoc-gen-validate rule that Envoy's protos declare,
// each refused with the path of the offending field.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { TypeUrl, validateMessage, validateResource } from '../../control/envoy/index.ts';
import type { FieldError } from '../../control/envoy/index.ts';
import { cluster, listener, loadAssignment, routeConfiguration } from './fixtures.ts';

function mutate<T>(value: T, edit: (copy: any) => void): T {
  const copy = structuredClone(value);
  edit(copy);
  return copy;
}

function only(errors: FieldError[], path: string, message: RegExp): void {
  assert.equal(errors.length, 1, `expected exactly one error, got ${JSON.stringify(errors)}`);
  assert.equal(errors[0]!.path, path);
  assert.match(errors[0]!.message, message);
}

const wasmRemote = {
  config: {
    name: 'weft-auth',
    root_id: 'auth',
    vm_config: {
      runtime: 'envoy.wasm.runtime.v8',
      code: {
        remote: {
          http_uri: { uri: 'http://weft-control:8080/wasm/ab12.wasm', cluster: 'weft_control', timeout: '10s' },
          sha256: 'ab12',
        },
      },
    },
    configuration: { '@type': 'type.googleapis.com/google.protobuf.StringValue', value: '{"mode":"strict"}' },
    fail_open: false,
  },
};
const WASM = 'envoy.extensions.filters.http.wasm.v3.Wasm';

describe('PGV rules from Envoy protos', () => {
  it('duration gt: Cluster connect_timeout "0s" violates gt 0', () => {
    only(validateResource(TypeUrl.Cluster, { ...cluster, connect_timeout: '0s' }), 'connect_timeout', /greater than 0s/);
  });

  it('duration required: a health check without timeout', () => {
    const bad = mutate(cluster, (c) => delete c.health_checks[0].timeout);
    only(validateResource(TypeUrl.Cluster, bad), 'health_checks[0].timeout', /required/);
  });

  it('message required: a health check without healthy_threshold', () => {
    const bad = mutate(cluster, (c) => delete c.health_checks[0].healthy_threshold);
    only(validateResource(TypeUrl.Cluster, bad), 'health_checks[0].healthy_threshold', /required/);
  });

  it('string min_len, also for an absent proto3 string: Cluster without name', () => {
    only(validateResource(TypeUrl.Cluster, { ...cluster, name: '' }), 'name', /at least 1 characters/);
    const { name: _, ...unnamed } = cluster;
    only(validateResource(TypeUrl.Cluster, unnamed), 'name', /at least 1 characters/);
  });

  it('string max_bytes and well-known HTTP header name/value', () => {
    const long = mutate(routeConfiguration(1), (r) => (r.virtual_hosts[0].request_headers_to_add[0].header.value = 'x'.repeat(16385)));
    only(validateResource(TypeUrl.RouteConfiguration, long), 'virtual_hosts[0].request_headers_to_add[0].header.value', /at most 16384 bytes/);
    const badName = mutate(routeConfiguration(1), (r) => (r.virtual_hosts[0].request_headers_to_add[0].header.key = 'x-weft\nroute'));
    only(validateResource(TypeUrl.RouteConfiguration, badName), 'virtual_hosts[0].request_headers_to_add[0].header.key', /HTTP header name/);
    const badValue = mutate(routeConfiguration(1), (r) => (r.virtual_hosts[0].request_headers_to_add[0].header.value = 'a\r\nb'));
    only(validateResource(TypeUrl.RouteConfiguration, badValue), 'virtual_hosts[0].request_headers_to_add[0].header.value', /HTTP header value/);
  });

  it('string pattern: path_separated_prefix ending in "/"', () => {
    const bad = mutate(routeConfiguration(1), (r) => (r.virtual_hosts[0].routes[1].match = { path_separated_prefix: '/api/' }));
    only(validateResource(TypeUrl.RouteConfiguration, bad), 'virtual_hosts[0].routes[1].match.path_separated_prefix', /regex pattern/);
    const good = mutate(routeConfiguration(1), (r) => (r.virtual_hosts[0].routes[1].match = { path_separated_prefix: '/api' }));
    assert.deepEqual(validateResource(TypeUrl.RouteConfiguration, good), []);
  });

  it('string in: scheme_to_overwrite must be http or https', () => {
    const errors = validateMessage('envoy.config.core.v3.SchemeHeaderTransformation', { scheme_to_overwrite: 'ftp' });
    only(errors, 'scheme_to_overwrite', /in list \[http, https\]/);
  });

  it('repeated min_items: a virtual host with no domains', () => {
    const bad = mutate(routeConfiguration(2), (r) => (r.virtual_hosts[1].domains = []));
    only(validateResource(TypeUrl.RouteConfiguration, bad), 'virtual_hosts[1].domains', /at least 1 item/);
    const absent = mutate(routeConfiguration(1), (r) => delete r.virtual_hosts[0].domains);
    only(validateResource(TypeUrl.RouteConfiguration, absent), 'virtual_hosts[0].domains', /at least 1 item/);
  });

  it('repeated max_items: more than 1000 request headers to add', () => {
    const bad = mutate(routeConfiguration(1), (r) => {
      r.virtual_hosts[0].request_headers_to_add = Array.from({ length: 1001 }, (_, i) => ({ header: { key: `x-h${i}`, value: 'v' } }));
    });
    only(validateResource(TypeUrl.RouteConfiguration, bad), 'virtual_hosts[0].request_headers_to_add', /no more than 1000 item/);
  });

  it('repeated items: every domain is checked as an HTTP header value', () => {
    const bad = mutate(routeConfiguration(1), (r) => (r.virtual_hosts[0].domains = ['ok', 'bad\u0000host']));
    only(validateResource(TypeUrl.RouteConfiguration, bad), 'virtual_hosts[0].domains[1]', /HTTP header value/);
  });

  it('oneof required: a route with no action', () => {
    const bad = mutate(routeConfiguration(1), (r) => delete r.virtual_hosts[0].routes[1].route);
    only(validateResource(TypeUrl.RouteConfiguration, bad), 'virtual_hosts[0].routes[1].action', /exactly one of route, redirect, direct_response/);
  });

  it('oneof member rules apply only to the member that is set', () => {
    // RouteMatch.safe_regex is message.required, yet a prefix match is valid.
    assert.deepEqual(validateResource(TypeUrl.RouteConfiguration, routeConfiguration(1)), []);
  });

  it('enum defined_only: an lb_policy number that names no policy', () => {
    only(validateResource(TypeUrl.Cluster, { ...cluster, lb_policy: 99 }), 'lb_policy', /defined enum values/);
    assert.deepEqual(validateResource(TypeUrl.Cluster, { ...cluster, lb_policy: 1 }), [], 'numbers of defined values are accepted');
  });

  it('enum not_in: health check method CONNECT', () => {
    const bad = mutate(cluster, (c) => (c.health_checks[0].http_health_check.method = 'CONNECT'));
    only(validateResource(TypeUrl.Cluster, bad), 'health_checks[0].http_health_check.method', /not be in list \[6\]/);
  });

  it('uint32 lte: an endpoint port above 65535', () => {
    const bad = mutate(loadAssignment, (l) => (l.endpoints[0].lb_endpoints[1].endpoint.address.socket_address.port_value = 65536));
    only(validateResource(TypeUrl.ClusterLoadAssignment, bad), 'endpoints[0].lb_endpoints[1].endpoint.address.socket_address.port_value', /less than or equal to 65535/);
  });

  it('uint32 gte on a wrapper: locality weight 0', () => {
    const bad = mutate(loadAssignment, (l) => (l.endpoints[0].load_balancing_weight = 0));
    only(validateResource(TypeUrl.ClusterLoadAssignment, bad), 'endpoints[0].load_balancing_weight', /greater than or equal to 1/);
  });

  it('uint32 gt: overprovisioning_factor 0', () => {
    const bad = mutate(loadAssignment, (l) => (l.policy.overprovisioning_factor = 0));
    only(validateResource(TypeUrl.ClusterLoadAssignment, bad), 'policy.overprovisioning_factor', /greater than 0/);
  });

  it('uint64 lte on a wrapper: ring hash minimum_ring_size', () => {
    const ring = { ...cluster, lb_policy: 'RING_HASH', ring_hash_lb_config: { minimum_ring_size: '8388609' } };
    only(validateResource(TypeUrl.Cluster, ring), 'ring_hash_lb_config.minimum_ring_size', /less than or equal to 8388608/);
  });

  it('double range: healthy panic threshold above 100%', () => {
    const bad = { ...cluster, common_lb_config: { healthy_panic_threshold: { value: 150 } } };
    only(validateResource(TypeUrl.Cluster, bad), 'common_lb_config.healthy_panic_threshold.value', /greater than or equal to 0 and less than or equal to 100/);
  });

  it('map keys: filter_metadata with an empty key', () => {
    const bad = { ...cluster, metadata: { filter_metadata: { '': { a: 1 } } } };
    only(validateResource(TypeUrl.Cluster, bad), 'metadata.filter_metadata[""]', /at least 1 characters/);
  });

  it('any required: TypedExtensionConfig without typed_config', () => {
    only(validateResource(TypeUrl.ExtensionConfig, { name: 'weft-auth' }), 'typed_config', /required/);
  });

  it('bytes max_len: header raw_value above 16 KiB', () => {
    const raw = Buffer.alloc(16385, 97).toString('base64');
    only(validateMessage('envoy.config.core.v3.HeaderValue', { key: 'x', raw_value: raw }), 'raw_value', /at most 16384 bytes/);
  });
});

describe('PGV rules the wasm filter distribution relies on (issue 8)', () => {
  it('accepts a remote wasm module with sha256 and http_uri timeout, inside ECDS', () => {
    assert.deepEqual(validateMessage(WASM, wasmRemote), []);
    const ecds = { name: 'weft-auth', typed_config: { '@type': `type.googleapis.com/${WASM}`, ...wasmRemote } };
    assert.deepEqual(validateResource(TypeUrl.ExtensionConfig, ecds), []);
  });

  it('refuses vm_config.code.remote without sha256', () => {
    const bad = mutate(wasmRemote, (w) => delete w.config.vm_config.code.remote.sha256);
    only(validateMessage(WASM, bad), 'config.vm_config.code.remote.sha256', /at least 1 characters/);
  });

  it('refuses http_uri without timeout, with the full path through the ECDS Any', () => {
    const bad = mutate(wasmRemote, (w) => delete w.config.vm_config.code.remote.http_uri.timeout);
    const ecds = { name: 'weft-auth', typed_config: { '@type': `type.googleapis.com/${WASM}`, ...bad } };
    only(validateResource(TypeUrl.ExtensionConfig, ecds), 'typed_config.config.vm_config.code.remote.http_uri.timeout', /required/);
  });
});

describe('collecting errors', () => {
  it('reports every violation in a resource, not just the first', () => {
    const bad = mutate(listener, (l) => {
      const hcm = l.filter_chains[0].filters[0].typed_config;
      hcm.stat_prefix = '';
      hcm.http_filters[0].name = '';
      hcm.rds.route_config_name = 7;
    });
    const paths = validateResource(TypeUrl.Listener, bad).map((e) => e.path).sort();
    assert.deepEqual(paths, [
      'filter_chains[0].filters[0].typed_config.http_filters[0].name',
      'filter_chains[0].filters[0].typed_config.rds.route_config_name',
      'filter_chains[0].filters[0].typed_config.stat_prefix',
    ]);
  });

  it('validates a Bootstrap (ADS over gRPC, static xDS cluster, admin on loopback)', () => {
    const bootstrap = {
      node: { id: 'orders-1', cluster: 'orders', metadata: { weft_token: 'abc' } },
      admin: { address: { socket_address: { address: '127.0.0.1', port_value: 15000 } } },
      dynamic_resources: {
        ads_config: { api_type: 'DELTA_GRPC', transport_api_version: 'V3', grpc_services: [{ envoy_grpc: { cluster_name: 'weft_xds' } }] },
        cds_config: { ads: {}, resource_api_version: 'V3' },
        lds_config: { ads: {}, resource_api_version: 'V3' },
      },
      static_resources: {
        clusters: [
          {
            name: 'weft_xds',
            type: 'STRICT_DNS',
            connect_timeout: '1s',
            typed_extension_protocol_options: {
              'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': {
                '@type': 'type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions',
                explicit_http_config: { http2_protocol_options: {} },
              },
            },
            load_assignment: {
              cluster_name: 'weft_xds',
              endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: 'weft-control', port_value: 18000 } } } }] }],
            },
          },
        ],
      },
    };
    assert.deepEqual(validateMessage('envoy.config.bootstrap.v3.Bootstrap', bootstrap), []);
    const bad = mutate(bootstrap, (b) => (b.static_resources.clusters[0].connect_timeout = '-1s'));
    only(validateMessage('envoy.config.bootstrap.v3.Bootstrap', bad), 'static_resources.clusters[0].connect_timeout', /greater than 0s/);
  });
});

describe('fields newer than the protos grpc-js-xds ships', () => {
  it('refuses PluginConfig.failure_policy: this API version only knows fail_open', () => {
    const errors = validateMessage(WASM, mutate(wasmRemote, (w) => (w.config.failure_policy = 'FAIL_CLOSED')));
    only(errors, 'config.failure_policy', /unknown field "failure_policy"/);
  });
});

describe("Envoy's own refusals beyond PGV", () => {
  it('an api config source without api_type: its default DEPRECATED_AND_UNAVAILABLE_DO_NOT_USE is disallowed', () => {
    const ads = { transport_api_version: 'V3', grpc_services: [{ envoy_grpc: { cluster_name: 'weft_xds' } }] };
    only(validateMessage('envoy.config.bootstrap.v3.Bootstrap', { dynamic_resources: { ads_config: ads } }), 'dynamic_resources.ads_config.api_type', /must be set/);
    const explicit = { ...ads, api_type: 'DEPRECATED_AND_UNAVAILABLE_DO_NOT_USE' };
    only(validateMessage('envoy.config.bootstrap.v3.Bootstrap', { dynamic_resources: { ads_config: explicit } }), 'dynamic_resources.ads_config.api_type', /disallowed/);
    assert.deepEqual(validateMessage('envoy.config.bootstrap.v3.Bootstrap', { dynamic_resources: { ads_config: { ...ads, api_type: 'GRPC' } } }), []);
  });

  it('a deprecated field marked disallowed_by_default is refused when set', () => {
    const action = { dynamic_metadata: { descriptor_key: 'k', metadata_key: { key: 'weft', path: [{ key: 'a' }] } } };
    only(validateMessage('envoy.config.route.v3.RateLimit.Action', action), 'dynamic_metadata', /deprecated and disallowed/);
  });
});

describe("Envoy's route-table refusals", () => {
  it('refuses a domain served by two virtual hosts (compared lowercased)', () => {
    const bad = mutate(routeConfiguration(2), (r) => r.virtual_hosts[1].domains.push('SVC-0:8080'));
    only(validateResource(TypeUrl.RouteConfiguration, bad), 'virtual_hosts[1].domains[3]', /already used by virtual_hosts\[0\]/);
  });

  it('refuses adding or removing pseudo-headers and Host', () => {
    const bad = mutate(routeConfiguration(1), (r) => {
      r.virtual_hosts[0].routes[0].request_headers_to_add = [{ header: { key: ':authority', value: 'x' } }];
      r.virtual_hosts[0].request_headers_to_remove = ['Host'];
    });
    const errors = validateResource(TypeUrl.RouteConfiguration, bad);
    assert.deepEqual(errors.map((e) => e.path).sort(), ['virtual_hosts[0].request_headers_to_remove[0]', 'virtual_hosts[0].routes[0].request_headers_to_add[0].header.key']);
  });

  it('refuses weighted clusters whose weights sum to 0', () => {
    const bad = mutate(routeConfiguration(1), (r) => {
      for (const c of r.virtual_hosts[0].routes[0].route.weighted_clusters.clusters) c.weight = 0;
    });
    only(validateResource(TypeUrl.RouteConfiguration, bad), 'virtual_hosts[0].routes[0].route.weighted_clusters.clusters', /greater than 0/);
  });
});
