// Service: name, ports with protocols, optional active health check, and the
// services it calls.

import { Type } from '@sinclair/typebox';
import { Enum, Name, Port, ServiceRef, duplicateErrors } from './fields.ts';
import { HealthCheckSchema, buildHealthCheck } from './health-check.ts';
import { defineKind } from './kind.ts';
import type { FieldError } from './result.ts';
import type { Service, ServicePort } from './types.ts';

export const PROTOCOLS = ['http', 'http2', 'grpc', 'tcp'] as const;

export const ServicePortSchema = Type.Object(
  {
    name: Type.Optional(Name('port name (DNS-1123 label), unique within the service')),
    port: Port(),
    protocol: Enum([...PROTOCOLS], 'application protocol'),
  },
  { additionalProperties: false },
);

export const serviceKind = defineKind({
  kind: 'Service',
  description: 'a service: its ports and protocols, optional active health check, and the services it calls',
  spec: {
    ports: Type.Array(ServicePortSchema, { minItems: 1, maxItems: 64, description: 'at least one port' }),
    healthCheck: Type.Optional(HealthCheckSchema),
    dependsOn: Type.Optional(
      Type.Array(ServiceRef(), { maxItems: 1024, description: 'services this one calls; when set, its proxies get config for these only' }),
    ),
  },
  build(meta, spec) {
    const errors: FieldError[] = [
      ...duplicateErrors(spec.ports, (p) => p.port, (i) => `ports[${i}].port`, 'port'),
      ...duplicateErrors(spec.ports, (p) => p.name, (i) => `ports[${i}].name`, 'port name'),
    ];
    const ports: ServicePort[] = spec.ports.map((p) => (p.name === undefined ? { port: p.port, protocol: p.protocol } : { name: p.name, port: p.port, protocol: p.protocol }));
    const value: Service = { name: meta.name, namespace: meta.namespace, ports };
    if (spec.healthCheck) {
      const hc = buildHealthCheck(spec.healthCheck, 'healthCheck');
      errors.push(...hc.errors);
      // The check is an HTTP GET; clusters of tcp ports get none, so on a
      // tcp-only service it was accepted and silently never ran.
      if (!spec.ports.some((p) => p.protocol !== 'tcp')) {
        errors.push({ path: 'healthCheck', message: 'is an HTTP health check, and this service has only tcp ports: it would never run' });
      }
      value.healthCheck = hc.value;
    }
    if (spec.dependsOn) {
      errors.push(...duplicateErrors(spec.dependsOn, (d) => d, (i) => `dependsOn[${i}]`, 'service'));
      value.dependsOn = [...spec.dependsOn];
    }
    return { value, errors };
  },
});

export const ServiceSchema = serviceKind.schema;
export const ServiceSpecSchema = serviceKind.specSchema;
export const validateService = serviceKind.validate;
