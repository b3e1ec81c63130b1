// envoy.filters.http.rbac: the permission and principal matchers weft's
// translator emits (any, and/or/not, url_path, header, authenticated
// principal_name), with shadow_rules (counted, recorded in the stream's
// dynamic metadata, not enforced). CEL matchers, the matcher API and the
// network-level principals (source IP, direct remote IP) are outside the
// contract.

import type { HttpFilterConfig, RbacConfig, RbacPermission, RbacPolicyConfig, RbacPrincipal } from '../config.ts';
import { stringMatcher } from './common.ts';
import { Fields, isObject, join } from './fields.ts';
import { headerMatcher } from './route.ts';

function permission(f: Fields): RbacPermission | undefined {
  const which = f.oneof(['any', 'and_rules', 'or_rules', 'not_rule', 'url_path', 'header']);
  let out: RbacPermission | undefined;
  if (which === 'any') {
    f.ignore('any');
    out = { kind: 'any' };
  } else if (which === 'and_rules' || which === 'or_rules') {
    const set = f.obj(which)!;
    const rules = set.list('rules').map(permission);
    set.done();
    if (rules.every((r) => r !== undefined)) out = { kind: which === 'and_rules' ? 'and' : 'or', rules: rules as RbacPermission[] };
  } else if (which === 'not_rule') {
    const rule = permission(f.obj('not_rule')!);
    if (rule) out = { kind: 'not', rule };
  } else if (which === 'url_path') {
    const pm = f.obj('url_path')!;
    const path = pm.obj('path');
    const match = path ? stringMatcher(path) : undefined;
    pm.done();
    if (match) out = { kind: 'path', match };
  } else if (which === 'header') {
    const header = headerMatcher(f.obj('header')!);
    if (header) out = { kind: 'header', header };
  }
  f.done();
  if (!which) f.errors.push({ path: f.path, message: 'permission not supported by the weft sidecar (any, and_rules, or_rules, not_rule, url_path, header)' });
  return out;
}

function principal(f: Fields): RbacPrincipal | undefined {
  const which = f.oneof(['any', 'and_ids', 'or_ids', 'not_id', 'authenticated']);
  let out: RbacPrincipal | undefined;
  if (which === 'any') {
    f.ignore('any');
    out = { kind: 'any' };
  } else if (which === 'and_ids' || which === 'or_ids') {
    const set = f.obj(which)!;
    const ids = set.list('ids').map(principal);
    set.done();
    if (ids.every((r) => r !== undefined)) out = { kind: which === 'and_ids' ? 'and' : 'or', ids: ids as RbacPrincipal[] };
  } else if (which === 'not_id') {
    const id = principal(f.obj('not_id')!);
    if (id) out = { kind: 'not', id };
  } else if (which === 'authenticated') {
    const a = f.obj('authenticated');
    const pn = a?.obj('principal_name');
    const match = pn ? stringMatcher(pn) : undefined;
    a?.done();
    if (!pn || match) out = match ? { kind: 'authenticated', match } : { kind: 'authenticated' };
  }
  f.done();
  if (!which) f.errors.push({ path: f.path, message: 'principal not supported by the weft sidecar (any, and_ids, or_ids, not_id, authenticated)' });
  return out;
}

/** One RBAC message (rules or shadow_rules): its action and policies, in name order. */
function rbacRules(rules: Fields): RbacConfig {
  const action = rules.enumOf('action', ['ALLOW', 'DENY'] as const, ['ALLOW', 'DENY', 'LOG']) ?? 'ALLOW';
  const raw = rules.raw('policies');
  const policies: RbacPolicyConfig[] = [];
  if (raw !== undefined && !isObject(raw)) rules.fail('policies', 'expected a map of policies');
  for (const [name, value] of Object.entries(isObject(raw) ? raw : {})) {
    const p = Fields.of(value, join(join(rules.path, 'policies'), name), rules.errors);
    if (!p) continue;
    const permissions = p.list('permissions').map(permission);
    const principals = p.list('principals').map(principal);
    p.done();
    if (permissions.every((x) => x) && principals.every((x) => x)) {
      policies.push({ name, permissions: permissions as RbacPermission[], principals: principals as RbacPrincipal[] });
    }
  }
  rules.done();
  // In name order, as Envoy's engine keeps them (a std::map): the first that matches is the one a DENY names in
  // its response code details (rbac_access_denied_matched_policy[NAME]).
  policies.sort((x, y) => (x.name < y.name ? -1 : x.name > y.name ? 1 : 0));
  return { action, policies };
}

/**
 * A stat prefix as the sidecar names its counters: envoy_http_rbac_<prefix><stat>. A prefix with a dot (which
 * Envoy's tag extractor turns into an envoy_rbac_http_prefix label) is NACKed.
 */
function statPrefix(f: Fields, key: string): string {
  const v = f.str(key) ?? '';
  if (!/^[A-Za-z0-9_]*$/.test(v)) {
    f.fail(key, 'only letters, digits and _ are supported by the weft sidecar (a prefix with a dot is a tag in Envoy\'s Prometheus names)');
    return '';
  }
  return v;
}

/** The RBAC filter's typed_config: rules (enforced), shadow_rules (counted and recorded only), their stat prefixes. */
export function rbacFilter(tc: Fields): Omit<Extract<HttpFilterConfig, { kind: 'rbac' }>, 'kind' | 'name'> {
  const rules = tc.obj('rules');
  const shadowRules = tc.obj('shadow_rules');
  const rulesStatPrefix = statPrefix(tc, 'rules_stat_prefix');
  const shadowRulesStatPrefix = statPrefix(tc, 'shadow_rules_stat_prefix');
  tc.done();
  const shadow = shadowRules ? rbacRules(shadowRules) : undefined;
  return {
    // No rules: Envoy enforces nothing and counts nothing; the stand-in lets every request through.
    rbac: rules ? rbacRules(rules) : { action: 'ALLOW', policies: [{ name: '', permissions: [{ kind: 'any' }], principals: [{ kind: 'any' }] }] },
    enforced: rules !== undefined,
    ...(shadow ? { shadow } : {}),
    rulesStatPrefix,
    shadowRulesStatPrefix,
  };
}
