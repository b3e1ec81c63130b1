// What a matched route rule does besides choosing destinations: retries,
// header mutation, mirroring, fault injection.

import { Type, type Static } from '@sinclair/typebox';
import { DurationMs, Enum, Name, Percentage, PositiveInt, ServiceRef, duplicateErrors, headerNameError, headerValueError } from './fields.ts';
import type { FieldError } from './result.ts';
import type { FaultInjection, HeaderMutation, HttpRouteRule, RetryPolicy } from './types.ts';

/**
 * Envoy's retry_on conditions (HTTP x-envoy-retry-on and gRPC
 * x-envoy-retry-grpc-on) that both data planes run. Left out:
 * retriable-headers (needs retriable_headers, which a rule cannot set, so it
 * never fires), http3-post-connect-failure (weft never speaks HTTP/3
 * upstream), envoy-ratelimited (weft configures no rate limiting) and
 * reset-before-request; the weft sidecar NACKs all four, so accepting them
 * froze every caller's route configuration.
 */
export const RETRY_ON = [
  '5xx', 'gateway-error', 'reset', 'connect-failure', 'retriable-4xx',
  'refused-stream', 'retriable-status-codes',
  'cancelled', 'deadline-exceeded', 'internal', 'resource-exhausted', 'unavailable',
] as const;

export const DEFAULT_RETRY_ON = ['connect-failure', 'refused-stream', '5xx'];

/**
 * The retry every HTTP route of a proxy gets when its rule sets no `retries`: twice, on another host where there
 * is one, for a request that never reached an app (the connection to the host failed, or the host refused the
 * stream: an HTTP/2 server's GOAWAY, a gRPC server's max_connection_age). Safe for any method, since the app saw
 * nothing. Envoy retries nothing without a retry_policy, so a gRPC server closing its connections failed about
 * 1% of calls through a proxy, where called directly (grpc-js retries those itself) none failed. Istio retries
 * these by default too (and also on 503 and gRPC unavailable/cancelled, which the app may have handled).
 */
export const DEFAULT_ROUTE_RETRY = { attempts: 2, retryOn: ['connect-failure', 'refused-stream'] } as const;

export const RetryPolicySchema = Type.Object(
  {
    attempts: Type.Integer({ minimum: 0, maximum: 10, errorMessage: 'must be an integer in 0..10', description: 'retries after the first try; 0: none, not even the default retry of requests that never reached the app' }),
    perTryTimeoutMs: Type.Optional(DurationMs('timeout of each try')),
    retryOn: Type.Optional(Type.Array(Enum([...RETRY_ON], 'Envoy retry_on condition'), { minItems: 1, description: `default ${DEFAULT_RETRY_ON.join(',')}` })),
    retriableStatusCodes: Type.Optional(
      Type.Array(Type.Integer({ minimum: 100, maximum: 599, errorMessage: 'must be an HTTP status in 100..599' }), { minItems: 1, maxItems: 32 }),
    ),
  },
  { additionalProperties: false },
);

export const HeaderMutationSchema = Type.Object(
  {
    add: Type.Optional(
      Type.Array(
        Type.Object(
          { name: Type.String({ minLength: 1, maxLength: 256 }), value: Type.String({ maxLength: 8192 }), append: Type.Optional(Type.Boolean({ description: 'append to an existing value instead of replacing it' })) },
          { additionalProperties: false },
        ),
        { maxItems: 64 },
      ),
    ),
    remove: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 256 }), { maxItems: 64 })),
  },
  { additionalProperties: false },
);

export const MirrorSchema = Type.Object(
  { service: ServiceRef(), subset: Type.Optional(Name('subset of the mirror service')), percentage: Type.Optional(Percentage('share of requests mirrored, default 100')) },
  { additionalProperties: false },
);

export const FaultSchema = Type.Object(
  {
    delay: Type.Optional(Type.Object({ fixedDelayMs: DurationMs('injected delay'), percentage: Percentage('share of requests delayed') }, { additionalProperties: false })),
    abort: Type.Optional(
      Type.Object(
        { httpStatus: Type.Integer({ minimum: 200, maximum: 599, errorMessage: 'must be an HTTP status in 200..599' }), percentage: Percentage('share of requests aborted') },
        { additionalProperties: false },
      ),
    ),
    responseRateLimit: Type.Optional(
      Type.Object(
        {
          limitKbps: PositiveInt('response body rate in KiB/s (Envoy limit_kbps); headers are not held back'),
          percentage: Percentage('share of requests whose response is slowed'),
        },
        { additionalProperties: false },
      ),
    ),
  },
  { additionalProperties: false },
);

export function buildRetries(input: Static<typeof RetryPolicySchema>, path: string, errors: FieldError[]): RetryPolicy {
  const retryOn = input.retryOn ? [...input.retryOn] : [...DEFAULT_RETRY_ON];
  errors.push(...duplicateErrors(retryOn, (c) => c, (i) => `${path}.retryOn[${i}]`, 'condition'));
  const value: RetryPolicy = { attempts: input.attempts, retryOn };
  if (input.perTryTimeoutMs !== undefined) value.perTryTimeoutMs = input.perTryTimeoutMs;
  if (input.retriableStatusCodes) {
    if (!retryOn.includes('retriable-status-codes')) {
      errors.push({ path: `${path}.retriableStatusCodes`, message: "needs 'retriable-status-codes' in retryOn to take effect" });
    }
    value.retriableStatusCodes = [...input.retriableStatusCodes];
  } else if (retryOn.includes('retriable-status-codes')) {
    errors.push({ path: `${path}.retriableStatusCodes`, message: "is required when retryOn includes 'retriable-status-codes'" });
  }
  return value;
}

export function buildHeaderMutation(input: Static<typeof HeaderMutationSchema>, path: string, errors: FieldError[]): HeaderMutation {
  const value: HeaderMutation = {};
  if (input.add) {
    value.add = input.add.map((h, i) => {
      const at = `${path}.add[${i}]`;
      for (const bad of [headerNameError(h.name, `${at}.name`, false), headerValueError(h.value, `${at}.value`)]) if (bad) errors.push(bad);
      // Envoy parses an added value as a substitution format: "%...%" is a
      // command and a lone "%" a config error (NACK); the weft sidecar
      // supports no command at all. The value would never arrive as written.
      if (h.value.includes('%')) {
        errors.push({ path: `${at}.value`, message: "must not contain '%': Envoy reads %...% in an added header value as a command operator (and rejects a lone %), which the weft sidecar does not support" });
      }
      return h.append === undefined ? { name: h.name.toLowerCase(), value: h.value } : { name: h.name.toLowerCase(), value: h.value, append: h.append };
    });
  }
  if (input.remove) {
    input.remove.forEach((name, i) => {
      const bad = headerNameError(name, `${path}.remove[${i}]`, false);
      if (bad) errors.push(bad);
    });
    value.remove = input.remove.map((n) => n.toLowerCase());
  }
  return value;
}

export function buildMirror(input: Static<typeof MirrorSchema>): NonNullable<HttpRouteRule['mirror']> {
  const value: NonNullable<HttpRouteRule['mirror']> = { service: input.service, percentage: input.percentage ?? 100 };
  if (input.subset !== undefined) value.subset = input.subset;
  return value;
}

export function buildFault(input: Static<typeof FaultSchema>, path: string, errors: FieldError[]): FaultInjection {
  if (!input.delay && !input.abort && !input.responseRateLimit) errors.push({ path, message: 'must set delay, abort, responseRateLimit or several' });
  const value: FaultInjection = {};
  if (input.delay) value.delay = { fixedDelayMs: input.delay.fixedDelayMs, percentage: input.delay.percentage };
  if (input.abort) value.abort = { httpStatus: input.abort.httpStatus, percentage: input.abort.percentage };
  if (input.responseRateLimit) value.responseRateLimit = { limitKbps: input.responseRateLimit.limitKbps, percentage: input.responseRateLimit.percentage };
  return value;
}
