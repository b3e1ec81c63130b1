// Instance registration: what a workload (or its sidecar) sends to join a
// service. The registry assigns the id and owns liveness.

import { Type } from '@sinclair/typebox';
import { isIP } from 'node:net';
import { Enum, Labels, Port, isAddress, labelErrors } from './fields.ts';
import { fail, ok, type FieldError, type Result } from './result.ts';
import { schemaErrors } from './schema-check.ts';
import type { InstanceHealth } from './types.ts';

export const INSTANCE_HEALTH = ['healthy', 'unhealthy', 'draining'] as const;
export const MAX_TTL_SECONDS = 86_400;

export const InstanceRegistrationSchema = Type.Object(
  {
    address: Type.String({ minLength: 1, maxLength: 253, description: 'IPv4 or IPv6 address (Envoy resolves no host names in EDS); for sidecar\'d services, the sidecar\'s inbound listener' }),
    port: Port(),
    labels: Type.Optional(Labels()),
    zone: Type.Optional(Type.String({ minLength: 1, maxLength: 128, pattern: '^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$', errorMessage: "must be 1-128 letters, digits, '-', '_' or '.'", description: 'locality zone' })),
    ttlSeconds: Type.Optional(
      Type.Integer({ minimum: 0, maximum: MAX_TTL_SECONDS, errorMessage: `must be an integer number of seconds in 0..${MAX_TTL_SECONDS}`, description: 'heartbeat TTL; 0 (default) = static registration' }),
    ),
    health: Type.Optional(Enum([...INSTANCE_HEALTH], 'initial health, default healthy')),
  },
  { additionalProperties: false, title: 'InstanceRegistration' },
);

/** A validated registration with defaults filled; the registry adds id, service and namespace. */
export interface InstanceRegistration {
  address: string;
  port: number;
  labels: Record<string, string>;
  zone?: string;
  ttlSeconds: number;
  health: InstanceHealth;
}

export function validateInstanceRegistration(input: unknown): Result<InstanceRegistration> {
  const structural = schemaErrors(InstanceRegistrationSchema, input);
  if (structural.length > 0) return fail(structural);
  const body = input as { address: string; port: number; labels?: Record<string, string>; zone?: string; ttlSeconds?: number; health?: InstanceHealth };
  const errors: FieldError[] = [];
  // Instances reach Envoy over EDS, where an endpoint must be an IP: one host
  // name failed the Envoy check of every EDS batch it was in, and so froze
  // the endpoints of every cluster published with it (all of them at start).
  if (!isAddress(body.address)) errors.push({ path: 'address', message: 'must be an IPv4 or IPv6 address' });
  else if (isIP(body.address) === 0) {
    errors.push({ path: 'address', message: `must be an IPv4 or IPv6 address, not a host name ("${body.address}"): Envoy takes endpoints over EDS as IPs and resolves no names there; register the address the name resolves to` });
  }
  errors.push(...labelErrors(body.labels ?? {}, 'labels'));
  if (errors.length > 0) return fail(errors);
  const value: InstanceRegistration = {
    address: body.address,
    port: body.port,
    labels: { ...(body.labels ?? {}) },
    ttlSeconds: body.ttlSeconds ?? 0,
    health: body.health ?? 'healthy',
  };
  if (body.zone !== undefined) value.zone = body.zone;
  return ok(value);
}
