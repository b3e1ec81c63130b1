// The sidecar's own view of the Envoy resources it accepts. fidelity/ turns
// Envoy proto3 JSON into these (or NACKs); everything else in sidecar/ reads
// only these, so a field the sidecar honours is visible here and nowhere else.

import type { AccessLogFormat } from './access-log-format.ts';

export interface SocketAddress {
  address: string;
  port: number;
}

export type StringMatcher =
  | { kind: 'exact'; value: string; ignoreCase: boolean }
  | { kind: 'prefix'; value: string; ignoreCase: boolean }
  | { kind: 'suffix'; value: string; ignoreCase: boolean }
  | { kind: 'contains'; value: string; ignoreCase: boolean }
  | { kind: 'regex'; regex: RegExp };

export interface HeaderMatcherConfig {
  name: string;
  /** undefined = present match. */
  match?: StringMatcher;
  /** present_match: false means "must be absent". */
  present: boolean;
  invert: boolean;
}

export interface QueryMatcherConfig {
  name: string;
  match?: StringMatcher;
}

export interface RouteMatchConfig {
  path:
    | { kind: 'prefix'; value: string }
    | { kind: 'exact'; value: string }
    | { kind: 'regex'; regex: RegExp }
    | { kind: 'separated_prefix'; value: string };
  caseSensitive: boolean;
  headers: HeaderMatcherConfig[];
  queryParameters: QueryMatcherConfig[];
  /**
   * runtime_fraction: the route matches only a share of requests, its default_value (a fraction) or the runtime's
   * value of runtime_key over it, decided by the stream's one random value (Envoy's featureEnabled with stream_id_).
   */
  runtimeFraction?: { fraction: Fraction; runtimeKey?: string };
}

export type AppendAction = 'APPEND_IF_EXISTS_OR_ADD' | 'ADD_IF_ABSENT' | 'OVERWRITE_IF_EXISTS_OR_ADD' | 'OVERWRITE_IF_EXISTS';

export interface HeaderMutationConfig {
  add: { key: string; value: string; action: AppendAction }[];
  remove: string[];
}

/** A fraction in [0, 1]. */
export type Fraction = number;

/** A FractionalPercent as given: numerator over scale (100, 10000 or 1000000). */
export interface PercentParts {
  numerator: number;
  scale: number;
}

export interface FaultConfig {
  /**
   * delay: fixed_delay (ms), or header_delay (ms undefined: x-envoy-fault-delay-request's value, no delay without a
   * valid one). `fraction` is the percentage; `percent` its parts, which x-envoy-fault-delay-request-percentage
   * lowers with header_delay (Envoy's HeaderPercentageProvider).
   */
  delay?: { ms?: number; fraction: Fraction; percent: PercentParts };
  /**
   * abort: http_status, grpc_status (an HTTP 200 whose gRPC status it is), or header_abort (x-envoy-fault-abort-request,
   * else x-envoy-fault-abort-grpc-request; x-envoy-fault-abort-request-percentage lowers the percentage).
   */
  abort?: { status?: number; grpcStatus?: number; header?: true; fraction: Fraction; percent: PercentParts };
  /**
   * The runtime keys the filter reads per request over its configured values (Envoy's defaults
   * fault.http.delay.fixed_delay_percent, fault.http.delay.fixed_duration_ms, fault.http.abort.abort_percent,
   * fault.http.abort.http_status, fault.http.abort.grpc_status; the HTTPFault's *_runtime fields name others).
   */
  runtime: { delayPercent: string; delayDuration: string; abortPercent: string; abortHttpStatus: string; abortGrpcStatus: string; maxActiveFaults: string; responseRateLimitPercent: string };
  /**
   * response_rate_limit: fixed_limit (kbps), or header_limit (kbps undefined: x-envoy-fault-throughput-response's
   * value, none without a valid non-zero one; x-envoy-fault-throughput-response-percentage lowers the percentage).
   */
  responseRateLimit?: { kbps?: number; fraction: Fraction; percent: PercentParts };
  /** max_active_faults: no new fault while this many are active in the connection manager (absent: no limit unless the runtime's key sets one). */
  maxActiveFaults?: number;
  /** upstream_cluster: the fault applies only to requests whose route sends them to this cluster. */
  upstreamCluster?: string;
  /** downstream_nodes: the fault applies only to requests whose x-envoy-downstream-service-node is one of these. */
  downstreamNodes?: ReadonlySet<string>;
  /** headers: the fault applies only to requests all of these match (Envoy's HeaderUtility::matchHeaders). */
  headers?: readonly HeaderMatcherConfig[];
  /** disable_downstream_cluster_stats: no fault.<downstream cluster>.* counters. */
  disableDownstreamClusterStats?: true;
}

export interface RetryPolicyConfig {
  retryOn: Set<string>;
  numRetries: number;
  perTryTimeoutMs: number;
  retriableStatusCodes: Set<number>;
  /** envoy.retry_host_predicates.previous_hosts */
  avoidPreviousHosts: boolean;
  hostSelectionMaxAttempts: number;
  backoffBaseMs: number;
  backoffMaxMs: number;
  /** retriable_headers, and the request's x-envoy-retriable-header-names: under retriable-headers, a response matching any is retried. */
  retriableHeaders?: readonly HeaderMatcherConfig[];
  /** retriable_request_headers: only a request matching one of them is retried (Envoy then makes no retry state at all). */
  retriableRequestHeaders?: readonly HeaderMatcherConfig[];
  /** rate_limited_retry_back_off: a retried response's reset header (Retry-After, X-RateLimit-Reset) sets the back-off. */
  rateLimitedBackoff?: { resetHeaders: readonly { name: string; unixTimestamp: boolean }[]; maxIntervalMs: number };
}

export type HashPolicyConfig =
  | { kind: 'header'; name: string; terminal: boolean }
  | { kind: 'cookie'; name: string; ttlSeconds?: number; path?: string; terminal: boolean }
  | { kind: 'source_ip'; terminal: boolean }
  | { kind: 'query_parameter'; name: string; terminal: boolean };

export interface RouteActionConfig {
  kind: 'route';
  /** One entry for `cluster`, several for `weighted_clusters`. */
  clusters: { name: string; weight: number; requestHeaders: HeaderMutationConfig; responseHeaders: HeaderMutationConfig }[];
  totalWeight: number;
  /** 0 = no timeout. Envoy's default is 15 s. */
  timeoutMs: number;
  retry?: RetryPolicyConfig;
  prefixRewrite?: string;
  /** regex_rewrite: every match of `regex` (global) replaced by `replace`, the RE2 substitution (fidelity/route.ts re2Rewrite). */
  regexRewrite?: { regex: RegExp; replace: (match: string, ...rest: unknown[]) => string };
  hostRewrite?: string;
  /** request_mirror_policies: runtime_fraction's default_value, and its runtime_key (read per request) when it has one. */
  mirrors: { cluster: string; fraction: Fraction; runtimeKey?: string }[];
  hashPolicy: HashPolicyConfig[];
  /** The route's idle_timeout, in place of the connection manager's stream_idle_timeout (0: none); undefined: the HCM's. */
  idleTimeoutMs?: number;
  /**
   * max_stream_duration, when present: the route timeout no longer applies (as in Envoy); a stream lasts at
   * most `maxMs` (0: no limit) or, with `grpcHeaderMaxMs` set, its grpc-timeout capped at that (0: uncapped).
   */
  streamDuration?: { maxMs: number; grpcHeaderMaxMs?: number };
  /** RouteAction.priority: which of the cluster's resource managers (and pools) its requests use; 0 DEFAULT, 1 HIGH. */
  priority: RoutingPriority;
}

export interface DirectResponseConfig {
  kind: 'direct_response';
  status: number;
  body: string;
}

export interface RedirectConfig {
  kind: 'redirect';
  hostRedirect?: string;
  pathRedirect?: string;
  status: number;
}

export interface RouteEntry {
  name: string;
  match: RouteMatchConfig;
  action: RouteActionConfig | DirectResponseConfig | RedirectConfig;
  requestHeaders: HeaderMutationConfig;
  responseHeaders: HeaderMutationConfig;
  /** typed_per_filter_config["envoy.filters.http.fault"] */
  fault?: FaultConfig;
  /** Per-route disabling of filters by name (typed_per_filter_config FilterConfig{disabled}). */
  disabledFilters: Set<string>;
}

export interface VirtualHostConfig {
  name: string;
  domains: string[];
  routes: RouteEntry[];
  requestHeaders: HeaderMutationConfig;
  responseHeaders: HeaderMutationConfig;
  retry?: RetryPolicyConfig;
  /** include_request_attempt_count: x-envoy-attempt-count on each upstream attempt (1, 2, ...). */
  attemptCountUpstream: boolean;
  /** include_attempt_count_in_response: x-envoy-attempt-count (attempts made) on the upstream's response. */
  attemptCountResponse: boolean;
}

export interface RouteConfig {
  name: string;
  virtualHosts: VirtualHostConfig[];
  requestHeaders: HeaderMutationConfig;
  responseHeaders: HeaderMutationConfig;
}

export interface WasmPluginConfig {
  /** PluginConfig.name */
  name: string;
  rootId: string;
  vmId: string;
  /** PluginConfig.configuration, as bytes handed to proxy_on_configure. */
  configuration: Uint8Array;
  code: { kind: 'remote'; uri: string; sha256: string; timeoutMs: number } | { kind: 'inline'; bytes: Uint8Array } | { kind: 'file'; path: string };
  /** FAIL_OPEN lets traffic through when the VM fails; FAIL_CLOSED answers 503. */
  failOpen: boolean;
}

/** An RBAC permission (what the request is), the subset weft's translator emits. */
export type RbacPermission =
  | { kind: 'any' }
  | { kind: 'and'; rules: RbacPermission[] }
  | { kind: 'or'; rules: RbacPermission[] }
  | { kind: 'not'; rule: RbacPermission }
  | { kind: 'path'; match: StringMatcher }
  | { kind: 'header'; header: HeaderMatcherConfig };

/** An RBAC principal (who the caller is): the peer certificate's URI SAN. */
export type RbacPrincipal =
  | { kind: 'any' }
  | { kind: 'and'; ids: RbacPrincipal[] }
  | { kind: 'or'; ids: RbacPrincipal[] }
  | { kind: 'not'; id: RbacPrincipal }
  /** undefined match = any authenticated (mTLS) peer. */
  | { kind: 'authenticated'; match?: StringMatcher };

export interface RbacPolicyConfig {
  name: string;
  permissions: RbacPermission[];
  principals: RbacPrincipal[];
}

export interface RbacConfig {
  action: 'ALLOW' | 'DENY';
  policies: RbacPolicyConfig[];
}

export type HttpFilterConfig =
  | { kind: 'router'; name: string; suppressEnvoyHeaders: boolean; respectExpectedRqTimeout: boolean }
  | {
      kind: 'rbac';
      name: string;
      /** The enforced rules; without `rules` Envoy enforces nothing: an ALLOW-everything stand-in, `enforced` false. */
      rbac: RbacConfig;
      /** `rules` was set: the request is counted in rbac.<rulesStatPrefix>allowed / denied. */
      enforced: boolean;
      /** shadow_rules: evaluated, counted (shadow_allowed / shadow_denied) and written to the stream's dynamic metadata, never enforced. */
      shadow?: RbacConfig;
      /** rules_stat_prefix and shadow_rules_stat_prefix ('' unset): their counters' and metadata keys' prefixes. */
      rulesStatPrefix: string;
      shadowRulesStatPrefix: string;
    }
  | { kind: 'fault'; name: string; fault?: FaultConfig }
  /**
   * envoy.filters.http.health_check in pass-through mode: a request its headers all match is a health check
   * (StreamInfo::healthCheck): its span is not sampled, not_health_check_filter leaves it out of the access log,
   * and the response says x-envoy-upstream-healthchecked-cluster. It goes on to the app as any other.
   */
  | { kind: 'health_check'; name: string; headers: HeaderMatcherConfig[] }
  | { kind: 'wasm'; name: string; plugin: WasmPluginConfig; disabled: boolean }
  /** ECDS: resolved at request time from the extension configs by resource name. */
  | {
      kind: 'ecds';
      name: string;
      resourceName: string;
      defaultPlugin?: WasmPluginConfig;
      disabled: boolean;
      /** Its config_source's initial_fetch_timeout: how long a listener's initialization waits for the filter config (default 15 s; 0: until it comes). */
      initialFetchTimeoutMs?: number;
    };

export interface HttpConnectionManagerConfig {
  kind: 'http';
  statPrefix: string;
  /** RDS route config name, or an inline route config. */
  rds?: string;
  /** The RDS config_source's initial_fetch_timeout: how long a listener warming after initialization waits for its route configuration (default 15 s; 0: until it comes). */
  rdsInitialFetchTimeoutMs?: number;
  routeConfig?: RouteConfig;
  httpFilters: HttpFilterConfig[];
  /** 0 = none. */
  streamIdleTimeoutMs: number;
  requestTimeoutMs: number;
  /** common_http_protocol_options.idle_timeout: a downstream connection with no request in flight this long is closed; 0 = never. */
  idleTimeoutMs: number;
  /** The `server` response header: server_name (Envoy: "envoy") under server_header_transformation (Envoy: OVERWRITE). */
  server: { name: string; transformation: 'OVERWRITE' | 'APPEND_IF_ABSENT' | 'PASS_THROUGH' };
  /** generate_request_id (Envoy: true): an x-request-id is added to requests without one. */
  generateRequestId: boolean;
  /**
   * The per-stream L7 buffer limit: the listener's per_connection_buffer_limit_bytes
   * (1 MiB by default), which Envoy propagates to its connection manager. A request
   * body up to it is buffered (replayable); past it a body streams, and a filter that
   * buffers past it gets 413 (request) or 500 / a reset (response).
   */
  bufferLimitBytes: number;
  /** max_request_headers_kb in bytes (Envoy: 60 KiB) and common_http_protocol_options.max_headers_count (100): past either, HTTP/1 gets 431. */
  maxRequestHeadersBytes: number;
  maxHeadersCount: number;
  /** common_http_protocol_options.max_requests_per_connection: requests a downstream connection carries (0: no limit). */
  maxRequestsPerConnection: number;
  /** http_protocol_options.accept_http_10 and default_host_for_http_10: absent, HTTP/1.0 requests get 426 (Envoy's default). */
  http10?: { accept: boolean; defaultHost: string };
  /** The router's suppress_envoy_headers: no x-envoy-upstream-service-time, x-envoy-expected-rq-timeout-ms or x-envoy-overloaded. */
  suppressEnvoyHeaders: boolean;
  /** The router's respect_expected_rq_timeout: a request's x-envoy-expected-rq-timeout-ms is its timeout. */
  respectExpectedRqTimeout: boolean;
  /**
   * http2_protocol_options for HTTP/2 clients: allow_connect (SETTINGS_ENABLE_CONNECT_PROTOCOL, so a WebSocket may come
   * as an RFC 8441 extended CONNECT) and max_concurrent_streams (advertised in SETTINGS). Absent: neither.
   */
  http2?: { allowConnect: boolean; maxConcurrentStreams?: number };
  /** upgrade_configs allows websocket: a WebSocket upgrade is carried (proxy.ts upgradeTo), else refused with 403. */
  websocket: boolean;
  /** tracing with the OpenTelemetry provider (sidecar/tracing.ts); absent: no spans, trace headers pass unchanged. */
  tracing?: TracingConfig;
  /** normalize_path and merge_slashes (sidecar/path-normalize.ts): :path as normalized is routed, checked and forwarded. */
  normalizePath?: boolean;
  mergeSlashes?: boolean;
  /**
   * forward_client_cert_details SANITIZE_SET: a verified caller's x-forwarded-client-cert is set (By and Hash
   * always, Subject / URI / DNS as set_current_client_cert_details says). Absent: SANITIZE, the header removed.
   */
  xfcc?: { subject: boolean; uri: boolean; dns: boolean };
  /** access_log: the stdout loggers, their formats compiled (sidecar/access-log-format.ts); absent: nothing is logged. */
  accessLogs?: AccessLogFormat[];
  /** One of them reads the downstream connection (addresses, %CONNECTION_ID%): looked up per request only then. */
  accessLogsReadConnection?: boolean;
  /** One of them reads the stream's timing points or upstream local address (%REQUEST_DURATION%, ...): recorded only then. */
  accessLogsReadTimes?: boolean;
  /** One of them reads the downstream connection's TLS (%DOWNSTREAM_PEER_URI_SAN%, ...): read per request only then. */
  accessLogsReadDownstreamTls?: boolean;
  /** One of them reads the upstream connection's TLS (%UPSTREAM_PEER_SUBJECT%, ...): read as each attempt is sent only then. */
  accessLogsReadUpstreamTls?: boolean;
}

/** The connection manager's tracing with envoy.tracers.opentelemetry. */
export interface TracingConfig {
  /** random_sampling, client_sampling (requests with x-client-trace-id), overall_sampling: percent, Envoy's default 100 each. */
  randomSampling: number;
  clientSampling: number;
  overallSampling: number;
  /** max_path_tag_length (Envoy: 256): how much of the path the http.url tag keeps. */
  maxPathTagLength: number;
  /** From the listener's traffic_direction: OUTBOUND is egress (span "egress <host>", kind CLIENT), anything else ingress. */
  operation: 'ingress' | 'egress';
  /** grpc_service.envoy_grpc.cluster_name: a bootstrap cluster (weft sidecar --otel-collector declares weft_otel). */
  collectorCluster: string;
  /** Where cluster_name sits in the listener, for the NACK when the sidecar has no such cluster. */
  collectorClusterPath: string;
  /** grpc_service.timeout in ms; 0 = none. */
  exportTimeoutMs: number;
  /** service_name (Envoy: unknown_service:envoy): the resource's service.name. */
  serviceName: string;
}

export interface TcpProxyConfig {
  kind: 'tcp';
  statPrefix: string;
  cluster: string;
  /** idle_timeout: both connections close after this long with no byte either way (unset: Envoy's 1 h; 0: never). */
  idleTimeoutMs?: number;
}

/** Certificates by SDS secret name (mutual TLS with the mesh CA). */
export interface TlsSecretRefs {
  /** SDS name of the tls_certificate presented. */
  certificate: string;
  /** SDS name of the validation_context (trust bundle) peers are verified against. */
  validation: string;
  /** The sds_config's initial_fetch_timeout of each (how long initialization waits for the secret; default 15 s, 0: until it comes). */
  certificateInitialFetchTimeoutMs?: number;
  validationInitialFetchTimeoutMs?: number;
}

export interface DownstreamTlsConfig extends TlsSecretRefs {
  /** tls_inspector + a raw_buffer chain: plaintext callers are served too (PERMISSIVE). */
  permissive: boolean;
  /** PERMISSIVE: listener_filters_timeout, how long the first bytes may take (default 15 s; 0: no limit). */
  filtersTimeoutMs?: number;
  /** PERMISSIVE: continue_on_listener_filters_timeout, a silent connection served as plaintext instead of closed. */
  continueOnTimeout?: boolean;
}

export interface UpstreamTlsConfig extends TlsSecretRefs {
  /** The server certificate must carry one of these URI SANs (empty: any from the trust bundle). */
  uriSans: string[];
}

export interface ListenerConfig {
  name: string;
  address: SocketAddress;
  /** traffic_direction (admin /drain_listeners?inboundonly drains the INBOUND ones). */
  direction?: 'UNSPECIFIED' | 'INBOUND' | 'OUTBOUND';
  chain: HttpConnectionManagerConfig | TcpProxyConfig;
  /** Mutual TLS on accepted connections; absent = plaintext only. */
  tls?: DownstreamTlsConfig;
}

/** An SDS Secret: a certificate with its key, or a trust bundle. */
export interface SecretConfig {
  name: string;
  tlsCertificate?: { certificateChain: string; privateKey: string };
  trustedCa?: string;
}

export type LbPolicy = 'ROUND_ROBIN' | 'LEAST_REQUEST' | 'RANDOM' | 'RING_HASH';

export interface HealthCheckConfig {
  path: string;
  host?: string;
  intervalMs: number;
  /** Envoy's interval choice (health.ts nextCheckIn): before the cluster's first traffic (60 s unset)... */
  noTrafficIntervalMs: number;
  /** ...before traffic, for a host that passed and stays healthy (no_traffic_healthy_interval; no_traffic_interval unset)... */
  noTrafficHealthyIntervalMs?: number;
  /** ...for a host failing its checks (`interval` unset)... */
  unhealthyIntervalMs: number;
  /** ...and while a change of state waits for its threshold (`unhealthy_interval` / `interval` unset). */
  unhealthyEdgeIntervalMs: number;
  healthyEdgeIntervalMs: number;
  /** interval_jitter_percent and interval_jitter: a random share of the interval, and a random time below the jitter, added to each wait. */
  intervalJitterPercent?: number;
  intervalJitterMs?: number;
  /** initial_jitter: a host's first check waits a random time below it. */
  initialJitterMs?: number;
  timeoutMs: number;
  healthyThreshold: number;
  unhealthyThreshold: number;
  /** [start, end) ranges; default [[200, 201)] as in Envoy. */
  expectedStatuses: { start: number; end: number }[];
  /** codec_client_type HTTP2: the check goes over h2c (prior knowledge), for an HTTP/2-only server such as a gRPC one. */
  http2?: boolean;
}

/** Envoy's OutlierDetection with its defaults filled in (external-origin errors; see outlier.ts). */
export interface OutlierDetectionConfig {
  consecutive5xx: number;
  consecutiveGatewayFailure: number;
  intervalMs: number;
  baseEjectionTimeMs: number;
  maxEjectionTimeMs: number;
  maxEjectionTimeJitterMs: number;
  maxEjectionPercent: number;
  alwaysEjectOneHost: boolean;
  /** The enforcing_* percentages: the chance a detected outlier is ejected. */
  enforcingConsecutive5xx: number;
  enforcingConsecutiveGatewayFailure: number;
  enforcingSuccessRate: number;
  enforcingFailurePercentage: number;
  successRateMinimumHosts: number;
  successRateRequestVolume: number;
  /** Thousandths: 1900 is 1.9 standard deviations. */
  successRateStdevFactor: number;
  failurePercentageThreshold: number;
  failurePercentageMinimumHosts: number;
  failurePercentageRequestVolume: number;
  successfulActiveHealthCheckUnejectHost: boolean;
}

export interface CircuitBreakerConfig {
  maxConnections: number;
  maxPendingRequests: number;
  maxRequests: number;
  maxRetries: number;
  /** track_remaining: the circuit_breakers.<priority>.remaining_* gauges are kept. */
  trackRemaining?: boolean;
  /** retry_budget.budget_percent (a percentage), when set: the retry budget replaces max_retries (CircuitBreaker.maxRetries). */
  budgetPercent?: number;
  /** retry_budget.min_retry_concurrency, when set: the retry budget replaces max_retries. */
  minRetryConcurrency?: number;
  /** per_host_thresholds' max_connections for this priority: connections one host may have (its pools of both priorities). */
  maxConnectionsPerHost?: number;
}

/**
 * Envoy's RoutingPriority as an index: 0 DEFAULT, 1 HIGH. A route's `priority` picks the cluster's resource manager
 * (its own thresholds, counts and gauges) and its hosts' connection pools (ClusterInfo::resourceManager(priority)).
 */
export type RoutingPriority = 0 | 1;

export type EndpointHealth = 'UNKNOWN' | 'HEALTHY' | 'UNHEALTHY' | 'DRAINING' | 'TIMEOUT' | 'DEGRADED';

export interface EndpointConfig {
  address: string;
  port: number;
  health: EndpointHealth;
  weight: number;
  priority: number;
  zone?: string;
  /** endpoint.hostname (ring hash hashes it with use_hostname_for_hashing). */
  hostname?: string;
  /** The `envoy.lb` filter metadata's `hash_key`: what ring hash hashes in place of the address, as Envoy's. */
  hashKey?: string;
}

export interface ClusterConfig {
  name: string;
  /** alt_stat_name: the name the cluster's stats go under (envoy_cluster_name), as in Envoy. */
  altStatName?: string;
  type: 'EDS' | 'STATIC' | 'STRICT_DNS' | 'LOGICAL_DNS';
  /** EDS resource name (eds_cluster_config.service_name, default the cluster name). */
  edsServiceName?: string;
  /** eds_config.initial_fetch_timeout: how long a cluster added or changed after initialization warms without its assignment (default 15 s; 0: until it comes). */
  edsInitialFetchTimeoutMs?: number;
  /** For STATIC / DNS clusters. */
  staticEndpoints: EndpointConfig[];
  /** The load_assignment's policy (overprovisioning_factor, weighted_priority_health), when it has one. */
  staticPolicy?: ClusterLoadAssignmentConfig['policy'];
  connectTimeoutMs: number;
  lbPolicy: LbPolicy;
  ringHash: { minimumRingSize: number; maximumRingSize: number; useHostnameForHashing?: boolean };
  healthChecks: HealthCheckConfig[];
  outlierDetection?: OutlierDetectionConfig;
  circuitBreakers: CircuitBreakerConfig;
  /** The HIGH priority thresholds (Envoy's defaults, 1024/1024/1024/3, when circuit_breakers has no HIGH entry). */
  circuitBreakersHigh: CircuitBreakerConfig;
  /** Talk HTTP/2 (prior knowledge) to the endpoints: gRPC and http2 services. */
  http2: boolean;
  /** Upstream connection idle timeout; Envoy's default is 1 h. */
  idleTimeoutMs: number;
  /** Requests (HTTP/2: streams) one upstream connection carries before it is closed; 0: no limit (Envoy's default). */
  maxRequestsPerConnection: number;
  /** HTTP/2: streams one upstream connection carries at once (http2_protocol_options.max_concurrent_streams, default 2^31 - 1); more open another connection. */
  maxConcurrentStreams?: number;
  /** HTTP/1.1: explicit_http_config.http_protocol_options.enable_trailers: request trailers go out as chunked trailers (else dropped, as Envoy). */
  enableTrailers?: boolean;
  /** Percent of usable hosts below which all hosts are used (Envoy's panic mode), default 50. */
  panicThresholdPercent: number;
  /** common_lb_config.ignore_new_hosts_until_first_hc: a host added to a health-checked cluster is left out (Envoy's PENDING_ACTIVE_HC, an excluded host) until its first check completes. */
  ignoreNewHostsUntilFirstHc?: boolean;
  /** least_request_lb_config: hosts sampled per pick (default 2) and the active request bias (default 1.0). */
  leastRequest?: { choiceCount: number; activeRequestBias: number };
  /** Mutual TLS to the endpoints; absent = plaintext. */
  tls?: UpstreamTlsConfig;
}

export interface ClusterLoadAssignmentConfig {
  clusterName: string;
  endpoints: EndpointConfig[];
  /** policy.overprovisioning_factor (percent, default 140) and weighted_priority_health: how degraded hosts share traffic. */
  policy: { overprovisioningFactor: number; weightedPriorityHealth: boolean };
}

export interface ExtensionConfig {
  name: string;
  plugin: WasmPluginConfig;
}

/** Envoy's default common_http_protocol_options.idle_timeout for downstream connections: 1 hour. */
export const DEFAULT_DOWNSTREAM_IDLE_MS = 3_600_000;

/** Envoy's default per_connection_buffer_limit_bytes: the per-stream buffer limit when a listener sets none. */
export const DEFAULT_BUFFER_LIMIT = 1024 * 1024;

/** A retry policy's defaults as Envoy documents them (one retry, 25 ms backoff base, 10x that at most); no conditions. */
export const ENVOY_RETRY_DEFAULTS: Readonly<RetryPolicyConfig> = Object.freeze({
  retryOn: new Set<string>(),
  numRetries: 1,
  perTryTimeoutMs: 0,
  retriableStatusCodes: new Set<number>(),
  avoidPreviousHosts: false,
  hostSelectionMaxAttempts: 1,
  backoffBaseMs: 25,
  backoffMaxMs: 250,
});

/** OutlierDetection's defaults as Envoy documents them (outlier_detection.proto). */
export const ENVOY_OUTLIER_DEFAULTS: OutlierDetectionConfig = {
  consecutive5xx: 5,
  consecutiveGatewayFailure: 5,
  intervalMs: 10_000,
  baseEjectionTimeMs: 30_000,
  maxEjectionTimeMs: 300_000,
  maxEjectionTimeJitterMs: 0,
  maxEjectionPercent: 10,
  alwaysEjectOneHost: false,
  enforcingConsecutive5xx: 100,
  enforcingConsecutiveGatewayFailure: 0,
  enforcingSuccessRate: 100,
  enforcingFailurePercentage: 0,
  successRateMinimumHosts: 5,
  successRateRequestVolume: 100,
  successRateStdevFactor: 1900,
  failurePercentageThreshold: 85,
  failurePercentageMinimumHosts: 5,
  failurePercentageRequestVolume: 50,
  successfulActiveHealthCheckUnejectHost: true,
};

export const ENVOY_DEFAULT_CIRCUIT_BREAKERS: CircuitBreakerConfig = {
  maxConnections: 1024,
  maxPendingRequests: 1024,
  maxRequests: 1024,
  maxRetries: 3,
};
