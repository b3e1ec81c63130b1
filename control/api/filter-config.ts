// Checks a filter binding's JSON config against the filter's JSON Schema.
// A bridge: control/filters is to own config validation; until it exports
// a validator, this covers the JSON Schema subset the built-in filters'
// schemas use (type, properties, required, additionalProperties, items,
// enum, const, bounds, lengths, pattern, anyOf/oneOf), with field paths.
import type { FieldError } from './errors.ts';

type Schema = Record<string, unknown>;

const at = (path: string, key: string | number) =>
  typeof key === 'number' ? `${path}[${key}]` : /^[A-Za-z_$][\w$]*$/.test(key) ? (path ? `${path}.${key}` : key) : `${path}[${JSON.stringify(key)}]`;

function typeOf(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  if (typeof value === 'number') return Number.isInteger(value) ? 'integer' : 'number';
  return typeof value;
}

function typeMatches(expected: string, actual: string): boolean {
  return expected === actual || (expected === 'number' && actual === 'integer');
}

function check(schema: unknown, value: unknown, path: string, errors: FieldError[]): void {
  if (schema === true || schema === undefined) return;
  if (schema === false) return void errors.push({ path, message: 'is not allowed' });
  const s = schema as Schema;
  const actual = typeOf(value);
  if (s.type !== undefined) {
    const types = Array.isArray(s.type) ? (s.type as string[]) : [s.type as string];
    if (!types.some((t) => typeMatches(t, actual))) return void errors.push({ path, message: `must be ${types.join(' or ')} (got ${actual})` });
  }
  if (s.const !== undefined && JSON.stringify(s.const) !== JSON.stringify(value)) errors.push({ path, message: `must be ${JSON.stringify(s.const)}` });
  if (Array.isArray(s.enum) && !s.enum.some((e) => JSON.stringify(e) === JSON.stringify(value))) {
    errors.push({ path, message: `must be one of: ${s.enum.map((e) => JSON.stringify(e)).join(', ')}` });
  }
  for (const [keyword, list] of [['anyOf', s.anyOf], ['oneOf', s.oneOf]] as const) {
    if (!Array.isArray(list)) continue;
    const passing = list.filter((sub) => {
      const e: FieldError[] = [];
      check(sub, value, path, e);
      return e.length === 0;
    }).length;
    if (keyword === 'anyOf' ? passing === 0 : passing !== 1) errors.push({ path, message: `must match ${keyword === 'anyOf' ? 'at least one' : 'exactly one'} of the allowed shapes` });
  }
  if (typeof value === 'number') {
    if (typeof s.minimum === 'number' && value < s.minimum) errors.push({ path, message: `must be >= ${s.minimum}` });
    if (typeof s.maximum === 'number' && value > s.maximum) errors.push({ path, message: `must be <= ${s.maximum}` });
    if (typeof s.exclusiveMinimum === 'number' && value <= s.exclusiveMinimum) errors.push({ path, message: `must be > ${s.exclusiveMinimum}` });
    if (typeof s.exclusiveMaximum === 'number' && value >= s.exclusiveMaximum) errors.push({ path, message: `must be < ${s.exclusiveMaximum}` });
  }
  if (typeof value === 'string') {
    if (typeof s.minLength === 'number' && value.length < s.minLength) errors.push({ path, message: `must be at least ${s.minLength} characters` });
    if (typeof s.maxLength === 'number' && value.length > s.maxLength) errors.push({ path, message: `must be at most ${s.maxLength} characters` });
    if (typeof s.pattern === 'string' && !new RegExp(s.pattern, 'u').test(value)) errors.push({ path, message: `must match ${s.pattern}` });
  }
  if (Array.isArray(value)) {
    if (typeof s.minItems === 'number' && value.length < s.minItems) errors.push({ path, message: `must have at least ${s.minItems} items` });
    if (typeof s.maxItems === 'number' && value.length > s.maxItems) errors.push({ path, message: `must have at most ${s.maxItems} items` });
    if (s.items !== undefined) value.forEach((item, i) => check(s.items, item, at(path, i), errors));
  }
  if (actual === 'object') {
    const obj = value as Record<string, unknown>;
    const props = (s.properties ?? {}) as Record<string, unknown>;
    for (const name of (s.required as string[] | undefined) ?? []) {
      if (!(name in obj)) errors.push({ path: at(path, name), message: 'is required' });
    }
    for (const [name, v] of Object.entries(obj)) {
      if (name in props) check(props[name], v, at(path, name), errors);
      else if (s.additionalProperties === false) errors.push({ path: at(path, name), message: 'unknown field' });
      else if (s.additionalProperties !== undefined && s.additionalProperties !== true) check(s.additionalProperties, v, at(path, name), errors);
    }
  }
}

/** Errors of `config` against `schema`, paths relative to the config ("" is the config itself). */
export function validateFilterConfig(schema: unknown, config: unknown): FieldError[] {
  const errors: FieldError[] = [];
  check(schema, config, '', errors);
  return errors;
}
