// Request matching for route rules: path, method, headers, query parameters.

import { Type, type Static } from '@sinclair/typebox';
import { Enum, headerNameError, regexError } from './fields.ts';
import type { FieldError } from './result.ts';
import type { RouteMatch, StringMatch } from './types.ts';

export const HTTP_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE', 'PATCH'] as const;

const matchText = (d: string, minLength = 0) => Type.String({ minLength, maxLength: 4096, description: d });

/** Exactly one of exact / prefix / regex (checked semantically, so errors name the field). An empty prefix or regex is one Envoy refuses (StringMatcher's min_len 1): exact '' matches an empty value. */
export const StringMatchSchema = Type.Object(
  { exact: Type.Optional(matchText('equals')), prefix: Type.Optional(matchText('starts with', 1)), regex: Type.Optional(matchText('RE2 regex, whole value', 1)) },
  { additionalProperties: false, description: 'exactly one of exact, prefix, regex' },
);

/** A header or query parameter match: a string match, or `{present: true}`. */
export const ValueMatchSchema = Type.Object(
  { ...StringMatchSchema.properties, present: Type.Optional(Type.Literal(true, { errorMessage: 'must be true', description: 'matches when present' })) },
  { additionalProperties: false, description: 'exactly one of exact, prefix, regex, present' },
);

export const RouteMatchSchema = Type.Object(
  {
    path: Type.Optional(StringMatchSchema),
    method: Type.Optional(Enum([...HTTP_METHODS], 'upper-case HTTP method')),
    headers: Type.Optional(
      Type.Array(
        Type.Object(
          { name: Type.String({ minLength: 1, maxLength: 256 }), match: ValueMatchSchema, invert: Type.Optional(Type.Boolean()) },
          { additionalProperties: false },
        ),
        { maxItems: 32 },
      ),
    ),
    queryParams: Type.Optional(
      Type.Array(Type.Object({ name: Type.String({ minLength: 1, maxLength: 256 }), match: ValueMatchSchema }, { additionalProperties: false }), { maxItems: 32 }),
    ),
  },
  { additionalProperties: false, description: 'all given conditions must hold' },
);

type ValueMatchInput = Static<typeof ValueMatchSchema>;

function buildValueMatch(input: ValueMatchInput, path: string, allowPresent: boolean, errors: FieldError[]): StringMatch | { present: true } {
  const given = (['exact', 'prefix', 'regex', 'present'] as const).filter((k) => input[k] !== undefined);
  if (given.length !== 1) {
    errors.push({ path, message: `must set exactly one of exact, prefix, regex${allowPresent ? ', present' : ''} (got ${given.length === 0 ? 'none' : given.join(', ')})` });
  }
  if (input.regex !== undefined) {
    const bad = regexError(input.regex, `${path}.regex`);
    if (bad) errors.push(bad);
    return { regex: input.regex };
  }
  if (input.exact !== undefined) return { exact: input.exact };
  if (input.prefix !== undefined) return { prefix: input.prefix };
  return { present: true };
}

export function buildRouteMatch(input: Static<typeof RouteMatchSchema>, path: string): { value: RouteMatch; errors: FieldError[] } {
  const errors: FieldError[] = [];
  const value: RouteMatch = {};
  if (input.path) {
    const m = buildValueMatch(input.path, `${path}.path`, false, errors) as StringMatch;
    if ('exact' in m && !m.exact.startsWith('/')) errors.push({ path: `${path}.path.exact`, message: "must start with '/'" });
    if ('prefix' in m && !m.prefix.startsWith('/')) errors.push({ path: `${path}.path.prefix`, message: "must start with '/'" });
    value.path = m;
  }
  if (input.method) value.method = input.method;
  if (input.headers) {
    value.headers = input.headers.map((h, i) => {
      const at = `${path}.headers[${i}]`;
      const bad = headerNameError(h.name, `${at}.name`, true);
      if (bad) errors.push(bad);
      const header: NonNullable<RouteMatch['headers']>[number] = { name: h.name.toLowerCase(), match: buildValueMatch(h.match, `${at}.match`, true, errors) };
      if (h.invert !== undefined) header.invert = h.invert;
      return header;
    });
  }
  if (input.queryParams) {
    value.queryParams = input.queryParams.map((q, i) => ({ name: q.name, match: buildValueMatch(q.match, `${path}.queryParams[${i}].match`, true, errors) }));
  }
  return { value, errors };
}
