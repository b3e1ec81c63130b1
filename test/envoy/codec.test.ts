import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  decodeMessage,
  decodeResource,
  discoveryTypes,
  encodeMessage,
  encodeResource,
  EnvoyCodecError,
  packResource,
  TypeUrl,
  validateResource,
} from '../../control/envoy/index.ts';
import { cluster, listener, loadAssignment, resources, routeConfiguration } from './fixtures.ts';

function encode(typeUrl: string, json: unknown): Uint8Array {
  const result = encodeResource(typeUrl, json);
  if ('errors' in result) assert.fail(`unexpected errors: ${JSON.stringify(result.errors)}`);
  return result.bytes;
}

describe('envoy codec round trip', () => {
  for (const { typeUrl, json } of resources) {
    it(`${typeUrl.split('.').pop()} encodes, decodes back to the same JSON`, () => {
      assert.deepEqual(validateResource(typeUrl, json), []);
      const bytes = encode(typeUrl, json);
      assert.ok(bytes.length > 20);
      assert.deepEqual(decodeResource(typeUrl, bytes), json);
    });
  }

  it('expands the HCM inside the listener Any and keeps nested Anys', () => {
    const back = decodeResource(TypeUrl.Listener, encode(TypeUrl.Listener, listener)) as typeof listener;
    const hcm = back.filter_chains[0]!.filters[0]!.typed_config;
    assert.equal(hcm['@type'], 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager');
    assert.equal(hcm.rds.route_config_name, 'outbound_http');
    assert.equal(hcm.http_filters[0]!.typed_config['@type'], 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router');
    assert.equal(hcm.stream_idle_timeout, '0.250s');
  });

  it('decodes what protobufjs itself encoded (bytes are real protobuf)', () => {
    const bytes = encode(TypeUrl.ClusterLoadAssignment, loadAssignment);
    const Cla = discoveryTypes().Any.root.lookupType('envoy.config.endpoint.v3.ClusterLoadAssignment');
    const raw = Cla.toObject(Cla.decode(bytes), { enums: String }) as { cluster_name: string; endpoints: Array<{ lb_endpoints: Array<{ health_status: string }> }> };
    assert.equal(raw.cluster_name, 'orders');
    assert.equal(raw.endpoints[0]!.lb_endpoints[1]!.health_status, 'DRAINING');
  });

  it('writes canonical durations, accepts 64-bit integers as strings, wrappers as plain values', () => {
    const json = { ...cluster, connect_timeout: '0.25s', per_connection_buffer_limit_bytes: 32768 };
    const back = decodeResource(TypeUrl.Cluster, encode(TypeUrl.Cluster, json)) as Record<string, unknown>;
    assert.equal(back.connect_timeout, '0.250s');
    assert.equal(back.per_connection_buffer_limit_bytes, 32768);
    const hc = { timeout: '1s', interval: '2s', unhealthy_threshold: 1, healthy_threshold: 1, tcp_health_check: {}, initial_jitter: '0.000000001s' };
    const bytes = encodeMessage('envoy.config.core.v3.HealthCheck', hc);
    assert.equal((decodeMessage('envoy.config.core.v3.HealthCheck', bytes) as { initial_jitter: string }).initial_jitter, '0.000000001s');
    const negative = encodeMessage('envoy.config.core.v3.HealthCheck', { ...hc, initial_jitter: '-1.500s' });
    assert.equal((decodeMessage('envoy.config.core.v3.HealthCheck', negative) as { initial_jitter: string }).initial_jitter, '-1.500s');
    // null and undefined mean "not set", as JSON.stringify would drop undefined.
    const sparse = { ...hc, initial_jitter: null, interval_jitter: undefined };
    assert.deepEqual(decodeMessage('envoy.config.core.v3.HealthCheck', encodeMessage('envoy.config.core.v3.HealthCheck', sparse)), {
      timeout: '1s', interval: '2s', unhealthy_threshold: 1, healthy_threshold: 1, tcp_health_check: {},
    });
  });

  it('keeps 64-bit values beyond 2^53 exact as decimal strings', () => {
    const limit = { max_tokens: 10, tokens_per_fill: 1, fill_interval: '1s' };
    assert.deepEqual(validateResource('x/envoy.type.v3.TokenBucket', limit), []);
    const bytes = encodeMessage('envoy.config.core.v3.RuntimeUInt32', { default_value: 4294967295, runtime_key: 'k' });
    assert.deepEqual(decodeMessage('envoy.config.core.v3.RuntimeUInt32', bytes), { default_value: 4294967295, runtime_key: 'k' });
    const u64 = encodeMessage('google.protobuf.UInt64Value', { value: '18446744073709551615' });
    assert.deepEqual(decodeMessage('google.protobuf.UInt64Value', u64), { value: '18446744073709551615' });
  });

  it('packs a resource as an Any that DiscoveryResponse carries', () => {
    const packed = packResource(TypeUrl.RouteConfiguration, routeConfiguration(1));
    assert.ok('any' in packed);
    const { DiscoveryResponse } = discoveryTypes();
    const wire = DiscoveryResponse.encode({ version_info: '1', type_url: TypeUrl.RouteConfiguration, nonce: 'n1', resources: [packed.any] }).finish();
    const resp = decodeMessage('envoy.service.discovery.v3.DiscoveryResponse', wire) as { resources: Array<{ '@type': string; name: string }> };
    assert.equal(resp.resources[0]!['@type'], TypeUrl.RouteConfiguration);
    assert.equal(resp.resources[0]!.name, 'outbound_http');
  });

  it('throws EnvoyCodecError from encodeMessage on invalid input and from decode on garbage', () => {
    assert.throws(() => encodeMessage('envoy.config.cluster.v3.Cluster', { name: 'x', bogus: 1 }), EnvoyCodecError);
    assert.throws(() => decodeResource(TypeUrl.Cluster, new Uint8Array([0x0a, 0xff, 0xff])), EnvoyCodecError);
  });
});

describe('envoy codec strictness', () => {
  it('rejects an unknown field with its path, and every other error too', () => {
    const bad = structuredClone(listener) as Record<string, any>;
    bad.filter_chains[0].filters[0].typed_config.route_config_nam = 'x';
    bad.filterChains = [];
    bad.address.socket_address.port_value = 'http';
    const errors = validateResource(TypeUrl.Listener, bad);
    assert.deepEqual(
      errors.map((e) => e.path).sort(),
      ['address.socket_address.port_value', 'filterChains', 'filter_chains[0].filters[0].typed_config.route_config_nam'],
    );
    assert.match(errors.find((e) => e.path === 'filterChains')!.message, /unknown field.*"filter_chains"/);
    assert.ok('errors' in encodeResource(TypeUrl.Listener, bad));
  });

  it('rejects two members of one oneof', () => {
    const vh = routeConfiguration(1) as any;
    vh.virtual_hosts[0].routes[1].redirect = { path_redirect: '/x' };
    const errors = validateResource(TypeUrl.RouteConfiguration, vh);
    assert.equal(errors.length, 1);
    assert.equal(errors[0]!.path, 'virtual_hosts[0].routes[1].redirect');
    assert.match(errors[0]!.message, /oneof "action"/);
  });

  it('rejects an Any whose @type is not a loaded message, or has no @type', () => {
    const bad = structuredClone(listener) as any;
    bad.filter_chains[0].filters[0].typed_config.http_filters[0].typed_config['@type'] = 'type.googleapis.com/envoy.extensions.filters.http.nope.v3.Nope';
    bad.filter_chains.push({ filter_chain_match: { destination_port: 81 }, filters: [{ name: 'x', typed_config: { stat_prefix: 'y' } }] });
    const errors = validateResource(TypeUrl.Listener, bad);
    assert.deepEqual(errors.map((e) => e.path), [
      'filter_chains[0].filters[0].typed_config.http_filters[0].typed_config.@type',
      'filter_chains[1].filters[0].typed_config.@type',
    ]);
    assert.match(errors[0]!.message, /envoy\.extensions\.filters\.http\.nope\.v3\.Nope/);
  });

  it('rejects wrong JSON types, bad enum names, bad durations and out-of-range integers', () => {
    const errors = validateResource(TypeUrl.Cluster, {
      name: 'c',
      connect_timeout: 5,
      lb_policy: 'FASTEST',
      per_connection_buffer_limit_bytes: -1,
      circuit_breakers: { thresholds: {} },
      respect_dns_ttl: 'yes',
    });
    assert.deepEqual(errors.map((e) => e.path).sort(), [
      'circuit_breakers.thresholds',
      'connect_timeout',
      'lb_policy',
      'per_connection_buffer_limit_bytes',
      'respect_dns_ttl',
    ]);
  });

  it('refuses an unknown resource type', () => {
    const errors = validateResource('type.googleapis.com/envoy.config.cluster.v3.Clusterr', {});
    assert.equal(errors.length, 1);
    assert.match(errors[0]!.message, /unknown message type/);
  });
});

describe('TypedStruct', () => {
  it('validates the struct as the message its type_url names', () => {
    const typed = (value: unknown): unknown => ({
      name: 'weft-router',
      typed_config: { '@type': 'type.googleapis.com/xds.type.v3.TypedStruct', type_url: 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router', value },
    });
    assert.deepEqual(validateResource(TypeUrl.ExtensionConfig, typed({ suppress_envoy_headers: true })), []);
    const errors = validateResource(TypeUrl.ExtensionConfig, typed({ suppress_envoy_header: true }));
    assert.deepEqual(errors.map((e) => e.path), ['typed_config.value.suppress_envoy_header']);
  });
});
