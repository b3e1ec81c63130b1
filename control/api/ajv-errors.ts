// Turns ajv's errors (what fastify attaches to a failed schema validation)
// into the contract's field errors: JSON pointers such as `/ports/0/port`
// become `ports[0].port`, and the property ajv names in `params` (an unknown
// field, a missing one) is appended so the path points at the field itself.
import { joinPath as joinFieldPath } from '../model/result.ts';
import { joinPath, type FieldError } from './errors.ts';

export interface AjvLikeError {
  instancePath?: string;
  keyword?: string;
  params?: Record<string, unknown>;
  message?: string;
  /** Present with ajv's `verbose` option: carries the model's `errorMessage`. */
  parentSchema?: { errorMessage?: unknown };
}

export function pointerToPath(pointer: string): string {
  if (!pointer) return '';
  let path = '';
  for (const raw of pointer.split('/').slice(1)) {
    const segment = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    // the model's own path syntax: ports[0].port, labels["app/x"]
    path = /^\d+$/.test(segment) ? joinFieldPath(path, Number(segment)) : joinFieldPath(path, segment);
  }
  return path;
}

export function ajvToFieldErrors(errors: readonly AjvLikeError[], root = ''): FieldError[] {
  // One error per field: a union (enum) fails once per alternative, and the
  // model's schemas carry a single `errorMessage` that says it best.
  const byPath = new Map<string, { message: string; preferred: boolean }>();
  for (const e of errors) {
    let path = pointerToPath(e.instancePath ?? '');
    let message = e.message ?? 'is invalid';
    let preferred = false;
    const params = e.params ?? {};
    if (e.keyword === 'additionalProperties' && typeof params.additionalProperty === 'string') {
      path = joinFieldPath(path, params.additionalProperty);
      message = 'unknown field';
      preferred = true;
    } else if (e.keyword === 'required' && typeof params.missingProperty === 'string') {
      path = joinFieldPath(path, params.missingProperty);
      message = 'is required';
      preferred = true;
    } else if (typeof e.parentSchema?.errorMessage === 'string') {
      message = e.parentSchema.errorMessage;
      preferred = true;
    }
    const full = joinPath(root, path);
    const known = byPath.get(full);
    if (!known || (preferred && !known.preferred)) byPath.set(full, { message, preferred });
  }
  return [...byPath].map(([path, { message }]) => ({ path, message }));
}
