// Validation results: errors are values that name the field they are about,
// so every boundary (API, CLI, manifests, registry) can report all of them.

export interface FieldError {
  /** Field path in the input, e.g. `ports[1].port` or `documents[2].spec.rules[0]`; "" is the input itself. */
  path: string;
  message: string;
}

export type Result<T> = { ok: true; value: T } | { ok: false; errors: FieldError[] };

export function ok<T>(value: T): Result<T> {
  return { ok: true, value };
}

export function fail<T = never>(errors: FieldError[]): Result<T> {
  return { ok: false, errors };
}

/** Joins a parent path and a child key or index the way users write them: `a.b`, `a[0]`, `labels["x/y"]`. */
export function joinPath(parent: string, key: string | number): string {
  if (typeof key === 'number') return `${parent}[${key}]`;
  if (/^[A-Za-z_$][A-Za-z0-9_$]*$/.test(key)) return parent === '' ? key : `${parent}.${key}`;
  return `${parent}[${JSON.stringify(key)}]`;
}

/** Prefixes every error's path, for validators nested in a larger document. */
export function prefixErrors(prefix: string, errors: FieldError[]): FieldError[] {
  if (prefix === '') return errors;
  return errors.map((e) => ({
    path: e.path === '' ? prefix : e.path.startsWith('[') ? prefix + e.path : `${prefix}.${e.path}`,
    message: e.message,
  }));
}
