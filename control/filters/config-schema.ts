// Validation of a filter binding's JSON config against the filter's JSON
// Schema (draft-07, via ajv, which fastify already ships). Errors carry field
// paths relative to the config (`rules[0].prefix`), as the API reports them.
// Compiled validators are cached per schema object.

import { Ajv } from 'ajv';
import type { ErrorObject, ValidateFunction } from 'ajv';

export interface ConfigError {
  path: string;
  message: string;
}

const ajv = new Ajv({ allErrors: true, strict: false });
const compiled = new WeakMap<object, ValidateFunction>();

/** Problems with a schema itself (an uploaded one), or [] when ajv can compile it. */
export function checkConfigSchema(schema: unknown): ConfigError[] {
  if (typeof schema === 'boolean') return [];
  if (schema === null || typeof schema !== 'object' || Array.isArray(schema)) return [{ path: '', message: 'a config schema must be a JSON Schema object' }];
  try {
    validatorFor(schema);
    return [];
  } catch (err) {
    return [{ path: '', message: `invalid JSON Schema: ${(err as Error).message}` }];
  }
}

function validatorFor(schema: object): ValidateFunction {
  let v = compiled.get(schema);
  if (!v) {
    v = ajv.compile(schema);
    compiled.set(schema, v);
  }
  return v;
}

/** Every error of `config` against `schema`; [] when valid or no schema is declared. */
export function validateConfig(schema: unknown, config: unknown): ConfigError[] {
  if (schema === undefined || schema === true) return [];
  if (schema === false) return [{ path: '', message: 'the filter accepts no configuration' }];
  const problems = checkConfigSchema(schema);
  if (problems.length > 0) return problems;
  const validate = validatorFor(schema as object);
  if (validate(config)) return [];
  return (validate.errors ?? []).filter((e) => !isCompositeNoise(e)).map(toConfigError);
}

// "must match "then" schema" and friends repeat an error already reported
// at the exact path.
function isCompositeNoise(e: ErrorObject): boolean {
  return e.keyword === 'if';
}

function toConfigError(e: ErrorObject): ConfigError {
  let path = pointerToPath(e.instancePath);
  let message = e.message ?? 'is invalid';
  if (e.keyword === 'additionalProperties') {
    path = joinPath(path, String((e.params as { additionalProperty: string }).additionalProperty));
    message = 'unknown field';
  } else if (e.keyword === 'required') {
    path = joinPath(path, String((e.params as { missingProperty: string }).missingProperty));
    message = 'required';
  } else if (e.keyword === 'enum') {
    message = `must be one of ${((e.params as { allowedValues: unknown[] }).allowedValues).map((v) => JSON.stringify(v)).join(', ')}`;
  }
  return { path, message };
}

function pointerToPath(pointer: string): string {
  if (pointer === '') return '';
  let path = '';
  for (const raw of pointer.slice(1).split('/')) {
    const seg = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    path = /^\d+$/.test(seg) ? `${path}[${seg}]` : joinPath(path, seg);
  }
  return path;
}

function joinPath(path: string, key: string): string {
  const part = /^[A-Za-z_$][\w$-]*$/.test(key) ? key : JSON.stringify(key);
  if (path === '') return /^[A-Za-z_$]/.test(part) ? part : `[${part}]`;
  return /^[A-Za-z_$]/.test(part) ? `${path}.${part}` : `${path}[${part}]`;
}
