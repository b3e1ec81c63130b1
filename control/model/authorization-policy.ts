// AuthorizationPolicy: who may call a service (Istio's AuthorizationPolicy,
// flattened). Rules match on the caller's SPIFFE ID or namespace (from its
// mTLS certificate), the path, the method and request headers such as the
// JWT claims the auth filter forwards. Semantics (translated to Envoy RBAC):
// DENY policies are checked first and win; when any ALLOW policy exists for
// the service, a request matching none of them is denied. A dryRun policy is
// evaluated and reported, never enforced.

import { Type } from '@sinclair/typebox';
import { Enum, ServiceRef, headerNameError, headerValueError } from './fields.ts';
import { defineKind } from './kind.ts';
import { HTTP_METHODS } from './route-match.ts';
import type { FieldError } from './result.ts';
import type { AuthorizationPolicy, AuthorizationRule } from './types.ts';

const Strings = (description: string, item: ReturnType<typeof Type.String>) =>
  Type.Optional(Type.Array(item, { minItems: 1, maxItems: 64, description, errorMessage: 'must be a non-empty list (at most 64)' }));

const RuleSchema = Type.Object(
  {
    principals: Strings('caller SPIFFE IDs; * matches any run of characters', Type.String({ minLength: 1, maxLength: 512 })),
    namespaces: Strings('caller namespaces', Type.String({ minLength: 1, maxLength: 63, pattern: '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$', errorMessage: 'must be a namespace (DNS-1123 label)' })),
    paths: Strings('request paths: exact, "prefix*", "*suffix" or "*"', Type.String({ minLength: 1, maxLength: 4096 })),
    methods: Type.Optional(Type.Array(Enum([...HTTP_METHODS], 'upper-case HTTP method'), { minItems: 1, maxItems: 16 })),
    headers: Type.Optional(Type.Array(
      Type.Object({
        name: Type.String({ minLength: 1, maxLength: 256, description: 'header name, e.g. one the auth filter forwards a JWT claim in' }),
        values: Type.Array(Type.String({ maxLength: 4096 }), { minItems: 1, maxItems: 64, description: 'accepted values (exact)' }),
      }, { additionalProperties: false }),
      { minItems: 1, maxItems: 32 },
    )),
  },
  { additionalProperties: false, description: 'all given fields must match; within a field, any value' },
);

/** A `*` anywhere but as a whole segment of the pattern's ends would need a regex Envoy's principal matcher lacks: allow one `*` at the start or end, or in a principal anywhere. */
function pathPatternError(pattern: string, path: string): FieldError | undefined {
  const stars = pattern.split('*').length - 1;
  if (stars === 0 || pattern === '*') return undefined;
  if (stars === 1 && (pattern.startsWith('*') || pattern.endsWith('*'))) return undefined;
  return { path, message: 'a path pattern may have one * only, at its start or its end' };
}

function ruleErrors(rule: AuthorizationRule, at: string): FieldError[] {
  const errors: FieldError[] = [];
  rule.principals?.forEach((p, i) => {
    // Every caller's principal is a whole SPIFFE ID, so what comes before the first * must fit one's start.
    // Istio's own form ("cluster.local/ns/x/sa/*", no scheme) would match nobody: a DENY rule with it denies nothing.
    const head = p.split('*')[0]!;
    const fits = p.includes('*') ? head.startsWith('spiffe://') || 'spiffe://'.startsWith(head) : p.startsWith('spiffe://');
    if (!fits) {
      const hint = /^[a-z0-9._-]+\//.test(p) ? ` (write "spiffe://${p}": unlike Istio's, principals here carry the spiffe:// scheme)` : '';
      errors.push({ path: `${at}.principals[${i}]`, message: `must be a SPIFFE ID (spiffe://<trust-domain>/ns/<namespace>/sa/<service>) or a pattern with * that can match one${hint}` });
    }
  });
  rule.paths?.forEach((p, i) => {
    const e = pathPatternError(p, `${at}.paths[${i}]`);
    if (e) errors.push(e);
    else if (!p.startsWith('/') && !p.startsWith('*')) errors.push({ path: `${at}.paths[${i}]`, message: 'must start with / (or be a *suffix pattern)' });
  });
  rule.headers?.forEach((h, i) => {
    const e = headerNameError(h.name, `${at}.headers[${i}].name`, true);
    if (e) errors.push(e);
    h.values.forEach((v, j) => {
      const ve = headerValueError(v, `${at}.headers[${i}].values[${j}]`);
      if (ve) errors.push(ve);
    });
  });
  return errors;
}

export const authorizationPolicyKind = defineKind({
  kind: 'AuthorizationPolicy',
  description: 'who may call a service: ALLOW or DENY rules by caller identity, namespace, path, method and headers',
  spec: {
    service: ServiceRef('the service whose inbound requests it governs'),
    action: Type.Optional(Enum(['ALLOW', 'DENY'], 'ALLOW (default) or DENY')),
    rules: Type.Array(RuleSchema, { minItems: 1, maxItems: 128, description: 'a request matching any rule matches the policy', errorMessage: 'must be a non-empty list of rules (at most 128)' }),
    dryRun: Type.Optional(Type.Boolean({ description: 'evaluate without enforcing: proxies count (rbac ..._shadow_allowed / _shadow_denied) and log what would be decided with it enforced; default false' })),
  },
  build(meta, spec) {
    const rules: AuthorizationRule[] = spec.rules.map((r) => structuredClone(r) as AuthorizationRule);
    const errors = rules.flatMap((r, i) => ruleErrors(r, `rules[${i}]`));
    const value: AuthorizationPolicy = { name: meta.name, namespace: meta.namespace, service: spec.service, action: spec.action ?? 'ALLOW', rules };
    if (spec.dryRun === true) value.dryRun = true;
    return { value, errors };
  },
});

export const AuthorizationPolicySchema = authorizationPolicyKind.schema;
export const validateAuthorizationPolicy = authorizationPolicyKind.validate;
