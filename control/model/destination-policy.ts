// DestinationPolicy: how callers talk to a service (Istio's DestinationRule):
// subsets by label, load balancing, circuit breakers, outlier detection,
// active health check, connection timeouts.

import { Type } from '@sinclair/typebox';
import { DurationMs, Enum, Name, PositiveInt, ServiceRef, duplicateErrors, headerNameError, labelErrors } from './fields.ts';
import { HealthCheckSchema, buildHealthCheck } from './health-check.ts';
import { defineKind } from './kind.ts';
import type { FieldError } from './result.ts';
import type { DestinationPolicy, LoadBalancer, OutlierDetection } from './types.ts';

export const LB_POLICIES = ['round_robin', 'least_request', 'random', 'ring_hash'] as const;

/** Envoy's outlier detection defaults, filled for fields left out. */
export const OUTLIER_DEFAULTS = { consecutive5xx: 5, intervalMs: 10_000, baseEjectionTimeMs: 30_000, maxEjectionPercent: 10 } as const;

export const SubsetSchema = Type.Object(
  { name: Name('subset name, unique within the policy'), labels: Type.Record(Type.String(), Type.String(), { minProperties: 1, description: 'instances carrying all these labels', errorMessage: 'must be an object of at least one string label' }) },
  { additionalProperties: false },
);

export const LoadBalancerSchema = Type.Object(
  {
    policy: Enum([...LB_POLICIES], 'load-balancing policy'),
    hashOn: Type.Optional(
      Type.Object(
        {
          header: Type.Optional(Type.String({ minLength: 1, maxLength: 256, description: 'hash on this request header' })),
          cookie: Type.Optional(Type.String({ minLength: 1, maxLength: 256, pattern: '^[!#$%&\'*+.^_`|~0-9A-Za-z-]+$', errorMessage: 'must be a valid cookie name', description: 'hash on this cookie' })),
          ttlSeconds: Type.Optional(Type.Integer({ minimum: 1, maximum: 31_536_000, errorMessage: 'must be an integer number of seconds in 1..31536000', description: 'generate the cookie with this TTL when absent' })),
        },
        { additionalProperties: false, description: 'ring_hash only: exactly one of header, cookie' },
      ),
    ),
  },
  { additionalProperties: false },
);

export const CircuitBreakersSchema = Type.Object(
  {
    maxConnections: Type.Optional(PositiveInt('max connections to the service')),
    maxPendingRequests: Type.Optional(PositiveInt('max requests waiting for a connection')),
    maxRequests: Type.Optional(PositiveInt('max concurrent requests')),
    // 0 is Envoy's way to allow no retry at all (each is refused as a retry overflow).
    maxRetries: Type.Optional(Type.Integer({ minimum: 0, maximum: 2 ** 31 - 1, description: 'max concurrent retries, default 3; 0: none', errorMessage: `must be an integer in 0..${2 ** 31 - 1}` })),
  },
  { additionalProperties: false },
);

export const OutlierDetectionSchema = Type.Object(
  {
    consecutive5xx: Type.Optional(PositiveInt(`consecutive 5xx before ejection, default ${OUTLIER_DEFAULTS.consecutive5xx}`, 1000)),
    intervalMs: Type.Optional(DurationMs(`analysis interval, default ${OUTLIER_DEFAULTS.intervalMs}`)),
    baseEjectionTimeMs: Type.Optional(DurationMs(`base ejection time, default ${OUTLIER_DEFAULTS.baseEjectionTimeMs}`)),
    // Envoy's max_ejection_percent is a whole number (UInt32Value): 12.5 would fail the snapshot, not round.
    maxEjectionPercent: Type.Optional(
      Type.Integer({ minimum: 0, maximum: 100, description: `max share of instances ejected, a whole percentage, default ${OUTLIER_DEFAULTS.maxEjectionPercent}`, errorMessage: 'must be a whole percentage in 0..100' }),
    ),
  },
  { additionalProperties: false },
);

function buildLoadBalancer(input: { policy: (typeof LB_POLICIES)[number]; hashOn?: { header?: string; cookie?: string; ttlSeconds?: number } }, errors: FieldError[]): LoadBalancer {
  if (input.policy !== 'ring_hash') {
    if (input.hashOn) errors.push({ path: 'loadBalancer.hashOn', message: 'only applies to policy ring_hash' });
    return { policy: input.policy };
  }
  const hashOn = input.hashOn;
  if (!hashOn || (hashOn.header === undefined) === (hashOn.cookie === undefined)) {
    errors.push({ path: 'loadBalancer.hashOn', message: 'ring_hash needs exactly one of header, cookie' });
    return { policy: 'ring_hash', hashOn: { header: hashOn?.header ?? '' } };
  }
  if (hashOn.header !== undefined) {
    const bad = headerNameError(hashOn.header, 'loadBalancer.hashOn.header', true);
    if (bad) errors.push(bad);
    if (hashOn.ttlSeconds !== undefined) errors.push({ path: 'loadBalancer.hashOn.ttlSeconds', message: 'only applies to cookie hashing' });
    return { policy: 'ring_hash', hashOn: { header: hashOn.header.toLowerCase() } };
  }
  const cookie: { cookie: string; ttlSeconds?: number } = { cookie: hashOn.cookie! };
  if (hashOn.ttlSeconds !== undefined) cookie.ttlSeconds = hashOn.ttlSeconds;
  return { policy: 'ring_hash', hashOn: cookie };
}

export const destinationPolicyKind = defineKind({
  kind: 'DestinationPolicy',
  description: 'how callers talk to a service: subsets, load balancing, circuit breakers, outlier detection, health check, timeouts',
  spec: {
    service: ServiceRef('the service this policy applies to'),
    subsets: Type.Optional(Type.Array(SubsetSchema, { maxItems: 64 })),
    loadBalancer: Type.Optional(LoadBalancerSchema),
    circuitBreakers: Type.Optional(CircuitBreakersSchema),
    outlierDetection: Type.Optional(OutlierDetectionSchema),
    healthCheck: Type.Optional(HealthCheckSchema),
    connectTimeoutMs: Type.Optional(DurationMs('TCP connect timeout')),
    idleTimeoutMs: Type.Optional(DurationMs('idle connection timeout')),
  },
  build(meta, spec) {
    const errors: FieldError[] = [];
    const value: DestinationPolicy = { name: meta.name, namespace: meta.namespace, service: spec.service };
    if (spec.subsets) {
      errors.push(...duplicateErrors(spec.subsets, (s) => s.name, (i) => `subsets[${i}].name`, 'subset name'));
      spec.subsets.forEach((s, i) => errors.push(...labelErrors(s.labels, `subsets[${i}].labels`)));
      value.subsets = spec.subsets.map((s) => ({ name: s.name, labels: { ...s.labels } }));
    }
    if (spec.loadBalancer) value.loadBalancer = buildLoadBalancer(spec.loadBalancer, errors);
    if (spec.circuitBreakers) value.circuitBreakers = { ...spec.circuitBreakers };
    if (spec.outlierDetection) {
      const od: OutlierDetection = { ...OUTLIER_DEFAULTS, ...spec.outlierDetection };
      value.outlierDetection = od;
    }
    if (spec.healthCheck) {
      const hc = buildHealthCheck(spec.healthCheck, 'healthCheck');
      errors.push(...hc.errors);
      value.healthCheck = hc.value;
    }
    if (spec.connectTimeoutMs !== undefined) value.connectTimeoutMs = spec.connectTimeoutMs;
    if (spec.idleTimeoutMs !== undefined) value.idleTimeoutMs = spec.idleTimeoutMs;
    return { value, errors };
  },
});

export const DestinationPolicySchema = destinationPolicyKind.schema;
export const DestinationPolicySpecSchema = destinationPolicyKind.specSchema;
export const validateDestinationPolicy = destinationPolicyKind.validate;
