// Header handling between downstream and upstream: hop-by-hop stripping (RFC
// 9110 7.6.1), Envoy's header mutations with their append actions, and the
// conversions between node's shapes and ordered lowercase pairs.

import type { HeaderMutationConfig } from './config.ts';
import type { HeaderPairs } from './upstream.ts';

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te', 'http2-settings', 'proxy-authorization']);

/**
 * From node's rawHeaders (flat [k, v, k, v]) to lowercase pairs without
 * hop-by-hop or pseudo headers, except `te: trailers`: as Envoy, a TE that
 * names `trailers` goes on as `te: trailers` (gRPC servers refuse a call
 * without it) and any other TE value is dropped.
 */
export function pairsFromRaw(raw: readonly string[]): HeaderPairs {
  const out: HeaderPairs = [];
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const k = raw[i]!.toLowerCase();
    if (k.startsWith(':')) continue;
    if (HOP_BY_HOP.has(k)) {
      if (k === 'te' && teHasTrailers(raw[i + 1]!)) out.push(['te', 'trailers']);
      continue;
    }
    out.push([k, raw[i + 1]!]);
  }
  return out;
}

/** A TE value lists the `trailers` token (any case, maybe among codings with weights). */
function teHasTrailers(value: string): boolean {
  if (value === 'trailers') return true;
  for (const part of value.split(',')) {
    const semi = part.indexOf(';');
    if ((semi < 0 ? part : part.slice(0, semi)).trim().toLowerCase() === 'trailers') return true;
  }
  return false;
}

/** Node's flat [name, value, ...] as pairs with lower-case names, all kept (what an upstream sent). */
export function lowerPairs(raw: readonly string[]): HeaderPairs {
  const out: HeaderPairs = [];
  for (let i = 0; i + 1 < raw.length; i += 2) out.push([raw[i]!.toLowerCase(), raw[i + 1]!]);
  return out;
}

export function withoutHopByHop(pairs: HeaderPairs): HeaderPairs {
  return pairs.filter(([k]) => !HOP_BY_HOP.has(k) && !k.startsWith(':'));
}

/** The pairs without pseudo-headers (`:path`, `:status`, ...): what goes on an HTTP/1.x wire. */
export function withoutPseudo(pairs: HeaderPairs): HeaderPairs {
  return pairs.filter(([k]) => k.charCodeAt(0) !== 58 /* : */);
}

export function getHeader(pairs: HeaderPairs, name: string): string | undefined {
  for (const [k, v] of pairs) if (k === name) return v;
  return undefined;
}

export function setHeader(pairs: HeaderPairs, name: string, value: string): void {
  removeHeader(pairs, name);
  pairs.push([name, value]);
}

export function removeHeader(pairs: HeaderPairs, name: string): void {
  for (let i = pairs.length - 1; i >= 0; i--) if (pairs[i]![0] === name) pairs.splice(i, 1);
}

/** Applies one level of request_headers_to_add/_to_remove (Envoy: removals first, then additions). */
/**
 * One level's header mutations, in Envoy's HeaderParser::evaluateHeaders
 * order: removals, then every entry judged against the headers as they are
 * now (ADD_IF_ABSENT and OVERWRITE_IF_EXISTS look before this level added
 * anything), then the overwrites, then the appends.
 */
export function applyMutation(pairs: HeaderPairs, m: HeaderMutationConfig): void {
  for (const name of m.remove) removeHeader(pairs, name);
  if (m.add.length === 0) return;
  const appends: [string, string][] = [];
  const overwrites: [string, string][] = [];
  for (const { key, value, action } of m.add) {
    switch (action) {
      case 'APPEND_IF_EXISTS_OR_ADD':
        appends.push([key, value]);
        break;
      case 'ADD_IF_ABSENT':
        if (getHeader(pairs, key) === undefined) appends.push([key, value]);
        break;
      case 'OVERWRITE_IF_EXISTS':
        if (getHeader(pairs, key) !== undefined) overwrites.push([key, value]);
        break;
      case 'OVERWRITE_IF_EXISTS_OR_ADD':
        overwrites.push([key, value]);
        break;
    }
  }
  for (const [key, value] of overwrites) setHeader(pairs, key, value);
  for (const header of appends) pairs.push(header);
}

/** For node's http2 compat API and res.setHeader: repeated names become arrays. */
export function objectFromPairs(pairs: HeaderPairs): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [k, v] of pairs) {
    const prev = out[k];
    if (prev === undefined) out[k] = v;
    else if (Array.isArray(prev)) prev.push(v);
    else out[k] = [prev, v];
  }
  return out;
}

/** node's writeHead accepts a flat [k, v, k, v] list, which keeps order and repeats. */
export function flatFromPairs(pairs: HeaderPairs): string[] {
  const out: string[] = [];
  for (const [k, v] of pairs) out.push(k, v);
  return out;
}
