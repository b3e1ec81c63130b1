// Hand-written Envoy resources (proto3 JSON) for xDS server tests,
// so the cache and server are tested independently of the translator.
import type { ResourceEncoder, ResourceInput } from '../../control/xds/cache.ts';
import { encodeResource } from '../../control/envoy/index.ts';
import { TypeUrl } from '../../control/xds/discovery.ts';

/** control/envoy's validating encoder: the same one production uses. */
export const testEncoder: ResourceEncoder = encodeResource;

export function cluster(name: string): ResourceInput {
  return { name, value: { name, type: 'EDS', eds_cluster_config: { eds_config: { ads: {} }, service_name: name }, connect_timeout: '1s' } };
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
