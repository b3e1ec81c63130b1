// Validation errors are values: every problem found in a resource, each with the
// field path where it sits, e.g. "filter_chains[0].filters[1].typed_config.stat_prefix".

export interface FieldError {
  /** Path from the resource root; "" means the resource itself. */
  path: string;
  message: string;
}

/** One line per error, prefixed with the resource's name: `name: path: message`. */
export function formatErrors(resourceName: string, errors: readonly FieldError[]): string {
  return errors
    .map((e) => `${resourceName}: ${e.path === '' ? '' : `${e.path}: `}${e.message}`)
    .join('\n');
}

/** Thrown only where the API has no error channel (encodeMessage, decode*). */
export class EnvoyCodecError extends Error {
  readonly errors: readonly FieldError[];
  constructor(what: string, errors: readonly FieldError[]) {
    super(formatErrors(what, errors));
    this.name = 'EnvoyCodecError';
    this.errors = errors;
  }
}

export function joinPath(base: string, field: string): string {
  return base === '' ? field : `${base}.${field}`;
}

export function indexPath(base: string, index: number): string {
  return `${base}[${index}]`;
}

export function keyPath(base: string, key: string): string {
  return `${base}[${JSON.stringify(key)}]`;
}
