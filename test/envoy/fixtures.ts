// Realistic resources in Envoy's proto3 JSON, shaped like what weft's translator emits.
import { TypeUrl } from '../../control/envoy/index.ts';

export const listener = {
  name: 'outbound_http',
  address: { socket_address: { address: '127.0.0.1', port_value: 15001 } },
  filter_chains: [
    {
      filters: [
        {
          name: 'envoy.filters.network.http_connection_manager',
          typed_config: {
            '@type': 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
            stat_prefix: 'outbound_http',
            codec_type: 'AUTO',
            rds: {
              route_config_name: 'outbound_http',
              config_source: { ads: {}, resource_api_version: 'V3' },
            },
            http_filters: [
              {
                name: 'envoy.filters.http.router',
                typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router' },
              },
            ],
            common_http_protocol_options: { idle_timeout: '300s' },
            stream_idle_timeout: '0.250s',
            access_log: [
              {
                name: 'envoy.access_loggers.stdout',
                typed_config: {
                  '@type': 'type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog',
                  log_format: { json_format: { start: '%START_TIME%', status: '%RESPONSE_CODE%', upstream: '%UPSTREAM_HOST%' } },
                },
              },
            ],
          },
        },
      ],
    },
  ],
  traffic_direction: 'OUTBOUND',
};

export const cluster = {
  name: 'orders',
  type: 'EDS',
  eds_cluster_config: { eds_config: { ads: {}, resource_api_version: 'V3' }, service_name: 'orders' },
  connect_timeout: '5s',
  lb_policy: 'ROUND_ROBIN',
  circuit_breakers: {
    thresholds: [{ priority: 'DEFAULT', max_connections: 1024, max_pending_requests: 1024, max_requests: 1024, max_retries: 3 }],
  },
  outlier_detection: {
    consecutive_5xx: 5,
    interval: '10s',
    base_ejection_time: '30s',
    max_ejection_percent: 50,
  },
  health_checks: [
    {
      timeout: '1s',
      interval: '5s',
      unhealthy_threshold: 3,
      healthy_threshold: 2,
      http_health_check: { path: '/healthz', host: 'orders' },
    },
  ],
  typed_extension_protocol_options: {
    'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': {
      '@type': 'type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions',
      explicit_http_config: { http2_protocol_options: {} },
    },
  },
  metadata: { filter_metadata: { weft: { service: 'orders', revision: 7, canary: false } } },
};

export const loadAssignment = {
  cluster_name: 'orders',
  endpoints: [
    {
      locality: { zone: 'zone-a' },
      lb_endpoints: [
        { endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: 9001 } } }, health_status: 'HEALTHY' },
        { endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: 9002 } } }, health_status: 'DRAINING', load_balancing_weight: 2 },
      ],
      load_balancing_weight: 10,
    },
    {
      locality: { zone: 'zone-b' },
      priority: 1,
      lb_endpoints: [{ endpoint: { address: { socket_address: { address: '10.0.0.7', port_value: 9001 } } }, health_status: 'UNHEALTHY' }],
    },
  ],
  policy: { overprovisioning_factor: 140 },
};

export function routeConfiguration(vhosts = 2): Record<string, unknown> {
  return {
    name: 'outbound_http',
    virtual_hosts: Array.from({ length: vhosts }, (_, i) => ({
      name: `svc-${i}`,
      domains: [`svc-${i}`, `svc-${i}:8080`, `svc-${i}.default.svc`],
      routes: [
        {
          match: { prefix: '/api', headers: [{ name: 'x-canary', string_match: { exact: 'true' } }] },
          route: {
            weighted_clusters: {
              clusters: [
                { name: `svc-${i}-v1`, weight: 90 },
                { name: `svc-${i}-v2`, weight: 10 },
              ],
            },
            timeout: '15s',
            retry_policy: { retry_on: '5xx,reset', num_retries: 2, per_try_timeout: '0.500s' },
          },
        },
        { match: { prefix: '/' }, route: { cluster: `svc-${i}`, timeout: '15s' } },
      ],
      request_headers_to_add: [{ header: { key: 'x-weft-route', value: `svc-${i}` }, append_action: 'OVERWRITE_IF_EXISTS_OR_ADD' }],
    })),
  };
}

export const resources = [
  { typeUrl: TypeUrl.Listener, json: listener },
  { typeUrl: TypeUrl.Cluster, json: cluster },
  { typeUrl: TypeUrl.ClusterLoadAssignment, json: loadAssignment },
  { typeUrl: TypeUrl.RouteConfiguration, json: routeConfiguration() },
];
