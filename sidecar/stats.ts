// The sidecar's metrics, named as Envoy's Prometheus endpoint names them
// (envoy_cluster_*, envoy_http_*, envoy_listener_*) so dashboards and queries
// written for Envoy work against the weft sidecar unchanged.

import { Counter, Gauge, Histogram, type Metric, MetricsRegistry } from './metrics.ts';
import type { CounterSeries, HistogramSeries } from './metrics.ts';
import type { ResourceKind } from './fidelity.ts';
import type { EjectionType } from './outlier.ts';
import type { TracingSeries } from './tracing.ts';
import type { RuntimeStats } from './runtime.ts';
import type { HttpFilterConfig, RoutingPriority } from './config.ts';
import type { TlsOutcome } from './upstream.ts';

/**
 * Each metric's name in Envoy's own stats (admin /stats), `{label}` standing
 * for that label's value. Prometheus names lose the dots Envoy's names have,
 * so the scope of each family is given by prefix (longest first), and the
 * names that carry a label inside them are spelled out.
 */
const ENVOY_NAMES: Record<string, string> = {
  envoy_http_downstream_rq_xx: 'http.{envoy_http_conn_manager_prefix}.downstream_rq_{envoy_response_code_class}xx',
  envoy_cluster_upstream_rq: 'cluster.{envoy_cluster_name}.upstream_rq_{envoy_response_code}',
  envoy_cluster_upstream_rq_xx: 'cluster.{envoy_cluster_name}.upstream_rq_{envoy_response_code_class}xx',
  envoy_cluster_retry_upstream_rq: 'cluster.{envoy_cluster_name}.retry.upstream_rq_{envoy_response_code}',
  envoy_cluster_retry_upstream_rq_xx: 'cluster.{envoy_cluster_name}.retry.upstream_rq_{envoy_response_code_class}xx',
  envoy_wasm_filter_failures: 'wasm.{filter}.failures',
  envoy_overload_fixed_heap_pressure: 'overload.envoy.resource_monitors.fixed_heap.pressure',
  envoy_overload_global_downstream_max_connections_pressure: 'overload.envoy.resource_monitors.global_downstream_max_connections.pressure',
  envoy_overload_stop_accepting_requests_active: 'overload.envoy.overload_actions.stop_accepting_requests.active',
  envoy_overload_stop_accepting_requests_scale_percent: 'overload.envoy.overload_actions.stop_accepting_requests.scale_percent',
  envoy_overload_disable_http_keepalive_active: 'overload.envoy.overload_actions.disable_http_keepalive.active',
  envoy_overload_disable_http_keepalive_scale_percent: 'overload.envoy.overload_actions.disable_http_keepalive.scale_percent',
};

const ENVOY_SCOPES: [prefix: string, scope: string][] = [
  ['envoy_cluster_circuit_breakers_default_', 'cluster.{envoy_cluster_name}.circuit_breakers.default.'],
  ['envoy_cluster_circuit_breakers_high_', 'cluster.{envoy_cluster_name}.circuit_breakers.high.'],
  ['envoy_cluster_outlier_detection_', 'cluster.{envoy_cluster_name}.outlier_detection.'],
  ['envoy_cluster_health_check_', 'cluster.{envoy_cluster_name}.health_check.'],
  ['envoy_cluster_manager_', 'cluster_manager.'],
  ['envoy_cluster_ssl_', 'cluster.{envoy_cluster_name}.ssl.'],
  ['envoy_listener_ssl_', 'listener.{envoy_listener_address}.ssl.'],
  ['envoy_cluster_', 'cluster.{envoy_cluster_name}.'],
  ['envoy_http_tracing_', 'http.{envoy_http_conn_manager_prefix}.tracing.'],
  ['envoy_http_fault_', 'http.{envoy_http_conn_manager_prefix}.fault.'],
  ['envoy_http_', 'http.{envoy_http_conn_manager_prefix}.'],
  ['envoy_tracing_opentelemetry_', 'tracing.opentelemetry.'],
  ['envoy_tcp_', 'tcp.{envoy_tcp_prefix}.'],
  ['envoy_listener_manager_', 'listener_manager.'],
  ['envoy_listener_server_ssl_socket_factory_', 'listener.{envoy_listener_address}.server_ssl_socket_factory.'],
  ['envoy_listener_', 'listener.{envoy_listener_address}.'],
  ['envoy_control_plane_', 'control_plane.'],
  ['envoy_server_', 'server.'],
  ['envoy_runtime_', 'runtime.'],
];

/**
 * xDS updates by resource type, under the Envoy subscription stats that count
 * them: CDS and LDS exactly as Envoy's; RDS as Envoy's family once its tags
 * (connection manager, route configuration) are extracted; EDS, ECDS and SDS,
 * which Envoy counts per resource, once per type.
 */
const UPDATE_SCOPES: Record<ResourceKind, string> = {
  cluster: 'cluster_manager.cds',
  listener: 'listener_manager.lds',
  route: 'http.rds',
  endpoint: 'cluster_manager.eds',
  extension: 'extension_config_discovery',
  secret: 'sds',
};

function envoyNamer(template: string): (labels: Readonly<Record<string, string>>) => string {
  return (labels) => template.replace(/\{(\w+)\}/g, (_, k: string) => labels[k] ?? '');
}

/** Envoy's default histogram bucket bounds (ms), up to an hour: a long stream's time lands in its bucket, not in +Inf. */
const TIME_BUCKETS = [0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000];

/** Envoy's /memory figures that a Node process has (no tcmalloc page heap or thread caches). */
export interface MemoryFigures {
  allocated: number;
  heapSize: number;
  physical: number;
}

/** One connection manager's per-request series, looked up once per stat prefix. */
export interface HcmSeries {
  rq: CounterSeries;
  /** By response class 1..5 (index 0 is a sink for out-of-range codes). */
  rqXx: CounterSeries[];
  rqTime: HistogramSeries;
  /** Requests answered 413: a filter held more of the body than the buffer limit. */
  rqTooLarge: CounterSeries;
  /** Responses a filter held past the buffer limit (500, or a reset once headers were out). */
  rsTooLarge: CounterSeries;
  /** Streams ended by the route's max_stream_duration (or their grpc-timeout). */
  rqMaxDurationReached: CounterSeries;
  /** Requests answered 400 because normalize_path refused their path (an escaped NUL). */
  rqFailedPathNormalization: CounterSeries;
  /** Responses that began before their request had arrived whole (an HTTP/1 connection closes after them). */
  rqResponseBeforeRqComplete: CounterSeries;
  /** Requests in progress: from their headers to the end of their response (or its reset). */
  rqActive: CounterSeries;
  /** Connections accepted, and those open now. */
  cxTotal: CounterSeries;
  cxActive: CounterSeries;
  /** Upgrades the connection manager accepted (upgrade_configs allows them), and those not ended yet. */
  cxUpgradesTotal: CounterSeries;
  cxUpgradesActive: CounterSeries;
  /** Connections by the protocol they speak (HTTP/1.x, HTTP/2), and those open now. */
  cxHttp1Total: CounterSeries;
  cxHttp1Active: CounterSeries;
  cxHttp2Total: CounterSeries;
  cxHttp2Active: CounterSeries;
  /** Requests by protocol. */
  rqHttp1Total: CounterSeries;
  rqHttp2Total: CounterSeries;
  /** Responses sent whole (not reset, the client not gone first). */
  rqCompleted: CounterSeries;
  /** Streams ended by stream_idle_timeout (or a route's idle_timeout), and by request_timeout. */
  rqIdleTimeout: CounterSeries;
  rqTimeout: CounterSeries;
  /** Streams that ended in a reset, either side's (Envoy's onResetStream counts them all), and those the sidecar reset. */
  rqRxReset: CounterSeries;
  rqTxReset: CounterSeries;
  /** Connections over TLS (mutual TLS), and those open now. */
  cxSslTotal: CounterSeries;
  cxSslActive: CounterSeries;
  /** Connections closed: all, by who closed them first, and those closed with a request in progress (sidecar/downstream-cx.ts). */
  cxDestroy: CounterSeries;
  cxDestroyLocal: CounterSeries;
  cxDestroyRemote: CounterSeries;
  cxDestroyActiveRq: CounterSeries;
  cxDestroyLocalActiveRq: CounterSeries;
  cxDestroyRemoteActiveRq: CounterSeries;
  cxLengthMs: HistogramSeries;
  /** Bytes read from and written to the connections (added as they close, and for open ones whenever stats are read). */
  cxRxBytes: CounterSeries;
  cxTxBytes: CounterSeries;
  /** Why the sidecar closed connections: a request it could not read, the idle timeout, a drain, max_requests_per_connection, the overload manager. */
  cxProtocolError: CounterSeries;
  cxIdleTimeout: CounterSeries;
  cxDrainClose: CounterSeries;
  cxMaxRequestsReached: CounterSeries;
  cxOverloadDisableKeepalive: CounterSeries;
}

/** One TCP proxy's series (Envoy's tcp.<stat_prefix>.*). */
export interface TcpSeries {
  cxTotal: CounterSeries;
  /** No cluster of the proxy's name: the connection was closed. */
  noRoute: CounterSeries;
  /** Bytes written to the downstream. */
  txBytes: CounterSeries;
  /** Connections closed by idle_timeout. */
  idleTimeout: CounterSeries;
}

/** One listener's connection series (Envoy's listener.<address>.*). */
export interface ListenerSeries {
  cxTotal: CounterSeries;
  cxActive: CounterSeries;
  cxDestroy: CounterSeries;
  cxLengthMs: HistogramSeries;
  /** Connections waiting in the listener's filters (tls_inspector of a PERMISSIVE listener), and those it closed when they sent nothing in time. */
  preCxActive: CounterSeries;
  preCxTimeout: CounterSeries;
}

/** The overload manager's gauges (sidecar/overload.ts), under Envoy's overload.* names. */
export interface OverloadStats {
  heapPressure: Gauge<never>;
  connectionsPressure: Gauge<never>;
  stopRequestsActive: Gauge<never>;
  stopRequestsScale: Gauge<never>;
  keepaliveActive: Gauge<never>;
  keepaliveScale: Gauge<never>;
}

/** One cluster's per-request series, looked up once per cluster. */
export interface ClusterSeries {
  rq: CounterSeries;
  rqActive: CounterSeries;
  rqTime: HistogramSeries;
  /** By response class 1..5 (index 0 is a sink for out-of-range codes). */
  rqXx: CounterSeries[];
  /** By status code, created on first use. */
  rqCode: Map<number, CounterSeries>;
  /** upstream_rq_completed: responses counted by code (Envoy charges it with upstream_rq_<code> and _<class>xx). */
  rqCompleted: CounterSeries;
  /** upstream_cx_total and upstream_cx_active: connections the cluster's pools (and upgrades) opened. */
  cxTotal: CounterSeries;
  cxActive: CounterSeries;
  cxHttp1Total: CounterSeries;
  cxHttp2Total: CounterSeries;
  /**
   * circuit_breakers.{default,high}.{cx,rq_pending,rq,rq_retry,cx_pool}_open, by priority (0 DEFAULT, 1 HIGH): 1
   * while that limit is reached. Both priorities' are there for every cluster, as Envoy makes both resource managers.
   */
  breakerOpen: [BreakerOpenSeries, BreakerOpenSeries];
  /**
   * circuit_breakers.{default,high}.remaining_{cx,pending,rq,retries}, by priority: what is left of each limit, kept
   * only where that priority's thresholds set track_remaining (breakerRemaining).
   */
  breakerRemaining: [BreakerRemainingSeries | undefined, BreakerRemainingSeries | undefined];
}

export interface BreakerOpenSeries {
  cx: CounterSeries;
  rqPending: CounterSeries;
  rq: CounterSeries;
  rqRetry: CounterSeries;
  cxPool: CounterSeries;
}

export interface BreakerRemainingSeries {
  cx: CounterSeries;
  pending: CounterSeries;
  rq: CounterSeries;
  retries: CounterSeries;
}

export class SidecarStats {
  readonly registry = new MetricsRegistry();

  readonly downstreamRq = this.#counter('envoy_http_downstream_rq_total', 'Downstream requests', ['envoy_http_conn_manager_prefix']);
  readonly downstreamRqXx = this.#counter('envoy_http_downstream_rq_xx', 'Downstream responses by class', ['envoy_http_conn_manager_prefix', 'envoy_response_code_class']);
  readonly downstreamRqTime = this.#named(this.registry.register(new Histogram('envoy_http_downstream_rq_time', 'Downstream request time (ms)', ['envoy_http_conn_manager_prefix'], TIME_BUCKETS)));
  readonly downstreamCxActive = this.#gauge('envoy_http_downstream_cx_active', 'Active downstream connections', ['envoy_http_conn_manager_prefix']);
  readonly downstreamCxUpgradesActive = this.#gauge('envoy_http_downstream_cx_upgrades_active', 'Accepted upgrades (WebSocket) not ended yet', ['envoy_http_conn_manager_prefix']);
  readonly downstreamCxHttp1Active = this.#gauge('envoy_http_downstream_cx_http1_active', 'Open downstream HTTP/1.x connections', ['envoy_http_conn_manager_prefix']);
  readonly downstreamCxHttp2Active = this.#gauge('envoy_http_downstream_cx_http2_active', 'Open downstream HTTP/2 connections', ['envoy_http_conn_manager_prefix']);
  readonly downstreamCxTotal = this.#counter('envoy_http_downstream_cx_total', 'Downstream connections accepted', ['envoy_http_conn_manager_prefix']);
  readonly downstreamCxUpgradesTotal = this.#counter('envoy_http_downstream_cx_upgrades_total', 'Upgrades (WebSocket) the connection manager accepted', ['envoy_http_conn_manager_prefix']);
  readonly downstreamCxHttp1Total = this.#counter('envoy_http_downstream_cx_http1_total', 'Downstream HTTP/1.x connections', ['envoy_http_conn_manager_prefix']);
  readonly downstreamCxHttp2Total = this.#counter('envoy_http_downstream_cx_http2_total', 'Downstream HTTP/2 connections', ['envoy_http_conn_manager_prefix']);
  readonly downstreamRqHttp1Total = this.#counter('envoy_http_downstream_rq_http1_total', 'Downstream HTTP/1.x requests', ['envoy_http_conn_manager_prefix']);
  readonly downstreamRqHttp2Total = this.#counter('envoy_http_downstream_rq_http2_total', 'Downstream HTTP/2 requests', ['envoy_http_conn_manager_prefix']);
  readonly downstreamRqCompleted = this.#counter('envoy_http_downstream_rq_completed', 'Requests whose response was sent whole', ['envoy_http_conn_manager_prefix']);
  readonly downstreamRqIdleTimeout = this.#counter('envoy_http_downstream_rq_idle_timeout', 'Streams ended by the stream idle timeout', ['envoy_http_conn_manager_prefix']);
  readonly downstreamRqRxReset = this.#counter('envoy_http_downstream_rq_rx_reset', 'Streams that ended in a reset (the client\'s or the sidecar\'s)', ['envoy_http_conn_manager_prefix']);
  readonly downstreamRqTxReset = this.#counter('envoy_http_downstream_rq_tx_reset', 'Streams the sidecar reset (its response could not be finished)', ['envoy_http_conn_manager_prefix']);
  readonly downstreamRqTimeout = this.#counter('envoy_http_downstream_rq_timeout', 'Streams ended by request_timeout (the request did not arrive whole in time)', ['envoy_http_conn_manager_prefix']);
  readonly downstreamCxSslTotal = this.#counter('envoy_http_downstream_cx_ssl_total', 'Downstream TLS connections', ['envoy_http_conn_manager_prefix']);
  readonly downstreamCxSslActive = this.#gauge('envoy_http_downstream_cx_ssl_active', 'Open downstream TLS connections', ['envoy_http_conn_manager_prefix']);
  readonly downstreamCxDestroy = this.#counter('envoy_http_downstream_cx_destroy', 'Downstream connections closed', ['envoy_http_conn_manager_prefix']);
  readonly downstreamCxDestroyLocal = this.#counter('envoy_http_downstream_cx_destroy_local', 'Downstream connections the sidecar closed first', ['envoy_http_conn_manager_prefix']);
  readonly downstreamCxDestroyRemote = this.#counter('envoy_http_downstream_cx_destroy_remote', 'Downstream connections the client closed first (or reset)', ['envoy_http_conn_manager_prefix']);
  readonly downstreamCxDestroyActiveRq = this.#counter('envoy_http_downstream_cx_destroy_active_rq', 'Downstream connections closed with a request in progress', ['envoy_http_conn_manager_prefix']);
  readonly downstreamCxDestroyLocalActiveRq = this.#counter('envoy_http_downstream_cx_destroy_local_active_rq', 'Downstream connections the sidecar closed with a request in progress', ['envoy_http_conn_manager_prefix']);
  readonly downstreamCxDestroyRemoteActiveRq = this.#counter('envoy_http_downstream_cx_destroy_remote_active_rq', 'Downstream connections the client closed with a request in progress', ['envoy_http_conn_manager_prefix']);
  readonly downstreamCxLengthMs = this.#named(this.registry.register(new Histogram('envoy_http_downstream_cx_length_ms', 'Downstream connection length (ms)', ['envoy_http_conn_manager_prefix'], TIME_BUCKETS)));
  readonly downstreamCxRxBytes = this.#counter('envoy_http_downstream_cx_rx_bytes_total', 'Bytes read from downstream connections', ['envoy_http_conn_manager_prefix']);
  readonly downstreamCxTxBytes = this.#counter('envoy_http_downstream_cx_tx_bytes_total', 'Bytes written to downstream connections', ['envoy_http_conn_manager_prefix']);
  readonly downstreamCxProtocolError = this.#counter('envoy_http_downstream_cx_protocol_error', 'Downstream connections closed because what the client sent was not valid HTTP', ['envoy_http_conn_manager_prefix']);
  readonly downstreamCxIdleTimeout = this.#counter('envoy_http_downstream_cx_idle_timeout', 'Downstream connections closed by the idle timeout', ['envoy_http_conn_manager_prefix']);
  readonly downstreamCxDrainClose = this.#counter('envoy_http_downstream_cx_drain_close', 'Downstream connections closed by a drain (/drain_listeners, /healthcheck/fail, a listener stopped)', ['envoy_http_conn_manager_prefix']);
  readonly downstreamCxMaxRequestsReached = this.#counter('envoy_http_downstream_cx_max_requests_reached', 'Downstream connections closed at max_requests_per_connection', ['envoy_http_conn_manager_prefix']);
  readonly downstreamCxOverloadDisableKeepalive = this.#counter('envoy_http_downstream_cx_overload_disable_keepalive', "Downstream connections closed by the overload manager's disable_http_keepalive", ['envoy_http_conn_manager_prefix']);
  /**
   * TLS handshakes by outcome, Envoy's ssl.* of a listener (listener.<address>.ssl.*: mutual TLS inbound) and of a
   * cluster (cluster.<name>.ssl.*: mutual TLS to the destination): one series per listener address or cluster.
   */
  readonly tlsListener = this.#byTlsOutcome('envoy_listener_ssl_', 'downstream', 'envoy_listener_address');
  readonly tlsCluster = this.#byTlsOutcome('envoy_cluster_ssl_', 'upstream', 'envoy_cluster_name');
  readonly tcpCxTotal = this.#counter('envoy_tcp_downstream_cx_total', 'Connections the TCP proxy handled', ['envoy_tcp_prefix']);
  readonly tcpNoRoute = this.#counter('envoy_tcp_downstream_cx_no_route', 'Connections closed: the TCP proxy has no cluster of its name', ['envoy_tcp_prefix']);
  readonly tcpTxBytes = this.#counter('envoy_tcp_downstream_cx_tx_bytes_total', 'Bytes the TCP proxy wrote to its downstream connections', ['envoy_tcp_prefix']);
  readonly tcpIdleTimeout = this.#counter('envoy_tcp_idle_timeout', 'TCP proxy connections closed by idle_timeout', ['envoy_tcp_prefix']);
  readonly listenerCxTotal = this.#counter('envoy_listener_downstream_cx_total', 'Connections the listener accepted', ['envoy_listener_address']);
  readonly listenerCxActive = this.#gauge('envoy_listener_downstream_cx_active', 'Connections open on the listener', ['envoy_listener_address']);
  readonly listenerCxDestroy = this.#counter('envoy_listener_downstream_cx_destroy', 'Connections on the listener closed', ['envoy_listener_address']);
  readonly listenerCxLengthMs = this.#named(this.registry.register(new Histogram('envoy_listener_downstream_cx_length_ms', 'Connection length on the listener (ms)', ['envoy_listener_address'], TIME_BUCKETS)));
  readonly listenerPreCxActive = this.#gauge('envoy_listener_downstream_pre_cx_active', 'Connections in the listener filters (TLS detection)', ['envoy_listener_address']);
  readonly listenerPreCxTimeout = this.#counter('envoy_listener_downstream_pre_cx_timeout', 'Connections closed by listener_filters_timeout (nothing sent for TLS detection)', ['envoy_listener_address']);
  readonly downstreamRqActive = this.#gauge('envoy_http_downstream_rq_active', 'Downstream requests in progress', ['envoy_http_conn_manager_prefix']);
  readonly downstreamRqTooLarge = this.#counter('envoy_http_downstream_rq_too_large', 'Requests answered 413: a filter buffered more of the body than the buffer limit', ['envoy_http_conn_manager_prefix']);
  readonly rsTooLarge = this.#counter('envoy_http_rs_too_large', 'Responses a filter buffered past the buffer limit (reset: their headers were out)', ['envoy_http_conn_manager_prefix']);
  readonly downstreamRqMaxDurationReached = this.#counter('envoy_http_downstream_rq_max_duration_reached', 'Streams ended by max_stream_duration or their grpc-timeout', ['envoy_http_conn_manager_prefix']);
  readonly downstreamRqFailedPathNormalization = this.#counter('envoy_http_downstream_rq_failed_path_normalization', 'Requests answered 400 because their path could not be taken as it is (a #fragment, or an escaped NUL under normalize_path)', ['envoy_http_conn_manager_prefix']);
  readonly downstreamRqResponseBeforeRqComplete = this.#counter('envoy_http_downstream_rq_response_before_rq_complete', 'Responses sent before their request had arrived whole (an HTTP/1 connection closes after them)', ['envoy_http_conn_manager_prefix']);
  readonly noRoute = this.#counter('envoy_http_no_route', 'Requests with no matching route', ['envoy_http_conn_manager_prefix']);
  /** The router's no_cluster: routed to a cluster it does not have (unknown, or still warming), answered 503 NC. */
  readonly noCluster = this.#counter('envoy_http_no_cluster', 'Requests routed to a cluster that is not there (unknown or warming)', ['envoy_http_conn_manager_prefix']);
  readonly downstreamRqOverloadClose = this.#counter('envoy_http_downstream_rq_overload_close', 'Requests answered 503 by the overload manager (stop_accepting_requests)', ['envoy_http_conn_manager_prefix']);
  /** Envoy's listener.<address>.server_ssl_socket_factory.downstream_context_secrets_not_ready: closed because SDS has given no certificate yet. */
  readonly downstreamSecretsNotReady = this.#counter('envoy_listener_server_ssl_socket_factory_downstream_context_secrets_not_ready', 'Connections closed because the listener has no certificate from SDS yet', ['envoy_listener_address']);
  readonly downstreamGlobalCxOverflow = this.#counter('envoy_listener_downstream_global_cx_overflow', 'Connections closed at accept: over --max-downstream-connections', ['envoy_listener_address']);

  readonly upstreamRq = this.#counter('envoy_cluster_upstream_rq_total', 'Upstream requests', ['envoy_cluster_name']);
  readonly upstreamRqCode = this.#counter('envoy_cluster_upstream_rq', 'Upstream responses by code', ['envoy_cluster_name', 'envoy_response_code']);
  readonly upstreamRqXx = this.#counter('envoy_cluster_upstream_rq_xx', 'Upstream responses by class', ['envoy_cluster_name', 'envoy_response_code_class']);
  readonly upstreamRqCompleted = this.#counter('envoy_cluster_upstream_rq_completed', 'Upstream responses counted by code (upstream_rq_<code>, upstream_rq_<class>xx)', ['envoy_cluster_name']);
  /**
   * Envoy's HTTP/2 (multiplexed) pool counts how each stream that did not finish ended (MultiplexedActiveClientBase::
   * onStreamReset): reset by the upstream (RST_STREAM, not REFUSED_STREAM), reset by the sidecar (a timeout, the
   * client leaving, a protocol error), or cut by its connection failing or closing (pending_failure_eject, which
   * every pool also counts for the pending requests a failed connection fails). HTTP/1.1 resets count in neither
   * rx nor tx, as in Envoy, whose HTTP/1 client has no such callback.
   */
  readonly upstreamRqRxReset = this.#counter('envoy_cluster_upstream_rq_rx_reset', 'Upstream HTTP/2 streams the upstream reset', ['envoy_cluster_name']);
  readonly upstreamRqTxReset = this.#counter('envoy_cluster_upstream_rq_tx_reset', 'Upstream HTTP/2 streams the sidecar reset', ['envoy_cluster_name']);
  readonly upstreamRqPendingFailureEject = this.#counter('envoy_cluster_upstream_rq_pending_failure_eject', 'Upstream requests failed by their connection: pending ones when it failed to connect, HTTP/2 streams when it closed under them', ['envoy_cluster_name']);
  readonly retryUpstreamRqCode = this.#counter('envoy_cluster_retry_upstream_rq', 'Upstream responses a retry policy retried, by code', ['envoy_cluster_name', 'envoy_response_code']);
  readonly retryUpstreamRqXx = this.#counter('envoy_cluster_retry_upstream_rq_xx', 'Upstream responses a retry policy retried, by class', ['envoy_cluster_name', 'envoy_response_code_class']);
  readonly upstreamRqTime = this.#named(this.registry.register(new Histogram('envoy_cluster_upstream_rq_time', 'Upstream request time (ms)', ['envoy_cluster_name'], TIME_BUCKETS)));
  readonly upstreamRqTimeout = this.#counter('envoy_cluster_upstream_rq_timeout', 'Upstream requests that timed out', ['envoy_cluster_name']);
  readonly upstreamRqPerTryTimeout = this.#counter('envoy_cluster_upstream_rq_per_try_timeout', 'Upstream attempts that hit the per-try timeout', ['envoy_cluster_name']);
  readonly upstreamRqRetry = this.#counter('envoy_cluster_upstream_rq_retry', 'Upstream request retries', ['envoy_cluster_name']);
  readonly upstreamRqRetrySuccess = this.#counter('envoy_cluster_upstream_rq_retry_success', 'Retries that succeeded', ['envoy_cluster_name']);
  readonly upstreamRqRetryOverflow = this.#counter('envoy_cluster_upstream_rq_retry_overflow', 'Retries not attempted: circuit breaker', ['envoy_cluster_name']);
  readonly upstreamRqRetryBackoffExponential = this.#counter('envoy_cluster_upstream_rq_retry_backoff_exponential', 'Retries that waited the exponential back-off', ['envoy_cluster_name']);
  readonly upstreamRqRetryBackoffRatelimited = this.#counter('envoy_cluster_upstream_rq_retry_backoff_ratelimited', 'Retries that waited the interval a rate limited response\'s reset header gave', ['envoy_cluster_name']);
  readonly upstreamRqRetryLimitExceeded = this.#counter('envoy_cluster_upstream_rq_retry_limit_exceeded', 'Retriable answers not retried: the retry policy\'s retries were spent (response flag URX)', ['envoy_cluster_name']);
  readonly retryOrShadowAbandoned = this.#counter('envoy_cluster_retry_or_shadow_abandoned', 'Retries or mirroring given up: the request body overflowed the buffer limit', ['envoy_cluster_name']);
  readonly upstreamCxOverflow = this.#counter('envoy_cluster_upstream_cx_overflow', "Times the cluster's connection circuit breaker (max_connections) kept a request from a new connection", ['envoy_cluster_name']);
  readonly upstreamRqPendingOverflow = this.#counter('envoy_cluster_upstream_rq_pending_overflow', 'Requests failed by the circuit breakers', ['envoy_cluster_name']);
  readonly upstreamRqPendingActive = this.#gauge('envoy_cluster_upstream_rq_pending_active', 'Requests waiting for a connection', ['envoy_cluster_name']);
  readonly upstreamRqActive = this.#gauge('envoy_cluster_upstream_rq_active', 'Active upstream requests', ['envoy_cluster_name']);
  readonly upstreamCxConnectFail = this.#counter('envoy_cluster_upstream_cx_connect_fail', 'Upstream connection failures', ['envoy_cluster_name']);
  readonly upstreamCxTotal = this.#counter('envoy_cluster_upstream_cx_total', 'Upstream connections opened', ['envoy_cluster_name']);
  readonly upstreamCxActive = this.#gauge('envoy_cluster_upstream_cx_active', 'Upstream connections open now', ['envoy_cluster_name']);
  readonly upstreamCxHttp1Total = this.#counter('envoy_cluster_upstream_cx_http1_total', 'Upstream HTTP/1.1 connections opened', ['envoy_cluster_name']);
  readonly upstreamCxHttp2Total = this.#counter('envoy_cluster_upstream_cx_http2_total', 'Upstream HTTP/2 connections opened', ['envoy_cluster_name']);
  readonly upstreamCxConnectTimeout = this.#counter('envoy_cluster_upstream_cx_connect_timeout', 'Upstream connections that timed out connecting', ['envoy_cluster_name']);
  readonly upstreamCxDestroy = this.#counter('envoy_cluster_upstream_cx_destroy', 'Upstream connections closed', ['envoy_cluster_name']);
  readonly upstreamCxDestroyLocal = this.#counter('envoy_cluster_upstream_cx_destroy_local', 'Upstream connections closed by the sidecar', ['envoy_cluster_name']);
  readonly upstreamCxDestroyRemote = this.#counter('envoy_cluster_upstream_cx_destroy_remote', 'Upstream connections closed (or refused, or reset) by the upstream', ['envoy_cluster_name']);
  readonly upstreamCxDestroyWithActiveRq = this.#counter('envoy_cluster_upstream_cx_destroy_with_active_rq', 'Upstream connections closed with a request on them', ['envoy_cluster_name']);
  readonly upstreamCxDestroyLocalWithActiveRq = this.#counter('envoy_cluster_upstream_cx_destroy_local_with_active_rq', 'Upstream connections the sidecar closed with a request on them', ['envoy_cluster_name']);
  readonly upstreamCxDestroyRemoteWithActiveRq = this.#counter('envoy_cluster_upstream_cx_destroy_remote_with_active_rq', 'Upstream connections the upstream closed (or reset) with a request on them', ['envoy_cluster_name']);
  readonly upstreamCxProtocolError = this.#counter('envoy_cluster_upstream_cx_protocol_error', 'Upstream connections closed because what the upstream sent was not valid HTTP (response flag UPE)', ['envoy_cluster_name']);
  readonly upstreamCxConnectMs = this.#named(this.registry.register(new Histogram('envoy_cluster_upstream_cx_connect_ms', 'Upstream connection establishment time (ms; TLS: with its handshake)', ['envoy_cluster_name'], TIME_BUCKETS)));
  readonly upstreamCxLengthMs = this.#named(this.registry.register(new Histogram('envoy_cluster_upstream_cx_length_ms', 'Upstream connection length (ms)', ['envoy_cluster_name'], TIME_BUCKETS)));
  /** Bytes upstream connections moved: an open one's are added whenever stats are read (Envoy adds them as they move). */
  readonly upstreamCxRxBytes = this.#counter('envoy_cluster_upstream_cx_rx_bytes_total', 'Bytes read from upstream connections', ['envoy_cluster_name']);
  readonly upstreamCxTxBytes = this.#counter('envoy_cluster_upstream_cx_tx_bytes_total', 'Bytes written to upstream connections', ['envoy_cluster_name']);
  readonly upstreamCxIdleTimeout = this.#counter('envoy_cluster_upstream_cx_idle_timeout', 'Upstream connections closed by the idle timeout', ['envoy_cluster_name']);
  readonly upstreamCxMaxRequests = this.#counter('envoy_cluster_upstream_cx_max_requests', 'Upstream connections that reached max_requests_per_connection', ['envoy_cluster_name']);
  /** The circuit_breakers.<priority>.* gauges, [DEFAULT, HIGH] (Envoy's generateCircuitBreakersStats, by priority name). */
  readonly cb = (['default', 'high'] as const).map((p) => ({
    cxOpen: this.#gauge(`envoy_cluster_circuit_breakers_${p}_cx_open`, '1 while max_connections is reached', ['envoy_cluster_name']),
    rqPendingOpen: this.#gauge(`envoy_cluster_circuit_breakers_${p}_rq_pending_open`, '1 while max_pending_requests is reached', ['envoy_cluster_name']),
    rqOpen: this.#gauge(`envoy_cluster_circuit_breakers_${p}_rq_open`, '1 while max_requests is reached', ['envoy_cluster_name']),
    rqRetryOpen: this.#gauge(`envoy_cluster_circuit_breakers_${p}_rq_retry_open`, '1 while max_retries is reached', ['envoy_cluster_name']),
    cxPoolOpen: this.#gauge(`envoy_cluster_circuit_breakers_${p}_cx_pool_open`, '1 while max_connection_pools is reached', ['envoy_cluster_name']),
    remainingCx: this.#gauge(`envoy_cluster_circuit_breakers_${p}_remaining_cx`, 'Connections left before max_connections (track_remaining)', ['envoy_cluster_name']),
    remainingPending: this.#gauge(`envoy_cluster_circuit_breakers_${p}_remaining_pending`, 'Pending requests left before max_pending_requests (track_remaining)', ['envoy_cluster_name']),
    remainingRq: this.#gauge(`envoy_cluster_circuit_breakers_${p}_remaining_rq`, 'Requests left before max_requests (track_remaining)', ['envoy_cluster_name']),
    remainingRetries: this.#gauge(`envoy_cluster_circuit_breakers_${p}_remaining_retries`, 'Retries left before max_retries (track_remaining)', ['envoy_cluster_name']),
  }));
  readonly upstreamRqCancelled = this.#counter('envoy_cluster_upstream_rq_cancelled', 'Requests given up (the client left, or a timeout) while waiting for a connection', ['envoy_cluster_name']);
  readonly upstreamRqPendingTotal = this.#counter('envoy_cluster_upstream_rq_pending_total', 'Requests that waited for a connection (pending)', ['envoy_cluster_name']);
  readonly noHealthyUpstream = this.#counter('envoy_cluster_upstream_cx_none_healthy', 'Requests with no healthy host', ['envoy_cluster_name']);
  readonly membershipHealthy = this.#gauge('envoy_cluster_membership_healthy', 'Hosts that may take traffic', ['envoy_cluster_name']);
  readonly membershipTotal = this.#gauge('envoy_cluster_membership_total', 'Hosts in the cluster', ['envoy_cluster_name']);
  /** Envoy's membership_degraded and membership_excluded: the degraded host set, and hosts left out of load balancing (draining, or awaiting their first check). */
  readonly membershipDegraded = this.#gauge('envoy_cluster_membership_degraded', 'Hosts that take traffic only as degraded ones', ['envoy_cluster_name']);
  readonly membershipExcluded = this.#gauge('envoy_cluster_membership_excluded', 'Hosts left out of load balancing (EDS draining, or awaiting their first health check)', ['envoy_cluster_name']);
  /** Envoy's lb_healthy_panic: picks made in panic mode (too few healthy hosts, so every host takes traffic). */
  readonly lbHealthyPanic = this.#counter('envoy_cluster_lb_healthy_panic', 'Requests load balanced in panic mode (healthy hosts below healthy_panic_threshold: every host takes traffic)', ['envoy_cluster_name']);
  readonly ejectionsActive = this.#gauge('envoy_cluster_outlier_detection_ejections_active', 'Hosts currently ejected', ['envoy_cluster_name']);
  readonly ejectionsEnforced = this.#counter('envoy_cluster_outlier_detection_ejections_enforced_total', 'Ejections enforced', ['envoy_cluster_name']);
  readonly ejectionsOverflow = this.#counter('envoy_cluster_outlier_detection_ejections_overflow', 'Ejections not made: max_ejection_percent reached', ['envoy_cluster_name']);
  /** By ejection type: enforced (the host was ejected) and detected (found, whether or not enforced). */
  readonly ejectionsEnforcedBy = this.#byEjectionType('enforced', 'Ejections enforced');
  readonly ejectionsDetectedBy = this.#byEjectionType('detected', 'Outliers detected (ejected or not)');
  readonly healthCheckSuccess = this.#counter('envoy_cluster_health_check_success', 'Passed active health checks', ['envoy_cluster_name']);
  readonly healthCheckFailure = this.#counter('envoy_cluster_health_check_failure', 'Failed active health checks', ['envoy_cluster_name']);
  readonly healthCheckAttempt = this.#counter('envoy_cluster_health_check_attempt', 'Active health checks made', ['envoy_cluster_name']);
  readonly healthCheckNetworkFailure = this.#counter('envoy_cluster_health_check_network_failure', 'Active health checks failed by a connect failure or a timeout', ['envoy_cluster_name']);
  readonly healthCheckHealthy = this.#gauge('envoy_cluster_health_check_healthy', 'Hosts passing their active health checks', ['envoy_cluster_name']);
  readonly healthCheckDegraded = this.#gauge('envoy_cluster_health_check_degraded', 'Hosts whose passing health check says degraded (x-envoy-degraded)', ['envoy_cluster_name']);

  /**
   * xDS responses ACKed and NACKed, by type. The Prometheus name is the Envoy stat name's, as Envoy's exporter forms
   * it (envoy_listener_manager_lds_update_rejected), so alerts written for Envoy's rejected updates fire here too;
   * each is 0 from the start, so the first NACK is an increase.
   */
  readonly xdsUpdates = Object.fromEntries(
    Object.entries(UPDATE_SCOPES).map(([kind, scope]) => [
      kind,
      {
        success: this.#updateCounter(scope, 'update_success', `${kind} updates applied and ACKed`),
        rejected: this.#updateCounter(scope, 'update_rejected', `${kind} updates NACKed`),
      },
    ]),
  ) as Record<ResourceKind, { success: Counter<never>; rejected: Counter<never> }>;
  /**
   * Envoy's EDS subscription stats, which it keeps per cluster (cluster.<name>.update_success / update_rejected):
   * an EDS response counts for each cluster whose assignment it carried. The per-type envoy_cluster_manager_eds_*
   * above is weft's; alerts written for Envoy's EDS rejections read these.
   */
  readonly edsClusterUpdates = {
    success: this.#counter('envoy_cluster_update_success', "EDS updates of the cluster's assignment applied", ['envoy_cluster_name']),
    rejected: this.#counter('envoy_cluster_update_rejected', "EDS updates of the cluster's assignment refused", ['envoy_cluster_name']),
  };
  readonly xdsConnected = this.#gauge('envoy_control_plane_connected_state', '1 while the ADS stream is up', []);
  /** Envoy's cluster_manager.active_clusters and .warming_clusters (a cluster waiting for its first EDS assignment). */
  readonly activeClusters = this.#gauge('envoy_cluster_manager_active_clusters', 'Clusters requests may be routed to', []);
  readonly warmingClusters = this.#gauge('envoy_cluster_manager_warming_clusters', 'Clusters waiting for their first assignment before they take traffic', []);
  readonly listenersActive = this.#gauge('envoy_listener_manager_total_listeners_active', 'Listeners bound', []);
  /** Envoy's listener_manager.total_listeners_warming: listeners waiting for what they name (their route configuration...). */
  readonly listenersWarming = this.#gauge('envoy_listener_manager_total_listeners_warming', 'Listeners waiting for their route configuration, filter configs or secrets', []);
  readonly listenersDraining = this.#gauge('envoy_listener_manager_total_listeners_draining', 'Listeners in a graceful drain (admin /drain_listeners?graceful)', []);
  /** Envoy's server.state: 0 LIVE, 1 DRAINING, 2 PRE_INITIALIZING, 3 INITIALIZING. */
  readonly serverState = this.#gauge('envoy_server_state', 'Server state: 0 LIVE, 1 DRAINING, 2 PRE_INITIALIZING, 3 INITIALIZING', []);
  readonly serverLive = this.#gauge('envoy_server_live', '1 while the server is LIVE (not initializing, not draining)', []);
  /** Envoy's listener_manager.workers_started: 1 once the first full config is applied (Envoy starts its workers then); Istio's readiness check reads it. */
  readonly workersStarted = this.#gauge('envoy_listener_manager_workers_started', '1 once the workers are started (after the first full config)', []);
  readonly uptime = this.#gauge('envoy_server_uptime', 'Seconds since the sidecar started', []);
  readonly memoryAllocated = this.#gauge('envoy_server_memory_allocated', 'Bytes in use: the V8 heap and the memory it accounts outside it (Buffers, wasm memories)', []);
  readonly memoryHeapSize = this.#gauge('envoy_server_memory_heap_size', 'Bytes the V8 heap has reserved, plus that outside memory', []);
  readonly memoryPhysicalSize = this.#gauge('envoy_server_memory_physical_size', 'Resident set size of the process', []);
  readonly wasmFailures = this.#counter('envoy_wasm_filter_failures', 'Wasm filter traps and load failures', ['filter']);

  /** The fault filter's (Envoy's http.<stat_prefix>.fault.*). */
  /**
   * The connection manager's totals, and per downstream cluster (x-envoy-downstream-service-cluster) Envoy's
   * http.<stat_prefix>.fault.<cluster>.delays_injected / aborts_injected, in Prometheus the same family with the tag
   * envoy_fault_downstream_cluster (a total has none).
   */
  readonly faultDelaysInjected = this.#faultCounter('delays_injected', 'Requests the fault filter delayed');
  readonly faultAbortsInjected = this.#faultCounter('aborts_injected', 'Requests the fault filter aborted');
  readonly faultActive = this.#gauge('envoy_http_fault_active_faults', 'Requests delayed or aborted by the fault filter, not ended yet', ['envoy_http_conn_manager_prefix']);
  readonly faultsOverflow = this.#counter('envoy_http_fault_faults_overflow', 'Faults not injected: max_active_faults reached', ['envoy_http_conn_manager_prefix']);
  readonly faultResponseRlInjected = this.#counter('envoy_http_fault_response_rl_injected', 'Responses whose body the fault filter rate limited', ['envoy_http_conn_manager_prefix']);
  readonly tracingRandomSampling = this.#counter('envoy_http_tracing_random_sampling', 'Requests traced by random_sampling', ['envoy_http_conn_manager_prefix']);
  readonly tracingClientEnabled = this.#counter('envoy_http_tracing_client_enabled', 'Requests traced by client_sampling (x-client-trace-id)', ['envoy_http_conn_manager_prefix']);
  readonly tracingNotTraceable = this.#counter('envoy_http_tracing_not_traceable', 'Requests not sampled', ['envoy_http_conn_manager_prefix']);
  readonly tracingSpansSent = this.#counter('envoy_tracing_opentelemetry_spans_sent', 'Spans handed to the OTLP exporter', []);
  readonly tracingTimerFlushed = this.#counter('envoy_tracing_opentelemetry_timer_flushed', 'Span flushes by the 5 s timer', []);

  /**
   * Envoy's "used" (admin ?usedonly) for gauges the request path moves through their series handles: each rise is also
   * a count of the counter beside it. ejections_active is recomputed with set() on every host refresh, where Envoy
   * moves it only on an ejection: used once one was enforced.
   */
  constructor() {
    this.downstreamRqActive.usedWith = this.downstreamRq;
    this.downstreamCxActive.usedWith = this.downstreamCxTotal;
    this.listenerCxActive.usedWith = this.listenerCxTotal;
    this.downstreamCxSslActive.usedWith = this.downstreamCxSslTotal;
    this.downstreamCxHttp1Active.usedWith = this.downstreamCxHttp1Total;
    this.downstreamCxHttp2Active.usedWith = this.downstreamCxHttp2Total;
    this.downstreamCxUpgradesActive.usedWith = this.downstreamCxUpgradesTotal;
    this.upstreamRqActive.usedWith = this.upstreamRq;
    this.upstreamCxActive.usedWith = this.upstreamCxTotal;
    this.ejectionsActive.setMarksUsed = false;
    this.ejectionsActive.usedWith = this.ejectionsEnforced;
  }

  readonly #hcm = new Map<string, HcmSeries>();
  readonly #listener = new Map<string, ListenerSeries>();
  readonly #tcp = new Map<string, TcpSeries>();
  readonly #refreshers = new Set<() => void>();
  readonly #cluster = new Map<string, ClusterSeries>();
  readonly #tracing = new Map<string, TracingSeries>();
  /** Clusters' alt_stat_name: the name their stats go under, as in Envoy. */
  readonly #statNames = new Map<string, string>();
  readonly #clusterLabels = new Map<string, { envoy_cluster_name: string }>();

  /**
   * A cluster's alt_stat_name (undefined: its own name). Its series start over under the new name, and those under
   * the old one go, as Envoy's do with the old cluster's scope, unless a live cluster's stats go under that name
   * (`liveStatNames`: every cluster's stat name in the CDS update being applied).
   */
  setAltStatName(cluster: string, alt: string | undefined, liveStatNames?: ReadonlySet<string>): void {
    if ((this.#statNames.get(cluster) ?? undefined) === alt) return;
    const old = this.#clusterLabels.get(cluster)?.envoy_cluster_name;
    if (alt) this.#statNames.set(cluster, alt);
    else this.#statNames.delete(cluster);
    this.#clusterLabels.delete(cluster);
    this.#cluster.delete(cluster);
    if (old !== undefined && liveStatNames && !liveStatNames.has(old)) this.#removeSeries('envoy_cluster_name', old);
  }

  /**
   * The listeners LDS removed: their series go from /stats and /stats/prometheus, as Envoy deletes a listener's
   * scopes with it (listener.<address>.* and the http.<stat_prefix>.* of its connection managers), except those a
   * live listener still shares (two listeners with one stat_prefix count into one series, in Envoy too).
   */
  listenersRemoved(gone: { statPrefixes: Iterable<string>; addresses: Iterable<string>; tcpPrefixes?: Iterable<string> }, live: { statPrefixes: ReadonlySet<string>; addresses: ReadonlySet<string>; tcpPrefixes?: ReadonlySet<string> }): void {
    for (const prefix of gone.tcpPrefixes ?? []) {
      if (live.tcpPrefixes?.has(prefix)) continue;
      this.#tcp.delete(prefix);
      this.#removeSeries('envoy_tcp_prefix', prefix);
    }
    for (const prefix of gone.statPrefixes) {
      if (live.statPrefixes.has(prefix)) continue;
      this.#hcm.delete(prefix);
      this.#tracing.delete(prefix);
      this.#removeSeries('envoy_http_conn_manager_prefix', prefix);
    }
    for (const address of gone.addresses) {
      if (live.addresses.has(address)) continue;
      this.#listener.delete(address);
      this.#removeSeries('envoy_listener_address', address);
    }
  }

  #removeSeries(label: string, value: string): void {
    for (const m of this.registry.all()) m.removeWhere(label, value);
  }

  /** The envoy_cluster_name label of a cluster's series: its alt_stat_name when it has one. */
  clusterLabel(cluster: string): { envoy_cluster_name: string } {
    let l = this.#clusterLabels.get(cluster);
    if (!l) {
      l = { envoy_cluster_name: this.#statNames.get(cluster) ?? cluster };
      this.#clusterLabels.set(cluster, l);
    }
    return l;
  }

  /** A connection manager's tracing decisions (http.<stat_prefix>.tracing.*). */
  tracing(prefix: string): TracingSeries {
    let s = this.#tracing.get(prefix);
    if (!s) {
      const l = { envoy_http_conn_manager_prefix: prefix };
      s = { randomSampling: this.tracingRandomSampling.series(l), clientEnabled: this.tracingClientEnabled.series(l), notTraceable: this.tracingNotTraceable.series(l) };
      this.#tracing.set(prefix, s);
    }
    return s;
  }

  /** The server.* gauges read from the process; the admin calls this before it renders stats. */
  refreshServer(): MemoryFigures {
    for (const fn of this.#refreshers) fn();
    const m = process.memoryUsage();
    const figures = { allocated: m.heapUsed + m.external, heapSize: m.heapTotal + m.external, physical: m.rss };
    this.uptime.set(Math.floor(process.uptime()));
    this.memoryAllocated.set(figures.allocated);
    this.memoryHeapSize.set(figures.heapSize);
    this.memoryPhysicalSize.set(figures.physical);
    return figures;
  }

  /** The request-path series of one connection manager (stat_prefix). */
  hcm(prefix: string): HcmSeries {
    let s = this.#hcm.get(prefix);
    if (!s) {
      const l = { envoy_http_conn_manager_prefix: prefix };
      s = {
        rq: this.downstreamRq.series(l),
        rqXx: [{ value: 0 }, ...[1, 2, 3, 4, 5].map((c) => this.downstreamRqXx.series({ ...l, envoy_response_code_class: String(c) }))],
        rqTime: this.downstreamRqTime.series(l),
        rqTooLarge: this.downstreamRqTooLarge.series(l),
        rsTooLarge: this.rsTooLarge.series(l),
        rqMaxDurationReached: this.downstreamRqMaxDurationReached.series(l),
        rqFailedPathNormalization: this.downstreamRqFailedPathNormalization.series(l),
        rqResponseBeforeRqComplete: this.downstreamRqResponseBeforeRqComplete.series(l),
        rqActive: this.downstreamRqActive.series(l),
        cxTotal: this.downstreamCxTotal.series(l),
        cxActive: this.downstreamCxActive.series(l),
        cxUpgradesTotal: this.downstreamCxUpgradesTotal.series(l),
        cxUpgradesActive: this.downstreamCxUpgradesActive.series(l),
        cxHttp1Total: this.downstreamCxHttp1Total.series(l),
        cxHttp1Active: this.downstreamCxHttp1Active.series(l),
        cxHttp2Total: this.downstreamCxHttp2Total.series(l),
        cxHttp2Active: this.downstreamCxHttp2Active.series(l),
        rqHttp1Total: this.downstreamRqHttp1Total.series(l),
        rqHttp2Total: this.downstreamRqHttp2Total.series(l),
        rqCompleted: this.downstreamRqCompleted.series(l),
        rqIdleTimeout: this.downstreamRqIdleTimeout.series(l),
        rqTimeout: this.downstreamRqTimeout.series(l),
        rqRxReset: this.downstreamRqRxReset.series(l),
        rqTxReset: this.downstreamRqTxReset.series(l),
        cxSslTotal: this.downstreamCxSslTotal.series(l),
        cxSslActive: this.downstreamCxSslActive.series(l),
        cxDestroy: this.downstreamCxDestroy.series(l),
        cxDestroyLocal: this.downstreamCxDestroyLocal.series(l),
        cxDestroyRemote: this.downstreamCxDestroyRemote.series(l),
        cxDestroyActiveRq: this.downstreamCxDestroyActiveRq.series(l),
        cxDestroyLocalActiveRq: this.downstreamCxDestroyLocalActiveRq.series(l),
        cxDestroyRemoteActiveRq: this.downstreamCxDestroyRemoteActiveRq.series(l),
        cxLengthMs: this.downstreamCxLengthMs.series(l),
        cxRxBytes: this.downstreamCxRxBytes.series(l),
        cxTxBytes: this.downstreamCxTxBytes.series(l),
        cxProtocolError: this.downstreamCxProtocolError.series(l),
        cxIdleTimeout: this.downstreamCxIdleTimeout.series(l),
        cxDrainClose: this.downstreamCxDrainClose.series(l),
        cxMaxRequestsReached: this.downstreamCxMaxRequestsReached.series(l),
        cxOverloadDisableKeepalive: this.downstreamCxOverloadDisableKeepalive.series(l),
      };
      // Counted elsewhere, but there from the start as in Envoy (the router's no_route with its connection manager).
      this.noRoute.series(l);
      this.noCluster.series(l);
      this.downstreamRqOverloadClose.series(l);
      this.#hcm.set(prefix, s);
    }
    return s;
  }

  /**
   * A connection manager in an LDS update: its series at 0, as Envoy creates them with the listener, and its RBAC
   * filters' four counters (rbac.<rules_stat_prefix>allowed / denied, rbac.<shadow_rules_stat_prefix>shadow_allowed /
   * shadow_denied), which Envoy creates with the filter's config whether or not it has rules or shadow rules. So a
   * query for denials finds 0 before the first one, not nothing.
   */
  hcmConfigured(prefix: string, filters: readonly HttpFilterConfig[]): void {
    this.hcm(prefix);
    const l = { envoy_http_conn_manager_prefix: prefix };
    for (const f of filters) {
      if (f.kind !== 'rbac') continue;
      this.rbac(f.rulesStatPrefix, 'allowed').series(l);
      this.rbac(f.rulesStatPrefix, 'denied').series(l);
      this.rbac(f.shadowRulesStatPrefix, 'shadow_allowed').series(l);
      this.rbac(f.shadowRulesStatPrefix, 'shadow_denied').series(l);
    }
  }

  /** A TCP proxy's series, by its stat_prefix. */
  tcp(prefix: string): TcpSeries {
    let s = this.#tcp.get(prefix);
    if (!s) {
      const l = { envoy_tcp_prefix: prefix };
      s = { cxTotal: this.tcpCxTotal.series(l), noRoute: this.tcpNoRoute.series(l), txBytes: this.tcpTxBytes.series(l), idleTimeout: this.tcpIdleTimeout.series(l) };
      this.#tcp.set(prefix, s);
    }
    return s;
  }

  /** One listener's connection series, by its stat address (`127.0.0.1_15006`). */
  listener(address: string): ListenerSeries {
    let s = this.#listener.get(address);
    if (!s) {
      const l = { envoy_listener_address: address };
      s = {
        cxTotal: this.listenerCxTotal.series(l),
        cxActive: this.listenerCxActive.series(l),
        cxDestroy: this.listenerCxDestroy.series(l),
        cxLengthMs: this.listenerCxLengthMs.series(l),
        preCxActive: this.listenerPreCxActive.series(l),
        preCxTimeout: this.listenerPreCxTimeout.series(l),
      };
      this.#listener.set(address, s);
    }
    return s;
  }

  /**
   * Called before stats are read (admin /stats, /stats/prometheus): counts that accrue outside the counters, such as
   * bytes on open connections. Returns what stops it.
   */
  onRefresh(fn: () => void): () => void {
    this.#refreshers.add(fn);
    return () => void this.#refreshers.delete(fn);
  }

  /** The request-path series of one cluster. */
  cluster(name: string): ClusterSeries {
    let s = this.#cluster.get(name);
    if (!s) {
      const l = this.clusterLabel(name);
      s = {
        rq: this.upstreamRq.series(l),
        rqActive: this.upstreamRqActive.series(l),
        rqTime: this.upstreamRqTime.series(l),
        rqXx: [{ value: 0 }, ...[1, 2, 3, 4, 5].map((c) => this.upstreamRqXx.series({ ...l, envoy_response_code_class: String(c) }))],
        rqCode: new Map(),
        rqCompleted: this.upstreamRqCompleted.series(l),
        cxTotal: this.upstreamCxTotal.series(l),
        cxActive: this.upstreamCxActive.series(l),
        cxHttp1Total: this.upstreamCxHttp1Total.series(l),
        cxHttp2Total: this.upstreamCxHttp2Total.series(l),
        breakerOpen: [0, 1].map((p) => {
          const g = this.cb[p]!;
          return { cx: g.cxOpen.series(l), rqPending: g.rqPendingOpen.series(l), rq: g.rqOpen.series(l), rqRetry: g.rqRetryOpen.series(l), cxPool: g.cxPoolOpen.series(l) };
        }) as ClusterSeries['breakerOpen'],
        breakerRemaining: [undefined, undefined],
      };
      this.#cluster.set(name, s);
    }
    return s;
  }

  /**
   * The cluster's remaining_* circuit breaker gauges, kept as Envoy keeps them only where the thresholds set
   * track_remaining (else its null gauges are never reported): made with `on`, removed without.
   */
  breakerRemaining(name: string, priority: RoutingPriority, on: boolean): BreakerRemainingSeries | undefined {
    const s = this.cluster(name);
    const g = this.cb[priority]!;
    if (on && !s.breakerRemaining[priority]) {
      const l = this.clusterLabel(name);
      s.breakerRemaining[priority] = { cx: g.remainingCx.series(l), pending: g.remainingPending.series(l), rq: g.remainingRq.series(l), retries: g.remainingRetries.series(l) };
    } else if (!on && s.breakerRemaining[priority]) {
      const label = this.clusterLabel(name).envoy_cluster_name;
      for (const m of [g.remainingCx, g.remainingPending, g.remainingRq, g.remainingRetries]) m.removeWhere('envoy_cluster_name', label);
      s.breakerRemaining[priority] = undefined;
    }
    return s.breakerRemaining[priority];
  }

  /**
   * A cluster's stats at 0 as it is added (or its alt_stat_name changes), as Envoy creates them with the cluster:
   * its request, retry, timeout, overflow and connection-failure counters, the outlier ones when it has outlier
   * detection, the health-check ones when it has checks. So `increase(envoy_cluster_upstream_rq_timeout[5m])` sees
   * the first timeout (a series born at 1 shows no increase) and a dashboard shows 0 rather than no data.
   * Per-code counters (upstream_rq_503) come with their first response, as in Envoy.
   */
  clusterAdded(name: string, has: { outlierDetection: boolean; healthChecks: boolean; tls?: boolean }): void {
    const l = this.clusterLabel(name);
    this.cluster(name);
    const always = [this.upstreamRqTimeout, this.upstreamRqPerTryTimeout, this.upstreamRqRetry, this.upstreamRqRetrySuccess, this.upstreamRqRetryOverflow, this.upstreamRqRetryLimitExceeded, this.upstreamRqRetryBackoffExponential, this.upstreamRqRetryBackoffRatelimited, this.retryOrShadowAbandoned, this.upstreamCxOverflow, this.upstreamRqPendingOverflow, this.upstreamRqPendingActive, this.upstreamRqPendingTotal, this.upstreamRqCancelled, this.upstreamRqRxReset, this.upstreamRqTxReset, this.upstreamRqPendingFailureEject, this.upstreamCxConnectFail, this.upstreamCxConnectTimeout, this.upstreamCxDestroy, this.upstreamCxDestroyLocal, this.upstreamCxDestroyRemote, this.upstreamCxDestroyWithActiveRq, this.upstreamCxDestroyLocalWithActiveRq, this.upstreamCxDestroyRemoteWithActiveRq, this.upstreamCxProtocolError, this.upstreamCxConnectMs, this.upstreamCxLengthMs, this.upstreamCxRxBytes, this.upstreamCxTxBytes, this.upstreamCxIdleTimeout, this.upstreamCxMaxRequests, this.noHealthyUpstream, this.lbHealthyPanic, this.membershipHealthy, this.membershipTotal, this.membershipDegraded, this.membershipExcluded, this.ejectionsActive];
    const outlier = [this.ejectionsEnforced, this.ejectionsOverflow, ...Object.values(this.ejectionsEnforcedBy), ...Object.values(this.ejectionsDetectedBy)];
    const checks = [this.healthCheckSuccess, this.healthCheckFailure, this.healthCheckAttempt, this.healthCheckNetworkFailure, this.healthCheckHealthy, this.healthCheckDegraded];
    for (const m of [...always, ...(has.outlierDetection ? outlier : []), ...(has.healthChecks ? checks : []), ...(has.tls ? Object.values(this.tlsCluster) : [])]) m.series(l);
  }

  /**
   * A cluster CDS removed: its series go from /stats and /stats/prometheus, as Envoy deletes a cluster's stats with
   * its scope (its gauges would otherwise go on reporting members and ejections of a cluster that is gone, and a
   * mesh whose subsets come and go would grow series without end). Kept while a live cluster shares its stat name.
   */
  clusterRemoved(name: string, liveStatNames: ReadonlySet<string>): void {
    const label = this.clusterLabel(name).envoy_cluster_name;
    this.#cluster.delete(name);
    this.#clusterLabels.delete(name);
    this.#statNames.delete(name);
    if (liveStatNames.has(label)) return;
    this.#removeSeries('envoy_cluster_name', label);
  }

  /** Counts a response from a cluster by code and class. */
  upstreamResponse(s: ClusterSeries, clusterName: string, status: number): void {
    let code = s.rqCode.get(status);
    if (!code) {
      code = this.upstreamRqCode.series({ ...this.clusterLabel(clusterName), envoy_response_code: String(status) });
      s.rqCode.set(status, code);
    }
    code.value++;
    s.rqCompleted.value++;
    const cls = Math.floor(status / 100);
    if (cls >= 1 && cls <= 5) s.rqXx[cls]!.value++;
  }

  /** A response a retry policy retried, by code and class (Envoy's cluster.<name>.retry.upstream_rq_<code>), created with its first one. */
  retriedResponse(clusterName: string, status: number): void {
    const labels = this.clusterLabel(clusterName);
    this.retryUpstreamRqCode.inc({ ...labels, envoy_response_code: String(status) });
    const cls = Math.floor(status / 100);
    if (cls >= 1 && cls <= 5) this.retryUpstreamRqXx.inc({ ...labels, envoy_response_code_class: String(cls) });
  }

  /** Envoy's runtime.* stats (sidecar/runtime.ts), there from the start as in Envoy. */
  readonly runtime: RuntimeStats = {
    loadSuccess: this.#counter('envoy_runtime_load_success', 'Runtime snapshots loaded with every layer read', []),
    loadError: this.#counter('envoy_runtime_load_error', 'Runtime snapshots loaded with a disk layer that could not be read', []),
    overrideDirExists: this.#counter('envoy_runtime_override_dir_exists', 'Runtime loads with more than one disk layer present', []),
    overrideDirNotExists: this.#counter('envoy_runtime_override_dir_not_exists', 'Runtime loads with at most one disk layer present', []),
    numKeys: this.#gauge('envoy_runtime_num_keys', 'Keys in the runtime snapshot', []),
    numLayers: this.#gauge('envoy_runtime_num_layers', 'Layers in the runtime snapshot', []),
    adminOverridesActive: this.#gauge('envoy_runtime_admin_overrides_active', '1 while /runtime_modify overrides are set', []),
  };
  #overload: OverloadStats | undefined;
  /** The overload manager's gauges, registered only when it runs (as Envoy has them only when configured). */
  overload(): OverloadStats {
    return (this.#overload ??= {
      heapPressure: this.#gauge('envoy_overload_fixed_heap_pressure', 'Heap in use as a percent of --max-heap-mb', []),
      connectionsPressure: this.#gauge('envoy_overload_global_downstream_max_connections_pressure', 'Downstream connections as a percent of --max-downstream-connections', []),
      stopRequestsActive: this.#gauge('envoy_overload_stop_accepting_requests_active', '1 while new requests are answered 503 (heap over 98%)', []),
      stopRequestsScale: this.#gauge('envoy_overload_stop_accepting_requests_scale_percent', 'stop_accepting_requests applied, percent', []),
      keepaliveActive: this.#gauge('envoy_overload_disable_http_keepalive_active', '1 while connections are closed after their response (heap over 95%)', []),
      keepaliveScale: this.#gauge('envoy_overload_disable_http_keepalive_scale_percent', 'disable_http_keepalive applied, percent', []),
    });
  }

  readonly #rbac = new Map<string, Counter<'envoy_http_conn_manager_prefix'>>();
  /**
   * An RBAC filter counter, Envoy's http.<stat_prefix>.rbac.<prefix><stat> (the filter's rules_stat_prefix or
   * shadow_rules_stat_prefix, '' unset): envoy_http_rbac_<prefix><stat>, registered on first use (a prefix is config).
   */
  rbac(prefix: string, stat: 'allowed' | 'denied' | 'shadow_allowed' | 'shadow_denied'): Counter<'envoy_http_conn_manager_prefix'> {
    const key = prefix + stat;
    let c = this.#rbac.get(key);
    if (c === undefined) {
      const help = { allowed: 'Requests the RBAC filter let through', denied: 'Requests the RBAC filter denied (403)', shadow_allowed: "Requests the RBAC filter's shadow rules would let through", shadow_denied: "Requests the RBAC filter's shadow rules would deny" }[stat];
      const made = this.registry.register(new Counter<'envoy_http_conn_manager_prefix'>(`envoy_http_rbac_${key}`, help, ['envoy_http_conn_manager_prefix']));
      made.envoyName = (l) => `http.${l.envoy_http_conn_manager_prefix ?? ''}.rbac.${key}`;
      this.#rbac.set(key, made);
      return made;
    }
    return c;
  }

  /** One counter per TLS handshake outcome (Envoy's ssl.handshake, ssl.connection_error, ssl.fail_verify_*). */
  #byTlsOutcome<L extends string>(prefix: string, side: string, label: L): Record<TlsOutcome, Counter<L>> {
    const help: Record<TlsOutcome, string> = {
      handshake: 'TLS handshakes completed',
      connection_error: 'TLS handshakes failed for another reason than the peer certificate',
      fail_verify_error: "TLS handshakes failed: the peer's certificate is not verified by the trust bundle",
      fail_verify_san: "TLS handshakes failed: the peer's certificate is not the expected identity (SAN)",
      fail_verify_no_cert: 'TLS handshakes failed: the peer sent no certificate where one is required',
    };
    return Object.fromEntries(Object.entries(help).map(([o, h]) => [o, this.#counter(`${prefix}${o}`, `${h} (${side})`, [label])])) as Record<TlsOutcome, Counter<L>>;
  }

  /** A fault filter counter, total and per downstream cluster: the cluster's label is left out where it is empty. */
  #faultCounter(stat: string, help: string): Counter<'envoy_http_conn_manager_prefix' | 'envoy_fault_downstream_cluster'> {
    const c = this.#counter(`envoy_http_fault_${stat}`, help, ['envoy_http_conn_manager_prefix', 'envoy_fault_downstream_cluster']);
    c.optionalLabels = new Set(['envoy_fault_downstream_cluster']);
    c.envoyName = (l) => `http.${l.envoy_http_conn_manager_prefix ?? ''}.fault.${l.envoy_fault_downstream_cluster ? `${l.envoy_fault_downstream_cluster}.` : ''}${stat}`;
    return c;
  }

  #counter<L extends string>(name: string, help: string, labelNames: L[]): Counter<L> {
    return this.#named(this.registry.register(new Counter(name, help, labelNames)));
  }

  /** Sets the metric's Envoy stat name: spelled out (ENVOY_NAMES), else by scope prefix. */
  #named<M extends Metric<string, unknown>>(m: M): M {
    const scope = ENVOY_SCOPES.find(([prefix]) => m.name.startsWith(prefix));
    if (ENVOY_NAMES[m.name]) m.envoyName = envoyNamer(ENVOY_NAMES[m.name]!);
    else if (scope) m.envoyName = envoyNamer(scope[1] + m.name.slice(scope[0].length));
    return m;
  }

  /** An xDS subscription counter: Envoy's stat `<scope>.<stat>`, in Prometheus `envoy_<scope>_<stat>` (dots to underscores). */
  #updateCounter(scope: string, stat: string, help: string): Counter<never> {
    const envoyName = `${scope}.${stat}`;
    const c = this.registry.register(new Counter<never>(`envoy_${envoyName.replaceAll('.', '_')}`, help, []));
    c.envoyName = () => envoyName;
    return c;
  }

  /** envoy_cluster_outlier_detection_ejections_<what>_<type> for each ejection type. */
  #byEjectionType(what: 'enforced' | 'detected', help: string): Record<EjectionType, Counter<'envoy_cluster_name'>> {
    const types: EjectionType[] = ['consecutive_5xx', 'consecutive_gateway_failure', 'success_rate', 'failure_percentage'];
    return Object.fromEntries(types.map((t) => [t, this.#counter(`envoy_cluster_outlier_detection_ejections_${what}_${t}`, `${help}: ${t.replaceAll('_', ' ')}`, ['envoy_cluster_name'])])) as Record<EjectionType, Counter<'envoy_cluster_name'>>;
  }

  #gauge<L extends string>(name: string, help: string, labelNames: L[]): Gauge<L> {
    return this.#named(this.registry.register(new Gauge(name, help, labelNames)));
  }
}
