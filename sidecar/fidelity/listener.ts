// Listener (LDS) -> ListenerConfig: one filter chain holding an HTTP
// connection manager or a tcp_proxy, and the HTTP filters the sidecar runs.

import type { HttpConnectionManagerConfig, HttpFilterConfig, ListenerConfig, TcpProxyConfig, TlsSecretRefs, TracingConfig } from '../config.ts';
import { DEFAULT_BUFFER_LIMIT, DEFAULT_DOWNSTREAM_IDLE_MS } from '../config.ts';
import { decodeAccessLogs } from '../access-log-format.ts';
import { rbacFilter } from './rbac.ts';
import { downstreamTls } from './tls.ts';
import { adsConfigSource, concurrentStreams, socketAddress } from './common.ts';
import { faultConfig } from './fault.ts';
import { Fields, typeName } from './fields.ts';
import type { FieldError } from './fields.ts';
import { decodeRouteConfiguration, headerMatcher } from './route.ts';
import { WASM_TYPE, wasmFilter } from './wasm.ts';

const HCM_TYPE = 'envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';
const TCP_PROXY_TYPE = 'envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy';
const ROUTER_TYPE = 'envoy.extensions.filters.http.router.v3.Router';
const FAULT_TYPE = 'envoy.extensions.filters.http.fault.v3.HTTPFault';
const OTEL_TRACER_TYPE = 'envoy.config.trace.v3.OpenTelemetryConfig';
const RBAC_TYPE = 'envoy.extensions.filters.http.rbac.v3.RBAC';
const HEALTH_CHECK_TYPE = 'envoy.extensions.filters.http.health_check.v3.HealthCheck';
const TLS_INSPECTOR_TYPE = 'envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector';

export function decodeListener(value: unknown, errors: FieldError[]): ListenerConfig | undefined {
  const f = Fields.of(value, '', errors);
  if (!f) return undefined;
  const name = f.str('name') ?? '';
  const address = socketAddress(f.obj('address'));
  // Stat naming does not change how traffic is handled; the direction names the connection manager's spans and
  // says which listeners /drain_listeners?inboundonly drains.
  f.ignore('stat_prefix');
  const direction = f.enumOf('traffic_direction', ['UNSPECIFIED', 'INBOUND', 'OUTBOUND'] as const, ['UNSPECIFIED', 'INBOUND', 'OUTBOUND']);
  const bufferLimit = f.num('per_connection_buffer_limit_bytes');
  // Envoy reads 0 as no limit: bodies a filter holds would then grow without bound in this single process.
  if (bufferLimit !== undefined && bufferLimit < 1) f.fail('per_connection_buffer_limit_bytes', 'must be at least 1: the weft sidecar does not buffer without a limit');
  const chains = f.list('filter_chains');
  const listenerFilters = f.list('listener_filters');
  // How long tls_inspector waits for a PERMISSIVE connection's first bytes (Envoy: 15 s; 0: no limit), and
  // whether such a connection is then closed or served as plaintext.
  const filtersTimeoutMs = f.durationMs('listener_filters_timeout');
  const continueOnTimeout = f.bool('continue_on_listener_filters_timeout') ?? false;
  f.done();
  const listener = decodeChains(f, name, address, chains, listenerFilters);
  // Envoy propagates the listener's limit to its connection manager's streams.
  if (listener && listener.chain.kind === 'http' && bufferLimit !== undefined && bufferLimit >= 1) listener.chain.bufferLimitBytes = bufferLimit;
  // As Envoy: an OUTBOUND listener's connection manager traces egress, any other ingress.
  if (listener && listener.chain.kind === 'http' && listener.chain.tracing && direction === 'OUTBOUND') listener.chain.tracing.operation = 'egress';
  if (listener && direction !== undefined && direction !== 'UNSPECIFIED') listener.direction = direction;
  if (listener?.tls?.permissive) {
    if (filtersTimeoutMs !== undefined) listener.tls.filtersTimeoutMs = filtersTimeoutMs;
    if (continueOnTimeout) listener.tls.continueOnTimeout = true;
  }
  return listener;
}

function decodeChains(f: Fields, name: string, address: ListenerConfig['address'] | undefined, chains: Fields[], listenerFilters: Fields[]): ListenerConfig | undefined {
  // Mutual TLS: one chain with a TLS transport socket (STRICT), or, behind
  // tls_inspector, a TLS chain and a plaintext chain with the same filters
  // matched on transport_protocol (PERMISSIVE), as weft's translator emits.
  if (chains.length === 2) return permissiveListener(f, name, address, chains, listenerFilters);
  if (listenerFilters.length > 0) f.fail('listener_filters', 'listener filters are supported only as tls_inspector in front of a tls and a raw_buffer filter chain');
  if (chains.length !== 1) {
    f.fail('filter_chains', 'the weft sidecar supports one filter chain, or a tls and a raw_buffer chain behind tls_inspector');
    return undefined;
  }
  let tls: TlsSecretRefs | undefined;
  const chain = chainOf(chains[0]!, (ts) => (tls = downstreamTls(ts)));
  if (!address || !chain) return undefined;
  if (chains[0]!.has('transport_socket') && !tls) return undefined;
  return tls ? { name, address, chain, tls: { ...tls, permissive: false } } : { name, address, chain };
}

function permissiveListener(f: Fields, name: string, address: ListenerConfig['address'] | undefined, chains: Fields[], listenerFilters: Fields[]): ListenerConfig | undefined {
  if (listenerFilters.length !== 1 || typeName(listenerFilters[0]!.obj('typed_config') ?? listenerFilters[0]!) !== TLS_INSPECTOR_TYPE) {
    f.fail('listener_filters', 'two filter chains need exactly the tls_inspector listener filter');
  }
  for (const lf of listenerFilters) {
    lf.ignore('name');
    lf.obj('typed_config')?.done();
    lf.done();
  }
  const protocols = chains.map((c) => {
    const m = c.obj('filter_chain_match');
    const p = m?.str('transport_protocol');
    m?.done();
    return p;
  });
  const tlsIndex = protocols.indexOf('tls');
  const rawIndex = protocols.indexOf('raw_buffer');
  if (tlsIndex < 0 || rawIndex < 0) {
    f.fail('filter_chains', 'two filter chains must match transport_protocol "tls" and "raw_buffer"');
    return undefined;
  }
  if (JSON.stringify(chains[tlsIndex]!.raw('filters')) !== JSON.stringify(chains[rawIndex]!.raw('filters'))) {
    f.fail(`filter_chains[${rawIndex}].filters`, 'the tls and raw_buffer chains must have the same filters');
  }
  let tls: TlsSecretRefs | undefined;
  const chain = chainOf(chains[tlsIndex]!, (ts) => (tls = downstreamTls(ts)));
  // Same filters, already checked equal: decode once, mark the plaintext chain's fields as read.
  chains[rawIndex]!.ignore('filters', 'name');
  chains[rawIndex]!.done();
  if (!tls) f.fail(`filter_chains[${tlsIndex}].transport_socket`, 'the tls chain needs a TLS transport socket');
  if (!address || !chain || !tls) return undefined;
  return { name, address, chain, tls: { ...tls, permissive: true } };
}

function chainOf(f: Fields, onTransportSocket: (ts: Fields) => void): HttpConnectionManagerConfig | TcpProxyConfig | undefined {
  f.ignore('name', 'filter_chain_match');
  const ts = f.obj('transport_socket');
  if (ts) onTransportSocket(ts);
  const filters = f.list('filters');
  f.done();
  if (filters.length !== 1) {
    f.fail('filters', 'the weft sidecar supports exactly one network filter (http_connection_manager or tcp_proxy)');
    return undefined;
  }
  const nf = filters[0]!;
  nf.ignore('name');
  const tc = nf.obj('typed_config');
  nf.done();
  if (!tc) {
    nf.fail('typed_config', 'required');
    return undefined;
  }
  const t = typeName(tc);
  if (t === HCM_TYPE) return hcm(tc);
  if (t === TCP_PROXY_TYPE) {
    const statPrefix = tc.str('stat_prefix') ?? '';
    const cluster = tc.str('cluster') ?? '';
    const idleTimeoutMs = tc.durationMs('idle_timeout');
    tc.done();
    if (!cluster) tc.fail('cluster', 'required (weighted_clusters is not supported)');
    return { kind: 'tcp', statPrefix, cluster, ...(idleTimeoutMs !== undefined ? { idleTimeoutMs } : {}) };
  }
  tc.fail('@type', `network filter ${JSON.stringify(t)} is not supported by the weft sidecar`);
  return undefined;
}

function hcm(f: Fields): HttpConnectionManagerConfig | undefined {
  const statPrefix = f.str('stat_prefix') ?? '';
  f.enumOf('codec_type', ['AUTO', 'HTTP1', 'HTTP2'] as const, ['AUTO', 'HTTP1', 'HTTP2', 'HTTP3']);
  let rds: string | undefined;
  let rdsInitialFetchTimeoutMs: number | undefined;
  const rdsF = f.obj('rds');
  if (rdsF) {
    rdsInitialFetchTimeoutMs = adsConfigSource(rdsF.obj('config_source'));
    rds = rdsF.str('route_config_name');
    rdsF.done();
    if (!rds) rdsF.fail('route_config_name', 'required');
  }
  const inline = f.raw('route_config');
  const routeConfig = inline === undefined ? undefined : decodeRouteConfiguration(inline, f.errors, `${f.path}.route_config`);
  if (!rds && !routeConfig) f.fail('rds', 'rds or route_config is required');
  const httpFilters = f.list('http_filters').map(httpFilter).filter((x): x is HttpFilterConfig => x !== undefined);
  if (httpFilters.at(-1)?.kind !== 'router') f.fail('http_filters', 'the last HTTP filter must be envoy.filters.http.router');
  const last = httpFilters.at(-1);
  const suppressEnvoyHeaders = last?.kind === 'router' && last.suppressEnvoyHeaders;
  const respectExpectedRqTimeout = last?.kind === 'router' && last.respectExpectedRqTimeout;
  const streamIdleTimeoutMs = f.durationMs('stream_idle_timeout') ?? 300_000;
  const requestTimeoutMs = f.durationMs('request_timeout') ?? 0;
  // A downstream connection with no request in flight for this long is closed (Envoy: 1 h unset, 0 = never).
  let idleTimeoutMs = DEFAULT_DOWNSTREAM_IDLE_MS;
  // Envoy's request header limits: 60 KiB and 100 headers unset.
  const maxRequestHeadersBytes = (f.num('max_request_headers_kb') ?? 60) * 1024;
  let maxHeadersCount = 100;
  let maxRequestsPerConnection = 0;
  // HTTP/1.0 is refused with 426 unless accept_http_10 (Envoy's default); default_host_for_http_10 is the Host of one without.
  let http10: { accept: boolean; defaultHost: string } | undefined;
  const hpo = f.obj('http_protocol_options');
  if (hpo) {
    http10 = { accept: hpo.bool('accept_http_10') ?? false, defaultHost: hpo.str('default_host_for_http_10') ?? '' };
    hpo.done();
  }
  // Http2ProtocolOptions for HTTP/2 clients: allow_connect advertises SETTINGS_ENABLE_CONNECT_PROTOCOL (RFC 8441), so a
  // WebSocket can come as an extended CONNECT stream; max_concurrent_streams is advertised as node's own limit. Window
  // sizes are flow control, which node does by itself; every other field is NACKed.
  let http2: { allowConnect: boolean; maxConcurrentStreams?: number } | undefined;
  const h2po = f.obj('http2_protocol_options');
  if (h2po) {
    const allowConnect = h2po.bool('allow_connect') ?? false;
    const streams = concurrentStreams(h2po);
    h2po.ignore('initial_stream_window_size', 'initial_connection_window_size');
    h2po.done();
    http2 = { allowConnect, ...(streams !== undefined ? { maxConcurrentStreams: streams } : {}) };
  }
  const cpo = f.obj('common_http_protocol_options');
  if (cpo) {
    idleTimeoutMs = cpo.durationMs('idle_timeout') ?? idleTimeoutMs;
    maxHeadersCount = cpo.num('max_headers_count') ?? maxHeadersCount;
    maxRequestsPerConnection = cpo.num('max_requests_per_connection') ?? 0;
    cpo.done();
  }
  // Access logs (sidecar/access-log-format.ts): the stdout logger's format compiled once here; an operator,
  // option or filter the sidecar does not implement is NACKed with its path.
  const accessLogs = decodeAccessLogs(f.list('access_log'));
  // Tracing with the OpenTelemetry tracer (sidecar/tracing.ts): spans exported over OTLP/gRPC to a bootstrap
  // cluster (checked when the listener is applied: DataPlane), W3C trace context upstream.
  let tracingConfig: TracingConfig | undefined;
  const tracing = f.obj('tracing');
  if (tracing) {
    const provider = tracing.obj('provider');
    const ptc = provider?.obj('typed_config');
    if (provider && !ptc) provider.fail('typed_config', 'required: the OpenTelemetry tracer config');
    if (ptc && typeName(ptc) !== OTEL_TRACER_TYPE) ptc.fail('@type', 'only the OpenTelemetry tracer (envoy.config.trace.v3.OpenTelemetryConfig) is supported by the weft sidecar');
    const grpc = ptc?.obj('grpc_service');
    if (ptc && !grpc) ptc.fail('grpc_service', 'required: the weft sidecar exports spans over OTLP/gRPC (http_service is not supported)');
    const envoyGrpc = grpc?.obj('envoy_grpc');
    if (grpc && !envoyGrpc) grpc.fail('envoy_grpc', 'required: the collector is reached through a bootstrap cluster (google_grpc is not supported)');
    const collectorCluster = envoyGrpc?.str('cluster_name') ?? '';
    if (envoyGrpc && !collectorCluster) envoyGrpc.fail('cluster_name', 'required');
    envoyGrpc?.ignore('authority');
    envoyGrpc?.done();
    const exportTimeoutMs = grpc?.durationMs('timeout') ?? 0;
    grpc?.done();
    const serviceName = ptc?.str('service_name') || 'unknown_service:envoy';
    ptc?.done();
    provider?.ignore('name');
    provider?.done();
    const percent = (key: string): number => {
      const p = tracing.obj(key);
      const v = p?.num('value') ?? 100;
      p?.done();
      if (p && !(v >= 0 && v <= 100)) p.fail('value', `must be a percentage 0..100, got ${v}`);
      return v;
    };
    const randomSampling = percent('random_sampling');
    const clientSampling = percent('client_sampling');
    const overallSampling = percent('overall_sampling');
    const maxPathTagLength = tracing.num('max_path_tag_length') ?? 256;
    if (tracing.bool('spawn_upstream_span') === true) tracing.fail('spawn_upstream_span', 'not supported by the weft sidecar: it makes one span per request (the downstream span) and no upstream spans');
    if (tracing.bool('verbose') === true) tracing.fail('verbose', 'not supported by the weft sidecar: spans carry no timing annotations');
    tracing.done();
    // Without a provider Envoy's connection manager makes no spans (the bootstrap-level tracer is gone in v3).
    if (ptc && collectorCluster) {
      tracingConfig = {
        randomSampling,
        clientSampling,
        overallSampling,
        maxPathTagLength,
        operation: 'ingress',
        collectorCluster,
        collectorClusterPath: `${envoyGrpc!.path}.cluster_name`,
        exportTimeoutMs,
        serviceName,
      };
    }
  }
  // upgrade_configs: WebSocket upgrades are carried (enabled unless `enabled: false`); other upgrade
  // types (CONNECT above all) and upgrade filter chains are NACKed.
  let websocket = false;
  for (const u of f.list('upgrade_configs')) {
    const type = u.str('upgrade_type') ?? '';
    const enabled = u.bool('enabled') ?? true;
    if (u.list('filters').length > 0) u.fail('filters', 'upgrade filter chains are not supported by the weft sidecar');
    u.done();
    if (type.toLowerCase() !== 'websocket') u.fail('upgrade_type', `only websocket upgrades are supported by the weft sidecar, not ${JSON.stringify(type)}`);
    else websocket = enabled;
  }
  // Header and path handling: the sidecar does what Envoy does by default, and refuses the other settings
  // rather than ignore them.
  const server = {
    name: f.str('server_name') || 'envoy',
    transformation: f.enumOf('server_header_transformation', ['OVERWRITE', 'APPEND_IF_ABSENT', 'PASS_THROUGH'] as const, ['OVERWRITE', 'APPEND_IF_ABSENT', 'PASS_THROUGH']) ?? 'OVERWRITE',
  };
  const generateRequestId = f.bool('generate_request_id') ?? true;
  if (f.bool('use_remote_address') === true) f.fail('use_remote_address', 'not supported by the weft sidecar: it does not append x-forwarded-for or classify internal and external callers');
  if ((f.num('xff_num_trusted_hops') ?? 0) !== 0) f.fail('xff_num_trusted_hops', 'not supported by the weft sidecar (x-forwarded-for is not interpreted)');
  // Path normalization as Envoy's (sidecar/path-normalize.ts); escaped slashes are kept as sent (KEEP_UNCHANGED).
  const normalizePath = f.bool('normalize_path') ?? false;
  const mergeSlashes = f.bool('merge_slashes') ?? false;
  f.enumOf('path_with_escaped_slashes_action', ['IMPLEMENTATION_SPECIFIC_DEFAULT', 'KEEP_UNCHANGED'] as const, ['IMPLEMENTATION_SPECIFIC_DEFAULT', 'KEEP_UNCHANGED', 'REJECT_REQUEST', 'UNESCAPE_AND_REDIRECT', 'UNESCAPE_AND_FORWARD']);
  // x-forwarded-client-cert: SANITIZE (Envoy's default) drops a caller's; SANITIZE_SET replaces it with what the
  // mutual TLS handshake verified, the fields set_current_client_cert_details names. Trusting a caller's header
  // (FORWARD_ONLY, APPEND_FORWARD, ALWAYS_FORWARD_ONLY) is refused.
  const xfccMode = f.enumOf('forward_client_cert_details', ['SANITIZE', 'SANITIZE_SET'] as const, ['SANITIZE', 'FORWARD_ONLY', 'APPEND_FORWARD', 'SANITIZE_SET', 'ALWAYS_FORWARD_ONLY']) ?? 'SANITIZE';
  let xfcc: HttpConnectionManagerConfig['xfcc'];
  const cur = f.obj('set_current_client_cert_details');
  if (cur) {
    const fields = { subject: cur.bool('subject') ?? false, uri: cur.bool('uri') ?? false, dns: cur.bool('dns') ?? false };
    if (cur.bool('cert') === true) cur.fail('cert', 'not supported by the weft sidecar (the PEM of the client certificate)');
    if (cur.bool('chain') === true) cur.fail('chain', 'not supported by the weft sidecar (the PEM of the client chain)');
    cur.done();
    if (xfccMode === 'SANITIZE_SET') xfcc = fields;
  } else if (xfccMode === 'SANITIZE_SET') xfcc = { subject: false, uri: false, dns: false };
  f.done();
  return { kind: 'http', statPrefix, rds, ...(rdsInitialFetchTimeoutMs !== undefined ? { rdsInitialFetchTimeoutMs } : {}), routeConfig, httpFilters, streamIdleTimeoutMs, requestTimeoutMs, idleTimeoutMs, server, generateRequestId, bufferLimitBytes: DEFAULT_BUFFER_LIMIT, maxRequestHeadersBytes, maxHeadersCount, maxRequestsPerConnection, ...(http10 ? { http10 } : {}), ...(http2 ? { http2 } : {}), suppressEnvoyHeaders, respectExpectedRqTimeout, websocket, ...(tracingConfig ? { tracing: tracingConfig } : {}), ...(normalizePath ? { normalizePath } : {}), ...(mergeSlashes ? { mergeSlashes } : {}), ...(xfcc ? { xfcc } : {}), ...(accessLogs ? { accessLogs, accessLogsReadConnection: accessLogs.some((l) => l.needsConnection), ...(accessLogs.some((l) => l.needsTimes) ? { accessLogsReadTimes: true } : {}), ...(accessLogs.some((l) => l.needsDownstreamTls === true) ? { accessLogsReadDownstreamTls: true } : {}), ...(accessLogs.some((l) => l.needsUpstreamTls === true) ? { accessLogsReadUpstreamTls: true } : {}) } : {}) };
}

/**
 * envoy.filters.http.health_check, in pass-through mode only: it marks the requests whose headers all match as
 * health checks and lets them through. Answering them itself (pass_through_mode false: 200, or 503 while
 * draining or by cluster_min_healthy_percentages) and caching the app's answer (cache_time) are not implemented.
 */
function healthCheckFilter(tc: Fields, name: string): HttpFilterConfig | undefined {
  const passThrough = tc.bool('pass_through_mode');
  if (passThrough === undefined) tc.fail('pass_through_mode', 'required');
  else if (!passThrough) tc.fail('pass_through_mode', 'only true is supported by the weft sidecar (it does not answer health checks itself)');
  if (tc.has('cache_time')) tc.fail('cache_time', 'not supported by the weft sidecar (it does not cache the answer to a health check)');
  const headers = tc.list('headers').map(headerMatcher);
  tc.done();
  return passThrough ? { kind: 'health_check', name, headers } : undefined;
}

function httpFilter(f: Fields): HttpFilterConfig | undefined {
  const name = f.str('name') ?? '';
  const disabled = f.bool('disabled') ?? false;
  f.ignore('is_optional');
  const which = f.oneof(['typed_config', 'config_discovery']);
  if (which === 'config_discovery') {
    const cd = f.obj('config_discovery')!;
    const initialFetchTimeoutMs = adsConfigSource(cd.obj('config_source'));
    const typeUrls = cd.strList('type_urls').map((u) => u.replace(/^type\.googleapis\.com\//, ''));
    if (!typeUrls.every((u) => u === WASM_TYPE)) cd.fail('type_urls', `the weft sidecar accepts only ${WASM_TYPE} through ECDS`);
    const def = cd.obj('default_config');
    const defaultPlugin = def ? wasmFilter(def) : undefined;
    cd.ignore('apply_default_config_without_warming');
    cd.done();
    f.done();
    return { kind: 'ecds', name, resourceName: name, defaultPlugin, disabled, ...(initialFetchTimeoutMs !== undefined ? { initialFetchTimeoutMs } : {}) };
  }
  const tc = f.obj('typed_config');
  f.done();
  const t = tc ? typeName(tc) : '';
  if (t === ROUTER_TYPE) {
    const suppressEnvoyHeaders = tc!.bool('suppress_envoy_headers') ?? false;
    const respectExpectedRqTimeout = tc!.bool('respect_expected_rq_timeout') ?? false;
    tc!.ignore('dynamic_stats', 'start_child_span');
    tc!.done();
    return { kind: 'router', name, suppressEnvoyHeaders, respectExpectedRqTimeout };
  }
  if (t === FAULT_TYPE) return { kind: 'fault', name, fault: faultConfig(tc!) };
  if (t === RBAC_TYPE) {
    return { kind: 'rbac', name, ...rbacFilter(tc!) };
  }
  if (t === HEALTH_CHECK_TYPE) return healthCheckFilter(tc!, name);
  if (t === WASM_TYPE) {
    const plugin = wasmFilter(tc!);
    return plugin ? { kind: 'wasm', name, plugin, disabled } : undefined;
  }
  (tc ?? f).fail(tc ? '@type' : 'typed_config', `HTTP filter ${JSON.stringify(t || name)} is not supported by the weft sidecar`);
  return undefined;
}
