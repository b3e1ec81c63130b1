// RouteConfiguration (RDS, and route_config inline in an HCM) -> RouteConfig.

import type {
  DirectResponseConfig,
  FaultConfig,
  HashPolicyConfig,
  HeaderMatcherConfig,
  QueryMatcherConfig,
  RedirectConfig,
  RetryPolicyConfig,
  RouteActionConfig,
  RouteConfig,
  RouteEntry,
  RouteMatchConfig,
  VirtualHostConfig,
} from '../config.ts';
import { compileRegex, headerMutations, runtimeFraction, stringMatcher } from './common.ts';
import { faultConfig } from './fault.ts';
import { Fields, typeName } from './fields.ts';
import type { FieldError } from './fields.ts';

/** Envoy's route timeout when none is set. */
export const ENVOY_DEFAULT_ROUTE_TIMEOUT_MS = 15_000;

/** The retry conditions the sidecar implements (retry_on, x-envoy-retry-on, x-envoy-retry-grpc-on). */
export const RETRY_ON: ReadonlySet<string> = new Set([
  '5xx',
  'gateway-error',
  'connect-failure',
  'retriable-4xx',
  'refused-stream',
  'reset',
  'retriable-status-codes',
  'retriable-headers',
  'envoy-ratelimited',
  // gRPC (x-envoy-retry-grpc-on): the grpc-status of a trailers-only response.
  'cancelled',
  'deadline-exceeded',
  'internal',
  'resource-exhausted',
  'unavailable',
]);

export function decodeRouteConfiguration(value: unknown, errors: FieldError[], path = ''): RouteConfig | undefined {
  const f = Fields.of(value, path, errors);
  if (!f) return undefined;
  const name = f.str('name') ?? '';
  const virtualHosts = f.list('virtual_hosts').map(virtualHost);
  const requestHeaders = headerMutations(f, 'request');
  const responseHeaders = headerMutations(f, 'response');
  // validate_clusters only affects Envoy's own load-time checks; the sidecar answers 503 for unknown clusters either way.
  f.ignore('validate_clusters', 'ignore_port_in_host_matching');
  if (f.bool('ignore_port_in_host_matching')) f.fail('ignore_port_in_host_matching', 'not supported');
  f.done();
  return { name, virtualHosts, requestHeaders, responseHeaders };
}

function virtualHost(f: Fields): VirtualHostConfig {
  const name = f.str('name') ?? '';
  const domains = f.strList('domains').map((d) => d.toLowerCase());
  if (domains.length === 0) f.fail('domains', 'at least one domain is required');
  const routes = f.list('routes').map(route);
  const requestHeaders = headerMutations(f, 'request');
  const responseHeaders = headerMutations(f, 'response');
  const retryF = f.obj('retry_policy');
  const retry = retryF ? retryPolicy(retryF) : undefined;
  f.enumOf('require_tls', ['NONE'] as const, ['NONE', 'EXTERNAL_ONLY', 'ALL']);
  const attemptCountUpstream = f.bool('include_request_attempt_count') ?? false;
  const attemptCountResponse = f.bool('include_attempt_count_in_response') ?? false;
  f.done();
  return { name, domains, routes, requestHeaders, responseHeaders, retry, attemptCountUpstream, attemptCountResponse };
}

function route(f: Fields): RouteEntry {
  const name = f.str('name') ?? '';
  const matchF = f.obj('match');
  const match = matchF ? routeMatch(matchF) : undefined;
  if (!matchF) f.fail('match', 'required');
  let action: RouteEntry['action'] | undefined;
  const which = f.oneof(['route', 'direct_response', 'redirect']);
  if (which === 'route') action = routeAction(f.obj('route')!);
  else if (which === 'direct_response') action = directResponse(f.obj('direct_response')!);
  else if (which === 'redirect') action = redirect(f.obj('redirect')!);
  else f.errors.push({ path: f.path, message: 'a route needs route, direct_response or redirect' });
  const requestHeaders = headerMutations(f, 'request');
  const responseHeaders = headerMutations(f, 'response');
  const { fault, disabledFilters } = perFilterConfig(f.obj('typed_per_filter_config'));
  f.ignore('decorator', 'metadata');
  f.done();
  return {
    name,
    match: match ?? { path: { kind: 'prefix', value: '/' }, caseSensitive: true, headers: [], queryParameters: [] },
    action: action ?? { kind: 'direct_response', status: 500, body: '' },
    requestHeaders,
    responseHeaders,
    fault,
    disabledFilters,
  };
}

function routeMatch(f: Fields): RouteMatchConfig {
  const which = f.oneof(['prefix', 'path', 'safe_regex', 'path_separated_prefix']);
  let path: RouteMatchConfig['path'] = { kind: 'prefix', value: '/' };
  if (which === 'prefix') path = { kind: 'prefix', value: f.str('prefix') ?? '' };
  else if (which === 'path') path = { kind: 'exact', value: f.str('path') ?? '' };
  else if (which === 'path_separated_prefix') path = { kind: 'separated_prefix', value: f.str('path_separated_prefix') ?? '' };
  else if (which === 'safe_regex') {
    const regex = compileRegex(f, 'safe_regex');
    if (regex) path = { kind: 'regex', regex };
  } else f.errors.push({ path: f.path, message: 'a route match needs prefix, path, safe_regex or path_separated_prefix' });
  const caseSensitive = f.bool('case_sensitive') ?? true;
  const headers = f.list('headers').map(headerMatcher);
  const queryParameters = f.list('query_parameters').map(queryMatcher);
  // runtime_fraction: Envoy's RouteEntryImplBase::evaluateRuntimeMatch, read per request (sidecar/router.ts).
  const share = runtimeFraction(f.obj('runtime_fraction'));
  // grpc is an empty message: set, even as {}, it limits the route to gRPC requests in Envoy, which the sidecar does not do.
  if (f.raw('grpc') != null) f.fail('grpc', 'field not supported by the weft sidecar');
  f.done();
  return { path, caseSensitive, headers, queryParameters, ...(share ? { runtimeFraction: share } : {}) };
}

export function headerMatcher(f: Fields): HeaderMatcherConfig {
  const name = (f.str('name') ?? '').toLowerCase();
  if (!name) f.fail('name', 'required');
  const invert = f.bool('invert_match') ?? false;
  const which = f.oneof(['string_match', 'present_match', 'exact_match', 'prefix_match', 'suffix_match', 'safe_regex_match']);
  let out: HeaderMatcherConfig = { name, present: true, invert };
  if (which === 'string_match') {
    const m = stringMatcher(f.obj('string_match')!);
    out = { name, match: m, present: true, invert };
  } else if (which === 'present_match') {
    out = { name, present: f.bool('present_match') ?? true, invert };
  } else if (which === 'exact_match' || which === 'prefix_match' || which === 'suffix_match') {
    const kind = which.replace('_match', '') as 'exact';
    out = { name, match: { kind, value: f.str(which) ?? '', ignoreCase: false }, present: true, invert };
  } else if (which === 'safe_regex_match') {
    const regex = compileRegex(f, 'safe_regex_match');
    if (regex) out = { name, match: { kind: 'regex', regex }, present: true, invert };
  }
  f.done();
  return out;
}

function queryMatcher(f: Fields): QueryMatcherConfig {
  const name = f.str('name') ?? '';
  if (!name) f.fail('name', 'required');
  let match: QueryMatcherConfig['match'];
  if (f.oneof(['string_match']) === 'string_match') match = stringMatcher(f.obj('string_match')!);
  else if (f.bool('present_match') === false) f.fail('present_match', 'present_match: false is not supported');
  f.done();
  return { name, match };
}

export function retryPolicy(f: Fields): RetryPolicyConfig {
  const retryOn = new Set<string>();
  const on = f.str('retry_on') ?? '';
  for (const cond of on.split(',').map((s) => s.trim()).filter(Boolean)) {
    if (RETRY_ON.has(cond)) retryOn.add(cond);
    else f.fail('retry_on', `retry condition ${JSON.stringify(cond)} is not supported by the weft sidecar`);
  }
  // Envoy's default when retry_policy is present but num_retries is not.
  const numRetries = f.num('num_retries') ?? 1;
  const perTryTimeoutMs = f.durationMs('per_try_timeout') ?? 0;
  const retriableStatusCodes = new Set((f.raw('retriable_status_codes') as number[] | undefined) ?? []);
  let avoidPreviousHosts = false;
  for (const p of f.list('retry_host_predicate')) {
    const name = p.str('name');
    // PreviousHostsPredicate has no fields: anything in its typed_config, or another type, is not understood.
    const tc = p.obj('typed_config');
    if (tc) {
      if (typeName(tc) !== 'envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate') tc.fail('@type', `retry host predicate config ${JSON.stringify(typeName(tc))} is not supported`);
      else tc.done();
    }
    p.done();
    if (name === 'envoy.retry_host_predicates.previous_hosts') avoidPreviousHosts = true;
    else p.fail('name', `retry host predicate ${JSON.stringify(name)} is not supported`);
  }
  const hostSelectionMaxAttempts = f.num('host_selection_retry_max_attempts') ?? 1;
  let backoffBaseMs = 25;
  let backoffMaxMs = 250;
  const backoff = f.obj('retry_back_off');
  if (backoff) {
    backoffBaseMs = backoff.durationMs('base_interval') ?? 25;
    backoffMaxMs = backoff.durationMs('max_interval') ?? backoffBaseMs * 10;
    backoff.done();
  }
  // HeaderMatchers on the response (retriable-headers) and on the request (retries at all), as Envoy's
  // RetryPolicyImpl compiles them (source/common/router/config_impl.cc, retry_state_impl.cc).
  const retriableHeaders = f.list('retriable_headers').map(headerMatcher);
  const retriableRequestHeaders = f.list('retriable_request_headers').map(headerMatcher);
  let rateLimitedBackoff: RetryPolicyConfig['rateLimitedBackoff'];
  const rl = f.obj('rate_limited_retry_back_off');
  if (rl) {
    const resetHeaders = rl.list('reset_headers').map((h) => {
      const name = (h.str('name') ?? '').toLowerCase();
      if (name === '') h.fail('name', 'required');
      const format = h.enumOf('format', ['SECONDS', 'UNIX_TIMESTAMP'] as const, ['SECONDS', 'UNIX_TIMESTAMP']) ?? 'SECONDS';
      h.done();
      return { name, unixTimestamp: format === 'UNIX_TIMESTAMP' };
    });
    if (resetHeaders.length === 0) rl.fail('reset_headers', 'at least one reset header is required (as Envoy validates it)');
    // Envoy's default: 300 s.
    const maxIntervalMs = rl.durationMs('max_interval') ?? 300_000;
    if (maxIntervalMs <= 0) rl.fail('max_interval', 'must be more than 0');
    rl.done();
    rateLimitedBackoff = { resetHeaders, maxIntervalMs };
  }
  f.done();
  return {
    retryOn, numRetries, perTryTimeoutMs, retriableStatusCodes, avoidPreviousHosts, hostSelectionMaxAttempts, backoffBaseMs, backoffMaxMs,
    ...(retriableHeaders.length > 0 ? { retriableHeaders } : {}),
    ...(retriableRequestHeaders.length > 0 ? { retriableRequestHeaders } : {}),
    ...(rateLimitedBackoff ? { rateLimitedBackoff } : {}),
  };
}

function routeAction(f: Fields): RouteActionConfig {
  const clusters: RouteActionConfig['clusters'] = [];
  let totalWeight = 0;
  const which = f.oneof(['cluster', 'weighted_clusters']);
  if (which === 'cluster') {
    clusters.push({ name: f.str('cluster') ?? '', weight: 1, requestHeaders: { add: [], remove: [] }, responseHeaders: { add: [], remove: [] } });
    totalWeight = 1;
  } else if (which === 'weighted_clusters') {
    const wc = f.obj('weighted_clusters')!;
    for (const c of wc.list('clusters')) {
      const name = c.str('name') ?? '';
      const weight = c.num('weight') ?? 0;
      const requestHeaders = headerMutations(c, 'request');
      const responseHeaders = headerMutations(c, 'response');
      c.done();
      clusters.push({ name, weight, requestHeaders, responseHeaders });
      totalWeight += weight;
    }
    const declared = wc.num('total_weight');
    if (declared !== undefined && declared !== totalWeight) wc.fail('total_weight', `is ${declared} but the weights sum to ${totalWeight}`);
    wc.done();
    if (totalWeight <= 0) wc.fail('clusters', 'weights must sum to more than 0');
  } else {
    f.errors.push({ path: f.path, message: 'the weft sidecar supports cluster and weighted_clusters' });
  }
  const timeoutMs = f.durationMs('timeout') ?? ENVOY_DEFAULT_ROUTE_TIMEOUT_MS;
  const retryF = f.obj('retry_policy');
  const retry = retryF ? retryPolicy(retryF) : undefined;
  const prefixRewrite = f.str('prefix_rewrite');
  let regexRewrite: RouteActionConfig['regexRewrite'];
  const rr = f.obj('regex_rewrite');
  if (rr) {
    const pattern = rr.obj('pattern');
    let regex: RegExp | undefined;
    if (pattern) {
      pattern.ignore('google_re2');
      const src = pattern.str('regex') ?? '';
      pattern.done();
      try {
        regex = new RegExp(src, 'gu');
      } catch (e) {
        pattern.fail('regex', (e as Error).message);
      }
    }
    const substitution = rr.str('substitution') ?? '';
    rr.done();
    if (regex) {
      const replace = re2Rewrite(substitution, new RegExp(`${regex.source}|`, 'u').exec('')!.length - 1);
      if (typeof replace === 'string') rr.fail('substitution', replace);
      else regexRewrite = { regex, replace };
    }
  }
  const hostRewrite = f.str('host_rewrite_literal');
  const mirrors: RouteActionConfig['mirrors'] = [];
  for (const m of f.list('request_mirror_policies')) {
    const cluster = m.str('cluster') ?? '';
    const rf = m.obj('runtime_fraction');
    // No runtime_fraction: every request (Envoy's 100% default).
    const { fraction, runtimeKey } = (rf ? runtimeFraction(rf) : undefined) ?? { fraction: 1 };
    m.ignore('trace_sampled');
    m.done();
    mirrors.push({ cluster, fraction, ...(runtimeKey ? { runtimeKey } : {}) });
  }
  const hashPolicy: HashPolicyConfig[] = [];
  for (const h of f.list('hash_policy')) {
    const terminal = h.bool('terminal') ?? false;
    const kind = h.oneof(['header', 'cookie', 'connection_properties', 'query_parameter']);
    if (kind === 'header') {
      const hf = h.obj('header')!;
      hashPolicy.push({ kind: 'header', name: (hf.str('header_name') ?? '').toLowerCase(), terminal });
      hf.done();
    } else if (kind === 'cookie') {
      const cf = h.obj('cookie')!;
      const name = cf.str('name') ?? '';
      const ttlMs = cf.durationMs('ttl');
      const path = cf.str('path');
      cf.done();
      hashPolicy.push({ kind: 'cookie', name, ttlSeconds: ttlMs === undefined ? undefined : ttlMs / 1000, path, terminal });
    } else if (kind === 'connection_properties') {
      const cp = h.obj('connection_properties')!;
      if (cp.bool('source_ip')) hashPolicy.push({ kind: 'source_ip', terminal });
      cp.done();
    } else if (kind === 'query_parameter') {
      const qp = h.obj('query_parameter')!;
      const name = qp.str('name') ?? '';
      if (!name) qp.fail('name', 'required');
      qp.done();
      hashPolicy.push({ kind: 'query_parameter', name, terminal });
    }
    h.done();
  }
  f.ignore('cluster_not_found_response_code');
  const notFound = f.raw('cluster_not_found_response_code');
  if (notFound !== undefined && notFound !== 'SERVICE_UNAVAILABLE' && notFound !== 0) {
    f.fail('cluster_not_found_response_code', 'only SERVICE_UNAVAILABLE is supported');
  }
  const idleTimeoutMs = f.durationMs('idle_timeout');
  let streamDuration: RouteActionConfig['streamDuration'];
  const msd = f.obj('max_stream_duration');
  if (msd) {
    // grpc_timeout_header_offset is not read, so it is NACKed by done().
    streamDuration = { maxMs: msd.durationMs('max_stream_duration') ?? 0, grpcHeaderMaxMs: msd.durationMs('grpc_timeout_header_max') };
    msd.done();
  }
  // RouteAction.priority: the cluster's resource manager (thresholds, counts) and connection pools its requests use.
  const priority = f.enumOf('priority', ['DEFAULT', 'HIGH'] as const, ['DEFAULT', 'HIGH']) === 'HIGH' ? 1 : 0;
  f.done();
  return { kind: 'route', clusters, totalWeight, timeoutMs, retry, prefixRewrite, regexRewrite, hostRewrite, mirrors, hashPolicy, idleTimeoutMs, streamDuration, priority };
}

function directResponse(f: Fields): DirectResponseConfig {
  const status = f.num('status') ?? 200;
  let body = '';
  const b = f.obj('body');
  if (b) {
    const which = b.oneof(['inline_string', 'inline_bytes']);
    if (which === 'inline_string') body = b.str('inline_string') ?? '';
    else if (which === 'inline_bytes') body = Buffer.from(b.str('inline_bytes') ?? '', 'base64').toString();
    b.done();
  }
  f.done();
  return { kind: 'direct_response', status, body };
}

function redirect(f: Fields): RedirectConfig {
  const hostRedirect = f.str('host_redirect');
  const pathRedirect = f.str('path_redirect');
  const codes: Record<string, number> = { MOVED_PERMANENTLY: 301, FOUND: 302, SEE_OTHER: 303, TEMPORARY_REDIRECT: 307, PERMANENT_REDIRECT: 308 };
  const rc = f.enumOf('response_code', Object.keys(codes), Object.keys(codes));
  f.done();
  return { kind: 'redirect', hostRedirect, pathRedirect, status: codes[rc ?? 'MOVED_PERMANENTLY']! };
}

/** typed_per_filter_config: the fault filter's per-route override, and FilterConfig{disabled}. */
function perFilterConfig(f: Fields | undefined): { fault?: FaultConfig; disabledFilters: Set<string> } {
  const disabledFilters = new Set<string>();
  let fault: FaultConfig | undefined;
  if (!f) return { disabledFilters };
  for (const filterName of f.keys()) {
    const c = f.obj(filterName)!;
    const t = typeName(c);
    if (t === 'envoy.extensions.filters.http.fault.v3.HTTPFault') {
      fault = faultConfig(c);
    } else if (t === 'envoy.config.route.v3.FilterConfig') {
      if (c.bool('disabled')) disabledFilters.add(filterName);
      c.ignore('is_optional', 'config');
      if (c.has('config')) c.fail('config', 'per-route filter config overrides are not supported');
      c.done();
    } else {
      c.fail('@type', `per-route config of type ${JSON.stringify(t)} is not supported by the weft sidecar`);
    }
  }
  f.done();
  return { fault, disabledFilters };
}

/**
 * An RE2 rewrite string (regex_rewrite.substitution) as a replacer: a
 * backslash and a digit N is capture group N (0: the whole match), two
 * backslashes one backslash, anything else literal, `$` included (a
 * JavaScript replacement string would read `$1` and `$&`). Envoy refuses
 * what RE2::CheckRewriteString refuses: a backslash before anything else, or
 * a group the pattern does not have; so does this (the message is returned).
 */
export function re2Rewrite(sub: string, groups: number): ((match: string, ...rest: unknown[]) => string) | string {
  const parts: (string | number)[] = [];
  let text = '';
  for (let i = 0; i < sub.length; i++) {
    const c = sub[i]!;
    if (c !== '\\') {
      text += c;
      continue;
    }
    const n = sub[i + 1];
    if (n === '\\') text += '\\';
    else if (n !== undefined && n >= '0' && n <= '9') {
      if (Number(n) > groups) return `refers to group \\${n}, but the pattern has ${groups} capture group${groups === 1 ? '' : 's'}`;
      if (text) parts.push(text);
      text = '';
      parts.push(Number(n));
    } else return `invalid rewrite pattern: a backslash must be followed by a digit or a backslash`;
    i++;
  }
  if (text) parts.push(text);
  return (match: string, ...rest: unknown[]) => {
    let out = '';
    for (const p of parts) out += typeof p === 'string' ? p : p === 0 ? match : ((rest[p - 1] as string | undefined) ?? '');
    return out;
  };
}
