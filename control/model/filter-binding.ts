// FilterBinding: a wasm filter from the catalog bound to a service's inbound
// or outbound HTTP traffic. The filter's own config schema is checked by the
// catalog (it knows the schemas); here: shape, names, order.

import { Type } from '@sinclair/typebox';
import { Enum, Name, ServiceRef } from './fields.ts';
import { defineKind } from './kind.ts';
import type { FilterBinding } from './types.ts';

export const filterBindingKind = defineKind({
  kind: 'FilterBinding',
  description: "a wasm filter bound to a service's inbound or outbound HTTP traffic",
  spec: {
    service: ServiceRef('the service whose proxies run the filter'),
    direction: Enum(['inbound', 'outbound'], 'which side of the proxy'),
    filter: Name('catalog name of the filter, e.g. auth'),
    order: Type.Optional(Type.Integer({ minimum: -1000, maximum: 1000, errorMessage: 'must be an integer in -1000..1000', description: 'lower runs first, default 0' })),
    config: Type.Optional(Type.Unknown({ description: "JSON config, checked against the filter's schema" })),
    failurePolicy: Type.Optional(Enum(['fail_closed', 'fail_open'], 'what happens when the filter fails, default fail_closed')),
  },
  build(meta, spec) {
    const value: FilterBinding = {
      name: meta.name,
      namespace: meta.namespace,
      service: spec.service,
      direction: spec.direction,
      filter: spec.filter,
      order: spec.order ?? 0,
      config: spec.config === undefined ? {} : structuredClone(spec.config),
      // Closed by default: an auth filter that fails open is a hole nobody asked for.
      failurePolicy: spec.failurePolicy ?? 'fail_closed',
    };
    return { value, errors: [] };
  },
});

export const FilterBindingSchema = filterBindingKind.schema;
export const FilterBindingSpecSchema = filterBindingKind.specSchema;
export const validateFilterBinding = filterBindingKind.validate;
