// A request's hash from its route's hash_policy, as Envoy's HashPolicyImpl
// (source/common/http/hash_policy.cc) computes it: each policy that finds its
// value hashes it with xxHash64 (seed 0) and is folded in as
// rotl(previous, 1) ^ hash, so two identical policies do not cancel out; a
// terminal policy that produced a hash ends the list. A ring hash cluster
// then places the same key on the same host as an Envoy would.

import { randomUUID } from 'node:crypto';
import type { HashPolicyConfig } from '../config.ts';
import type { HeaderPairs } from '../upstream.ts';
import { xxHash64 } from './xxhash64.ts';

const MASK = (1n << 64n) - 1n;

/** A cookie's value as Envoy's parseCookieValue reads it, over every `cookie` header: without the double quotes it may be wrapped in (RFC 6265), as the generated one is. */
export function cookieValue(headers: HeaderPairs, name: string): string | undefined {
  for (const [k, header] of headers) {
    if (k !== 'cookie') continue;
    const v = header.split(/;\s*/).find((c) => c.startsWith(`${name}=`))?.slice(name.length + 1);
    if (v === undefined) continue;
    return v.length >= 2 && v.startsWith('"') && v.endsWith('"') ? v.slice(1, -1) : v;
  }
  return undefined;
}

/** The first value of a query parameter in `path`, undecoded (Envoy's QueryParamsMulti::getFirstValue after parseQueryString). */
function queryParameter(path: string, name: string): string | undefined {
  const q = path.indexOf('?');
  if (q < 0) return undefined;
  const end = path.indexOf('#', q);
  for (const part of path.slice(q + 1, end < 0 ? undefined : end).split('&')) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    const key = eq < 0 ? part : part.slice(0, eq);
    if (key === name) return eq < 0 ? '' : part.slice(eq + 1);
  }
  return undefined;
}

export interface HashedRequest {
  headers: HeaderPairs;
  /** :path, with its query. */
  path: string;
  /** The downstream peer's IP address (no port), as Envoy's addressAsString. */
  sourceIp: string;
}

/**
 * The request's hash, or undefined when no policy found its value (the ring then picks at random, as Envoy's).
 * A cookie policy with a ttl whose cookie is missing generates one, hashes it and adds its Set-Cookie to `setCookies`.
 */
export function requestHash(policies: readonly HashPolicyConfig[], req: HashedRequest, setCookies: HeaderPairs): bigint | undefined {
  let hash: bigint | undefined;
  for (const p of policies) {
    let one: bigint | undefined;
    if (p.kind === 'header') {
      // Every value of the header, sorted, hashed as one (Envoy's xxHash64 over a span of values), so their order does not matter.
      const values: string[] = [];
      for (const [k, v] of req.headers) if (k === p.name) values.push(v);
      if (values.length > 0) one = xxHash64(values.sort().join(''));
    } else if (p.kind === 'source_ip') {
      // A dual-stack listener's IPv4 peer as Envoy names it (addressFromSockAddr makes a v4-mapped address IPv4).
      const ip = req.sourceIp.startsWith('::ffff:') && req.sourceIp.includes('.') ? req.sourceIp.slice(7) : req.sourceIp;
      if (ip) one = xxHash64(ip);
    } else if (p.kind === 'query_parameter') {
      const v = queryParameter(req.path, p.name);
      if (v !== undefined) one = xxHash64(v);
    } else {
      let value = cookieValue(req.headers, p.name);
      if (!value && p.ttlSeconds !== undefined) {
        // As Envoy: the cookie is generated so the client sticks from its next request on.
        value = randomUUID().replace(/-/g, '').slice(0, 16);
        setCookies.push(['set-cookie', `${p.name}="${value}"; Max-Age=${p.ttlSeconds}${p.path ? `; Path=${p.path}` : ''}; HttpOnly`]);
      }
      if (value) one = xxHash64(value);
    }
    if (one !== undefined) hash = hash === undefined ? one : (((hash << 1n) | (hash >> 63n)) & MASK) ^ one;
    if (p.terminal && hash !== undefined) break;
  }
  return hash;
}
