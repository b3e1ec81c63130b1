// Route selection as Envoy does it: virtual host by :authority (exact, then
// longest suffix wildcard, then longest prefix wildcard, then "*"), then the
// first route whose path, headers, query parameters and runtime_fraction all
// match.

import type { HeaderMatcherConfig, RouteConfig, RouteEntry, RouteMatchConfig, VirtualHostConfig } from './config.ts';
import { matchString } from './fidelity/common.ts';
import type { Runtime } from './runtime.ts';

export type HeaderLookup = (name: string) => string | string[] | undefined;

export interface RouteRequest {
  /** :authority / Host, as received. */
  authority: string;
  /** :path including the query string. */
  path: string;
  method: string;
  header: HeaderLookup;
  /** The runtime a route's runtime_fraction.runtime_key is read from (absent: none, the default_value decides). */
  runtime?: Runtime;
  /** The stream's random value in [0, 1), for runtime_fraction (absent: a fresh Math.random() for each route). */
  random?: StreamRandom;
}

/**
 * Envoy's stream_id_ as route selection uses it: one random value per stream, drawn when first needed, the
 * same for each route tried and when the route is chosen again (and for the weighted cluster pick).
 */
export interface StreamRandom {
  routeRandom(): number;
}

export function selectVirtualHost(config: RouteConfig, authority: string): VirtualHostConfig | undefined {
  const host = authority.toLowerCase();
  let suffix: { vh: VirtualHostConfig; len: number } | undefined;
  let prefix: { vh: VirtualHostConfig; len: number } | undefined;
  let star: VirtualHostConfig | undefined;
  for (const vh of config.virtualHosts) {
    for (const d of vh.domains) {
      if (d === host) return vh;
      if (d === '*') star ??= vh;
      else if (d.startsWith('*') && host.endsWith(d.slice(1)) && host.length > d.length - 1) {
        if (!suffix || d.length > suffix.len) suffix = { vh, len: d.length };
      } else if (d.endsWith('*') && host.startsWith(d.slice(0, -1)) && host.length > d.length - 1) {
        if (!prefix || d.length > prefix.len) prefix = { vh, len: d.length };
      }
    }
  }
  return suffix?.vh ?? prefix?.vh ?? star;
}

export function selectRoute(vh: VirtualHostConfig, req: RouteRequest): RouteEntry | undefined {
  const q = req.path.indexOf('?');
  const path = q < 0 ? req.path : req.path.slice(0, q);
  const query = q < 0 ? '' : req.path.slice(q + 1);
  return vh.routes.find((r) => routeMatches(r.match, path, query, req));
}

/**
 * The first value of a query parameter as Envoy's route match reads it
 * (Utility::parseQueryString): split on `&` and the first `=`, nothing
 * percent-decoded (nor `+`), a parameter without `=` has the value "".
 */
function queryParameter(query: string, name: string): string | undefined {
  for (const param of query.split('&')) {
    const eq = param.indexOf('=');
    if (eq < 0) {
      if (param === name) return '';
    } else if (eq === name.length && param.startsWith(name)) return param.slice(eq + 1);
  }
  return undefined;
}

function routeMatches(m: RouteMatchConfig, path: string, query: string, req: RouteRequest): boolean {
  if (!pathMatches(m, path)) return false;
  for (const h of m.headers) if (!headerMatches(h, req)) return false;
  for (const qp of m.queryParameters) {
    const v = queryParameter(query, qp.name);
    if (v === undefined) return false;
    if (qp.match && !matchString(qp.match, v)) return false;
  }
  // Envoy's evaluateRuntimeMatch: featureEnabled(runtime_key, default_value, stream_id), the runtime's value (an
  // integer percent, over 100: all; or a FractionalPercent) over default_value. Checked last so that a route that
  // fails on the rest draws no random value (the outcome is the same).
  const rf = m.runtimeFraction;
  if (rf !== undefined) {
    const share = rf.runtimeKey !== undefined && req.runtime !== undefined ? req.runtime.fraction(rf.runtimeKey, rf.fraction) : rf.fraction;
    if (!((req.random !== undefined ? req.random.routeRandom() : Math.random()) < share)) return false;
  }
  return true;
}

function pathMatches(m: RouteMatchConfig, path: string): boolean {
  const p = m.caseSensitive ? path : path.toLowerCase();
  switch (m.path.kind) {
    case 'prefix':
      return p.startsWith(m.caseSensitive ? m.path.value : m.path.value.toLowerCase());
    case 'exact':
      return p === (m.caseSensitive ? m.path.value : m.path.value.toLowerCase());
    case 'regex':
      return m.path.regex.test(path);
    case 'separated_prefix': {
      const v = m.caseSensitive ? m.path.value : m.path.value.toLowerCase();
      return p === v || p.startsWith(v + '/');
    }
  }
}

function headerValue(req: RouteRequest, name: string): string | undefined {
  if (name === ':method') return req.method;
  if (name === ':path') return req.path;
  if (name === ':authority' || name === 'host') return req.authority;
  const v = req.header(name);
  // Envoy matches multi-valued headers against their comma-joined value.
  return Array.isArray(v) ? v.join(',') : v;
}

/**
 * Envoy's HeaderUtility::matchHeaders: a header the request lacks matches
 * nothing but `present_match: false` (or `present_match: true` inverted);
 * `invert_match` turns a value matcher's result around only for a header that
 * is there, so an inverted `exact: beta` does not match a request without it.
 */
export function headerMatches(h: HeaderMatcherConfig, req: RouteRequest): boolean {
  return headerValueMatches(h, headerValue(req, h.name));
}

/** headerMatches on the header's value (all of its values joined with ','), undefined when the request lacks it. */
export function headerValueMatches(h: HeaderMatcherConfig, v: string | undefined): boolean {
  if (v === undefined) return !h.match && h.present === h.invert;
  const ok = h.match ? matchString(h.match, v) : h.present;
  return h.invert ? !ok : ok;
}

/** Weighted cluster choice; `roll` in [0, 1) is injected so callers and tests control randomness. */
export function pickWeighted<T extends { weight: number }>(choices: readonly T[], total: number, roll: number): T | undefined {
  let x = roll * total;
  for (const c of choices) {
    if (x < c.weight) return c;
    x -= c.weight;
  }
  return choices.at(-1);
}
