// Envoy's RBAC HTTP filter semantics: a policy matches when any of its
// permissions and any of its principals match; ALLOW lets a request through
// only if some policy matches, DENY stops it if some policy matches. The
// principal is the caller's mTLS identity (the peer certificate's URI SAN);
// a plaintext caller has none, so only `any` principals match it.

import type { RbacConfig, RbacPermission, RbacPrincipal } from './config.ts';
import { matchString } from './fidelity/common.ts';
import { headerMatches, type RouteRequest } from './router.ts';

export interface RbacRequest extends RouteRequest {
  /** The peer's SPIFFE ID from its certificate, undefined for plaintext. */
  principal?: string;
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
      return req.principal !== undefined && (p.match === undefined || matchString(p.match, req.principal));
  }
}

/** The name of the first matching policy, or undefined. */
export function matchingPolicy(config: RbacConfig, req: RbacRequest): string | undefined {
  return config.policies.find((p) => p.permissions.some((x) => permits(x, req)) && p.principals.some((x) => identifies(x, req)))?.name;
}

/** Whether the filter lets the request through. */
export function rbacAllows(config: RbacConfig, req: RbacRequest): boolean {
  const matched = matchingPolicy(config, req) !== undefined;
  return config.action === 'ALLOW' ? matched : !matched;
}
