// The extensions weft's translator and bootstrap use are loaded and round-trip:
// tcp_proxy, RBAC (network and HTTP), fault, wasm, file/stdout access logs,
// OpenTelemetry tracing, TLS secrets, Runtime.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decodeResource, encodeResource, TypeUrl, validateMessage, validateResource } from '../../control/envoy/index.ts';
import type { FieldError } from '../../control/envoy/index.ts';

function only(errors: FieldError[], path: string, message: RegExp): void {
  assert.equal(errors.length, 1, `expected exactly one error, got ${JSON.stringify(errors)}`);
  assert.equal(errors[0]!.path, path);
  assert.match(errors[0]!.message, message);
}

function roundTrip(typeUrl: string, json: unknown): void {
  const encoded = encodeResource(typeUrl, json);
  if ('errors' in encoded) assert.fail(JSON.stringify(encoded.errors, null, 2));
  assert.deepEqual(decodeResource(typeUrl, encoded.bytes), json);
}

const any = (name: string, fields: Record<string, unknown> = {}): Record<string, unknown> => ({ '@type': `type.googleapis.com/${name}`, ...fields });

const inboundListener = {
  name: 'inbound_orders',
  address: { socket_address: { address: '127.0.0.1', port_value: 15006 } },
  listener_filters: [{ name: 'envoy.filters.listener.tls_inspector', typed_config: any('envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector') }],
  filter_chains: [
    {
      filter_chain_match: { destination_port: 9090 },
      filters: [
        {
          name: 'envoy.filters.network.rbac',
          typed_config: any('envoy.extensions.filters.network.rbac.v3.RBAC', {
            stat_prefix: 'inbound_tcp',
            rules: { action: 'ALLOW', policies: { 'allow-web': { permissions: [{ any: true }], principals: [{ authenticated: { principal_name: { exact: 'spiffe://weft.local/ns/default/sa/web' } } }] } } },
          }),
        },
        { name: 'envoy.filters.network.tcp_proxy', typed_config: any('envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy', { stat_prefix: 'inbound_tcp', cluster: 'inbound|9090' }) },
      ],
    },
    {
      filters: [
        {
          name: 'envoy.filters.network.http_connection_manager',
          typed_config: any('envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager', {
            stat_prefix: 'inbound_http',
            route_config: {
              name: 'inbound_orders',
              virtual_hosts: [{ name: 'local', domains: ['*'], routes: [{ match: { prefix: '/' }, route: { cluster: 'inbound|8080' } }] }],
            },
            tracing: {
              provider: {
                name: 'envoy.tracers.opentelemetry',
                typed_config: any('envoy.config.trace.v3.OpenTelemetryConfig', { grpc_service: { envoy_grpc: { cluster_name: 'otel_collector' }, timeout: '0.250s' }, service_name: 'orders' }),
              },
              random_sampling: { value: 10 },
            },
            access_log: [
              {
                name: 'envoy.access_loggers.file',
                typed_config: any('envoy.extensions.access_loggers.file.v3.FileAccessLog', { path: '/dev/stdout', log_format: { json_format: { status: '%RESPONSE_CODE%' } } }),
              },
            ],
            http_filters: [
              {
                name: 'envoy.filters.http.fault',
                typed_config: any('envoy.extensions.filters.http.fault.v3.HTTPFault', {
                  delay: { fixed_delay: '2s', percentage: { numerator: 10, denominator: 'HUNDRED' } },
                  abort: { http_status: 503, percentage: { numerator: 5, denominator: 'HUNDRED' } },
                }),
              },
              {
                name: 'envoy.filters.http.rbac',
                typed_config: any('envoy.extensions.filters.http.rbac.v3.RBAC', {
                  rules: { action: 'DENY', policies: { 'deny-admin': { permissions: [{ url_path: { path: { prefix: '/admin' } } }], principals: [{ any: true }] } } },
                }),
              },
              { name: 'weft-auth', config_discovery: { config_source: { ads: {}, resource_api_version: 'V3' }, type_urls: [`type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm`] } },
              { name: 'envoy.filters.http.router', typed_config: any('envoy.extensions.filters.http.router.v3.Router') },
            ],
          }),
        },
      ],
    },
  ],
};

describe('extensions weft uses', () => {
  it('an inbound listener with tcp_proxy, RBAC, fault, ECDS wasm, OpenTelemetry and a file access log round-trips', () => {
    roundTrip(TypeUrl.Listener, inboundListener);
  });

  it('an SDS secret with a certificate and a validation context round-trips', () => {
    roundTrip(TypeUrl.Secret, {
      name: 'default',
      tls_certificate: { certificate_chain: { inline_string: '-----BEGIN CERTIFICATE-----\n...' }, private_key: { inline_bytes: Buffer.from('key').toString('base64') } },
    });
    roundTrip(TypeUrl.Secret, { name: 'ROOTCA', validation_context: { trusted_ca: { inline_string: 'pem' }, match_typed_subject_alt_names: [{ san_type: 'URI', matcher: { prefix: 'spiffe://weft.local/' } }] } });
  });

  it('a Runtime layer (Struct) round-trips', () => {
    roundTrip(TypeUrl.Runtime, { name: 'weft', layer: { 'overload.global_downstream_max_connections': 10000, 'feature.enabled': true, nested: { a: [1, 'two', null] } } });
  });

  it('an unknown field deep inside a nested Any is reported with the full path', () => {
    const bad = structuredClone(inboundListener) as any;
    const abort = bad.filter_chains[1].filters[0].typed_config.http_filters[0].typed_config.abort;
    abort.http_stauts = abort.http_status; // a typo: unknown field, and the required oneof is now unset
    delete abort.http_status;
    const errors = validateResource(TypeUrl.Listener, bad);
    assert.deepEqual(errors.map((e) => e.path), [
      'filter_chains[1].filters[0].typed_config.http_filters[0].typed_config.abort.http_stauts',
      'filter_chains[1].filters[0].typed_config.http_filters[0].typed_config.abort.error_type',
    ]);
  });

  it('every message type weft builds is loaded', () => {
    const names = [
      'envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy',
      'envoy.extensions.filters.http.wasm.v3.Wasm',
      'envoy.extensions.wasm.v3.PluginConfig',
      'envoy.extensions.access_loggers.stream.v3.StdoutAccessLog',
      'envoy.extensions.access_loggers.file.v3.FileAccessLog',
      'envoy.config.trace.v3.OpenTelemetryConfig',
      'envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext',
      'envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext',
      'envoy.extensions.upstreams.http.v3.HttpProtocolOptions',
      'envoy.type.matcher.v3.StringMatcher',
      'envoy.config.bootstrap.v3.Bootstrap',
      'envoy.service.discovery.v3.DeltaDiscoveryRequest',
    ];
    for (const name of names) {
      assert.ok(!validateMessage(name, {}).some((e) => /unknown message type/.test(e.message)), name);
    }
  });
});

describe("Envoy's terminal-filter rule", () => {
  it('refuses an HTTP filter after the router, and a chain that does not end with one', () => {
    const bad = structuredClone(inboundListener) as any;
    const filters = bad.filter_chains[1].filters[0].typed_config.http_filters;
    filters.push(filters.shift()); // fault moves after the router
    const errors = validateResource(TypeUrl.Listener, bad);
    assert.deepEqual(errors.map((e) => e.path), [
      'filter_chains[1].filters[0].typed_config.http_filters[2]',
      'filter_chains[1].filters[0].typed_config.http_filters[3]',
    ]);
    assert.match(errors[0]!.message, /terminal filter "envoy.filters.http.router".*must be the last/);
    assert.match(errors[1]!.message, /non-terminal filter "envoy.filters.http.fault" .*is the last/);
  });

  it('refuses a network filter chain ending in RBAC, or with tcp_proxy before another filter', () => {
    const bad = structuredClone(inboundListener) as any;
    bad.filter_chains[0].filters.reverse();
    const errors = validateResource(TypeUrl.Listener, bad);
    assert.deepEqual(errors.map((e) => e.path), ['filter_chains[0].filters[0]', 'filter_chains[0].filters[1]']);
    assert.match(errors[0]!.message, /terminal filter "envoy.filters.network.tcp_proxy"/);
  });
});

describe("Envoy's other load-time refusals", () => {
  it('refuses two filter chains with the same match', () => {
    const bad = structuredClone(inboundListener) as any;
    bad.filter_chains[1].filter_chain_match = { destination_port: 9090 };
    only(validateResource(TypeUrl.Listener, bad), 'filter_chains[1].filter_chain_match', /filter_chains\[0\] already matches/);
  });
});

describe("Envoy's cluster-type and address rules", () => {
  it('refuses an EDS cluster without eds_cluster_config', () => {
    const cluster = { name: 'orders', type: 'EDS', connect_timeout: '1s' };
    only(validateResource(TypeUrl.Cluster, cluster), 'eds_cluster_config', /cannot create an EDS cluster without an EDS config/);
  });

  it('refuses hostnames where Envoy does not resolve DNS: EDS endpoints, STATIC hosts, listener addresses', () => {
    const endpoint = (address: string) => ({ endpoint: { address: { socket_address: { address, port_value: 15006 } } } });
    const eds = { cluster_name: 'orders', endpoints: [{ lb_endpoints: [endpoint('10.0.0.1'), endpoint('orders-sidecar')] }] };
    only(validateResource(TypeUrl.ClusterLoadAssignment, eds), 'endpoints[0].lb_endpoints[1].endpoint.address.socket_address.address', /"orders-sidecar" is not an IP address/);
    const staticCluster = { name: 'xds', connect_timeout: '1s', load_assignment: { cluster_name: 'xds', endpoints: [{ lb_endpoints: [endpoint('weft-control')] }] } };
    only(validateResource(TypeUrl.Cluster, staticCluster), 'load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.address', /not an IP address/);
    assert.deepEqual(validateResource(TypeUrl.Cluster, { ...staticCluster, type: 'STRICT_DNS' }), [], 'DNS clusters may name hosts');
    const named = { ...inboundListener, address: { socket_address: { address: 'orders', port_value: 15006 } } };
    only(validateResource(TypeUrl.Listener, named), 'address.socket_address.address', /not an IP address/);
  });

  it('refuses a LOGICAL_DNS cluster with two hosts and an ORIGINAL_DST cluster with a round-robin policy', () => {
    const endpoint = (address: string) => ({ endpoint: { address: { socket_address: { address, port_value: 80 } } } });
    const logical = { name: 'ext', type: 'LOGICAL_DNS', connect_timeout: '1s', load_assignment: { cluster_name: 'ext', endpoints: [{ lb_endpoints: [endpoint('a.example'), endpoint('b.example')] }] } };
    only(validateResource(TypeUrl.Cluster, logical), 'load_assignment', /single locality_lb_endpoint and a single lb_endpoint/);
    only(validateResource(TypeUrl.Cluster, { name: 'passthrough', type: 'ORIGINAL_DST', connect_timeout: '1s' }), 'lb_policy', /only CLUSTER_PROVIDED/);
  });
});

describe('ECDS wasm filter', () => {
  it('a TypedExtensionConfig wrapping a remote wasm module with a StringValue configuration round-trips', () => {
    roundTrip(TypeUrl.ExtensionConfig, {
      name: 'weft.wasm.default.auth',
      typed_config: any('envoy.extensions.filters.http.wasm.v3.Wasm', {
        config: {
          name: 'auth',
          root_id: 'auth',
          vm_config: {
            runtime: 'envoy.wasm.runtime.v8',
            code: { remote: { http_uri: { uri: 'http://127.0.0.1:8080/wasm/ab.wasm', cluster: 'weft_control', timeout: '10s' }, sha256: 'ab', retry_policy: { num_retries: 3 } } },
          },
          configuration: any('google.protobuf.StringValue', { value: '{"header":"x-user"}' }),
          fail_open: true,
        },
      }),
    });
  });
});
