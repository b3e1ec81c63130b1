// CRUD for the operator kinds: services, routes, destination policies,
// filter bindings. One table, one set of handlers: each kind's TypeBox schema
// (from control/model) is the request schema, its validator adds the
// semantic checks and defaults, and every write goes through commitChecked.
import { createHash } from 'node:crypto';
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import { Type, type TObject } from '@sinclair/typebox';
import type { Kind } from '../../model/kind.ts';
import { kindNamed, kindNames } from '../../model/kinds.ts';
import { actorOf } from '../auth.ts';
import { canonical, commitChecked, serialWrite } from '../desired-state.ts';
import { ApiError, notFound, validationFailed } from '../errors.ts';
import type { ApiDeps, StoredObject } from '../deps.ts';

interface ObjectKind {
  /** URL segment under /api/v1. */
  path: string;
  /** Human name in messages and summaries. */
  noun: string;
  kind: Kind<unknown>;
}

/** "DestinationPolicy" -> "destination-policies": the URL of every kind control/model registers. */
export function kindPath(kind: string): string {
  const kebab = kind.replace(/([a-z0-9])([A-Z])/g, '$1-$2').toLowerCase();
  return /[^aeiou]y$/.test(kebab) ? `${kebab.slice(0, -1)}ies` : `${kebab}s`;
}

/** Every registered kind gets CRUD routes, so a new kind (one defineKind file) is in the API at once. */
export function objectKinds(): ObjectKind[] {
  return kindNames().map((name) => ({
    path: kindPath(name),
    noun: name.replace(/([a-z0-9])([A-Z])/g, '$1 $2').toLowerCase(),
    kind: kindNamed(name)!,
  }));
}

const NamespaceQuery = Type.Object(
  { namespace: Type.Optional(Type.String({ minLength: 1, maxLength: 63, pattern: '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$' })) },
  { additionalProperties: false },
);
const NameParams = Type.Object({ name: Type.String({ minLength: 1, maxLength: 253 }) });

/** The PUT body: the POST body with `name` optional (the URL names the object). */
function putSchema(schema: TObject): TObject {
  const { name, ...rest } = schema.properties;
  return Type.Object({ name: Type.Optional(name!), ...rest }, { additionalProperties: false, title: schema.title });
}

/** The API's view of a stored object: the domain object itself. */
export function objectView(o: StoredObject): unknown {
  return o.spec;
}

/**
 * An object's entity tag: a hash of its canonical JSON, so it changes exactly
 * when the object does (key order and revisions elsewhere do not move it).
 */
export function etagOf(o: Pick<StoredObject, 'spec'>): string {
  return `"${createHash('sha256').update(canonical(o.spec)).digest('hex').slice(0, 32)}"`;
}

/**
 * Optimistic concurrency, as RFC 9110 has it: `If-Match: "<etag>"` (or `*`)
 * makes a PUT or DELETE apply only to the object as the caller read it, and
 * `If-None-Match: *` makes a PUT create only. Checked inside the write queue,
 * against the state the write would change; a miss is a 412 and stores
 * nothing. Two operators editing one route from the same read: the second
 * gets 412 instead of silently undoing the first one's change.
 */
function checkPreconditions(request: FastifyRequest, current: StoredObject | undefined, what: string): void {
  const ifMatch = request.headers['if-match'];
  if (ifMatch !== undefined) {
    const tags = ifMatch.split(',').map((t) => t.trim().replace(/^W\//, ''));
    const held = current ? etagOf(current) : undefined;
    const ok = held !== undefined && (tags.includes('*') || tags.includes(held));
    if (!ok) {
      throw new ApiError('PRECONDITION_FAILED', current
        ? `${what} has changed since it was read (If-Match ${ifMatch}, now ${held}): read it again and reapply the change`
        : `${what} does not exist (If-Match ${ifMatch})`);
    }
  }
  const ifNoneMatch = request.headers['if-none-match'];
  if (ifNoneMatch !== undefined && current) {
    const tags = ifNoneMatch.split(',').map((t) => t.trim().replace(/^W\//, ''));
    if (tags.includes('*') || tags.includes(etagOf(current))) {
      throw new ApiError('PRECONDITION_FAILED', `${what} exists already (If-None-Match ${ifNoneMatch})`);
    }
  }
}

/** A namespace in the body and one in `?namespace=` must be the same one. */
function checkNamespaceAgrees(body: Record<string, unknown>, queried: string | undefined, noun: string): void {
  if (body.namespace !== undefined && queried !== undefined && body.namespace !== queried) {
    throw validationFailed([{ path: 'namespace', message: `does not match ?namespace= ("${queried}")` }], noun);
  }
}

export const objectRoutes: FastifyPluginAsync<ApiDeps> = async (app, deps) => {
  for (const { path, noun, kind } of objectKinds()) {
    const tags = [kind.kind];
    type Query = { namespace?: string };

    const validate = (body: unknown): { name: string; namespace: string; value: unknown } => {
      const result = kind.validate(body);
      if (!result.ok) throw validationFailed(result.errors, noun);
      const v = result.value as { name: string; namespace: string };
      return { name: v.name, namespace: v.namespace, value: result.value };
    };

    app.get<{ Querystring: Query }>(`/${path}`, { schema: { tags, querystring: NamespaceQuery, summary: `list ${noun} objects` } }, async (request) => {
      const ns = request.query.namespace;
      const items = deps.store
        .list(kind.kind)
        .filter((o) => ns === undefined || o.namespace === ns)
        .sort((a, b) => a.namespace.localeCompare(b.namespace) || a.name.localeCompare(b.name))
        .map(objectView);
      return { items };
    });

    app.get<{ Params: { name: string }; Querystring: Query }>(
      `/${path}/:name`,
      { schema: { tags, params: NameParams, querystring: NamespaceQuery, summary: `read one ${noun}` } },
      async (request, reply) => {
        const ns = request.query.namespace ?? 'default';
        const stored = deps.store.get(kind.kind, ns, request.params.name);
        if (!stored) throw notFound(`${noun} ${ns}/${request.params.name}`);
        return reply.header('etag', etagOf(stored)).send(objectView(stored));
      },
    );

    app.post<{ Querystring: Query }>(`/${path}`, { schema: { tags, querystring: NamespaceQuery, body: kind.schema, summary: `create a ${noun}` } }, async (request, reply) => {
      // ?namespace= places the object as it selects one on every other route (it was ignored here,
      // and the object landed in "default"); one given in the body too must agree.
      const body = request.body as Record<string, unknown>;
      checkNamespaceAgrees(body, request.query.namespace, noun);
      const { name, namespace, value } = validate({ ...body, namespace: body.namespace ?? request.query.namespace });
      const { revision } = await serialWrite(deps, () => {
        if (deps.store.get(kind.kind, namespace, name)) {
          throw new ApiError('ALREADY_EXISTS', `${noun} ${namespace}/${name} exists already; use PUT /api/v1/${path}/${name} to change it`);
        }
        return commitChecked(deps, [{ op: 'put', kind: kind.kind, namespace, name, spec: value }], { actor: actorOf(request), summary: `create ${noun} ${namespace}/${name}` }, () => '');
      });
      reply.header('etag', etagOf({ spec: value }));
      return reply.code(201).header('x-weft-revision', String(revision)).send(value);
    });

    app.put<{ Params: { name: string }; Querystring: Query }>(
      `/${path}/:name`,
      { schema: { tags, params: NameParams, querystring: NamespaceQuery, body: putSchema(kind.schema), summary: `create or replace a ${noun}` } },
      async (request, reply) => {
        const body = request.body as Record<string, unknown>;
        if (body.name !== undefined && body.name !== request.params.name) {
          throw validationFailed([{ path: 'name', message: `does not match the name in the URL ("${request.params.name}")` }], noun);
        }
        // The URL names the object, its namespace too (`?namespace=`, else default), as on GET and DELETE: a body
        // naming another one is refused. Until 2026-11-29 PUT /services/a with {"namespace":"b"} created b/a,
        // which GET /services/a then did not find.
        const urlNamespace = request.query.namespace ?? 'default';
        if (body.namespace !== undefined && body.namespace !== urlNamespace) {
          const hint = request.query.namespace === undefined ? `; add ?namespace=${String(body.namespace)} to the URL` : '';
          throw validationFailed([{ path: 'namespace', message: `does not match the namespace the URL selects ("${urlNamespace}")${hint}` }], noun);
        }
        const { name, namespace, value } = validate({ ...body, name: request.params.name, namespace: urlNamespace });
        let existed = false;
        const { revision } = await serialWrite(deps, () => {
          const current = deps.store.get(kind.kind, namespace, name);
          checkPreconditions(request, current, `${noun} ${namespace}/${name}`);
          existed = current !== undefined;
          return commitChecked(deps, [{ op: 'put', kind: kind.kind, namespace, name, spec: value }], { actor: actorOf(request), summary: `${existed ? 'update' : 'create'} ${noun} ${namespace}/${name}` }, () => '');
        });
        reply.header('etag', etagOf({ spec: value }));
        return reply.code(existed ? 200 : 201).header('x-weft-revision', String(revision)).send(value);
      },
    );

    app.delete<{ Params: { name: string }; Querystring: Query }>(
      `/${path}/:name`,
      { schema: { tags, params: NameParams, querystring: NamespaceQuery, summary: `delete a ${noun}` } },
      async (request, reply) => {
        const ns = request.query.namespace ?? 'default';
        const name = request.params.name;
        const { revision } = await serialWrite(deps, () => {
          const current = deps.store.get(kind.kind, ns, name);
          if (!current) throw notFound(`${noun} ${ns}/${name}`);
          checkPreconditions(request, current, `${noun} ${ns}/${name}`);
          return commitChecked(deps, [{ op: 'delete', kind: kind.kind, namespace: ns, name }], { actor: actorOf(request), summary: `delete ${noun} ${ns}/${name}` }, () => '');
        });
        return reply.code(200).header('x-weft-revision', String(revision)).send({ deleted: { kind: kind.kind, namespace: ns, name }, revision });
      },
    );
  }
};
