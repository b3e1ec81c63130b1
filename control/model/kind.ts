// A kind is a small registered unit: the schema of its spec, the semantic
// checks JSON Schema cannot express, and the defaults. From that one
// definition come the API body schema (`{name, namespace?, ...spec}`), the
// API validator and the manifest validator, so they can never disagree.

import { Type, type Static, type TObject, type TProperties } from '@sinclair/typebox';
import { DEFAULT_NAMESPACE, Name } from './fields.ts';
import { fail, ok, type FieldError, type Result } from './result.ts';
import { schemaErrors } from './schema-check.ts';

export interface ObjectMeta {
  name: string;
  namespace: string;
}

export interface KindDefinition<S extends TProperties, T> {
  /** Manifest `kind` and store kind, e.g. "Route". */
  kind: string;
  /** Properties of `spec` (the manifest form; the API body adds name and namespace). */
  spec: S;
  description: string;
  /**
   * Semantic checks and defaults on a spec that already matches the schema.
   * Error paths are relative to the spec.
   */
  build(meta: ObjectMeta, spec: Static<TObject<S>>): { value: T; errors: FieldError[] };
}

export interface Kind<T> {
  kind: string;
  /** JSON schema of a manifest's `spec`. */
  specSchema: TObject;
  /** JSON schema of an API body: the spec plus `name` and optional `namespace`. */
  schema: TObject;
  /** Validates an API body and returns the domain object with defaults filled. */
  validate(input: unknown): Result<T>;
  /** Validates a manifest spec for an object whose metadata was validated already. */
  validateSpec(meta: ObjectMeta, spec: unknown): Result<T>;
}

export function defineKind<S extends TProperties, T>(def: KindDefinition<S, T>): Kind<T> {
  const specSchema = Type.Object(def.spec, { additionalProperties: false, description: def.description });
  const schema = Type.Object(
    {
      name: Name(`${def.kind} name (DNS-1123 label), unique per namespace`),
      namespace: Type.Optional(Name('namespace (DNS-1123 label), default "default"')),
      ...def.spec,
    },
    { additionalProperties: false, description: def.description, title: def.kind },
  );

  function validateSpec(meta: ObjectMeta, spec: unknown): Result<T> {
    const structural = schemaErrors(specSchema, spec);
    if (structural.length > 0) return fail(structural);
    const built = def.build(meta, spec as Static<TObject<S>>);
    return built.errors.length > 0 ? fail(built.errors) : ok(built.value);
  }

  function validate(input: unknown): Result<T> {
    const structural = schemaErrors(schema, input);
    if (structural.length > 0) return fail(structural);
    const { name, namespace, ...spec } = input as { name: string; namespace?: string };
    return validateSpec({ name, namespace: namespace ?? DEFAULT_NAMESPACE }, spec);
  }

  return { kind: def.kind, specSchema: specSchema as unknown as TObject, schema: schema as unknown as TObject, validate, validateSpec };
}
