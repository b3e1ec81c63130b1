// Declarative manifests: POST /apply (idempotent, one revision per apply,
// ?dryRun=true returns the diff instead), POST /delete, POST /diff. Bodies are
// multi-document YAML (application/yaml; error paths `documents[i]...`) or
// JSON `{manifests: [...]}` (paths `manifests[i]...`).
import type { FastifyPluginAsync } from 'fastify';
import { Type } from '@sinclair/typebox';
import { parseManifests, validateManifest, yamlDocuments, type Manifest } from '../../model/manifest.ts';
import { kindNamed, kindNames } from '../../model/kinds.ts';
import { DEFAULT_NAMESPACE } from '../../model/fields.ts';
import { actorOf } from '../auth.ts';
import { checkChanges, checkDelivery, commitChecked, isUnchanged, serialWrite } from '../desired-state.ts';
import { ApiError, prefixPaths, validationFailed, type FieldError } from '../errors.ts';
import { diffState } from '../proxy-diff.ts';
import { configWarnings } from '../warnings.ts';
import type { MeshModel } from '../../model/types.ts';
import { loneSurrogates } from '../json-body.ts';
import type { ApiDeps, Change } from '../deps.ts';
import { NoQuery } from '../no-query.ts';

const tags = ['Manifests'];

const ManifestsBody = Type.Object(
  { manifests: Type.Array(Type.Unknown(), { description: 'manifests {apiVersion: weft.dev/v1, kind, metadata, spec}' }) },
  { additionalProperties: false, title: 'Manifests' },
);
const DryRunQuery = Type.Object({ dryRun: Type.Optional(Type.Union([Type.Literal('true'), Type.Literal('false')], { errorMessage: 'must be "true" or "false"' })) }, { additionalProperties: false });

/** Body accepted by apply/delete/diff: YAML text (see app.ts's content parser) or `{manifests}`. */
const bodySchema = {
  description: 'multi-document YAML (application/yaml) or JSON {manifests: [...]}',
  content: {
    'application/json': { schema: ManifestsBody },
    'application/yaml': { schema: { type: 'string' } },
  },
};

type Body = string | { manifests: unknown[] };

interface Located {
  manifest: Manifest;
  /** Where the manifest sits in the request: "documents[2]" or "manifests[2]". */
  at: string;
}

function readManifests(body: Body | undefined): Located[] {
  if (typeof body === 'string') {
    const parsed = parseManifests(body);
    if (!parsed.ok) throw validationFailed(parsed.errors, 'manifests');
    const located = parsed.value.map((manifest, k) => ({ manifest, at: `documents[${manifest.document ?? k}]` }));
    // YAML's "\ud800" escape makes the same unsendable strings as JSON's (JSON bodies are checked as they are parsed).
    const halfPairs = located.flatMap(({ manifest, at }) => loneSurrogates({ metadata: manifest.metadata, spec: manifest.spec }, at));
    if (halfPairs.length > 0) throw validationFailed(halfPairs, 'manifests');
    return located;
  }
  if (!body || !Array.isArray((body as { manifests?: unknown }).manifests)) {
    throw validationFailed([{ path: 'manifests', message: 'is required (or send application/yaml)' }], 'body');
  }
  const errors: FieldError[] = [];
  const out: Located[] = [];
  (body as { manifests: unknown[] }).manifests.forEach((doc, i) => {
    const result = validateManifest(doc);
    if (!result.ok) errors.push(...prefixPaths(`manifests[${i}]`, result.errors));
    else out.push({ manifest: result.value, at: `manifests[${i}]` });
  });
  if (errors.length > 0) throw validationFailed(errors, 'manifests');
  return out;
}

/** For delete: only kind and metadata matter, so a spec that no longer validates can still be deleted. */
function readObjectRefs(body: Body | undefined): { kind: string; namespace: string; name: string; at: string }[] {
  const docs: { doc: unknown; at: string }[] =
    typeof body === 'string'
      ? yamlDocuments(body).map(({ at, value, errors }) => {
          if (errors) throw validationFailed(errors, 'manifests');
          return { doc: value, at };
        })
      : ((body as { manifests?: unknown[] } | undefined)?.manifests ?? []).map((doc, i) => ({ doc, at: `manifests[${i}]` }));
  const errors: FieldError[] = [];
  const refs: { kind: string; namespace: string; name: string; at: string }[] = [];
  for (const { doc, at } of docs) {
    if (doc === null || doc === undefined) continue;
    const d = doc as { kind?: unknown; metadata?: { name?: unknown; namespace?: unknown } };
    if (typeof d.kind !== 'string' || !kindNamed(d.kind)) {
      errors.push({ path: `${at}.kind`, message: `must be one of: ${kindNames().join(', ')}` });
      continue;
    }
    if (typeof d.metadata?.name !== 'string' || d.metadata.name === '') {
      errors.push({ path: `${at}.metadata.name`, message: 'is required' });
      continue;
    }
    const namespace = typeof d.metadata.namespace === 'string' ? d.metadata.namespace : DEFAULT_NAMESPACE;
    refs.push({ kind: d.kind, namespace, name: d.metadata.name, at });
  }
  if (errors.length > 0) throw validationFailed(errors, 'manifests');
  return refs;
}

/**
 * Apply and delete of no object at all are refused, as kubectl's "no objects passed to apply": an
 * empty file (a template that rendered nothing, the wrong path piped in) said "no changes" and
 * exited 0, and a pipeline took that for success.
 */
function requireObjects(body: Body | undefined, count: number, verb: string): void {
  if (count > 0) return;
  const path = typeof body === 'string' ? 'documents' : 'manifests';
  throw validationFailed([{ path, message: `holds no object to ${verb} (only comments, empty documents or nothing)` }], 'manifests');
}

export function summarize(verb: string, changes: Change[]): string {
  const names = changes.map((c) => `${c.kind.toLowerCase()}/${c.name}`);
  return `${verb} ${names.slice(0, 5).join(', ')}${names.length > 5 ? ` and ${names.length - 5} more` : ''}`;
}

/** Where each planned change's spec sits in the request ("documents[2].spec"). */
const specAt = (planned: { change: Change; at: string }[]) => (c: Change) => `${planned.find((p) => p.change === c)?.at ?? ''}.spec`;

/** `{warnings}` when there are any (control/api/warnings.ts): valid configuration that will still hurt. */
function warningsOf(model: MeshModel, changes: Change[], pathOf: (c: Change) => string): { warnings?: FieldError[] } {
  const warnings = configWarnings(model, changes, pathOf);
  return warnings.length > 0 ? { warnings } : {};
}

export const applyRoutes: FastifyPluginAsync<ApiDeps> = async (app, deps) => {
  /** The puts a manifest list asks for, with what each would do to the store. */
  const plan = (located: Located[]) =>
    located.map(({ manifest, at }) => {
      const change: Change = { op: 'put', kind: manifest.kind, namespace: manifest.metadata.namespace, name: manifest.metadata.name, spec: manifest.spec };
      const exists = deps.store.get(change.kind, change.namespace, change.name) !== undefined;
      const action = isUnchanged(deps, change) ? 'unchanged' : exists ? 'configured' : 'created';
      return { change, action, at };
    });

  const objectsOf = (planned: { change: Change; action: string }[]) =>
    planned.map(({ change, action }) => ({ op: change.op, kind: change.kind, namespace: change.namespace, name: change.name, action }));

  app.post<{ Querystring: { dryRun?: 'true' | 'false' }; Body: Body }>(
    '/apply',
    {
      schema: { tags, querystring: DryRunQuery, body: bodySchema, summary: 'create or update every object in a set of manifests, as one revision' },
      // viewers may dry-run; the handler demands admin for a real apply
      config: { readOnly: true },
    },
    async (request, reply) => {
      const dryRun = request.query.dryRun === 'true';
      if (!dryRun && request.operator?.role !== 'admin') throw new ApiError('FORBIDDEN', `token "${request.operator?.name}" has role viewer; apply needs role admin (viewers may use ?dryRun=true)`);
      const located = readManifests(request.body);
      requireObjects(request.body, located.length, 'apply');
      if (dryRun) {
        const planned = plan(located);
        const changes = planned.filter((p) => p.action !== 'unchanged').map((p) => p.change);
        const { state, errors } = await checkChanges(deps, changes, (c) => `${planned.find((p) => p.change === c)?.at ?? ''}.spec`);
        if (errors.length > 0) throw new ApiError('INVALID_REFERENCE', `${errors[0]!.path}: ${errors[0]!.message}`, errors);
        // Refused as the apply itself would be (kubectl's server-side dry run runs admission too).
        checkDelivery(deps, changes, state);
        const diff = { objects: objectsOf(planned), proxies: diffState(deps, state) };
        return { dryRun: true, revision: deps.store.revision(), changed: changes.length > 0, objects: objectsOf(planned), diff, ...warningsOf(deps.buildModel(state), changes, specAt(planned)) };
      }
      // Planned inside the write, so "created" / "configured" / "unchanged" describe the state this apply changed.
      return serialWrite(deps, async () => {
        const planned = plan(located);
        const changes = planned.filter((p) => p.action !== 'unchanged').map((p) => p.change);
        if (changes.length === 0) return { revision: deps.store.revision(), changed: false, objects: objectsOf(planned) };
        const result = await commitChecked(deps, changes, { actor: actorOf(request), summary: summarize('apply', changes) }, specAt(planned));
        reply.header('x-weft-revision', String(result.revision));
        return { revision: result.revision, changed: result.changed, objects: objectsOf(planned), ...warningsOf(deps.buildModel(), changes, specAt(planned)) };
      });
    },
  );

  app.post<{ Body: Body }>(
    '/delete',
    { schema: { tags, querystring: NoQuery, body: bodySchema, summary: 'delete every object named in a set of manifests, as one revision' } },
    async (request) => {
      const refs = readObjectRefs(request.body);
      requireObjects(request.body, refs.length, 'delete');
      return serialWrite(deps, async () => {
        const objects = refs.map((r) => ({ op: 'delete' as const, kind: r.kind, namespace: r.namespace, name: r.name, action: deps.store.get(r.kind, r.namespace, r.name) ? 'deleted' : 'absent' }));
        const changes: Change[] = objects.filter((o) => o.action === 'deleted').map(({ op, kind, namespace, name }) => ({ op, kind, namespace, name }));
        if (changes.length === 0) return { revision: deps.store.revision(), changed: false, objects };
        const result = await commitChecked(deps, changes, { actor: actorOf(request), summary: summarize('delete', changes) }, (c) => refs.find((r) => r.kind === c.kind && r.name === c.name && r.namespace === c.namespace)?.at ?? '');
        return { revision: result.revision, changed: result.changed, objects };
      });
    },
  );

  app.post<{ Body: Body }>(
    '/diff',
    { schema: { tags, querystring: NoQuery, body: bodySchema, summary: "which proxies' resources applying these manifests would change, resource by resource" }, config: { readOnly: true } },
    async (request) => {
      const planned = plan(readManifests(request.body));
      const changes = planned.filter((p) => p.action !== 'unchanged').map((p) => p.change);
      const { state, errors } = await checkChanges(deps, changes, (c) => `${planned.find((p) => p.change === c)?.at ?? ''}.spec`);
      if (errors.length > 0) throw new ApiError('INVALID_REFERENCE', `${errors[0]!.path}: ${errors[0]!.message}`, errors);
      return { revision: deps.store.revision(), objects: objectsOf(planned), proxies: diffState(deps, state), ...warningsOf(deps.buildModel(state), changes, specAt(planned)) };
    },
  );
};
