// The fidelity contract, walked over everything the translator emits (the
// golden outputs in test/golden/*/): every sidecar resource is either
// honoured (accepted, and the feature shows up in the decoded config the data
// plane runs on) or NACKed with its field path. No field is silently skipped:
// an unknown field added at every object position is rejected at that path.

import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { ClusterConfig, ListenerConfig, RouteActionConfig, RouteConfig } from '../../sidecar/config.ts';
import { ENVOY_OUTLIER_DEFAULTS } from '../../sidecar/config.ts';
import { accept } from '../../sidecar/fidelity.ts';
import type { ResourceKind } from '../../sidecar/fidelity.ts';

const goldenDir = fileURLToPath(new URL('../golden/', import.meta.url));
const FILES: Record<string, ResourceKind> = {
  'listeners.json': 'listener',
  'routes.json': 'route',
  'clusters.json': 'cluster',
  'endpoints.json': 'endpoint',
  'extension_configs.json': 'extension',
};

interface GoldenResource {
  kase: string;
  kind: ResourceKind;
  name: string;
  value: Record<string, unknown>;
}

function goldenResources(): GoldenResource[] {
  const out: GoldenResource[] = [];
  if (!existsSync(goldenDir)) return out;
  for (const kase of readdirSync(goldenDir).sort()) {
    for (const [file, kind] of Object.entries(FILES)) {
      const p = join(goldenDir, kase, file);
      if (!existsSync(p)) continue;
      for (const r of JSON.parse(readFileSync(p, 'utf8')) as { name: string; value: Record<string, unknown> }[]) out.push({ kase, kind, name: r.name, value: r.value });
    }
  }
  return out;
}

/** Proxyless gRPC clients get api_listeners; a sidecar never asks for them, and NACKs them if it does. */
const isApiListener = (r: GoldenResource) => r.kind === 'listener' && 'api_listener' in r.value;

const resources = goldenResources();

test('golden outputs exist to walk', () => {
  assert.ok(resources.length > 50, `found ${resources.length} golden resources`);
});

test('every sidecar resource the translator emits is accepted; api_listeners are NACKed by path', () => {
  for (const r of resources) {
    const result = accept(r.kind, r.value);
    if (isApiListener(r)) {
      assert.equal(result.ok, false, `${r.kase} ${r.name}`);
      if (!result.ok) assert.ok(result.errors.some((e) => e.path === 'api_listener'), JSON.stringify(result.errors));
      continue;
    }
    assert.ok(result.ok, `${r.kase} ${r.kind} ${r.name}: ${result.ok ? '' : JSON.stringify(result.errors)}`);
  }
});

/** Keys whose values are maps or opaque payloads, not messages with a fixed field set. */
const OPAQUE = new Set(['typed_per_filter_config', 'typed_extension_protocol_options', 'metadata', 'filter_metadata', 'configuration', 'ads', 'http_protocol_options', 'fields', 'json_format']);

interface Position {
  path: string;
  segs: (string | number)[];
}

function objectPositions(v: unknown, pos: Position, out: Position[] = []): Position[] {
  if (Array.isArray(v)) v.forEach((x, i) => objectPositions(x, { path: `${pos.path}[${i}]`, segs: [...pos.segs, i] }, out));
  else if (v && typeof v === 'object') {
    out.push(pos);
    for (const [k, x] of Object.entries(v)) {
      if (k === '@type') continue;
      const child = { path: pos.path ? `${pos.path}.${k}` : k, segs: [...pos.segs, k] };
      if (OPAQUE.has(k)) {
        // Per-filter and per-protocol maps: each value is a message again.
        if ((k === 'typed_per_filter_config' || k === 'typed_extension_protocol_options') && x && typeof x === 'object') {
          for (const [mk, mv] of Object.entries(x)) objectPositions(mv, { path: `${child.path}.${mk}`, segs: [...child.segs, mk] }, out);
        }
        continue;
      }
      objectPositions(x, child, out);
    }
  }
  return out;
}

function withExtraField(root: Record<string, unknown>, segs: (string | number)[]): Record<string, unknown> {
  const copy = structuredClone(root);
  let node: any = copy;
  for (const seg of segs) node = node[seg];
  node.weft_unsupported_field = 'x';
  return copy;
}

test('an unsupported field at any position in any emitted resource is NACKed naming that field path', () => {
  let checked = 0;
  const seen = new Set<string>();
  for (const r of resources) {
    if (isApiListener(r)) continue;
    for (const pos of objectPositions(r.value, { path: '', segs: [] })) {
      // One check per (kind, shape of path) keeps the walk fast without skipping any field position.
      const shape = `${r.kind}:${pos.path.replace(/\[\d+\]/g, '[]')}`;
      if (seen.has(shape)) continue;
      seen.add(shape);
      const result = accept(r.kind, withExtraField(r.value, pos.segs));
      const expected = pos.path ? `${pos.path}.weft_unsupported_field` : 'weft_unsupported_field';
      assert.equal(result.ok, false, `${r.kase} ${r.kind} ${r.name}: extra field at ${expected} was accepted`);
      if (!result.ok) assert.ok(result.errors.some((e) => e.path === expected), `${r.kase} ${r.name}: expected an error at ${expected}, got ${JSON.stringify(result.errors)}`);
      checked++;
    }
  }
  assert.ok(checked > 50, `walked ${checked} field positions`);
});

function golden(kase: string, kind: ResourceKind, name?: string): Record<string, unknown> {
  const r = resources.find((x) => x.kase === kase && x.kind === kind && (name === undefined || x.name === name));
  assert.ok(r, `golden ${kase} ${kind} ${name ?? ''}`);
  return r.value;
}

function decoded<K extends ResourceKind>(kind: K, value: unknown) {
  const r = accept(kind, value);
  assert.ok(r.ok, JSON.stringify(!r.ok && r.errors));
  return r.value;
}

function firstAction(rc: RouteConfig, vhostDomain: string): RouteActionConfig {
  const vh = rc.virtualHosts.find((v) => v.domains.includes(vhostDomain))!;
  const a = vh.routes[0]!.action;
  assert.equal(a.kind, 'route');
  return a as RouteActionConfig;
}

test('features the translator sets are honoured in the decoded config', () => {
  const canary = decoded('route', golden('route-canary-90-10', 'route')) as RouteConfig;
  const split = firstAction(canary, 'reviews');
  assert.deepEqual(split.clusters.map((c) => [c.name, c.weight]), [['outbound|9080|v1|reviews.default', 90], ['outbound|9080|v2|reviews.default', 10]]);

  const retries = firstAction(decoded('route', golden('route-retries', 'route')) as RouteConfig, 'reviews');
  assert.ok(retries.retry && retries.retry.numRetries > 0 && retries.retry.retryOn.size > 0);

  const timeout = firstAction(decoded('route', golden('route-timeout', 'route')) as RouteConfig, 'reviews');
  assert.ok(timeout.timeoutMs > 0 && timeout.timeoutMs !== 15_000);

  const rewrite = firstAction(decoded('route', golden('route-prefix-rewrite', 'route')) as RouteConfig, 'reviews');
  assert.ok(rewrite.prefixRewrite !== undefined);

  const mirror = firstAction(decoded('route', golden('route-mirror', 'route')) as RouteConfig, 'reviews');
  assert.ok(mirror.mirrors.length === 1 && mirror.mirrors[0]!.fraction > 0);

  const fault = decoded('route', golden('route-fault-abort', 'route')) as RouteConfig;
  assert.ok(fault.virtualHosts.some((v) => v.routes.some((r) => r.fault?.abort)));

  const regex = decoded('route', golden('route-path-regex', 'route')) as RouteConfig;
  assert.ok(regex.virtualHosts.some((v) => v.routes.some((r) => r.match.path.kind === 'regex')));

  const headers = decoded('route', golden('route-header-mutation', 'route')) as RouteConfig;
  assert.ok(headers.virtualHosts.some((v) => v.routes.some((r) => r.requestHeaders.add.length + r.requestHeaders.remove.length + r.responseHeaders.add.length > 0)));

  const ringHeader = decoded('route', golden('lb-ring-hash-header', 'route')) as RouteConfig;
  assert.ok(ringHeader.virtualHosts.some((v) => v.routes.some((r) => r.action.kind === 'route' && r.action.hashPolicy[0]?.kind === 'header')));

  const clusters = resources.filter((r) => r.kind === 'cluster').map((r) => decoded('cluster', r.value) as ClusterConfig);
  assert.ok(clusters.some((c) => c.lbPolicy === 'RING_HASH'));
  assert.ok(clusters.some((c) => c.lbPolicy === 'LEAST_REQUEST'));
  assert.ok(clusters.some((c) => c.lbPolicy === 'RANDOM'));
  assert.ok(clusters.some((c) => c.healthChecks.length > 0 && c.healthChecks[0]!.path.startsWith('/')));
  assert.ok(clusters.some((c) => c.outlierDetection !== undefined));
  assert.ok(clusters.some((c) => c.circuitBreakers.maxConnections !== 1024));
  assert.ok(clusters.some((c) => c.http2));

  const wasm = decoded('listener', golden('wasm-inbound', 'listener', 'inbound')) as ListenerConfig;
  assert.ok(wasm.chain.kind === 'http' && wasm.chain.httpFilters.some((f) => f.kind === 'ecds'));
  const ext = decoded('extension', golden('wasm-inbound', 'extension')) as { plugin: { code: { kind: string; sha256?: string } } };
  assert.equal(ext.plugin.code.kind, 'remote');

  // Tracing: the OpenTelemetry tracer's cluster, service name, export timeout and sampling; the span kind from the direction.
  for (const [name, operation] of [['inbound', 'ingress'], ['outbound', 'egress']] as const) {
    const traced = decoded('listener', golden('observability-tracing', 'listener', name)) as ListenerConfig;
    assert.ok(traced.chain.kind === 'http' && traced.chain.tracing, name);
    const t = traced.chain.tracing;
    assert.equal(t.operation, operation);
    assert.equal(t.collectorCluster, 'weft_otel');
    assert.ok(t.exportTimeoutMs > 0 && t.serviceName.length > 0 && t.randomSampling >= 0 && t.randomSampling <= 100);
    assert.match(t.collectorClusterPath, /tracing\.provider\.typed_config\.grpc_service\.envoy_grpc\.cluster_name$/);
  }
});

test("a route match's runtime_fraction and the fault filter's upstream_cluster and downstream_nodes are decoded, not NACKed", () => {
  const v = structuredClone(golden('route-canary-90-10', 'route')) as any;
  const r0 = v.virtual_hosts[0].routes[0];
  r0.match.runtime_fraction = { default_value: { numerator: 25, denominator: 'TEN_THOUSAND' }, runtime_key: 'routing.canary' };
  r0.typed_per_filter_config = {
    ...r0.typed_per_filter_config,
    'envoy.filters.http.fault': {
      '@type': 'type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault',
      abort: { http_status: 503, percentage: { numerator: 100 } },
      upstream_cluster: 'outbound|9080|v2|reviews.default',
      downstream_nodes: ['web-1', 'web-2'],
    },
  };
  const rc = decoded('route', v) as RouteConfig;
  const route = rc.virtualHosts[0]!.routes[0]!;
  assert.deepEqual(route.match.runtimeFraction, { fraction: 0.0025, runtimeKey: 'routing.canary' });
  assert.equal(route.fault!.upstreamCluster, 'outbound|9080|v2|reviews.default');
  assert.deepEqual([...route.fault!.downstreamNodes!], ['web-1', 'web-2']);
  // Without a runtime_key the default_value alone decides.
  r0.match.runtime_fraction = { default_value: { numerator: 30 } };
  assert.deepEqual((decoded('route', v) as RouteConfig).virtualHosts[0]!.routes[0]!.match.runtimeFraction, { fraction: 0.3 });
});

test("the fault filter's headers, abort.grpc_status, abort.header_abort, delay.header_delay, response_rate_limit, abort_grpc_status_runtime and disable_downstream_cluster_stats are decoded, not NACKed; a oneof with two members and a limit of 0 KiB/s are", () => {
  const v = structuredClone(golden('route-canary-90-10', 'route')) as any;
  const r0 = v.virtual_hosts[0].routes[0];
  const withFault = (fault: Record<string, unknown>) => {
    r0.typed_per_filter_config = { 'envoy.filters.http.fault': { '@type': 'type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault', ...fault } };
    return accept('route', v);
  };
  const faultOf = (fault: Record<string, unknown>) => {
    const r = withFault(fault);
    assert.ok(r.ok, JSON.stringify(!r.ok && r.errors));
    return (r.value as RouteConfig).virtualHosts[0]!.routes[0]!.fault!;
  };
  const grpc = faultOf({
    abort: { grpc_status: 14, percentage: { numerator: 5, denominator: 'TEN_THOUSAND' } },
    headers: [{ name: 'X-Canary', string_match: { exact: 'yes' } }, { name: 'x-debug', present_match: true }],
    abort_grpc_status_runtime: 'my.grpc',
    disable_downstream_cluster_stats: true,
  });
  assert.deepEqual(grpc.abort, { grpcStatus: 14, fraction: 0.0005, percent: { numerator: 5, scale: 10_000 } });
  assert.equal(grpc.runtime.abortGrpcStatus, 'my.grpc');
  assert.equal(grpc.disableDownstreamClusterStats, true);
  assert.deepEqual(grpc.headers!.map((h) => [h.name, h.match?.kind, h.present]), [['x-canary', 'exact', true], ['x-debug', undefined, true]]);
  // The default runtime key for the gRPC status, as Envoy's RuntimeKeys.
  assert.equal(faultOf({ abort: { grpc_status: 0, percentage: { numerator: 1 } } }).runtime.abortGrpcStatus, 'fault.http.abort.grpc_status');
  const byHeader = faultOf({ abort: { header_abort: {}, percentage: { numerator: 80 } }, delay: { header_delay: {}, percentage: { numerator: 50, denominator: 'MILLION' } } });
  assert.deepEqual(byHeader.abort, { header: true, fraction: 0.8, percent: { numerator: 80, scale: 100 } });
  assert.deepEqual(byHeader.delay, { fraction: 0.00005, percent: { numerator: 50, scale: 1_000_000 } });

  const errorsOf = (fault: Record<string, unknown>) => {
    const r = withFault(fault);
    assert.equal(r.ok, false);
    return JSON.stringify(!r.ok && r.errors);
  };
  const at = 'virtual_hosts[0].routes[0].typed_per_filter_config.envoy.filters.http.fault';
  assert.match(errorsOf({ abort: { http_status: 503, grpc_status: 2 } }), /abort\.grpc_status","message":"only one of http_status, grpc_status may be set/);
  assert.match(errorsOf({ delay: { fixed_delay: '1s', header_delay: {} } }), /delay\.header_delay","message":"only one of fixed_delay and header_delay/);
  assert.match(errorsOf({ abort: { percentage: { numerator: 1 } } }), /abort\.http_status","message":"one of http_status, grpc_status and header_abort is required/);
  assert.match(errorsOf({ abort: { header_abort: { x: 1 } } }), /abort\.header_abort\.x","message":"field not supported/);
  assert.match(errorsOf({ headers: [{ name: 'x', string_match: { exact: 'a' }, weft: 1 }] }), /headers\[0\]\.weft/);
  // response_rate_limit (until 2026-11-29 NACKed): fixed_limit (uint64 as proto3 JSON writes it) or header_limit;
  // no percentage is 0%, as an unset FractionalPercent; the runtime key is Envoy's unless named.
  const fixed = faultOf({ response_rate_limit: { fixed_limit: { limit_kbps: '64' }, percentage: { numerator: 25 } } });
  assert.deepEqual(fixed.responseRateLimit, { kbps: 64, fraction: 0.25, percent: { numerator: 25, scale: 100 } });
  assert.equal(fixed.runtime.responseRateLimitPercent, 'fault.http.rate_limit.response_percent');
  const asked = faultOf({ response_rate_limit: { header_limit: {} }, response_rate_limit_percent_runtime: 'my.rl' });
  assert.deepEqual(asked.responseRateLimit, { fraction: 0, percent: { numerator: 0, scale: 100 } });
  assert.equal(asked.runtime.responseRateLimitPercent, 'my.rl');
  assert.ok(errorsOf({ response_rate_limit: { fixed_limit: { limit_kbps: 0 } } }).includes(`${at}.response_rate_limit.fixed_limit.limit_kbps","message":"must be an integer of at least 1`));
  assert.match(errorsOf({ response_rate_limit: { fixed_limit: { limit_kbps: 1 }, header_limit: {} } }), /response_rate_limit\.header_limit","message":"only one of fixed_limit and header_limit/);
  assert.match(errorsOf({ response_rate_limit: { percentage: { numerator: 1 } } }), /response_rate_limit\.fixed_limit","message":"fixed_limit or header_limit is required/);
});

test("a listener's per_connection_buffer_limit_bytes becomes its connection manager's buffer limit (1 MiB unset, as Envoy); idle_timeout 1 h unset", () => {
  const base = golden('wasm-inbound', 'listener', 'inbound');
  const unset = decoded('listener', base) as ListenerConfig;
  assert.ok(unset.chain.kind === 'http' && unset.chain.bufferLimitBytes === 1024 * 1024);
  // Envoy's downstream idle_timeout when common_http_protocol_options sets none: 1 hour.
  assert.equal(unset.chain.idleTimeoutMs, 3_600_000);
  const limited = decoded('listener', { ...structuredClone(base), per_connection_buffer_limit_bytes: 65536 }) as ListenerConfig;
  assert.ok(limited.chain.kind === 'http' && limited.chain.bufferLimitBytes === 65536);
});

test('upgrade_configs: websocket (any case) is carried, unless enabled is false; none set means none carried', () => {
  const base = golden('wasm-inbound', 'listener', 'inbound');
  const hcmOf = (upgrades: unknown) => {
    const v = structuredClone(base) as any;
    const tc = v.filter_chains[0].filters[0].typed_config;
    if (upgrades === undefined) delete tc.upgrade_configs;
    else tc.upgrade_configs = upgrades;
    const l = decoded('listener', v) as ListenerConfig;
    assert.ok(l.chain.kind === 'http');
    return l.chain;
  };
  assert.equal((decoded('listener', base) as ListenerConfig).chain.kind === 'http' && ((decoded('listener', base) as any).chain.websocket as boolean), true, 'the translator allows websocket');
  assert.equal(hcmOf([{ upgrade_type: 'WebSocket' }]).websocket, true);
  assert.equal(hcmOf([{ upgrade_type: 'websocket', enabled: false }]).websocket, false);
  assert.equal(hcmOf(undefined).websocket, false);
});

test("http2_protocol_options: a connection manager's allow_connect and max_concurrent_streams are honoured (until 2026-11-29 the field was NACKed); other fields are NACKed by path; a cluster's allow_connect is accepted", () => {
  const base = golden('wasm-inbound', 'listener', 'inbound');
  const withH2 = (options: unknown) => {
    const v = structuredClone(base) as any;
    v.filter_chains[0].filters[0].typed_config.http2_protocol_options = options;
    return v;
  };
  const chain = (options: unknown) => {
    const l = decoded('listener', withH2(options)) as ListenerConfig;
    assert.ok(l.chain.kind === 'http');
    return l.chain;
  };
  assert.equal((decoded('listener', base) as any).chain.http2, undefined, 'the translator sets none');
  assert.deepEqual(chain({ allow_connect: true }).http2, { allowConnect: true });
  assert.deepEqual(chain({ max_concurrent_streams: 100, initial_stream_window_size: 65536 }).http2, { allowConnect: false, maxConcurrentStreams: 100 });
  for (const [options, path] of [
    [{ max_concurrent_streams: 0 }, 'http2_protocol_options.max_concurrent_streams'],
    [{ allow_connect: 'yes' }, 'http2_protocol_options.allow_connect'],
    [{ hpack_table_size: 4096 }, 'http2_protocol_options.hpack_table_size'],
  ] as const) {
    const r = accept('listener', withH2(options));
    assert.ok(!r.ok, JSON.stringify(options));
    assert.ok(JSON.stringify(r.errors).includes(path), `${JSON.stringify(options)}: ${JSON.stringify(r.errors)}`);
  }
  const cluster = golden('lb-round-robin', 'cluster') as Record<string, any>;
  const h2 = decoded('cluster', {
    ...cluster,
    typed_extension_protocol_options: {
      'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': {
        '@type': 'type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions',
        explicit_http_config: { http2_protocol_options: { allow_connect: true } },
      },
    },
  }) as ClusterConfig;
  assert.equal(h2.http2, true);
});

test('RBAC: shadow_rules and their stat prefixes are decoded (until 2026-11-29 NACKed); without rules nothing is enforced; a dotted stat prefix is NACKed by path', () => {
  const base = golden('identity-rbac-dry-run', 'listener', 'inbound');
  const filters = ((decoded('listener', base) as ListenerConfig).chain as { httpFilters: Record<string, any>[] }).httpFilters.filter((f) => f.kind === 'rbac');
  const [deny, allow] = filters;
  assert.deepEqual([deny!.name, deny!.enforced, deny!.rbac.action, deny!.rbac.policies.map((p: { name: string }) => p.name)], ['envoy.filters.http.rbac.deny', true, 'DENY', ['default/no-admin/rules[0]']]);
  assert.deepEqual([deny!.shadow.action, deny!.shadow.policies.map((p: { name: string }) => p.name), deny!.shadowRulesStatPrefix, deny!.rulesStatPrefix], ['DENY', ['default/no-admin/rules[0]', 'default/no-debug/rules[0]'], 'weft_dry_run_deny_', '']);
  assert.deepEqual([allow!.enforced, allow!.shadow.action, allow!.shadowRulesStatPrefix], [false, 'ALLOW', 'weft_dry_run_allow_']);
  const withPrefix = (prefix: string) => {
    const v = structuredClone(base) as any;
    // Every chain (mutual TLS and plaintext) carries the same filters.
    for (const chain of v.filter_chains) {
      const f = chain.filters[0].typed_config.http_filters.find((x: { name: string }) => x.name === 'envoy.filters.http.rbac.deny');
      f.typed_config.rules_stat_prefix = prefix;
    }
    return v;
  };
  assert.ok(accept('listener', withPrefix('enforced_')).ok);
  const dotted = accept('listener', withPrefix('my.rules.'));
  assert.ok(!dotted.ok);
  assert.match(JSON.stringify(dotted.errors), /typed_config\.rules_stat_prefix/);
});

test('health_check filter: pass-through with header matchers is decoded; answering itself, caching, cluster_min_healthy_percentages and a missing pass_through_mode are NACKed by path', () => {
  const base = golden('minimal-http', 'listener', 'inbound');
  const chain = (decoded('listener', base) as ListenerConfig).chain as { httpFilters: Record<string, any>[] };
  assert.deepEqual(chain.httpFilters[0], { kind: 'health_check', name: 'envoy.filters.http.health_check', headers: [{ name: 'user-agent', present: true, invert: false, match: { kind: 'exact', value: 'Envoy/HC', ignoreCase: false } }] });
  const withConfig = (edit: (c: Record<string, unknown>) => void) => {
    const v = structuredClone(base) as any;
    for (const c of v.filter_chains) edit(c.filters[0].typed_config.http_filters.find((x: { name: string }) => x.name === 'envoy.filters.http.health_check').typed_config);
    return v;
  };
  const errors = (edit: (c: Record<string, unknown>) => void) => {
    const r = accept('listener', withConfig(edit));
    assert.ok(!r.ok, 'NACKed');
    return r.errors.map((e) => `${e.path}: ${e.message}`).join('\n');
  };
  assert.match(errors((c) => (c.pass_through_mode = false)), /http_filters\[0\]\.typed_config\.pass_through_mode: only true/);
  assert.match(errors((c) => delete c.pass_through_mode), /typed_config\.pass_through_mode: required/);
  assert.match(errors((c) => (c.cache_time = '5s')), /typed_config\.cache_time: not supported/);
  assert.match(errors((c) => (c.cluster_min_healthy_percentages = { api: { value: 50 } })), /typed_config\.cluster_min_healthy_percentages/);
  assert.ok(accept('listener', withConfig((c) => (c.pass_through_mode = { value: true }))).ok, 'the BoolValue as a wrapper object');
});

test("outlier_detection: Envoy's defaults for what is unset (success-rate ejection on), every ejection type decoded", () => {
  const base = golden('lb-round-robin', 'cluster') as Record<string, any>;
  const defaults = decoded('cluster', { ...base, outlier_detection: {} }) as ClusterConfig;
  assert.deepEqual(defaults.outlierDetection, ENVOY_OUTLIER_DEFAULTS);
  assert.equal(defaults.outlierDetection!.enforcingSuccessRate, 100);
  const set = decoded('cluster', {
    ...base,
    outlier_detection: {
      consecutive_gateway_failure: 3,
      enforcing_consecutive_gateway_failure: 100,
      enforcing_success_rate: 0,
      success_rate_minimum_hosts: 3,
      success_rate_request_volume: 20,
      success_rate_stdev_factor: 1000,
      failure_percentage_threshold: 50,
      enforcing_failure_percentage: 100,
      failure_percentage_minimum_hosts: 2,
      failure_percentage_request_volume: 10,
      max_ejection_time_jitter: '2s',
      always_eject_one_host: true,
      successful_active_health_check_uneject_host: false,
      // Read by Envoy only with split_external_local_origin_errors: accepted, and change nothing.
      enforcing_local_origin_success_rate: 50,
    },
  }) as ClusterConfig;
  assert.deepEqual(set.outlierDetection, {
    ...ENVOY_OUTLIER_DEFAULTS,
    consecutiveGatewayFailure: 3,
    enforcingConsecutiveGatewayFailure: 100,
    enforcingSuccessRate: 0,
    successRateMinimumHosts: 3,
    successRateRequestVolume: 20,
    successRateStdevFactor: 1000,
    failurePercentageThreshold: 50,
    enforcingFailurePercentage: 100,
    failurePercentageMinimumHosts: 2,
    failurePercentageRequestVolume: 10,
    maxEjectionTimeJitterMs: 2000,
    alwaysEjectOneHost: true,
    successfulActiveHealthCheckUnejectHost: false,
  });
});

test('max_requests_per_connection: from HttpProtocolOptions, or the deprecated cluster-level field (the typed options win); 0 unset', () => {
  const base = golden('lb-round-robin', 'cluster') as Record<string, any>;
  const limit = (c: Record<string, unknown>) => (decoded('cluster', { ...base, ...c }) as ClusterConfig).maxRequestsPerConnection;
  const typed = (n: number) => ({
    typed_extension_protocol_options: {
      'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': {
        '@type': 'type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions',
        explicit_http_config: { http_protocol_options: {} },
        common_http_protocol_options: { max_requests_per_connection: n },
      },
    },
  });
  assert.equal(limit({}), 0);
  assert.equal(limit({ max_requests_per_connection: 3 }), 3);
  assert.equal(limit(typed(1)), 1);
  assert.equal(limit({ max_requests_per_connection: 3, ...typed(7) }), 7);
});

test('http2_protocol_options.max_concurrent_streams: honoured from HttpProtocolOptions or the deprecated cluster-level options (it used to be ignored); out of 1..2^31-1 NACKed naming the field', () => {
  const base = golden('lb-round-robin', 'cluster') as Record<string, any>;
  const h2 = (n: unknown) => ({
    typed_extension_protocol_options: {
      'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': {
        '@type': 'type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions',
        explicit_http_config: { http2_protocol_options: { max_concurrent_streams: n } },
      },
    },
  });
  const streams = (c: Record<string, unknown>) => (decoded('cluster', { ...base, ...c }) as ClusterConfig).maxConcurrentStreams;
  assert.equal(streams({}), undefined);
  assert.equal(streams(h2(5)), 5);
  assert.equal(streams({ http2_protocol_options: { max_concurrent_streams: 3, hpack_table_size: 0 } }), 3);
  const r = accept('cluster', { ...base, ...h2(0) });
  assert.ok(!r.ok);
  assert.match(JSON.stringify(r.errors), /explicit_http_config\.http2_protocol_options\.max_concurrent_streams/);
});

test("circuit_breakers: each priority's thresholds decoded apart (HIGH used to be accepted and never applied), Envoy's 1024/1024/1024/3 where a priority has no entry; the first entry for a priority wins, as Envoy's find_if", () => {
  const base = golden('lb-round-robin', 'cluster') as Record<string, any>;
  const limits = (thresholds: unknown[]) => {
    const c = decoded('cluster', { ...base, circuit_breakers: { thresholds } }) as ClusterConfig;
    return [c.circuitBreakers, c.circuitBreakersHigh];
  };
  const envoy = { maxConnections: 1024, maxPendingRequests: 1024, maxRequests: 1024, maxRetries: 3 };
  assert.deepEqual(limits([{ max_connections: 7 }]), [{ ...envoy, maxConnections: 7 }, envoy], 'no priority: DEFAULT; HIGH keeps the defaults');
  assert.deepEqual(limits([{ priority: 'HIGH', max_pending_requests: 2, max_retries: 0, track_remaining: true }]), [envoy, { ...envoy, maxPendingRequests: 2, maxRetries: 0, trackRemaining: true }]);
  assert.deepEqual(limits([{ priority: 1, max_requests: 9 }, { priority: 'DEFAULT', max_requests: 4 }]), [{ ...envoy, maxRequests: 4 }, { ...envoy, maxRequests: 9 }], 'priority by number too');
  assert.deepEqual(limits([{ priority: 'HIGH', max_requests: 9 }, { priority: 'HIGH', max_requests: 1 }]), [envoy, { ...envoy, maxRequests: 9 }], 'the first HIGH entry');
  // Fields the sidecar does not apply are NACKed for HIGH as for DEFAULT (HIGH used to accept max_connection_pools).
  const r = accept('cluster', { ...base, circuit_breakers: { thresholds: [{ priority: 'HIGH', max_connection_pools: 3 }] } });
  assert.ok(!r.ok);
  assert.ok(r.errors.some((e) => e.path === 'circuit_breakers.thresholds[0].max_connection_pools'), JSON.stringify(r.errors));
});

test('circuit_breakers retry_budget is honoured (it was NACKed): only the fields it sets, as Envoy reads them (an empty retry_budget leaves max_retries); budget_percent out of [0, 100] NACKed naming the field', () => {
  const base = golden('lb-round-robin', 'cluster') as Record<string, any>;
  const limits = (thresholds: unknown[]) => {
    const c = decoded('cluster', { ...base, circuit_breakers: { thresholds } }) as ClusterConfig;
    return [c.circuitBreakers, c.circuitBreakersHigh];
  };
  const envoy = { maxConnections: 1024, maxPendingRequests: 1024, maxRequests: 1024, maxRetries: 3 };
  assert.deepEqual(limits([{ retry_budget: { budget_percent: { value: 12.5 }, min_retry_concurrency: 2 } }]), [{ ...envoy, budgetPercent: 12.5, minRetryConcurrency: 2 }, envoy]);
  assert.deepEqual(limits([{ priority: 'HIGH', retry_budget: { min_retry_concurrency: 0 } }]), [envoy, { ...envoy, minRetryConcurrency: 0 }], 'a field set to 0 is set');
  assert.deepEqual(limits([{ retry_budget: {} }]), [envoy, envoy], 'an empty budget: max_retries stays, as Envoy');
  const r = accept('cluster', { ...base, circuit_breakers: { thresholds: [{ retry_budget: { budget_percent: { value: 150 } } }] } });
  assert.ok(!r.ok);
  assert.ok(r.errors.some((e) => e.path === 'circuit_breakers.thresholds[0].retry_budget.budget_percent'), JSON.stringify(r.errors));
});

test('circuit_breakers per_host_thresholds: max_connections honoured per priority (it was NACKed), the first entry for a priority; any other limit there NACKed naming it, as Envoy rejects the cluster', () => {
  const base = golden('lb-round-robin', 'cluster') as Record<string, any>;
  const perHost = (per_host_thresholds: unknown[]) => {
    const c = decoded('cluster', { ...base, circuit_breakers: { per_host_thresholds } }) as ClusterConfig;
    return [c.circuitBreakers.maxConnectionsPerHost, c.circuitBreakersHigh.maxConnectionsPerHost];
  };
  assert.deepEqual(perHost([{ max_connections: 2 }]), [2, undefined]);
  assert.deepEqual(perHost([{ priority: 'HIGH', max_connections: 4, track_remaining: true }, { max_connections: 1 }, { max_connections: 9 }]), [1, 4]);
  for (const field of ['max_pending_requests', 'max_requests', 'max_retries', 'max_connection_pools', 'retry_budget']) {
    const r = accept('cluster', { ...base, circuit_breakers: { per_host_thresholds: [{ max_connections: 1, [field]: field === 'retry_budget' ? {} : 0 }] } });
    assert.ok(!r.ok, field);
    assert.ok(r.errors.some((e) => e.path === `circuit_breakers.per_host_thresholds[0].${field}`), JSON.stringify(r.errors));
  }
});

test('RouteAction.priority: HIGH is honoured (it was NACKed), DEFAULT or unset is DEFAULT, another value is NACKed naming the field', () => {
  const base = golden('route-retries', 'route') as Record<string, any>;
  const withPriority = (p: unknown) => {
    const v = structuredClone(base);
    v.virtual_hosts[0].routes[0].route.priority = p;
    return v;
  };
  const action = (v: unknown) => (decoded('route', v) as RouteConfig).virtualHosts[0]!.routes[0]!.action as RouteActionConfig;
  assert.equal(action(base).priority, 0);
  assert.equal(action(withPriority('DEFAULT')).priority, 0);
  assert.equal(action(withPriority('HIGH')).priority, 1);
  assert.equal(action(withPriority(1)).priority, 1);
  const r = accept('route', withPriority('URGENT'));
  assert.ok(!r.ok);
  assert.ok(r.errors.some((e) => e.path === 'virtual_hosts[0].routes[0].route.priority'), JSON.stringify(r.errors));
});

test("http_protocol_options.enable_trailers: a cluster's is honoured (request trailers to an HTTP/1.1 upstream; it used to be accepted and ignored), a listener's (HTTP/1.1 request trailers from a client) is NACKed naming the field", () => {
  const base = golden('lb-round-robin', 'cluster') as Record<string, any>;
  const h1 = (options: Record<string, unknown>) => ({
    typed_extension_protocol_options: {
      'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': {
        '@type': 'type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions',
        explicit_http_config: { http_protocol_options: options },
      },
    },
  });
  const enabled = (c: Record<string, unknown>) => (decoded('cluster', { ...base, ...c }) as ClusterConfig).enableTrailers === true;
  assert.equal(enabled({}), false);
  assert.equal(enabled(h1({})), false);
  assert.equal(enabled(h1({ enable_trailers: true })), true);
  assert.equal(enabled(h1({ enable_trailers: false })), false);
  const bad = accept('cluster', { ...base, ...h1({ enable_trailers: 'yes' }) });
  assert.ok(!bad.ok);
  assert.match(JSON.stringify(bad.errors), /explicit_http_config\.http_protocol_options\.enable_trailers/);
  const listener = structuredClone(golden('wasm-inbound', 'listener', 'outbound')) as any;
  listener.filter_chains[0].filters[0].typed_config.http_protocol_options = { enable_trailers: true };
  const r = accept('listener', listener);
  assert.ok(!r.ok, 'a listener that asks for HTTP/1.1 request trailers is refused, not silently left without them');
  assert.match(JSON.stringify(r.errors), /typed_config\.http_protocol_options\.enable_trailers/);
});

test('mutations outside the subset are NACKed with the field path', () => {
  const cases: { kind: ResourceKind; base: Record<string, unknown>; mutate: (v: any) => void; path: string }[] = [
    {
      kind: 'listener',
      base: golden('wasm-inbound', 'listener', 'outbound'),
      mutate: (v) => v.filter_chains[0].filters[0].typed_config.http_filters.unshift({ name: 'envoy.filters.http.lua', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua' } }),
      path: 'filter_chains[0].filters[0].typed_config.http_filters[0].typed_config.@type',
    },
    // Header and path handling the sidecar does not do: refused, not ignored.
    ...(
      [
        ['use_remote_address', true],
        ['xff_num_trusted_hops', 1],
        ['path_with_escaped_slashes_action', 'UNESCAPE_AND_FORWARD'],
      ] as const
    ).map(([field, value]) => ({
      kind: 'listener' as ResourceKind,
      base: golden('wasm-inbound', 'listener', 'outbound'),
      mutate: (v: any) => (v.filter_chains[0].filters[0].typed_config[field] = value),
      path: `filter_chains[0].filters[0].typed_config.${field}`,
    })),
    {
      // Envoy reads 0 as no limit; the sidecar does not buffer without one.
      kind: 'listener',
      base: golden('wasm-inbound', 'listener', 'outbound'),
      mutate: (v) => (v.per_connection_buffer_limit_bytes = 0),
      path: 'per_connection_buffer_limit_bytes',
    },
    // Tracing the sidecar does not do: upstream spans, timing annotations, custom tags, OTLP/HTTP, Google gRPC, samplers.
    ...(
      [
        [(t: any) => (t.spawn_upstream_span = true), 'spawn_upstream_span'],
        [(t: any) => (t.verbose = true), 'verbose'],
        [(t: any) => (t.custom_tags = [{ tag: 'a', literal: { value: 'b' } }]), 'custom_tags'],
        [(t: any) => (t.random_sampling.value = 120), 'random_sampling.value'],
        [(t: any) => (t.provider.typed_config.http_service = { http_uri: { uri: 'http://c:4318/v1/traces' } }), 'provider.typed_config.http_service'],
        [(t: any) => (t.provider.typed_config.sampler = { name: 'envoy.tracers.opentelemetry.samplers.always_on' }), 'provider.typed_config.sampler'],
        [(t: any) => (t.provider.typed_config.grpc_service = { google_grpc: { target_uri: 'c:4317', stat_prefix: 'otel' } }), 'provider.typed_config.grpc_service.google_grpc'],
      ] as const
    ).map(([mutate, field]) => ({
      kind: 'listener' as ResourceKind,
      base: golden('observability-tracing', 'listener', 'outbound'),
      mutate: (v: any) => mutate(v.filter_chains[0].filters[0].typed_config.tracing),
      path: `filter_chains[0].filters[0].typed_config.tracing.${field}`,
    })),
    {
      // runtime_fraction is honoured (test/sidecar/route-runtime-fraction.test.ts); its default_value is required, as Envoy's proto says.
      kind: 'route',
      base: golden('route-canary-90-10', 'route'),
      mutate: (v) => (v.virtual_hosts[0].routes[0].match.runtime_fraction = { runtime_key: 'routing.canary' }),
      path: 'virtual_hosts[0].routes[0].match.runtime_fraction.default_value',
    },
    {
      // An empty message, set: Envoy then matches gRPC requests only.
      kind: 'route',
      base: golden('route-canary-90-10', 'route'),
      mutate: (v) => (v.virtual_hosts[0].routes[0].match.grpc = {}),
      path: 'virtual_hosts[0].routes[0].match.grpc',
    },
    {
      // CONNECT (and any upgrade but WebSocket) cannot be carried.
      kind: 'listener',
      base: golden('wasm-inbound', 'listener', 'outbound'),
      mutate: (v) => (v.filter_chains[0].filters[0].typed_config.upgrade_configs = [{ upgrade_type: 'websocket' }, { upgrade_type: 'CONNECT' }]),
      path: 'filter_chains[0].filters[0].typed_config.upgrade_configs[1].upgrade_type',
    },
    {
      kind: 'listener',
      base: golden('wasm-inbound', 'listener', 'outbound'),
      mutate: (v) => (v.filter_chains[0].filters[0].typed_config.upgrade_configs = [{ upgrade_type: 'websocket', filters: [{ name: 'envoy.filters.http.router' }] }]),
      path: 'filter_chains[0].filters[0].typed_config.upgrade_configs[0].filters',
    },
    {
      // Envoy subtracts this from grpc-timeout; the sidecar does not.
      kind: 'route',
      base: golden('route-canary-90-10', 'route'),
      mutate: (v) => (v.virtual_hosts[0].routes[0].route.max_stream_duration = { grpc_timeout_header_max: '0s', grpc_timeout_header_offset: '0.01s' }),
      path: 'virtual_hosts[0].routes[0].route.max_stream_duration.grpc_timeout_header_offset',
    },
    {
      kind: 'route',
      base: golden('route-retries', 'route'),
      mutate: (v) => {
        const r = v.virtual_hosts.find((vh: any) => vh.routes[0].route?.retry_policy).routes[0].route.retry_policy;
        r.retry_on = '5xx,http3-post-connect-failure';
      },
      path: 'retry_on',
    },
    {
      kind: 'cluster',
      base: golden('lb-round-robin', 'cluster'),
      mutate: (v) => (v.lb_policy = 'CLUSTER_PROVIDED'),
      path: 'lb_policy',
    },
    {
      // Local-origin errors counted apart from the upstream's 5xx: the sidecar counts them as 5xx, as Envoy does without it.
      kind: 'cluster',
      base: golden('lb-round-robin', 'cluster'),
      mutate: (v) => (v.outlier_detection = { ...v.outlier_detection, split_external_local_origin_errors: true }),
      path: 'outlier_detection.split_external_local_origin_errors',
    },
    {
      // Envoy refuses the cluster too.
      kind: 'cluster',
      base: golden('lb-round-robin', 'cluster'),
      mutate: (v) => (v.outlier_detection = { ...v.outlier_detection, max_ejection_time: '1s' }),
      path: 'outlier_detection.max_ejection_time',
    },
    {
      kind: 'cluster',
      base: golden('lb-round-robin', 'cluster'),
      mutate: (v) => (v.transport_socket = { name: 'envoy.transport_sockets.tls' }),
      path: 'transport_socket',
    },
    {
      kind: 'endpoint',
      base: resources.find((r) => r.kind === 'endpoint' && (r.value.endpoints as unknown[] | undefined)?.length)!.value,
      mutate: (v) => (v.endpoints[0].priority = 1),
      path: 'endpoints[0].priority',
    },
    {
      kind: 'extension',
      base: golden('wasm-inbound', 'extension'),
      mutate: (v) => delete v.typed_config.config.vm_config.code.remote.sha256,
      path: 'typed_config.config.vm_config.code.remote.sha256',
    },
  ];
  for (const c of cases) {
    const v = structuredClone(c.base);
    c.mutate(v);
    const r = accept(c.kind, v);
    assert.equal(r.ok, false, `${c.path} accepted`);
    if (!r.ok) assert.ok(r.errors.some((e) => e.path.endsWith(c.path)), `${c.path}: ${JSON.stringify(r.errors)}`);
  }
});

test("the mesh's health checks pass an ALLOW policy written for app traffic, as the sidecar decodes and runs it; DENY still wins", async () => {
  const { rbacAllows } = await import('../../sidecar/rbac.ts');
  const listener = decoded('listener', golden('identity-rbac-health-check', 'listener', 'inbound')) as ListenerConfig;
  const hcm = listener.chain;
  assert.equal(hcm.kind, 'http');
  const rbac = (action: 'ALLOW' | 'DENY') => {
    const f = (hcm as { httpFilters: { kind: string; rbac?: { action: string } }[] }).httpFilters.find((x) => x.kind === 'rbac' && x.rbac?.action === action);
    assert.ok(f, `${action} filter`);
    return f.rbac as Parameters<typeof rbacAllows>[0];
  };
  const req = (method: string, path: string, who: string) => ({ method, path, authority: 'orders', peer: { uriSans: [`spiffe://weft.local/ns/default/sa/${who}`], dnsSans: [], subject: '' }, header: () => undefined });
  assert.equal(rbacAllows(rbac('ALLOW'), req('GET', '/healthz?full=1', 'batch')), true, "batch's health check of orders");
  assert.equal(rbacAllows(rbac('ALLOW'), req('POST', '/healthz', 'batch')), false, 'only GET');
  assert.equal(rbacAllows(rbac('ALLOW'), req('GET', '/orders/1', 'batch')), false, 'the policy still governs app traffic');
  assert.equal(rbacAllows(rbac('ALLOW'), req('GET', '/orders/1', 'frontend')), true);
  assert.equal(rbacAllows(rbac('DENY'), req('GET', '/admin', 'frontend')), false, 'deny first');
});
