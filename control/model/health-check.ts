// Active HTTP health check input, shared by Service and DestinationPolicy.

import { Type, type Static } from '@sinclair/typebox';
import { DurationMs, PositiveInt } from './fields.ts';
import type { HttpHealthCheck } from './types.ts';
import type { FieldError } from './result.ts';

export const HEALTH_CHECK_DEFAULTS = {
  intervalMs: 10_000,
  timeoutMs: 1_000,
  healthyThreshold: 2,
  unhealthyThreshold: 3,
} as const;

export const HealthCheckSchema = Type.Object(
  {
    path: Type.String({ minLength: 1, maxLength: 1024, description: 'absolute request path, e.g. /healthz' }),
    intervalMs: Type.Optional(DurationMs(`time between checks, default ${HEALTH_CHECK_DEFAULTS.intervalMs}`)),
    timeoutMs: Type.Optional(DurationMs(`time to wait for a response, default ${HEALTH_CHECK_DEFAULTS.timeoutMs}`)),
    healthyThreshold: Type.Optional(PositiveInt(`successes before healthy, default ${HEALTH_CHECK_DEFAULTS.healthyThreshold}`, 100)),
    unhealthyThreshold: Type.Optional(PositiveInt(`failures before unhealthy, default ${HEALTH_CHECK_DEFAULTS.unhealthyThreshold}`, 100)),
    expectedStatuses: Type.Optional(
      Type.Array(
        Type.Object(
          {
            start: Type.Integer({ minimum: 100, maximum: 599, errorMessage: 'must be an HTTP status in 100..599' }),
            end: Type.Integer({ minimum: 101, maximum: 600, errorMessage: 'must be an HTTP status in 101..600 (exclusive end)' }),
          },
          { additionalProperties: false },
        ),
        { minItems: 1, description: 'healthy status ranges [start, end), default [200, 400)' },
      ),
    ),
  },
  { additionalProperties: false, description: 'active HTTP health check' },
);

export function buildHealthCheck(input: Static<typeof HealthCheckSchema>, path: string): { value: HttpHealthCheck; errors: FieldError[] } {
  const errors: FieldError[] = [];
  if (!input.path.startsWith('/')) errors.push({ path: `${path}.path`, message: "must be an absolute path starting with '/'" });
  else if (/[\s?#\x00-\x1f\x7f]/.test(input.path)) errors.push({ path: `${path}.path`, message: 'must be a plain path without whitespace, control characters, query or fragment' });
  const value: HttpHealthCheck = {
    path: input.path,
    intervalMs: input.intervalMs ?? HEALTH_CHECK_DEFAULTS.intervalMs,
    timeoutMs: input.timeoutMs ?? HEALTH_CHECK_DEFAULTS.timeoutMs,
    healthyThreshold: input.healthyThreshold ?? HEALTH_CHECK_DEFAULTS.healthyThreshold,
    unhealthyThreshold: input.unhealthyThreshold ?? HEALTH_CHECK_DEFAULTS.unhealthyThreshold,
  };
  if (value.timeoutMs > value.intervalMs) {
    errors.push({ path: `${path}.timeoutMs`, message: `must not exceed intervalMs (${value.intervalMs})` });
  }
  if (input.expectedStatuses) {
    input.expectedStatuses.forEach((range, i) => {
      if (range.end <= range.start) errors.push({ path: `${path}.expectedStatuses[${i}].end`, message: 'must be greater than start' });
    });
    value.expectedStatuses = input.expectedStatuses.map((r) => ({ start: r.start, end: r.end }));
  }
  return { value, errors };
}
