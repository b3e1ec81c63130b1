// Runs a TypeBox schema and turns its errors into FieldErrors with the paths
// users write (`ports[1].port`), one error per field, unknown fields by name.

import type { TSchema } from '@sinclair/typebox';
import { TypeCompiler, type TypeCheck } from '@sinclair/typebox/compiler';
import { ValueErrorType, type ValueError } from '@sinclair/typebox/errors';
import { joinPath, type FieldError } from './result.ts';

const compiled = new WeakMap<TSchema, TypeCheck<TSchema>>();

function checkerFor(schema: TSchema): TypeCheck<TSchema> {
  let check = compiled.get(schema);
  if (!check) {
    check = TypeCompiler.Compile(schema);
    compiled.set(schema, check);
  }
  return check;
}

/** Structural errors of `value` against `schema`; empty when it conforms. */
export function schemaErrors(schema: TSchema, value: unknown): FieldError[] {
  const check = checkerFor(schema);
  if (check.Check(value)) return [];
  const seen = new Set<string>();
  const errors: FieldError[] = [];
  for (const error of check.Errors(value)) {
    const path = toFieldPath(error.path, value);
    // TypeBox reports a missing property twice (required, then its type); the first says it best.
    if (seen.has(path)) continue;
    seen.add(path);
    errors.push({ path, message: messageFor(error) });
  }
  return errors;
}

function messageFor(error: ValueError): string {
  switch (error.type) {
    case ValueErrorType.ObjectAdditionalProperties:
      return 'unknown field';
    case ValueErrorType.ObjectRequiredProperty:
      return 'is required';
  }
  const custom = (error.schema as { errorMessage?: unknown }).errorMessage;
  if (typeof custom === 'string') return custom;
  return error.message.charAt(0).toLowerCase() + error.message.slice(1);
}

/** Converts a JSON pointer into `a.b[0]["c/d"]`, using the input to tell array indexes from keys. */
function toFieldPath(pointer: string, root: unknown): string {
  if (pointer === '') return '';
  let path = '';
  let node: unknown = root;
  for (const raw of pointer.slice(1).split('/')) {
    const key = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    if (Array.isArray(node) && /^\d+$/.test(key)) {
      path = joinPath(path, Number(key));
      node = node[Number(key)];
    } else {
      path = joinPath(path, key);
      node = node !== null && typeof node === 'object' ? (node as Record<string, unknown>)[key] : undefined;
    }
  }
  return path;
}
