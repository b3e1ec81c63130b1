// Decoders for the small Envoy messages shared by several resource types.

import type { AppendAction, Fraction, HeaderMutationConfig, PercentParts, SocketAddress, StringMatcher } from '../config.ts';
import { re2Error } from '../../control/envoy/re2.ts';
import { Fields } from './fields.ts';

/** RE2 (Envoy's safe_regex) full-match semantics, approximated with a JS RegExp anchored at both ends. */
export function compileRegex(f: Fields, key: string): RegExp | undefined {
  const m = f.obj(key);
  if (!m) return undefined;
  m.ignore('google_re2');
  const regex = m.str('regex');
  m.done();
  if (regex === undefined || regex === '') {
    m.fail('regex', 'required');
    return undefined;
  }
  // Constructs RE2 has and JS lacks (or means differently) are rejected rather than misread.
  if (/\(\?P<|\\[zCQE]|\(\?[imsU-]+\)/.test(regex)) {
    m.fail('regex', 'uses RE2 syntax the weft sidecar does not support');
    return undefined;
  }
  let compiled: RegExp;
  try {
    compiled = new RegExp(`^(?:${regex})$`, 'u');
  } catch (e) {
    m.fail('regex', `invalid regex: ${(e as Error).message}`);
    return undefined;
  }
  // And what RE2 refuses or reads otherwise (lookaround, an empty class, ...): Envoy NACKs it, so does the sidecar.
  const re2 = re2Error(regex);
  if (re2) {
    m.fail('regex', re2);
    return undefined;
  }
  return compiled;
}

/** envoy.type.matcher.v3.StringMatcher */
export function stringMatcher(f: Fields): StringMatcher | undefined {
  const ignoreCase = f.bool('ignore_case') ?? false;
  const which = f.oneof(['exact', 'prefix', 'suffix', 'contains', 'safe_regex']);
  let out: StringMatcher | undefined;
  if (which === 'safe_regex') {
    // As Envoy: ignore_case "has no effect for the safe_regex match" (RE2's own (?i) would say it, and is refused).
    const regex = compileRegex(f, 'safe_regex');
    if (regex) out = { kind: 'regex', regex };
  } else if (which) {
    const value = f.str(which) ?? '';
    out = { kind: which as 'exact', value: ignoreCase ? value.toLowerCase() : value, ignoreCase };
  }
  f.done();
  if (!out) f.errors.push({ path: f.path, message: 'a string matcher needs exact, prefix, suffix, contains or safe_regex' });
  return out;
}

export function matchString(m: StringMatcher, value: string): boolean {
  if (m.kind === 'regex') return m.regex.test(value);
  const v = m.ignoreCase ? value.toLowerCase() : value;
  switch (m.kind) {
    case 'exact':
      return v === m.value;
    case 'prefix':
      return v.startsWith(m.value);
    case 'suffix':
      return v.endsWith(m.value);
    case 'contains':
      return v.includes(m.value);
  }
}

/** envoy.type.v3.FractionalPercent -> [0, 1] */
export function fractionalPercent(f: Fields | undefined): Fraction | undefined {
  const p = percentParts(f);
  return p && Math.min(1, p.numerator / p.scale);
}

/** envoy.type.v3.FractionalPercent as given: its numerator and its denominator's scale (HUNDRED by default). */
export function percentParts(f: Fields | undefined): PercentParts | undefined {
  if (!f) return undefined;
  const numerator = f.num('numerator') ?? 0;
  const denominator = f.enumOf('denominator', ['HUNDRED', 'TEN_THOUSAND', 'MILLION'] as const, ['HUNDRED', 'TEN_THOUSAND', 'MILLION']) ?? 'HUNDRED';
  f.done();
  const scale = denominator === 'HUNDRED' ? 100 : denominator === 'TEN_THOUSAND' ? 10_000 : 1_000_000;
  return { numerator, scale };
}

/** envoy.config.core.v3.RuntimeFractionalPercent: default_value as a fraction, and the runtime_key read over it (sidecar/runtime.ts). */
export function runtimeFraction(f: Fields | undefined): { fraction: Fraction; runtimeKey?: string } | undefined {
  if (!f) return undefined;
  const runtimeKey = f.str('runtime_key') || undefined;
  // As Envoy's proto validation: default_value is required.
  if (f.raw('default_value') == null) f.fail('default_value', 'required');
  const v = fractionalPercent(f.obj('default_value'));
  f.done();
  return { fraction: v ?? 0, ...(runtimeKey ? { runtimeKey } : {}) };
}

const APPEND_ACTIONS = ['APPEND_IF_EXISTS_OR_ADD', 'ADD_IF_ABSENT', 'OVERWRITE_IF_EXISTS_OR_ADD', 'OVERWRITE_IF_EXISTS'] as const;

/** request_headers_to_add / _to_remove (and the response_ pair) on one message. */
export function headerMutations(f: Fields, prefix: 'request' | 'response'): HeaderMutationConfig {
  const add: HeaderMutationConfig['add'] = [];
  for (const opt of f.list(`${prefix}_headers_to_add`)) {
    const header = opt.obj('header');
    let action: AppendAction = opt.enumOf('append_action', APPEND_ACTIONS, APPEND_ACTIONS) ?? 'APPEND_IF_EXISTS_OR_ADD';
    const append = opt.bool('append');
    if (append === false) action = 'OVERWRITE_IF_EXISTS_OR_ADD';
    const keepEmpty = opt.bool('keep_empty_value') ?? false;
    opt.done();
    if (!header) {
      opt.fail('header', 'required');
      continue;
    }
    const key = header.str('key');
    const value = header.str('value') ?? '';
    header.done();
    if (!key) {
      header.fail('key', 'required');
      continue;
    }
    if (value.includes('%')) {
      header.fail('value', 'command operators (%...%) are not supported by the weft sidecar');
      continue;
    }
    // As Envoy's HeaderParser: an empty value is not set at all, whatever the action, unless keep_empty_value.
    if (value === '' && !keepEmpty) continue;
    add.push({ key: key.toLowerCase(), value, action });
  }
  const remove = f.strList(`${prefix}_headers_to_remove`).map((h) => h.toLowerCase());
  return { add, remove };
}

export const NO_MUTATION: HeaderMutationConfig = { add: [], remove: [] };

/** envoy.config.core.v3.Address with a socket_address. */
export function socketAddress(f: Fields | undefined): SocketAddress | undefined {
  if (!f) return undefined;
  const sa = f.obj('socket_address');
  f.done();
  if (!sa) {
    f.fail('socket_address', 'required (pipe and envoy_internal_address are not supported)');
    return undefined;
  }
  const address = sa.str('address');
  const port = sa.num('port_value');
  sa.enumOf('protocol', ['TCP'] as const, ['TCP']);
  sa.ignore('ipv4_compat');
  sa.done();
  if (!address) sa.fail('address', 'required');
  if (port === undefined) sa.fail('port_value', 'required');
  if (!address || port === undefined) return undefined;
  return { address, port };
}

/**
 * A ConfigSource must point at the ADS stream the sidecar already holds. Returns its initial_fetch_timeout in ms
 * when it has one (an EDS cluster's bounds its warming; 0: no bound).
 */
export function adsConfigSource(f: Fields | undefined): number | undefined {
  if (!f) return undefined;
  const ads = f.raw('ads');
  f.enumOf('resource_api_version', ['V3'] as const, ['AUTO', 'V2', 'V3']);
  const initialFetchTimeoutMs = f.durationMs('initial_fetch_timeout');
  f.done();
  if (ads === undefined) f.fail('ads', 'the weft sidecar only fetches config over ADS');
  return initialFetchTimeoutMs;
}

/**
 * http2_protocol_options.max_concurrent_streams: streams one connection carries at once (a
 * cluster's: before the pool opens another; a connection manager's: advertised to HTTP/2 clients). Envoy's limits:
 * 1 to 2^31 - 1.
 */
export function concurrentStreams(h2: Fields): number | undefined {
  const n = h2.num('max_concurrent_streams');
  if (n === undefined) return undefined;
  if (!Number.isInteger(n) || n < 1 || n > 2 ** 31 - 1) {
    h2.fail('max_concurrent_streams', 'must be between 1 and 2147483647');
    return undefined;
  }
  return n;
}
