// Envoy's RBAC HTTP filter semantics: a policy matches when any of its
// permissions and any of its principals match; ALLOW lets a request through
// only if some policy matches, DENY stops it if some policy matches. The
// principal is the caller's verified client certificate: `authenticated`
// matches any mutual TLS caller, and its principal_name, as Envoy's
// AuthenticatedMatcher, any URI SAN, else any DNS SAN, else the subject; a
// plaintext caller has none, so only `any` principals match it.

import type { RbacConfig, RbacPermission, RbacPrincipal, StringMatcher } from './config.ts';
import { matchString } from './fidelity/common.ts';
import type { PeerCertificate } from './peer-identity.ts';
import { headerMatches, type RouteRequest } from './router.ts';

export interface RbacRequest extends RouteRequest {
  /** The peer's verified client certificate, undefined for plaintext. */
  peer?: PeerCertificate;
}

function permits(p: RbacPermission, req: RbacRequest): boolean {
  switch (p.kind) {
    case 'any':
      return true;
    case 'and':
      return p.rules.every((r) => permits(r, req));
    case 'or':
      return p.rules.some((r) => permits(r, req));
    case 'not':
      return !permits(p.rule, req);
    case 'path': {
      // url_path matches the path without the query string.
      const q = req.path.indexOf('?');
      return matchString(p.match, q < 0 ? req.path : req.path.slice(0, q));
    }
    case 'header':
      return headerMatches(p.header, req);
  }
}

function identifies(p: RbacPrincipal, req: RbacRequest): boolean {
  switch (p.kind) {
    case 'any':
      return true;
    case 'and':
      return p.ids.every((r) => identifies(r, req));
    case 'or':
      return p.ids.some((r) => identifies(r, req));
    case 'not':
      return !identifies(p.id, req);
    case 'authenticated':
      return req.peer !== undefined && (p.match === undefined || principalMatches(p.match, req.peer));
  }
}

function principalMatches(m: StringMatcher, peer: PeerCertificate): boolean {
  if (peer.uriSans.some((u) => matchString(m, u))) return true;
  if (peer.dnsSans.some((d) => matchString(m, d))) return true;
  return matchString(m, peer.subject);
}

/** The name of the first matching policy, or undefined. */
export function matchingPolicy(config: RbacConfig, req: RbacRequest): string | undefined {
  return config.policies.find((p) => p.permissions.some((x) => permits(x, req)) && p.principals.some((x) => identifies(x, req)))?.name;
}

/** The engine's decision: ALLOW lets through a request some policy matches, DENY one none matches; and the policy that matched. */
export function rbacDecide(config: RbacConfig, req: RbacRequest): { allowed: boolean; matched: string | undefined } {
  const matched = matchingPolicy(config, req);
  return { allowed: config.action === 'ALLOW' ? matched !== undefined : matched === undefined, matched };
}

/** Whether the filter lets the request through. */
export function rbacAllows(config: RbacConfig, req: RbacRequest): boolean {
  return rbacDecide(config, req).allowed;
}
