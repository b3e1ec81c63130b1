// Every error the REST API returns, in one place (fastify's lib/errors.js
// lesson): a code a client can switch on, its HTTP status, and the contract's
// JSON shape `{error: {code, message, details: [{path, message}]}}`.

export interface FieldError {
  path: string;
  message: string;
}

export const ErrorCodes = {
  /** The body, query or a manifest failed schema or semantic validation. */
  VALIDATION_FAILED: 400,
  /** The request is well formed but refers to something that does not exist (a route to an unknown service or subset). */
  INVALID_REFERENCE: 422,
  /** An uploaded wasm module failed the module checks. */
  INVALID_MODULE: 400,
  /**
   * The change is well formed and its references resolve, but the Envoy configuration it would give some proxy fails
   * translation or Envoy's own validation, so the xDS server would send that proxy nothing further (control/api/write-check.ts).
   */
  UNDELIVERABLE: 422,
  /** No token, or a token the control plane does not know. */
  UNAUTHENTICATED: 401,
  /** A valid token whose role does not allow the request (viewer writing). */
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  /** The path exists but takes other methods (the reply's `Allow` header names them). */
  METHOD_NOT_ALLOWED: 405,
  /** Creating something that exists already. */
  ALREADY_EXISTS: 409,
  /** The request conflicts with the state it would change (revoking the last admin token). */
  CONFLICT: 409,
  /** An `If-Match` or `If-None-Match` precondition did not hold: the object changed (or appeared) since the caller read it. */
  PRECONDITION_FAILED: 412,
  /** The body is larger than the API accepts. */
  PAYLOAD_TOO_LARGE: 413,
  UNSUPPORTED_MEDIA_TYPE: 415,
  /** A proxy the request must read from (its admin config dump) did not answer, or cannot be reached. */
  PROXY_UNREACHABLE: 502,
  /**
   * A dependency the request needs is not wired in this process, or cannot serve it now: a store write that failed
   * (a full disk; nothing was stored), a store that refuses writes until the control plane restarts.
   */
  UNAVAILABLE: 503,
  INTERNAL: 500,
} as const;

export type ErrorCode = keyof typeof ErrorCodes;

export interface ErrorBody {
  error: { code: ErrorCode; message: string; details: FieldError[] };
}

/**
 * An error as a value: route handlers throw it (fastify turns it into a reply
 * through the error handler in app.ts) so handlers stay linear.
 */
export class ApiError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly details: FieldError[];

  constructor(code: ErrorCode, message: string, details: FieldError[] = []) {
    super(message);
    this.code = code;
    this.status = ErrorCodes[code];
    this.details = details;
  }

  toBody(): ErrorBody {
    return { error: { code: this.code, message: this.message, details: this.details } };
  }
}

export function validationFailed(details: FieldError[], what = 'request'): ApiError {
  const first = details[0];
  const message = first
    ? `invalid ${what}: ${first.path ? `${first.path}: ` : ''}${first.message}${details.length > 1 ? ` (and ${details.length - 1} more)` : ''}`
    : `invalid ${what}`;
  return new ApiError('VALIDATION_FAILED', message, details);
}

export function notFound(what: string): ApiError {
  return new ApiError('NOT_FOUND', `${what} not found`);
}

/** Prefixes every path with `prefix` (e.g. "spec" or "documents[2]"), joining with "." or nothing before "[". */
export function prefixPaths(prefix: string, errors: FieldError[]): FieldError[] {
  return errors.map((e) => ({ path: joinPath(prefix, e.path), message: e.message }));
}

export function joinPath(prefix: string, path: string): string {
  if (!prefix) return path;
  if (!path) return prefix;
  return path.startsWith('[') ? `${prefix}${path}` : `${prefix}.${path}`;
}
