// Refusals Envoy makes beyond the schema and PGV, for mistakes a translator can
// actually make, registered per message type. The walker runs a message's checks
// after reading its fields, wherever rules apply.
import { joinPath } from './errors.ts';
import { clusterTypeRules, edsEndpointsAreIps, listenerAddressIsIp } from './semantic-clusters.ts';
import { TERMINAL_HTTP, TERMINAL_NETWORK, terminalOrder, uniqueFilterChainMatches } from './semantic-listeners.ts';
import { modifiableHeaders, uniqueDomains, weightedClusterSum } from './semantic-routes.ts';
import type { SemanticCheck } from './semantic-types.ts';

export type { SemanticCheck } from './semantic-types.ts';

const both = (a: SemanticCheck, b: SemanticCheck): SemanticCheck => (json, path, errors, loaded) => {
  a(json, path, errors, loaded);
  b(json, path, errors, loaded);
};

export const semanticChecks: ReadonlyMap<string, SemanticCheck> = new Map<string, SemanticCheck>([
  [
    'envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
    (json, path, errors, loaded) => terminalOrder(json.http_filters, joinPath(path, 'http_filters'), 'http', TERMINAL_HTTP, errors, loaded),
  ],
  [
    'envoy.config.listener.v3.FilterChain',
    (json, path, errors, loaded) => terminalOrder(json.filters, joinPath(path, 'filters'), 'network', TERMINAL_NETWORK, errors, loaded),
  ],
  ['envoy.config.listener.v3.Listener', both(uniqueFilterChainMatches, listenerAddressIsIp)],
  ['envoy.config.cluster.v3.Cluster', clusterTypeRules],
  ['envoy.config.endpoint.v3.ClusterLoadAssignment', edsEndpointsAreIps],
  ['envoy.config.route.v3.RouteConfiguration', both(uniqueDomains, modifiableHeaders)],
  ['envoy.config.route.v3.VirtualHost', modifiableHeaders],
  ['envoy.config.route.v3.Route', modifiableHeaders],
  ['envoy.config.route.v3.WeightedCluster.ClusterWeight', modifiableHeaders],
  ['envoy.config.route.v3.WeightedCluster', weightedClusterSum],
]);
