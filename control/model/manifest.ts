// Declarative manifests: multi-document YAML of
// `{apiVersion: weft.dev/v1, kind, metadata: {name, namespace?}, spec}`.
// Each spec is checked by its kind's validator; error paths point into the
// file (`documents[2].spec.rules[0].destinations[0].weight`).

import { Type } from '@sinclair/typebox';
import { parseAllDocuments } from 'yaml';
import { nestingError } from './nesting.ts';
import { DEFAULT_NAMESPACE, Name } from './fields.ts';
import type { ObjectMeta } from './kind.ts';
import { kindNamed, kindNames } from './kinds.ts';
import { fail, ok, prefixErrors, type FieldError, type Result } from './result.ts';
import { schemaErrors } from './schema-check.ts';

export const API_VERSION = 'weft.dev/v1';

export interface Manifest<T = unknown> {
  apiVersion: typeof API_VERSION;
  kind: string;
  metadata: ObjectMeta;
  /** The validated domain object (Service, Route, ...) with name, namespace and defaults filled. */
  spec: T;
  /** Index of the YAML document it came from, when parsed from a file. */
  document?: number;
}

export const ManifestSchema = Type.Object(
  {
    apiVersion: Type.Literal(API_VERSION, { errorMessage: `must be ${API_VERSION}` }),
    kind: Type.String({ minLength: 1, description: 'Service, Route, DestinationPolicy, FilterBinding, ...' }),
    metadata: Type.Object(
      { name: Name('object name'), namespace: Type.Optional(Name('namespace, default "default"')) },
      { additionalProperties: false },
    ),
    spec: Type.Unknown({ description: "the kind's spec" }),
  },
  { additionalProperties: false, title: 'Manifest' },
);

/** Validates one parsed document; error paths are relative to it. */
export function validateManifest(doc: unknown): Result<Manifest> {
  const errors = schemaErrors(ManifestSchema, doc);
  const envelope = (doc ?? {}) as { kind?: unknown; metadata?: { name?: string; namespace?: string }; spec?: unknown };
  const kind = typeof envelope.kind === 'string' ? kindNamed(envelope.kind) : undefined;
  if (typeof envelope.kind === 'string' && !kind) {
    errors.push({ path: 'kind', message: `unknown kind ${JSON.stringify(envelope.kind)}; known kinds: ${kindNames().join(', ')}` });
  }
  if (!kind) return fail(errors);
  // The spec is checked even when the envelope is wrong (a misspelt
  // apiVersion, a bad name), so one round trip reports every error.
  const given = typeof envelope.metadata === 'object' && envelope.metadata !== null ? envelope.metadata : {};
  const metadata: ObjectMeta = {
    name: typeof given.name === 'string' ? given.name : '',
    namespace: typeof given.namespace === 'string' ? given.namespace : DEFAULT_NAMESPACE,
  };
  const spec = 'spec' in (envelope as object) || errors.length === 0 ? kind.validateSpec(metadata, envelope.spec) : undefined;
  if (spec && !spec.ok) errors.push(...prefixErrors('spec', spec.errors));
  if (errors.length > 0 || !spec?.ok) return fail(errors);
  return ok({ apiVersion: API_VERSION, kind: kind.kind, metadata, spec: spec.value });
}

/**
 * Each YAML document of a text as a value, or its YAML errors (path
 * `documents[i]`). Some errors surface only when the document becomes a value
 * (an alias to an anchor that does not exist, an alias bomb past the yaml
 * library's alias limit): those are YAML errors of that document too, not a
 * failure of the caller.
 */
export function yamlDocuments(yamlText: string): { at: string; value?: unknown; errors?: FieldError[] }[] {
  return parseAllDocuments(yamlText).map((doc, i) => {
    const at = `documents[${i}]`;
    const yamlError = (message: string): FieldError => ({ path: at, message: `YAML: ${message.split('\n')[0]!.replace(/:$/, '')}` });
    if (doc.errors.length > 0) return { at, errors: doc.errors.map((e) => yamlError(e.message)) };
    try {
      const value = doc.toJS() as unknown;
      const tooDeep = nestingError(value);
      if (tooDeep) return { at, errors: prefixErrors(at, [tooDeep]) };
      return { at, value };
    } catch (err) {
      return { at, errors: [yamlError((err as Error).message)] };
    }
  });
}

/** Parses and validates every document; all errors of all documents, or all manifests. Empty documents are skipped. */
export function parseManifests(yamlText: string): Result<Manifest[]> {
  const errors: FieldError[] = [];
  const manifests: Manifest[] = [];
  const firstAt = new Map<string, number>();
  yamlDocuments(yamlText).forEach(({ at, value, errors: yamlErrors }, i) => {
    if (yamlErrors) {
      errors.push(...yamlErrors);
      return;
    }
    if (value === null || value === undefined) return;
    if (typeof value !== 'object' || Array.isArray(value)) {
      errors.push({ path: at, message: 'must be a manifest: a mapping with apiVersion, kind, metadata and spec' });
      return;
    }
    const result = validateManifest(value);
    if (!result.ok) {
      errors.push(...prefixErrors(at, result.errors));
      return;
    }
    const { kind, metadata } = result.value;
    const key = `${kind}/${metadata.namespace}/${metadata.name}`;
    const first = firstAt.get(key);
    if (first !== undefined) errors.push({ path: `${at}.metadata.name`, message: `${key} is also defined in documents[${first}]` });
    else firstAt.set(key, i);
    manifests.push({ ...result.value, document: i });
  });
  return errors.length > 0 ? fail(errors) : ok(manifests);
}
