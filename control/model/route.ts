// Route: ordered traffic rules for calls to one service (Istio's
// VirtualService for one host): match, weighted destinations by subset, and
// the actions in route-actions.ts.

import { Type, type Static } from '@sinclair/typebox';
import { DurationMsOrNone, Name, Port, ServiceRef, duplicateErrors } from './fields.ts';
import { defineKind } from './kind.ts';
import { FaultSchema, HeaderMutationSchema, MirrorSchema, RetryPolicySchema, buildFault, buildHeaderMutation, buildMirror, buildRetries } from './route-actions.ts';
import { RouteMatchSchema, buildRouteMatch } from './route-match.ts';
import type { FieldError } from './result.ts';
import type { HttpRouteRule, Route, WeightedDestination } from './types.ts';

export const WeightedDestinationSchema = Type.Object(
  {
    service: ServiceRef('destination service, or name.namespace'),
    subset: Type.Optional(Name("subset from the destination's DestinationPolicy; absent = all instances")),
    weight: Type.Optional(
      Type.Integer({ minimum: 0, maximum: 1_000_000, errorMessage: 'must be an integer in 0..1000000', description: 'relative weight; required when a rule has several destinations' }),
    ),
    port: Type.Optional(Port("destination port (an HTTP one), default the caller's port on the route's own service, else the service's first HTTP port")),
  },
  { additionalProperties: false },
);

export const HttpRouteRuleSchema = Type.Object(
  {
    name: Type.Optional(Name('rule name, unique within the route')),
    match: Type.Optional(Type.Array(RouteMatchSchema, { minItems: 1, maxItems: 32, description: 'any one must match; absent = every request' })),
    destinations: Type.Array(WeightedDestinationSchema, { minItems: 1, maxItems: 64 }),
    timeoutMs: Type.Optional(DurationMsOrNone('whole-request timeout, retries included; default 15000 (none on grpc ports), 0: none')),
    retries: Type.Optional(RetryPolicySchema),
    prefixRewrite: Type.Optional(Type.String({ minLength: 1, maxLength: 1024, description: 'replaces the matched path prefix' })),
    requestHeaders: Type.Optional(HeaderMutationSchema),
    responseHeaders: Type.Optional(HeaderMutationSchema),
    mirror: Type.Optional(MirrorSchema),
    fault: Type.Optional(FaultSchema),
  },
  { additionalProperties: false },
);

function buildRule(input: Static<typeof HttpRouteRuleSchema>, path: string, errors: FieldError[]): HttpRouteRule {
  const several = input.destinations.length > 1;
  const destinations = input.destinations.map((d, i): WeightedDestination => {
    if (several && d.weight === undefined) errors.push({ path: `${path}.destinations[${i}].weight`, message: 'is required when a rule has several destinations' });
    const dest: WeightedDestination = { service: d.service, weight: d.weight ?? (several ? 0 : 100) };
    if (d.subset !== undefined) dest.subset = d.subset;
    if (d.port !== undefined) dest.port = d.port;
    return dest;
  });
  if (destinations.reduce((sum, d) => sum + d.weight, 0) === 0 && !errors.some((e) => e.path.startsWith(`${path}.destinations[`))) {
    errors.push({ path: `${path}.destinations`, message: 'weights must have a positive sum' });
  }
  errors.push(...duplicateErrors(input.destinations, (d) => `${d.service}/${d.subset ?? ''}/${d.port ?? ''}`, (i) => `${path}.destinations[${i}]`, 'destination'));

  const rule: HttpRouteRule = { destinations };
  if (input.name !== undefined) rule.name = input.name;
  if (input.match) {
    rule.match = input.match.map((m, i) => {
      const built = buildRouteMatch(m, `${path}.match[${i}]`);
      errors.push(...built.errors);
      return built.value;
    });
  }
  if (input.timeoutMs !== undefined) rule.timeoutMs = input.timeoutMs;
  if (input.retries) {
    rule.retries = buildRetries(input.retries, `${path}.retries`, errors);
    if (rule.timeoutMs !== undefined && rule.timeoutMs > 0 && rule.retries.perTryTimeoutMs !== undefined && rule.retries.perTryTimeoutMs > rule.timeoutMs) {
      errors.push({ path: `${path}.retries.perTryTimeoutMs`, message: `must not exceed the rule's timeoutMs (${rule.timeoutMs})` });
    }
  }
  if (input.prefixRewrite !== undefined) {
    if (!input.prefixRewrite.startsWith('/')) errors.push({ path: `${path}.prefixRewrite`, message: "must start with '/'" });
    // It becomes the upstream request's path: Envoy refuses CR, LF and NUL there (prefix_rewrite is a header value),
    // and whitespace or another control character would break the request line.
    else if (/[\s\x00-\x1f\x7f]/.test(input.prefixRewrite)) errors.push({ path: `${path}.prefixRewrite`, message: 'must be a path without whitespace or control characters' });
    // A regex match has no prefix: Envoy swaps the whole path for the
    // rewrite (every matched request goes to one path), the weft sidecar left
    // the path as it was. Neither is what "replace the prefix" means.
    const regexAt = input.match?.findIndex((m) => m.path?.regex !== undefined) ?? -1;
    if (regexAt >= 0) {
      errors.push({ path: `${path}.prefixRewrite`, message: `replaces a matched path prefix, and match[${regexAt}] matches the path by regex (Envoy would replace the whole path); match a prefix or an exact path instead` });
    }
    rule.prefixRewrite = input.prefixRewrite;
  }
  if (input.requestHeaders) rule.requestHeaders = buildHeaderMutation(input.requestHeaders, `${path}.requestHeaders`, errors);
  if (input.responseHeaders) rule.responseHeaders = buildHeaderMutation(input.responseHeaders, `${path}.responseHeaders`, errors);
  if (input.mirror) rule.mirror = buildMirror(input.mirror);
  if (input.fault) rule.fault = buildFault(input.fault, `${path}.fault`, errors);
  return rule;
}

export const routeKind = defineKind({
  kind: 'Route',
  description: 'traffic rules for calls to one service, evaluated in order; first match wins',
  spec: {
    service: ServiceRef('the service whose callers these rules apply to'),
    rules: Type.Array(HttpRouteRuleSchema, { minItems: 1, maxItems: 256 }),
  },
  build(meta, spec) {
    const errors: FieldError[] = [];
    const rules = spec.rules.map((r, i) => buildRule(r, `rules[${i}]`, errors));
    errors.push(...duplicateErrors(spec.rules, (r) => r.name, (i) => `rules[${i}].name`, 'rule name'));
    const value: Route = { name: meta.name, namespace: meta.namespace, service: spec.service, rules };
    return { value, errors };
  },
});

export const RouteSchema = routeKind.schema;
export const RouteSpecSchema = routeKind.specSchema;
export const validateRoute = routeKind.validate;
