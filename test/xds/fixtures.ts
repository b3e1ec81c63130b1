// Hand-written Envoy resources and a protobufjs encoder for xDS server tests,
// so the cache and server are tested independently of the translator.
import type { ResourceEncoder, ResourceInput } from '../../control/xds/cache.ts';
import { loadEnvoyProtos, TypeUrl } from '../../control/xds/discovery.ts';

let root: ReturnType<typeof loadEnvoyProtos> | undefined;
function envoy() {
  root ??= loadEnvoyProtos([
    'envoy/config/cluster/v3/cluster.proto',
    'envoy/config/endpoint/v3/endpoint.proto',
    'envoy/config/listener/v3/listener.proto',
    'envoy/config/route/v3/route.proto',
    'envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.proto',
    'envoy/extensions/filters/http/router/v3/router.proto',
  ]);
  return root;
}

/** Encodes with protobufjs; type mismatches (protobufjs verify) are errors with the field path. */
export const testEncoder: ResourceEncoder = (typeUrl, json) => {
  const type = envoy().lookupType(typeUrl.slice(typeUrl.lastIndexOf('/') + 1));
  const problem = type.verify(json as Record<string, unknown>);
  if (problem) {
    const colon = problem.indexOf(':');
    return { errors: [{ path: colon > 0 ? problem.slice(0, colon) : '', message: problem }] };
  }
  return { bytes: type.encode(type.fromObject(json as Record<string, unknown>)).finish() };
};

export function cluster(name: string): ResourceInput {
  return { name, value: { name, type: 3 /* EDS */, eds_cluster_config: { eds_config: { ads: {} }, service_name: name }, connect_timeout: { seconds: 1 } } };
}

export function cla(name: string, ports: number[]): ResourceInput {
  return {
    name,
    value: {
      cluster_name: name,
      endpoints: [{ lb_endpoints: ports.map((p) => ({ endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: p } } } })) }],
    },
  };
}

export function listener(name: string, routeName: string): ResourceInput {
  return {
    name,
    value: {
      name,
      address: { socket_address: { address: '127.0.0.1', port_value: 15001 } },
      filter_chains: [
        {
          filters: [
            {
              name: 'envoy.filters.network.http_connection_manager',
              typed_config: {
                '@type': 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
                stat_prefix: name,
                rds: { route_config_name: routeName, config_source: { ads: {} } },
              },
            },
          ],
        },
      ],
    },
  };
}

export function route(name: string, clusters: string[]): ResourceInput {
  return {
    name,
    value: {
      name,
      virtual_hosts: clusters.map((c) => ({ name: c, domains: [c], routes: [{ match: { prefix: '/' }, route: { cluster: c } }] })),
    },
  };
}

/** A route config no listener uses: Delta tests subscribe to it as a barrier. */
export const BARRIER_ROUTE = 'barrier';

/** A consistent group snapshot: clusters, one listener + route config over them. */
export function meshResources(clusters: string[], routeName = 'outbound'): Record<string, ResourceInput[]> {
  return {
    [TypeUrl.cluster]: clusters.map(cluster),
    [TypeUrl.listener]: [listener('outbound', routeName)],
    [TypeUrl.route]: [route(routeName, clusters), route(BARRIER_ROUTE, [])],
  };
}
