// Translation: the mesh model -> Envoy resources for one proxy. Pure: no I/O,
// no clock, no randomness; output order is deterministic (sorted by name).
//
// Output is Envoy proto3 JSON with snake_case field names (as in Envoy's YAML
// docs and /config_dump): durations as strings ("5s"), wrappers as plain
// values, Any as {"@type": ..., ...}, enums by name. A resource's top-level
// value carries no @type: the type URL is the key it is published under.
//
// Resource names (the xDS server, sidecar, CLI and docs depend on them):
//   listeners
//     inbound                     sidecar only; binds proxy.bindAddress:proxy.inboundPort and
//                                 hands traffic to cluster inbound|<appPort>||<service>.<namespace>
//                                 (HTTP connection manager, or tcp_proxy for tcp services)
//     outbound                    sidecar only; binds 127.0.0.1:proxy.outboundPort, HTTP
//                                 connection manager with RDS route config "outbound"
//     <service>                   proxyless gRPC: api_listener for xds:///<service> (grpc ports only),
//     <service>.<namespace>       for every reachable service with a grpc port; inline route_config
//   routes
//     outbound                    one virtual host per reachable service, domains name, name:port,
//                                 name.namespace[:port], name.namespace.svc[:port],
//                                 name.namespace.svc.cluster.local[:port]; plus a catch-all 404 host
//     inbound                     (inline in the inbound listener, never published)
//   clusters
//     inbound|<appPort>||<service>.<namespace>          STATIC, the local app (sidecar only)
//     outbound|<port>|<subset or empty>|<service>.<namespace>   EDS over ADS, service_name = cluster name
//   endpoints
//     one ClusterLoadAssignment per outbound cluster name, cluster_name = that name
//   extension configs (ECDS)
//     weft.wasm.<namespace>.<binding>   TypedExtensionConfig wrapping envoy.extensions.filters.http.wasm.v3.Wasm

import type { MeshModel, ProxyRef } from '../model/types.ts';
import { translateProxyResources } from './proxy.ts';
import { translateClusterLoadAssignments } from './endpoints.ts';

export interface EnvoyResource {
  name: string;
  /** Carries no @type at top level; the type URL is the map key. */
  value: Record<string, unknown>;
}

export interface TranslateOptions {
  /** The control plane's HTTP base for wasm modules, e.g. http://127.0.0.1:8080 */
  wasmBaseUrl: string;
  /** The bootstrap cluster that reaches wasmBaseUrl. */
  wasmClusterName: string;
}

export interface TranslateError {
  /** Resource (or model object) the error concerns. */
  resource?: string;
  /** Field path in the model, e.g. routes[reviews].rules[0].destinations[1].subset */
  path: string;
  message: string;
}

export interface ProxyResources {
  listeners: EnvoyResource[];
  routes: EnvoyResource[];
  clusters: EnvoyResource[];
  extensionConfigs: EnvoyResource[];
  /** EDS names the clusters reference. */
  endpointNames: string[];
  errors: TranslateError[];
}

/**
 * Listeners, routes, clusters (and ECDS extension configs) for one proxy.
 * Depends only on services, routes, policies, bindings, modules; never on
 * instances, so instance churn never retranslates these.
 */
export function translateProxy(model: MeshModel, proxy: ProxyRef, options: TranslateOptions): ProxyResources {
  return translateProxyResources(model, proxy, options);
}

/** One ClusterLoadAssignment per EDS cluster name, from the live instances (health, zone -> locality, subset label filtering). */
export function translateEndpoints(
  model: MeshModel,
  clusterNames: Iterable<string>,
): { endpoints: EnvoyResource[]; errors: TranslateError[] } {
  return translateClusterLoadAssignments(model, clusterNames);
}

export { parseClusterName, outboundClusterName, inboundClusterName } from './names.ts';
