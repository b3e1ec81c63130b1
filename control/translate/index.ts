// Translation: the mesh model -> Envoy resources for one proxy. Pure: no I/O,
// no clock, no randomness; output order is deterministic (sorted by name).
//
// Output is Envoy proto3 JSON with snake_case field names (as in Envoy's YAML
// docs and /config_dump): durations as strings ("5s"), wrappers as plain
// values, Any as {"@type": ..., ...}, enums by name. A resource's top-level
// value carries no @type: the type URL is the key it is published under.
//
// Resource names (the xDS server, sidecar, CLI and docs depend on them):
//   listeners (sidecar proxies)
//     inbound       binds proxy.bindAddress:proxy.inboundPort; HTTP connection manager with an
//                   inline route config "inbound" to cluster inbound|<appPort>||<service>.<namespace>,
//                   or tcp_proxy to that cluster when the app port's protocol is tcp
//     outbound      binds 127.0.0.1:proxy.outboundPort; HTTP connection manager with RDS "outbound"
//   listeners (proxyless gRPC clients: api_listener, inline route config, router last)
//     <service>, <service>:<port>                      grpc ports of services in the caller's namespace
//     <service>.<namespace>, <service>.<namespace>:<port>   grpc ports of every reachable service
//   routes
//     outbound      one virtual host "<service>.<namespace>:<port>" per reachable HTTP port, domains
//                   <service> (caller's namespace only), <service>.<namespace>, <service>.<namespace>.svc,
//                   <service>.<namespace>.svc.cluster.local, each also with :<port> (port-less forms
//                   on the service's first HTTP port only); then "not_found": * -> 404
//   clusters
//     inbound|<appPort>||<service>.<namespace>                STATIC, the local app (sidecar only)
//     outbound|<port>|<subset or empty>|<service>.<namespace>  EDS over ADS, service_name = cluster name;
//                   one per port of every reachable service (and of every service a route sends or
//                   mirrors to), times (no subset + each subset of its DestinationPolicy)
//   endpoints
//     one ClusterLoadAssignment per outbound cluster name, cluster_name = that name; one locality
//     per zone (empty locality for zone-less instances), load_balancing_weight = endpoint count
//   extension configs (ECDS, sidecar only)
//     weft.wasm.<namespace>.<binding>   TypedExtensionConfig wrapping envoy.extensions.filters.http.wasm.v3.Wasm;
//                   the HCM filter of the same name points at it through config_discovery
//
//   secrets (SDS; built by sdsSecrets from the CA's PEMs, served per proxy identity by control/xds)
//     default       tls_certificate: the workload's chain and key
//     ROOTCA        validation_context: the trust bundle
//
// Mesh identity (options.identity set): the inbound listener gets mutual TLS per
// the service's PeerAuthentication mode (features/listener-mtls.ts; default
// PERMISSIVE), outbound clusters to non-DISABLE services an UpstreamTlsContext
// checking the destination's SPIFFE ID (features/cluster-mtls.ts).
// AuthorizationPolicy -> RBAC filters on the inbound HCM (features/http-filter-rbac.ts).
//
// Reachable services: the proxy's Service.dependsOn when set, else every service.
// Features live one per file in features/ (registered in features/index.ts);
// HTTP filter order is decided in filter-order.ts.

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
  /**
   * Mesh identity (issue 7). When set, listeners and clusters use mutual TLS
   * per PeerAuthentication, with certificates over SDS; when absent, all
   * traffic stays plaintext.
   */
  identity?: { trustDomain: string };
  /** JSON access logs on stdout in every sidecar HTTP connection manager; off when absent (features/hcm-access-log.ts). */
  accessLog?: AccessLogOptions;
  /** OpenTelemetry tracing in every sidecar HTTP connection manager; off when absent (features/hcm-tracing.ts). */
  tracing?: TracingOptions;
}

export interface AccessLogOptions {
  /** JSON keys -> Envoy format operators; default: the fields in features/hcm-access-log.ts. */
  fields?: Record<string, string>;
  /** Log callers' active health checks on the inbound side too (default: left out, by their user-agent Envoy/HC). */
  healthChecks?: boolean;
}

export interface TracingOptions {
  /** The bootstrap cluster that reaches an OTLP/gRPC collector (weft bootstrap's weft_otel). */
  collectorCluster: string;
  /** Share of requests that start a trace, 0..100; default 100. */
  samplingPercent?: number;
  /** service.name on spans; default the proxy's service. */
  serviceName?: string;
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
export { sdsSecrets, WORKLOAD_SECRET, TRUST_BUNDLE_SECRET, type SecretMaterial } from './secrets.ts';
