// The wasm filter catalog: list (built-ins and uploads, with their config
// schemas) and upload. Uploads are checked by control/filters before they
// are stored; bytes are then served at /wasm/<sha256>.wasm.
import type { FastifyPluginAsync } from 'fastify';
import { Type } from '@sinclair/typebox';
import { ApiError, notFound, validationFailed } from '../errors.ts';
import { actorOf } from '../auth.ts';
import { commitChecked, serialWrite } from '../desired-state.ts';
import { FILTER_MODULE_KIND, type ApiDeps } from '../deps.ts';
import { NoQuery } from '../no-query.ts';

const tags = ['Filter'];
/** Largest module accepted (base64 grows it by a third). */
const MAX_MODULE_BYTES = 16 * 1024 * 1024;

const UploadBody = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 63, pattern: '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$', errorMessage: 'must be a DNS-1123 label', description: 'catalog name' }),
    wasm: Type.String({ minLength: 1, description: 'the module bytes, base64' }),
    configSchema: Type.Optional(Type.Object({}, { additionalProperties: true, description: 'JSON Schema every binding config must satisfy' })),
  },
  { additionalProperties: false, title: 'FilterUpload' },
);
const NameParams = Type.Object({ name: Type.String({ minLength: 1, maxLength: 63 }) });

export const filterRoutes: FastifyPluginAsync<ApiDeps> = async (app, deps) => {
  app.get('/filters', { schema: { tags, summary: 'the wasm filters bindings may use, with their config schemas' } }, async () => ({
    items: await deps.filters.list(),
  }));

  app.get<{ Params: { name: string } }>('/filters/:name', { schema: { tags, params: NameParams, summary: 'one filter' } }, async (request) => {
    const filter = (await deps.filters.list()).find((f) => f.name === request.params.name);
    if (!filter) throw notFound(`filter ${request.params.name}`);
    return filter;
  });

  app.post(
    '/filters',
    { bodyLimit: Math.ceil((MAX_MODULE_BYTES * 4) / 3) + 64 * 1024, schema: { tags, querystring: NoQuery, body: UploadBody, summary: 'upload a proxy-wasm module (checked before it is accepted)' } },
    async (request, reply) => {
      const body = request.body as { name: string; wasm: string; configSchema?: unknown };
      if (!/^[A-Za-z0-9+/]*={0,2}$/.test(body.wasm)) throw validationFailed([{ path: 'wasm', message: 'must be base64' }], 'filter upload');
      const bytes = Buffer.from(body.wasm, 'base64');
      if (bytes.length > MAX_MODULE_BYTES) throw new ApiError('PAYLOAD_TOO_LARGE', `module is ${bytes.length} bytes; the limit is ${MAX_MODULE_BYTES}`);
      const result = await deps.filters.upload(body.name, new Uint8Array(bytes), body.configSchema);
      if (!result.ok) {
        const moduleErrors = result.errors.filter((e) => e.path === 'wasm');
        if (moduleErrors.length === 0) throw validationFailed(result.errors, 'filter upload');
        throw new ApiError('INVALID_MODULE', `module refused: ${moduleErrors.map((e) => e.message).join('; ')}`, result.errors);
      }
      // The catalog entry is a store object, so the model (and every proxy
      // bound to the filter) sees the new module as one audited revision. A
      // new build replacing one that is bound must take every bound config
      // (its schema, its proxy_on_configure), or it is refused here.
      const { revision } = await serialWrite(deps, () =>
        commitChecked(
          deps,
          [{ op: 'put', kind: FILTER_MODULE_KIND, namespace: 'default', name: result.module.name, spec: result.module }],
          { actor: actorOf(request), summary: `push filter ${result.module.name} (sha256 ${result.module.sha256.slice(0, 12)})` },
          () => '',
        ),
      );
      return reply.code(201).header('x-weft-revision', String(revision)).send(result.module);
    },
  );

  // A pushed filter leaves the catalog (one audited revision), but not while a binding uses it: the binding would
  // name a filter that is not there. Its bytes stay served by sha256, for proxies still loading them. Built-ins
  // stay: every start puts them back.
  app.delete<{ Params: { name: string } }>(
    '/filters/:name',
    { schema: { tags, params: NameParams, querystring: NoQuery, summary: 'remove a pushed filter from the catalog (not while a binding uses it)' } },
    async (request, reply) => {
      const name = request.params.name;
      if (deps.filters.isBuiltin(name)) throw new ApiError('CONFLICT', `"${name}" is a built-in filter: it stays in the catalog (remove its bindings to stop using it)`);
      const { revision } = await serialWrite(deps, () => {
        if (!deps.store.get(FILTER_MODULE_KIND, 'default', name)) throw notFound(`filter ${name}`);
        const users = deps.store.list('FilterBinding').filter((o) => (o.spec as { filter?: string }).filter === name);
        if (users.length > 0) {
          const details = users.map((o) => ({ path: `FilterBinding/${o.namespace}/${o.name}.filter`, message: `uses filter "${name}"` }));
          throw new ApiError('INVALID_REFERENCE', `filter ${name} is bound: FilterBinding ${users.map((o) => `${o.namespace}/${o.name}`).join(', ')} use${users.length === 1 ? 's' : ''} it (delete or rebind ${users.length === 1 ? 'it' : 'them'} first)`, details);
        }
        return commitChecked(deps, [{ op: 'delete', kind: FILTER_MODULE_KIND, namespace: 'default', name }], { actor: actorOf(request), summary: `delete filter ${name}` }, () => '');
      });
      return reply.code(200).header('x-weft-revision', String(revision)).send({ deleted: { kind: FILTER_MODULE_KIND, name }, revision });
    },
  );
};
