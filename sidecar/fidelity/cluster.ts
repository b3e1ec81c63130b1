// Cluster (CDS) -> ClusterConfig.

import type { CircuitBreakerConfig, ClusterConfig, HealthCheckConfig, LbPolicy, OutlierDetectionConfig } from '../config.ts';
import { ENVOY_DEFAULT_CIRCUIT_BREAKERS, ENVOY_OUTLIER_DEFAULTS } from '../config.ts';
import { adsConfigSource, concurrentStreams } from './common.ts';
import { decodeEndpointPolicy, decodeLocalityEndpoints } from './endpoint.ts';
import { upstreamTls } from './tls.ts';
import { Fields, typeName } from './fields.ts';
import type { FieldError } from './fields.ts';

const HTTP_PROTOCOL_OPTIONS = 'envoy.extensions.upstreams.http.v3.HttpProtocolOptions';
const LB_POLICIES = ['ROUND_ROBIN', 'LEAST_REQUEST', 'RANDOM', 'RING_HASH'] as const;
/** Cluster.LbPolicy by number, as the proto numbers it. */
const LB_POLICY_NUMBERS = ['ROUND_ROBIN', 'LEAST_REQUEST', 'RING_HASH', 'RANDOM', 'ORIGINAL_DST_LB', 'MAGLEV', 'CLUSTER_PROVIDED', 'LOAD_BALANCING_POLICY_CONFIG'];
/** The proto's bound on minimum_ring_size and maximum_ring_size (uint64 lte 8388608). */
const RING_SIZE_LIMIT = 8 * 1024 * 1024;

export function decodeCluster(value: unknown, errors: FieldError[]): ClusterConfig | undefined {
  const f = Fields.of(value, '', errors);
  if (!f) return undefined;
  const name = f.str('name') ?? '';
  if (!name) f.fail('name', 'required');
  const type = f.enumOf('type', ['STATIC', 'STRICT_DNS', 'LOGICAL_DNS', 'EDS'] as const, ['STATIC', 'STRICT_DNS', 'LOGICAL_DNS', 'EDS', 'ORIGINAL_DST']) ?? 'STATIC';
  let edsServiceName: string | undefined;
  let edsInitialFetchTimeoutMs: number | undefined;
  const eds = f.obj('eds_cluster_config');
  if (eds) {
    edsInitialFetchTimeoutMs = adsConfigSource(eds.obj('eds_config'));
    edsServiceName = eds.str('service_name') || undefined;
    eds.done();
  }
  if (type === 'EDS') edsServiceName ??= name;
  const la = f.obj('load_assignment');
  let staticEndpoints: ClusterConfig['staticEndpoints'] = [];
  let staticPolicy: ClusterConfig['staticPolicy'];
  if (la) {
    la.ignore('cluster_name');
    staticEndpoints = decodeLocalityEndpoints(la);
    staticPolicy = decodeEndpointPolicy(la);
    la.done();
  }
  const connectTimeoutMs = f.durationMs('connect_timeout') ?? 5000;
  // MAGLEV is refused rather than run as a ring: Envoy's Maglev table maps keys to other hosts than any ring does.
  const lbPolicy: LbPolicy = f.enumOf('lb_policy', LB_POLICIES, LB_POLICY_NUMBERS) ?? 'ROUND_ROBIN';
  const ringHash: ClusterConfig['ringHash'] = { minimumRingSize: 1024, maximumRingSize: RING_SIZE_LIMIT };
  const rh = f.obj('ring_hash_lb_config');
  if (rh) {
    ringHash.minimumRingSize = rh.num('minimum_ring_size') ?? ringHash.minimumRingSize;
    ringHash.maximumRingSize = rh.num('maximum_ring_size') ?? ringHash.maximumRingSize;
    for (const key of ['minimum_ring_size', 'maximum_ring_size'] as const) {
      const v = key === 'minimum_ring_size' ? ringHash.minimumRingSize : ringHash.maximumRingSize;
      if (rh.has(key) && (!Number.isInteger(v) || v < 1 || v > RING_SIZE_LIMIT)) rh.fail(key, `must be an integer from 1 to ${RING_SIZE_LIMIT}`);
    }
    // As Envoy's RingHashLoadBalancer constructor, which rejects the cluster.
    if (ringHash.minimumRingSize > ringHash.maximumRingSize) rh.fail('minimum_ring_size', `${ringHash.minimumRingSize} is greater than maximum_ring_size (${ringHash.maximumRingSize})`);
    // MURMUR_HASH_2 would put the points elsewhere: refused (the sidecar hashes with xxHash64, Envoy's default).
    rh.enumOf('hash_function', ['XX_HASH'] as const, ['XX_HASH', 'MURMUR_HASH_2']);
    rh.done();
  }
  let leastRequest: ClusterConfig['leastRequest'];
  const lr = f.obj('least_request_lb_config');
  if (lr) {
    const choiceCount = lr.num('choice_count') ?? 2;
    // As the proto's validation (uint32 gte 2).
    if (!Number.isInteger(choiceCount) || choiceCount < 2) lr.fail('choice_count', 'must be a whole number, at least 2');
    let activeRequestBias = 1;
    const bias = lr.obj('active_request_bias');
    if (bias) {
      // A RuntimeDouble: the sidecar has no runtime, so its default_value is the value.
      activeRequestBias = bias.num('default_value') ?? 0;
      bias.ignore('runtime_key');
      if (!(activeRequestBias >= 0)) bias.fail('default_value', 'must be 0 or more');
      bias.done();
    }
    lr.done();
    leastRequest = { choiceCount, activeRequestBias };
  }
  const healthChecks = f.list('health_checks').map(healthCheck).filter((h): h is HealthCheckConfig => h !== undefined);
  const od = f.obj('outlier_detection');
  const outlierDetection = od ? outlier(od) : undefined;
  const [circuitBreakers, circuitBreakersHigh] = thresholds(f.obj('circuit_breakers'));
  let http2 = f.has('http2_protocol_options');
  // The deprecated cluster-level http2_protocol_options: its concurrency is honoured, its tuning accepted as before.
  const legacyH2 = f.obj('http2_protocol_options');
  let maxConcurrentStreams = legacyH2 ? concurrentStreams(legacyH2) : undefined;
  if (legacyH2) {
    legacyH2.ignore(...legacyH2.keys());
    legacyH2.done();
  }
  let idleTimeoutMs = 3_600_000;
  let enableTrailers = false;
  // The cluster-level fields are deprecated in favour of typed_extension_protocol_options, which wins when both are set.
  let maxRequestsPerConnection = f.num('max_requests_per_connection') ?? 0;
  const cpo = f.obj('common_http_protocol_options');
  if (cpo) {
    idleTimeoutMs = cpo.durationMs('idle_timeout') ?? idleTimeoutMs;
    maxRequestsPerConnection = cpo.num('max_requests_per_connection') ?? maxRequestsPerConnection;
    cpo.done();
  }
  const tepo = f.obj('typed_extension_protocol_options');
  if (tepo) {
    for (const key of tepo.keys()) {
      const o = tepo.obj(key)!;
      if (typeName(o) !== HTTP_PROTOCOL_OPTIONS) {
        o.fail('@type', `protocol options ${JSON.stringify(typeName(o))} are not supported`);
        continue;
      }
      const common = o.obj('common_http_protocol_options');
      if (common) {
        idleTimeoutMs = common.durationMs('idle_timeout') ?? idleTimeoutMs;
        maxRequestsPerConnection = common.num('max_requests_per_connection') ?? maxRequestsPerConnection;
        common.done();
      }
      const explicit = o.obj('explicit_http_config');
      if (explicit) {
        const which = explicit.oneof(['http_protocol_options', 'http2_protocol_options']);
        // Http1ProtocolOptions: enable_trailers is honoured (request trailers to an HTTP/1.1 upstream, as Envoy's
        // codec encodes them); its other fields stay accepted and unapplied, as before.
        const h1 = explicit.obj('http_protocol_options');
        if (h1) {
          enableTrailers = h1.bool('enable_trailers') ?? enableTrailers;
          h1.ignore(...h1.keys());
          h1.done();
        }
        const h2 = explicit.obj('http2_protocol_options');
        if (h2) maxConcurrentStreams = concurrentStreams(h2) ?? maxConcurrentStreams;
        // Flow-control window sizes do not change semantics. allow_connect is Envoy's server-side switch: upstream, an
        // upgrade always goes as an RFC 8441 extended CONNECT stream (proxy.ts upgradeTo), as Envoy's h2 client codec
        // sends it whatever the field says; it is accepted so that one set of options serves both ends.
        h2?.ignore('initial_stream_window_size', 'initial_connection_window_size', 'allow_connect');
        h2?.done();
        http2 = which === 'http2_protocol_options';
        explicit.done();
      }
      const auto = o.raw('auto_config');
      if (auto !== undefined) o.fail('auto_config', 'auto_config needs ALPN/TLS, which the weft sidecar does not speak upstream');
      o.done();
    }
    tepo.done();
  }
  const ts = f.obj('transport_socket');
  const tls = ts ? upstreamTls(ts) : undefined;
  f.ignore('dns_lookup_family', 'per_connection_buffer_limit_bytes', 'metadata');
  const altStatName = f.str('alt_stat_name') || undefined;
  let panicThresholdPercent = 50;
  let ignoreNewHostsUntilFirstHc = false;
  const clb = f.obj('common_lb_config');
  if (clb) {
    panicThresholdPercent = clb.num('healthy_panic_threshold') ?? 50;
    ignoreNewHostsUntilFirstHc = clb.bool('ignore_new_hosts_until_first_hc') ?? false;
    const ch = clb.obj('consistent_hashing_lb_config');
    if (ch) {
      if (ch.bool('use_hostname_for_hashing')) ringHash.useHostnameForHashing = true;
      // Bounded loads move keys off busy hosts, which the sidecar does not do: refused unless 0 (off).
      const factor = ch.num('hash_balance_factor');
      if (factor !== undefined && factor !== 0) ch.fail('hash_balance_factor', 'bounded-load consistent hashing is not supported by the weft sidecar');
      ch.done();
    }
    clb.done();
  }
  f.done();
  if (type !== 'EDS' && staticEndpoints.length === 0 && type === 'STATIC') f.fail('load_assignment', 'a STATIC cluster needs endpoints');
  return {
    name,
    ...(altStatName ? { altStatName } : {}),
    type,
    edsServiceName,
    ...(type === 'EDS' && edsInitialFetchTimeoutMs !== undefined ? { edsInitialFetchTimeoutMs } : {}),
    staticEndpoints,
    ...(staticPolicy ? { staticPolicy } : {}),
    connectTimeoutMs,
    lbPolicy,
    ringHash,
    healthChecks,
    outlierDetection,
    circuitBreakers,
    circuitBreakersHigh,
    http2,
    idleTimeoutMs,
    maxRequestsPerConnection,
    ...(maxConcurrentStreams !== undefined ? { maxConcurrentStreams } : {}),
    ...(enableTrailers ? { enableTrailers } : {}),
    panicThresholdPercent,
    ...(ignoreNewHostsUntilFirstHc ? { ignoreNewHostsUntilFirstHc } : {}),
    ...(leastRequest ? { leastRequest } : {}),
    ...(tls ? { tls } : {}),
  };
}

function healthCheck(f: Fields): HealthCheckConfig | undefined {
  const timeoutMs = f.durationMs('timeout') ?? 1000;
  const intervalMs = f.durationMs('interval') ?? 10_000;
  const healthyThreshold = f.num('healthy_threshold') ?? 1;
  const unhealthyThreshold = f.num('unhealthy_threshold') ?? 1;
  const noTrafficIntervalMs = f.durationMs('no_traffic_interval') ?? 60_000;
  const noTrafficHealthyIntervalMs = f.durationMs('no_traffic_healthy_interval') ?? noTrafficIntervalMs;
  const unhealthyIntervalMs = f.durationMs('unhealthy_interval') ?? intervalMs;
  const unhealthyEdgeIntervalMs = f.durationMs('unhealthy_edge_interval') ?? unhealthyIntervalMs;
  const healthyEdgeIntervalMs = f.durationMs('healthy_edge_interval') ?? intervalMs;
  const intervalJitterMs = f.durationMs('interval_jitter') ?? 0;
  const intervalJitterPercent = f.num('interval_jitter_percent') ?? 0;
  const initialJitterMs = f.durationMs('initial_jitter') ?? 0;
  f.ignore('event_log_path', 'always_log_health_check_failures');
  const http = f.obj('http_health_check');
  f.done();
  if (!http) {
    f.fail('http_health_check', 'the weft sidecar runs HTTP health checks only');
    return undefined;
  }
  const path = http.str('path') ?? '';
  if (!path.startsWith('/')) http.fail('path', 'required, absolute');
  const host = http.str('host') || undefined;
  const expectedStatuses = http.list('expected_statuses').map((r) => {
    const start = r.num('start') ?? 0;
    const end = r.num('end') ?? 0;
    r.done();
    return { start, end };
  });
  const codec = http.enumOf('codec_client_type', ['HTTP1', 'HTTP2'] as const, ['HTTP1', 'HTTP2', 'HTTP3']);
  http.done();
  return { ...(codec === 'HTTP2' ? { http2: true } : {}), path, host, intervalMs, noTrafficIntervalMs, noTrafficHealthyIntervalMs, unhealthyIntervalMs, unhealthyEdgeIntervalMs, healthyEdgeIntervalMs, intervalJitterMs, intervalJitterPercent, initialJitterMs, timeoutMs, healthyThreshold, unhealthyThreshold, expectedStatuses: expectedStatuses.length ? expectedStatuses : [{ start: 200, end: 201 }] };
}

function outlier(f: Fields): OutlierDetectionConfig {
  // Envoy's defaults: success-rate ejection is on unless enforcing_success_rate is 0 (it needs 5 hosts with 100
  // requests each in an interval); failure-percentage and gateway-failure outliers are detected, and ejected only
  // when their enforcing_* is set.
  const d = ENVOY_OUTLIER_DEFAULTS;
  const out: OutlierDetectionConfig = {
    consecutive5xx: f.num('consecutive_5xx') ?? d.consecutive5xx,
    consecutiveGatewayFailure: f.num('consecutive_gateway_failure') ?? d.consecutiveGatewayFailure,
    intervalMs: f.durationMs('interval') ?? d.intervalMs,
    baseEjectionTimeMs: f.durationMs('base_ejection_time') ?? d.baseEjectionTimeMs,
    maxEjectionTimeMs: f.durationMs('max_ejection_time') ?? d.maxEjectionTimeMs,
    maxEjectionTimeJitterMs: f.durationMs('max_ejection_time_jitter') ?? d.maxEjectionTimeJitterMs,
    maxEjectionPercent: f.num('max_ejection_percent') ?? d.maxEjectionPercent,
    alwaysEjectOneHost: f.bool('always_eject_one_host') ?? d.alwaysEjectOneHost,
    enforcingConsecutive5xx: f.num('enforcing_consecutive_5xx') ?? d.enforcingConsecutive5xx,
    enforcingConsecutiveGatewayFailure: f.num('enforcing_consecutive_gateway_failure') ?? d.enforcingConsecutiveGatewayFailure,
    enforcingSuccessRate: f.num('enforcing_success_rate') ?? d.enforcingSuccessRate,
    enforcingFailurePercentage: f.num('enforcing_failure_percentage') ?? d.enforcingFailurePercentage,
    successRateMinimumHosts: f.num('success_rate_minimum_hosts') ?? d.successRateMinimumHosts,
    successRateRequestVolume: f.num('success_rate_request_volume') ?? d.successRateRequestVolume,
    successRateStdevFactor: f.num('success_rate_stdev_factor') ?? d.successRateStdevFactor,
    failurePercentageThreshold: f.num('failure_percentage_threshold') ?? d.failurePercentageThreshold,
    failurePercentageMinimumHosts: f.num('failure_percentage_minimum_hosts') ?? d.failurePercentageMinimumHosts,
    failurePercentageRequestVolume: f.num('failure_percentage_request_volume') ?? d.failurePercentageRequestVolume,
    successfulActiveHealthCheckUnejectHost: f.bool('successful_active_health_check_uneject_host') ?? d.successfulActiveHealthCheckUnejectHost,
  };
  // As Envoy's DetectorImpl::create, which rejects the cluster (unset, the larger of 300 s and base_ejection_time applies).
  if (f.has('max_ejection_time') && out.maxEjectionTimeMs < out.baseEjectionTimeMs) f.fail('max_ejection_time', 'cannot be smaller than base_ejection_time');
  // Local-origin errors counted apart: the sidecar counts them as Envoy does without the split (as 503/504).
  if (f.bool('split_external_local_origin_errors')) f.fail('split_external_local_origin_errors', 'not supported by the weft sidecar (local-origin errors count as 5xx)');
  // Read by Envoy only with the split on; without it they change nothing.
  f.ignore('consecutive_local_origin_failure', 'enforcing_consecutive_local_origin_failure', 'enforcing_local_origin_success_rate', 'enforcing_failure_percentage_local_origin');
  f.done();
  return out;
}

/**
 * circuit_breakers.thresholds, one set per priority as Envoy's ResourceManagers::load reads them: the first entry
 * for a priority gives its limits, Envoy's defaults (1024/1024/1024/3) where it has none or leaves one unset.
 */
function thresholds(f: Fields | undefined): [CircuitBreakerConfig, CircuitBreakerConfig] {
  const out: [CircuitBreakerConfig, CircuitBreakerConfig] = [{ ...ENVOY_DEFAULT_CIRCUIT_BREAKERS }, { ...ENVOY_DEFAULT_CIRCUIT_BREAKERS }];
  if (!f) return out;
  const seen = [false, false];
  for (const t of f.list('thresholds')) {
    const priority = (t.enumOf('priority', ['DEFAULT', 'HIGH'] as const, ['DEFAULT', 'HIGH']) ?? 'DEFAULT') === 'HIGH' ? 1 : 0;
    // As Envoy's std::find_if: a later entry for the same priority changes nothing.
    if (seen[priority]) {
      t.ignore(...t.keys());
      t.done();
      continue;
    }
    seen[priority] = true;
    const o = out[priority];
    o.maxConnections = t.num('max_connections') ?? o.maxConnections;
    o.maxPendingRequests = t.num('max_pending_requests') ?? o.maxPendingRequests;
    o.maxRequests = t.num('max_requests') ?? o.maxRequests;
    o.maxRetries = t.num('max_retries') ?? o.maxRetries;
    if (t.bool('track_remaining')) o.trackRemaining = true;
    // As Envoy's ResourceManagers::load: only the fields retry_budget sets take effect (an empty one changes nothing),
    // budget_percent a Percent ({value}), min_retry_concurrency a UInt32Value.
    const rb = t.obj('retry_budget');
    if (rb) {
      const percent = rb.num('budget_percent');
      if (percent !== undefined) {
        if (percent < 0 || percent > 100) rb.fail('budget_percent', 'expected a percentage in [0, 100]');
        else o.budgetPercent = percent;
      }
      const min = rb.num('min_retry_concurrency');
      if (min !== undefined) o.minRetryConcurrency = min;
      rb.done();
    }
    t.done();
  }
  // per_host_thresholds: the first entry for a priority, as for thresholds. Envoy honours max_connections only and
  // rejects the cluster when an entry sets another limit ("Unsupported field in per_host_thresholds",
  // upstream_impl.cc); track_remaining is accepted and does nothing there.
  const perHostSeen = [false, false];
  for (const t of f.list('per_host_thresholds')) {
    const priority = (t.enumOf('priority', ['DEFAULT', 'HIGH'] as const, ['DEFAULT', 'HIGH']) ?? 'DEFAULT') === 'HIGH' ? 1 : 0;
    for (const k of ['max_pending_requests', 'max_requests', 'max_retries', 'max_connection_pools', 'retry_budget']) {
      const v = t.raw(k);
      if (v !== undefined && v !== null) t.fail(k, 'Unsupported field in per_host_thresholds (Envoy rejects it)');
    }
    t.ignore('max_pending_requests', 'max_requests', 'max_retries', 'max_connection_pools', 'retry_budget', 'track_remaining');
    const max = t.num('max_connections');
    if (!perHostSeen[priority]) {
      perHostSeen[priority] = true;
      if (max !== undefined) out[priority].maxConnectionsPerHost = max;
    }
    t.done();
  }
  f.done();
  return out;
}
