// Envoy's access log filters (envoy.config.accesslog.v3.AccessLogFilter), as
// the weft sidecar honours them: an access_log entry's `filter` decides per
// request whether its line is written, evaluated as Envoy's
// source/common/access_log/access_log_impl.cc does once the stream ended.
// A filter is compiled once, when its listener is accepted; one the sidecar
// does not implement (traceable_filter, metadata_filter, extension_filter) is
// NACKed with its field path.

import type { Fields } from './fidelity/fields.ts';
import { headerMatcher } from './fidelity/route.ts';
import type { LogSource } from './access-log-format.ts';
import { requestHeader } from './access-log-format.ts';
import { headerValueMatches } from './router.ts';
import type { Runtime } from './runtime.ts';
import type { HeaderPairs } from './upstream.ts';
import { grpcStatusOf } from './wasm/grpc.ts';

/** What a filter reads besides the stream: the layered runtime (absent: none) and the proxy's randomness in [0, 1). */
export interface FilterContext {
  readonly runtime?: Runtime | undefined;
  readonly random: () => number;
}

/** A compiled filter: true when the line is written. */
export type LogFilter = (s: LogSource, c: FilterContext) => boolean;

/**
 * The response flags ResponseFlagFilter accepts (Envoy validates every item
 * against its known flags; the sidecar's own WF is not one of them).
 */
const ENVOY_FLAGS = new Set(['LH', 'UH', 'UT', 'LR', 'UR', 'UF', 'UC', 'UO', 'NR', 'DI', 'FI', 'RL', 'UAEX', 'RLSE', 'DC', 'URX', 'SI', 'IH', 'DPE', 'UMSDR', 'RFCF', 'NFCF', 'DT', 'UPE', 'NC', 'OM', 'DF', 'DO', 'DR']);

const GRPC_STATUSES = ['OK', 'CANCELED', 'UNKNOWN', 'INVALID_ARGUMENT', 'DEADLINE_EXCEEDED', 'NOT_FOUND', 'ALREADY_EXISTS', 'PERMISSION_DENIED', 'RESOURCE_EXHAUSTED', 'FAILED_PRECONDITION', 'ABORTED', 'OUT_OF_RANGE', 'UNIMPLEMENTED', 'INTERNAL', 'UNAVAILABLE', 'DATA_LOSS', 'UNAUTHENTICATED'];

/** envoy.data.accesslog.v3.AccessLogType; a connection manager's access log runs at DownstreamEnd only in the sidecar. */
const LOG_TYPES = ['NotSet', 'TcpUpstreamConnected', 'TcpPeriodic', 'TcpConnectionEnd', 'DownstreamStart', 'DownstreamPeriodic', 'DownstreamEnd', 'UpstreamPoolReady', 'UpstreamPeriodic', 'UpstreamEnd', 'DownstreamTunnelSuccessfullyEstablished', 'UdpTunnelUpstreamConnected', 'UdpPeriodic', 'UdpSessionEnd'];

const DENOMINATORS: Record<string, number> = { HUNDRED: 100, TEN_THOUSAND: 10_000, MILLION: 1_000_000 };

const SPECIFIERS = ['status_code_filter', 'duration_filter', 'not_health_check_filter', 'traceable_filter', 'runtime_filter', 'and_filter', 'or_filter', 'header_filter', 'response_flag_filter', 'grpc_status_filter', 'extension_filter', 'metadata_filter', 'log_type_filter'];

const always: LogFilter = () => true;
const never: LogFilter = () => false;

/** An AccessLogFilter compiled; undefined when it was NACKed (the errors are in f.errors). */
export function compileLogFilter(f: Fields): LogFilter | undefined {
  // A oneof member is set even as an empty message (not_health_check_filter: {}).
  const set = SPECIFIERS.filter((k) => {
    const v = f.raw(k);
    return v !== undefined && v !== null;
  });
  f.done();
  if (set.length === 0) {
    f.errors.push({ path: f.path, message: 'an access log filter needs one of ' + SPECIFIERS.join(', ') });
    return undefined;
  }
  if (set.length > 1) {
    f.fail(set[1]!, `only one filter per AccessLogFilter (${set[0]} is set)`);
    return undefined;
  }
  const which = set[0]!;
  const before = f.errors.length;
  let out: LogFilter | undefined;
  switch (which) {
    case 'status_code_filter': {
      const c = comparison(f.obj(which), `${f.path}.${which}`, f);
      // StatusCodeFilter: responseCode() or 0 when none was sent.
      if (c) out = (s, ctx) => c(s.log.response_code, ctx);
      break;
    }
    case 'duration_filter': {
      const c = comparison(f.obj(which), `${f.path}.${which}`, f);
      // DurationFilter: the stream's duration in whole milliseconds when it is logged (%DURATION%).
      if (c) out = (s, ctx) => c(s.log.duration_ms, ctx);
      break;
    }
    case 'not_health_check_filter':
      // StreamInfo::healthCheck(), which a health_check HTTP filter sets on the requests it matched.
      f.obj(which)?.done();
      out = (s) => !s.healthCheck;
      break;
    case 'traceable_filter':
      // Envoy logs requests its tracing decided as Reason::ServiceForced (an internal request's x-envoy-force-trace);
      // the sidecar's tracer does not honour x-envoy-force-trace, so it could not tell them apart.
      f.fail(which, 'not supported by the weft sidecar (its tracer makes no service-forced decision from x-envoy-force-trace)');
      break;
    case 'runtime_filter':
      out = runtimeFilter(f.obj(which)!);
      break;
    case 'and_filter':
    case 'or_filter': {
      const op = f.obj(which)!;
      const items = op.list('filters');
      op.done();
      // validate.rules: min_items 2.
      if (items.length < 2) {
        op.fail('filters', 'at least 2 filters are required');
        break;
      }
      const compiled = items.map(compileLogFilter);
      if (compiled.some((x) => x === undefined)) break;
      const list = compiled as LogFilter[];
      out =
        which === 'and_filter'
          ? (s, ctx) => {
              for (let i = 0; i < list.length; i++) if (!list[i]!(s, ctx)) return false;
              return true;
            }
          : (s, ctx) => {
              for (let i = 0; i < list.length; i++) if (list[i]!(s, ctx)) return true;
              return false;
            };
      break;
    }
    case 'header_filter': {
      const hf = f.obj(which)!;
      const h = hf.obj('header');
      hf.done();
      if (!h) {
        hf.fail('header', 'required');
        break;
      }
      const m = headerMatcher(h);
      out = (s) => headerValueMatches(m, filterHeader(s, m.name));
      break;
    }
    case 'response_flag_filter': {
      const rf = f.obj(which)!;
      const flags = rf.strList('flags');
      rf.done();
      flags.forEach((flag, i) => {
        if (!ENVOY_FLAGS.has(flag)) f.errors.push({ path: `${rf.path}.flags[${i}]`, message: `${JSON.stringify(flag)} is not a response flag (one of ${[...ENVOY_FLAGS].join(', ')})` });
      });
      // No flags: any response flag passes (hasAnyResponseFlag).
      out = flags.length === 0 ? (s) => s.log.response_flags !== '-' && s.log.response_flags !== '' : (s) => flags.some((x) => hasFlag(s.log.response_flags, x));
      break;
    }
    case 'grpc_status_filter': {
      const gf = f.obj(which)!;
      const raw = gf.raw('statuses');
      const exclude = gf.bool('exclude') ?? false;
      gf.ignore('statuses');
      gf.done();
      const statuses = new Set<number>();
      if (raw !== undefined && raw !== null && !Array.isArray(raw)) gf.fail('statuses', 'expected a list');
      else
        (raw ?? []).forEach((v: unknown, i: number) => {
          const n = typeof v === 'number' ? v : GRPC_STATUSES.indexOf(v as string);
          if (!Number.isInteger(n) || n < 0 || n >= GRPC_STATUSES.length) f.errors.push({ path: `${gf.path}.statuses[${i}]`, message: `${JSON.stringify(v)} is not a GrpcStatusFilter.Status` });
          else statuses.add(n);
        });
      out = (s) => statuses.has(grpcStatus(s)) !== exclude;
      break;
    }
    case 'log_type_filter': {
      const lf = f.obj(which)!;
      const raw = lf.raw('types');
      const exclude = lf.bool('exclude') ?? false;
      lf.ignore('types');
      lf.done();
      let found = false;
      if (raw !== undefined && raw !== null && !Array.isArray(raw)) lf.fail('types', 'expected a list');
      else
        (raw ?? []).forEach((v: unknown, i: number) => {
          const n = typeof v === 'number' ? v : LOG_TYPES.indexOf(v as string);
          if (!Number.isInteger(n) || n < 0 || n >= LOG_TYPES.length) f.errors.push({ path: `${lf.path}.types[${i}]`, message: `${JSON.stringify(v)} is not an AccessLogType` });
          else if (LOG_TYPES[n] === 'DownstreamEnd') found = true;
        });
      // The sidecar's connection manager writes its lines when the stream ends (DownstreamEnd), never at its start or periodically.
      out = found !== exclude ? always : never;
      break;
    }
    default:
      // extension_filter, metadata_filter.
      f.fail(which, 'not supported by the weft sidecar');
  }
  return f.errors.length === before ? out : undefined;
}

/** A ComparisonFilter (op, value: RuntimeUInt32) as ComparisonFilter::compareAgainstValue. */
function comparison(c: Fields | undefined, path: string, parent: Fields): ((v: number, ctx: FilterContext) => boolean) | undefined {
  if (!c) {
    parent.errors.push({ path: `${path}.comparison`, message: 'required' });
    return undefined;
  }
  const cmp = c.obj('comparison');
  c.done();
  if (!cmp) {
    c.fail('comparison', 'required');
    return undefined;
  }
  const op = cmp.enumOf('op', ['GE', 'EQ', 'LE'] as const, ['GE', 'EQ', 'LE']) ?? 'GE';
  const value = cmp.obj('value');
  cmp.done();
  const defaultValue = value?.num('default_value') ?? 0;
  const key = value?.str('runtime_key') ?? '';
  value?.done();
  if (value && key === '') value.fail('runtime_key', 'required (a RuntimeUInt32 names its runtime key)');
  if (!Number.isInteger(defaultValue) || defaultValue < 0 || defaultValue > 0xffffffff) value?.fail('default_value', 'expected a uint32');
  const threshold = (ctx: FilterContext): number => (key !== '' && ctx.runtime ? ctx.runtime.getInteger(key, defaultValue) : defaultValue);
  if (op === 'GE') return (v, ctx) => v >= threshold(ctx);
  if (op === 'EQ') return (v, ctx) => v === threshold(ctx);
  return (v, ctx) => v <= threshold(ctx);
}

/**
 * RuntimeFilter: featureEnabled(runtime_key, percent_sampled.numerator, value, denominator), the value the
 * x-request-id's first 8 hex digits (UUIDRequestIDExtension::toInteger) so every proxy samples the same requests,
 * or a random one with use_independent_randomness or without a usable x-request-id.
 */
function runtimeFilter(r: Fields): LogFilter | undefined {
  const key = r.str('runtime_key') ?? '';
  if (key === '') r.fail('runtime_key', 'required');
  const pct = r.obj('percent_sampled');
  const independent = r.bool('use_independent_randomness') ?? false;
  r.done();
  const numerator = pct?.num('numerator') ?? 0;
  const denomName = pct?.enumOf('denominator', ['HUNDRED', 'TEN_THOUSAND', 'MILLION'] as const, ['HUNDRED', 'TEN_THOUSAND', 'MILLION']) ?? 'HUNDRED';
  pct?.done();
  const buckets = DENOMINATORS[denomName]!;
  return (s, ctx) => {
    let value = independent ? undefined : requestIdInteger(s.logRequestHeaders);
    if (value === undefined) value = Math.floor(ctx.random() * 0x1_0000_0000);
    const enabled = ctx.runtime ? ctx.runtime.getInteger(key, numerator) : numerator;
    // Snapshot::featureEnabled: random_value % num_buckets < min(value, num_buckets).
    return value % buckets < Math.min(enabled, buckets);
  };
}

const HEX8 = /^[0-9a-fA-F]{8}/;

/** UUIDRequestIDExtension::toInteger: the x-request-id's first 8 characters as hex; undefined when absent or not hex. */
function requestIdInteger(headers: HeaderPairs | undefined): number | undefined {
  if (headers === undefined) return undefined;
  for (let i = 0; i < headers.length; i++) {
    const h = headers[i]!;
    if (h[0] !== 'x-request-id') continue;
    return HEX8.test(h[1]) ? parseInt(h[1].slice(0, 8), 16) : undefined;
  }
  return undefined;
}

/** A comma-joined flags string (`UF,URX`) holds `flag`. */
function hasFlag(flags: string, flag: string): boolean {
  let i = flags.indexOf(flag);
  while (i >= 0) {
    const end = i + flag.length;
    if ((i === 0 || flags.charCodeAt(i - 1) === 44) && (end === flags.length || flags.charCodeAt(end) === 44)) return true;
    i = flags.indexOf(flag, i + 1);
  }
  return false;
}

/** Every value of header `name` joined with ',' (HeaderUtility::getAllOfHeaderAsString); undefined when absent. */
function allOf(headers: HeaderPairs | undefined, name: string): string | undefined {
  if (headers === undefined) return undefined;
  let out: string | undefined;
  for (let i = 0; i < headers.length; i++) {
    const h = headers[i]!;
    if (h[0] === name) out = out === undefined ? h[1] : `${out},${h[1]}`;
  }
  return out;
}

/**
 * The request header the header filter matches, as Envoy's request header map holds it when the stream is logged:
 * :method, :path and :authority as the router left them (host is :authority), any other header's values joined.
 */
function filterHeader(s: LogSource, name: string): string | undefined {
  if (name === 'host') name = ':authority';
  return name.charCodeAt(0) === 58 /* : */ ? requestHeader(s, name) : allOf(s.logRequestHeaders, name);
}

/**
 * Grpc::Common::getGrpcStatus(trailers, headers, info): the trailers' grpc-status, else the response headers',
 * else the HTTP status mapped (Grpc::Utility::httpToGrpcStatus); UNKNOWN when there is none, -1 (no status matches)
 * for a grpc-status that is not a known code.
 */
function grpcStatus(s: LogSource): number {
  const v = allOf(s.logResponseTrailers, 'grpc-status') ?? allOf(s.logResponseHeaders, 'grpc-status');
  if (v !== undefined) {
    if (!/^\d+$/.test(v)) return -1;
    const n = Number(v);
    return n < GRPC_STATUSES.length ? n : -1;
  }
  return grpcStatusOf(s.log.response_code); // no response (0) is UNKNOWN too
}
