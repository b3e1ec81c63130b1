// The Envoy v3 bootstrap for a weft sidecar: who the proxy is (node), where its
// config comes from (ADS over Delta gRPC), and the few static things xDS cannot
// deliver: the xDS cluster itself, the cluster that fetches wasm modules, the
// admin interface on loopback, and a Prometheus listener that exposes only the
// stats off loopback. Everything else (listeners, routes, clusters, filters)
// arrives over ADS, so a bootstrap never changes when the mesh does.
//
// The output is Envoy proto3 JSON (snake_case), which is also valid Envoy YAML.

import { CONTROL_PLANE_ID_PATTERN } from '../control/ca/spiffe.ts';
import { validateMessage } from '../control/envoy/index.ts';
import type { FieldError } from '../control/model/result.ts';
import {
  OTEL_CLUSTER_NAME, resolveBootstrapOptions, WASM_CLUSTER_NAME, XDS_CLUSTER_NAME,
  type BootstrapOptions, type HostPort, type ResolvedBootstrapOptions,
} from './options.ts';

export type Json = Record<string, unknown>;

export const BOOTSTRAP_TYPE = 'envoy.config.bootstrap.v3.Bootstrap';
const HTTP_OPTIONS_KEY = 'envoy.extensions.upstreams.http.v3.HttpProtocolOptions';
const HCM_TYPE = 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';
const ROUTER_TYPE = 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router';
/** Static cluster that reaches the admin interface, for the Prometheus listener. */
export const ADMIN_CLUSTER_NAME = 'weft_admin';

const IPV4 = /^\d{1,3}(\.\d{1,3}){3}$/;

/** A host only reachable from the same network namespace. */
function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  return /^127(\.\d{1,3}){3}$/.test(h) || h === '::1' || h === 'localhost';
}

/**
 * The node.metadata keys control/xds/node.ts reads (ports as strings: Envoy sends a Struct).
 * WEFT_ADMIN_PORT is where the control plane reads the proxy's /config_dump and
 * stats, on its own loopback: declared only when Envoy reaches the control
 * plane on loopback, so both share one network namespace (Envoy in a
 * container keeps its admin on a loopback the control plane cannot reach).
 */
export function nodeMetadata(o: ResolvedBootstrapOptions): Record<string, string> {
  const meta: Record<string, string> = {
    WEFT_NAMESPACE: o.namespace,
    WEFT_KIND: 'sidecar',
    WEFT_INBOUND_PORT: String(o.inboundPort),
    WEFT_OUTBOUND_PORT: String(o.outboundPort),
    WEFT_APP_ADDRESS: o.appAddress,
    WEFT_BIND_ADDRESS: o.bindAddress,
  };
  if (o.appPort !== undefined) meta.WEFT_APP_PORT = String(o.appPort);
  if (isLoopback(o.xds.host)) meta.WEFT_ADMIN_PORT = String(o.adminPort);
  if (o.token !== undefined) meta.WEFT_TOKEN = o.token;
  return meta;
}

function address(host: string, port: number): Json {
  return { socket_address: { address: host.replace(/^\[|\]$/g, ''), port_value: port } };
}

/**
 * HTTP/2 PINGs on the ADS connection: an idle stream carries no bytes, so
 * without them an Envoy whose control plane vanished without a FIN (host
 * crash, network partition) waits on a dead connection forever and never
 * takes config again. Envoy's docs recommend TCP or HTTP/2 keepalives on the
 * management server's cluster; weft's gRPC server answers PINGs at any rate.
 */
export const XDS_KEEPALIVE = { interval: '30s', timeout: '5s' } as const;

/** One upstream host. IPs are STATIC; names are LOGICAL_DNS (one host, re-resolved: the right type for a single control plane). */
function singleHostCluster(name: string, target: HostPort, http2: boolean | { keepalive: Json }): Json {
  const isIp = IPV4.test(target.host) || target.host.includes(':');
  const cluster: Json = {
    name,
    type: isIp ? 'STATIC' : 'LOGICAL_DNS',
    connect_timeout: '1s',
    ...(isIp ? {} : { dns_lookup_family: 'V4_PREFERRED' }),
    load_assignment: {
      cluster_name: name,
      endpoints: [{ lb_endpoints: [{ endpoint: { address: address(target.host, target.port) } }] }],
    },
  };
  if (http2) {
    // gRPC needs HTTP/2 to the upstream; Envoy defaults clusters to HTTP/1.1.
    cluster.typed_extension_protocol_options = {
      [HTTP_OPTIONS_KEY]: {
        '@type': `type.googleapis.com/${HTTP_OPTIONS_KEY}`,
        explicit_http_config: { http2_protocol_options: http2 === true ? {} : { connection_keepalive: http2.keepalive } },
      },
    };
  }
  return cluster;
}

/** Serves /stats/prometheus and /ready from the admin interface, which stays on loopback (it can also quit Envoy). */
function prometheusListener(o: ResolvedBootstrapOptions): Json {
  const route = (path: string) => ({ match: { path }, route: { cluster: ADMIN_CLUSTER_NAME } });
  return {
    name: 'weft_prometheus',
    address: address(o.bindAddress, o.prometheusPort),
    // scrapes and readiness probes get in when the overload manager caps connections
    ...(o.maxDownstreamConnections !== undefined ? { ignore_global_conn_limit: true } : {}),
    filter_chains: [{
      filters: [{
        name: 'envoy.filters.network.http_connection_manager',
        typed_config: {
          '@type': HCM_TYPE,
          stat_prefix: 'weft_prometheus',
          route_config: {
            name: 'weft_prometheus',
            virtual_hosts: [{ name: 'admin', domains: ['*'], routes: [route('/stats/prometheus'), route('/ready')] }],
          },
          http_filters: [{ name: 'envoy.filters.http.router', typed_config: { '@type': ROUTER_TYPE } }],
        },
      }],
    }],
  };
}

/**
 * Envoy's overload manager, as the weft sidecar runs it with the same flags
 * (sidecar/overload.ts): fixed_heap turns keep-alive off at 95% and refuses
 * new requests at 98% (Envoy's edge best practices' thresholds);
 * global_downstream_max_connections caps the listeners' connections (the
 * Prometheus listener opts out, so scrapes still get in).
 */
function overloadManager(o: ResolvedBootstrapOptions): Json | undefined {
  if (o.maxHeapMb === undefined && o.maxDownstreamConnections === undefined) return undefined;
  const monitors: Json[] = [];
  const actions: Json[] = [];
  if (o.maxHeapMb !== undefined) {
    const heap = 'envoy.resource_monitors.fixed_heap';
    monitors.push({ name: heap, typed_config: { '@type': 'type.googleapis.com/envoy.extensions.resource_monitors.fixed_heap.v3.FixedHeapConfig', max_heap_size_bytes: String(o.maxHeapMb * 1024 * 1024) } });
    actions.push(
      { name: 'envoy.overload_actions.disable_http_keepalive', triggers: [{ name: heap, threshold: { value: 0.95 } }] },
      { name: 'envoy.overload_actions.stop_accepting_requests', triggers: [{ name: heap, threshold: { value: 0.98 } }] },
    );
  }
  if (o.maxDownstreamConnections !== undefined) {
    monitors.push({
      name: 'envoy.resource_monitors.global_downstream_max_connections',
      typed_config: { '@type': 'type.googleapis.com/envoy.extensions.resource_monitors.downstream_connections.v3.DownstreamConnectionsConfig', max_active_downstream_connections: String(o.maxDownstreamConnections) },
    });
  }
  return { refresh_interval: '0.250s', resource_monitors: monitors, ...(actions.length > 0 ? { actions } : {}) };
}

/**
 * Envoy refuses any regex whose RE2 program size exceeds the runtime value
 * re2.max_program_size.error_level, 100 by default: a route match such as
 * "/static/[a-z0-9._-]{1,64}" or a few alternatives is enough to NACK the
 * whole route configuration. The weft sidecar has no such limit and the API
 * cannot compute RE2 program sizes, so the bootstrap raises it as Istio's
 * does (32768, which still stops pathological patterns). The admin layer
 * keeps /runtime_modify working (an Envoy given a layered_runtime without
 * one, or none at all, answers it 503 "No admin layer specified").
 */
export const RE2_MAX_PROGRAM_SIZE = 32768;

/** The bootstrap's layered_runtime; the weft sidecar runs these layers too when not told otherwise (sidecar/runtime.ts). */
export function layeredRuntime(): Json {
  return {
    layers: [
      { name: 'weft', static_layer: { 're2.max_program_size.error_level': RE2_MAX_PROGRAM_SIZE } },
      { name: 'admin', admin_layer: {} },
    ],
  };
}

/** The control plane's SPIFFE ID in any trust domain (control/ca/serving-cert.ts issues it; the weft sidecar checks the same). */
export const CONTROL_PLANE_SAN_REGEX = CONTROL_PLANE_ID_PATTERN;

/**
 * TLS to the control plane (weft control --xds-tls), as an Istio proxy
 * verifies istiod: the chain against the mesh root, and the control plane's
 * SPIFFE ID, since every workload holds a certificate from the same CA. ALPN
 * h2: the cluster speaks HTTP/2 (gRPC).
 */
function xdsTransportSocket(o: ResolvedBootstrapOptions): Json {
  const host = o.xds.host.replace(/^\[|\]$/g, '');
  const isIp = IPV4.test(host) || host.includes(':');
  const sni = o.xdsServerName ?? (isIp ? undefined : host);
  return {
    name: 'envoy.transport_sockets.tls',
    typed_config: {
      '@type': 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext',
      common_tls_context: {
        alpn_protocols: ['h2'],
        validation_context: {
          trusted_ca: { filename: o.xdsCa },
          match_typed_subject_alt_names: [{ san_type: 'URI', matcher: { safe_regex: { regex: CONTROL_PLANE_SAN_REGEX } } }],
        },
      },
      ...(sni !== undefined ? { sni } : {}),
    },
  };
}

/** The bootstrap as Envoy proto3 JSON, from already-resolved options. Pure. */
export function bootstrapFor(o: ResolvedBootstrapOptions): Json {
  // initial_fetch_timeout 0s: Envoy waits for weft's first CDS and LDS
  // answer however long it takes (its default, 15 s, then goes LIVE with
  // whatever it holds, maybe nothing), so admin /ready = the first full
  // config, as the weft sidecar's /ready and the compose healthcheck mean it.
  const ads = { ads: {}, initial_fetch_timeout: '0s', resource_api_version: 'V3' };
  const xdsCluster = singleHostCluster(XDS_CLUSTER_NAME, o.xds, { keepalive: { ...XDS_KEEPALIVE } });
  if (o.xdsCa !== undefined) xdsCluster.transport_socket = xdsTransportSocket(o);
  const clusters: Json[] = [
    xdsCluster,
    singleHostCluster(WASM_CLUSTER_NAME, o.api, false),
  ];
  const listeners: Json[] = [];
  if (o.prometheusPort > 0) {
    clusters.push(singleHostCluster(ADMIN_CLUSTER_NAME, { host: '127.0.0.1', port: o.adminPort }, false));
    listeners.push(prometheusListener(o));
  }
  if (o.otelCollector) clusters.push(singleHostCluster(OTEL_CLUSTER_NAME, o.otelCollector, true));
  const overload = overloadManager(o);
  return {
    node: { id: o.nodeId, cluster: o.service, metadata: nodeMetadata(o) },
    dynamic_resources: {
      ads_config: {
        api_type: 'DELTA_GRPC',
        transport_api_version: 'V3',
        grpc_services: [{ envoy_grpc: { cluster_name: XDS_CLUSTER_NAME } }],
        set_node_on_first_message_only: true,
      },
      cds_config: ads,
      lds_config: ads,
    },
    static_resources: { listeners, clusters },
    admin: {
      address: address('127.0.0.1', o.adminPort),
      // Envoy counts admin connections against global_downstream_max_connections
      // unless told not to: under a full cap the healthcheck's /ready and the
      // Prometheus listener's hop to the admin would be refused. The weft
      // sidecar caps only its inbound and outbound listeners.
      ...(o.maxDownstreamConnections !== undefined ? { ignore_global_conn_limit: true } : {}),
    },
    ...(overload ? { overload_manager: overload } : {}),
    // Envoy's default tag extraction (cluster, listener, response code...) becomes Prometheus labels.
    stats_config: { use_all_default_tags: true },
    layered_runtime: layeredRuntime(),
  };
}

/**
 * Checks the options, builds the bootstrap and validates it against Envoy's
 * Bootstrap proto (with its PGV rules): a bootstrap Envoy would refuse is
 * never written.
 */
export function generateBootstrap(opts: BootstrapOptions): { ok: true; bootstrap: Json } | { ok: false; errors: FieldError[] } {
  const resolved = resolveBootstrapOptions(opts);
  if (!resolved.ok) return resolved;
  const bootstrap = bootstrapFor(resolved.value);
  const errors = validateMessage(BOOTSTRAP_TYPE, bootstrap);
  if (errors.length > 0) return { ok: false, errors: errors.map((e) => ({ path: `bootstrap${e.path ? `.${e.path}` : ''}`, message: e.message })) };
  return { ok: true, bootstrap };
}
