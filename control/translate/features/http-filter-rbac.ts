// AuthorizationPolicy -> Envoy's RBAC HTTP filter, on the inbound HCM only
// (a policy governs who may call the service, so the callee enforces it).
// DENY policies become a first RBAC filter with action DENY, so they win;
// ALLOW policies a second one with action ALLOW, which denies every request
// matching none of them (default-deny once any ALLOW policy exists). Each
// rule is one RBAC policy named "<namespace>/<policy>/rules[<i>]"; Envoy
// answers a denied request 403 "RBAC: access denied". dryRun policies go to
// the filter's shadow_rules (Istio's istio.io/dry-run): evaluated, counted in
// http.<prefix>.rbac.weft_dry_run_<action>_shadow_allowed / _denied and
// written to the stream's dynamic metadata for the access log, not enforced.

import type { AuthorizationPolicy, AuthorizationRule } from '../../model/types.ts';
import { registerHttpFilterFeature } from '../registry.ts';
import { byHost, compare, resolveServiceRef, type TranslationContext } from '../context.ts';
import type { Json } from '../envoy-json.ts';

export const RBAC_TYPE = 'type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC';
export const RBAC_DENY_FILTER = 'envoy.filters.http.rbac.deny';
export const RBAC_ALLOW_FILTER = 'envoy.filters.http.rbac.allow';

function escapeRegex(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** `*` globs: whole "*", "prefix*", "*suffix", else an anchored RE2 regex. */
export function globMatcher(pattern: string): Json | undefined {
  if (pattern === '*') return undefined;
  const stars = pattern.split('*').length - 1;
  if (stars === 0) return { exact: pattern };
  if (stars === 1 && pattern.endsWith('*')) return { prefix: pattern.slice(0, -1) };
  if (stars === 1 && pattern.startsWith('*')) return { suffix: pattern.slice(1) };
  return { safe_regex: { regex: `^${pattern.split('*').map(escapeRegex).join('.*')}$` } };
}

const or = <T>(items: T[], key: 'rules' | 'ids', build: (item: T) => Json): Json =>
  items.length === 1 ? build(items[0]!) : { [key === 'rules' ? 'or_rules' : 'or_ids']: { [key]: items.map(build) } };

function permissions(rule: AuthorizationRule): Json[] {
  const all: Json[] = [];
  if (rule.paths && !rule.paths.includes('*')) {
    all.push(or(rule.paths, 'rules', (p) => ({ url_path: { path: globMatcher(p) } })));
  }
  if (rule.methods) all.push(or(rule.methods, 'rules', (m) => ({ header: { name: ':method', string_match: { exact: m } } })));
  for (const h of rule.headers ?? []) {
    all.push(or(h.values, 'rules', (v) => ({ header: { name: h.name.toLowerCase(), string_match: { exact: v } } })));
  }
  if (all.length === 0) return [{ any: true }];
  return [all.length === 1 ? all[0]! : { and_rules: { rules: all } }];
}

function principals(rule: AuthorizationRule): Json[] {
  const all: Json[] = [];
  if (rule.principals) {
    all.push(or(rule.principals, 'ids', (p) => {
      const m = globMatcher(p);
      // "*" = any authenticated peer, which a plaintext caller is not.
      return m ? { authenticated: { principal_name: m } } : { authenticated: {} };
    }));
  }
  if (rule.namespaces) {
    all.push(or(rule.namespaces, 'ids', (ns) => ({ authenticated: { principal_name: { safe_regex: { regex: `^spiffe://[^/]+/ns/${escapeRegex(ns)}/sa/[^/]+$` } } } })));
  }
  if (all.length === 0) return [{ any: true }];
  return [all.length === 1 ? all[0]! : { and_ids: { ids: all } }];
}

/** The policy entry that lets the mesh's own active health checks (GET of the health path) past an ALLOW filter. */
export const HEALTH_CHECK_POLICY = 'weft/health-check';

function rbacRules(action: 'ALLOW' | 'DENY', policies: AuthorizationPolicy[], healthPath?: string): Json {
  const entries: Record<string, Json> = {};
  for (const p of policies) {
    p.rules.forEach((rule, i) => {
      entries[`${p.namespace}/${p.name}/rules[${i}]`] = { permissions: permissions(rule), principals: principals(rule) };
    });
  }
  if (healthPath !== undefined) {
    entries[HEALTH_CHECK_POLICY] = {
      permissions: [{ and_rules: { rules: [{ header: { name: ':method', string_match: { exact: 'GET' } } }, { url_path: { path: { exact: healthPath } } }] } }],
      principals: [{ any: true }],
    };
  }
  return { action, policies: entries };
}

/** Prefix of the shadow rules' counters and metadata keys: rbac.weft_dry_run_<action>_shadow_denied, ... */
export const dryRunStatPrefix = (action: 'ALLOW' | 'DENY'): string => `weft_dry_run_${action.toLowerCase()}_`;

/**
 * One RBAC filter for the policies of one action. The enforced ones are its rules; when some are dry-run, its
 * shadow rules are all of them, enforced and dry-run together (what the service would decide with the dry-run
 * ones enforced), counted and logged under dryRunStatPrefix, never enforced. A filter of dry-run policies only
 * has no rules: Envoy then enforces nothing.
 */
function rbacFilter(name: string, action: 'ALLOW' | 'DENY', policies: AuthorizationPolicy[], healthPath?: string): Json {
  const enforced = policies.filter((p) => p.dryRun !== true);
  const config: Json = { '@type': RBAC_TYPE };
  if (enforced.length > 0) config.rules = rbacRules(action, enforced, healthPath);
  if (enforced.length < policies.length) {
    config.shadow_rules = rbacRules(action, policies, healthPath);
    config.shadow_rules_stat_prefix = dryRunStatPrefix(action);
  }
  return { name, typed_config: config };
}

/** The authorization policies governing the proxy's own service, sorted by namespace/name. */
export function policiesForSelf(ctx: TranslationContext): AuthorizationPolicy[] {
  if (!ctx.self) return [];
  const host = byHost(ctx.self);
  return (ctx.model.authorizationPolicies ?? [])
    .filter((p) => resolveServiceRef(p.service, p.namespace) === host)
    .sort((a, b) => compare(`${a.namespace}/${a.name}`, `${b.namespace}/${b.name}`));
}

registerHttpFilterFeature('rbac', {
  position: 'rbac',
  filters(target, ctx) {
    if (target.kind !== 'inbound') return [];
    const policies = policiesForSelf(ctx);
    const deny = policies.filter((p) => p.action === 'DENY');
    const allow = policies.filter((p) => p.action === 'ALLOW');
    const out: Json[] = [];
    if (deny.length > 0) out.push(rbacFilter(RBAC_DENY_FILTER, 'DENY', deny));
    // Every caller's proxy health-checks this service (GET of its health path, with the caller's own identity).
    // An ALLOW policy written for the app's traffic would refuse those probes, every caller would see every
    // instance unhealthy and answer 503: the health path is allowed for GET, as Istio keeps kubelet probes out
    // of authorization. DENY policies still apply first.
    const health = ctx.self ? (ctx.policyByHost.get(byHost(ctx.self))?.healthCheck ?? ctx.self.healthCheck) : undefined;
    if (allow.length > 0) out.push(rbacFilter(RBAC_ALLOW_FILTER, 'ALLOW', allow, health?.path.split('?')[0]));
    return out;
  },
});
