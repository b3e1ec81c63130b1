// The REST API as a fastify app built from injected dependencies (the
// fastify/demo shape: the app is a plugin; control/main.ts only wires and
// listens). Schemas are compiled once at registration and give validation,
// types and the OpenAPI document.
import Fastify, { type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest, type HTTPMethods } from 'fastify';
import swagger from '@fastify/swagger';
import { ajvToFieldErrors, type AjvLikeError } from './ajv-errors.ts';
import { installAuth } from './auth.ts';
import { decodeUtf8Body, parseJsonBody } from './json-body.ts';
import { ApiError, validationFailed } from './errors.ts';
import { nestingError } from '../model/nesting.ts';
import type { ApiDeps } from './deps.ts';
import { StoreWriteError } from '../store/store.ts';
import { healthRoutes } from './routes/health.ts';
import { wasmRoutes } from './routes/wasm.ts';
import { objectRoutes } from './routes/objects.ts';
import { instanceRoutes } from './routes/instances.ts';
import { applyRoutes } from './routes/apply.ts';
import { proxyRoutes } from './routes/proxies.ts';
import { revisionRoutes } from './routes/revisions.ts';
import { filterRoutes } from './routes/filters.ts';
import { tokenRoutes } from './routes/tokens.ts';
import { joinTokenRoutes } from './routes/join-tokens.ts';
import { whoamiRoutes } from './routes/whoami.ts';
import { topologyRoutes } from './routes/topology.ts';
import { uiRoutes } from './ui.ts';

/** The routes that take a YAML manifest body. */
const MANIFEST_ROUTES = new Set(['/api/v1/apply', '/api/v1/delete', '/api/v1/diff']);

export type { ApiDeps } from './deps.ts';

/** The order an `Allow` header lists methods in (RFC 9110 leaves it open; this reads as the docs' tables do). */
const METHOD_ORDER = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'];
const methodRank = (m: string) => (METHOD_ORDER.includes(m) ? METHOD_ORDER.indexOf(m) : METHOD_ORDER.length);

/** Every method some route answers at this URL (path and parameters matched as the router matches them). */
export function allowedMethods(app: FastifyInstance, url: string): string[] {
  return app.supportedMethods
    .filter((method) => app.findRoute({ method: method as HTTPMethods, url }) !== null)
    .sort((a, b) => methodRank(a) - methodRank(b) || a.localeCompare(b));
}

/**
 * A request no route took. When the path exists under other methods it is a
 * 405 with `Allow` naming them, as RFC 9110 §15.5.6 requires (a PATCH on an
 * object, a PUT on a collection); only a path no route has is a 404. Decided
 * from the router's own table, so every route registered anywhere counts.
 */
function unrouted(app: FastifyInstance, request: FastifyRequest, reply: FastifyReply) {
  const path = request.url.split('?')[0];
  const allow = allowedMethods(app, request.url);
  if (allow.length === 0) return reply.code(404).send(new ApiError('NOT_FOUND', `no route ${request.method} ${path}`).toBody());
  return reply
    .code(405)
    .header('allow', allow.join(', '))
    .send(new ApiError('METHOD_NOT_ALLOWED', `method ${request.method} is not allowed on ${path}: it takes ${allow.join(', ')}`).toBody());
}

/** Largest request body accepted by default; wasm uploads get their own limit. */
const BODY_LIMIT = 4 * 1024 * 1024;

const mebibytes = (bytes: number) => `${Math.round((bytes / 1048576) * 10) / 10} MiB`;

export interface AppOptions {
  logger?: boolean;
  /** Where a request that failed with an internal error is said, with its stack (weft control: stderr). */
  log?: (line: string) => void;
}

export async function buildApp(deps: ApiDeps, opts: AppOptions = {}): Promise<FastifyInstance> {
  const app = Fastify({
    logger: opts.logger ?? false,
    bodyLimit: BODY_LIMIT,
    ajv: {
      // Reject, never strip, unknown fields; never coerce "1" into 1: the
      // operator must learn their input was wrong.
      // `verbose` keeps each failing schema on its error, so the model's
      // `errorMessage` can be reported instead of ajv's generic text.
      customOptions: { removeAdditional: false, coerceTypes: false, useDefaults: true, allErrors: true, verbose: true, keywords: ['errorMessage'] },
    },
  });

  app.setErrorHandler((err: FastifyError, request, reply) => {
    if (err instanceof ApiError) return reply.code(err.status).send(err.toBody());
    if (err instanceof StoreWriteError) {
      // The operator's to fix (a full disk, a failing device), not a bug: the caller learns why nothing was stored.
      opts.log?.(`api: ${request.method} ${request.url.split('?')[0]}: ${err.message}`);
      return reply.code(503).send(new ApiError('UNAVAILABLE', err.message).toBody());
    }
    if (err.validation) {
      const root = err.validationContext === 'body' ? '' : err.validationContext === 'querystring' ? 'query' : (err.validationContext ?? '');
      const details = ajvToFieldErrors(err.validation as AjvLikeError[], root);
      return reply.code(400).send(validationFailed(details, err.validationContext === 'body' ? 'body' : err.validationContext).toBody());
    }
    const status = err.statusCode ?? 500;
    // fastify's own texts ("Request body is too large", "Unsupported Media Type") say neither the limit nor what to send.
    if (status === 413) {
      const limit = request.routeOptions.bodyLimit ?? BODY_LIMIT;
      return reply.code(413).send(new ApiError('PAYLOAD_TOO_LARGE', `body is larger than this endpoint's limit of ${mebibytes(limit)} (${request.headers['content-length'] ?? 'more'} bytes sent)`).toBody());
    }
    if (status === 415) {
      const type = request.headers['content-type']?.split(';')[0]?.trim() || '(none)';
      const accepted = MANIFEST_ROUTES.has(request.routeOptions.url ?? '') ? 'application/json or application/yaml' : 'application/json';
      return reply.code(415).send(new ApiError('UNSUPPORTED_MEDIA_TYPE', `content-type ${type} is not accepted: send ${accepted} (curl -d sends application/x-www-form-urlencoded unless told -H 'content-type: application/json')`).toBody());
    }
    if (status >= 400 && status < 500) return reply.code(400).send(validationFailed([{ path: '', message: err.message }], 'body').toBody());
    request.log.error(err);
    // The caller gets no detail (it could name files or internals); the operator's log gets all of it,
    // or a 500 left nothing anywhere to find its cause by. The path only: a query could carry anything.
    opts.log?.(`api: ${request.method} ${request.url.split('?')[0]} failed with an internal error: ${err.stack ?? err.message}`);
    return reply.code(500).send(new ApiError('INTERNAL', 'internal error: the control plane logged the cause').toBody());
  });
  app.setNotFoundHandler((request, reply) => unrouted(app, request, reply));

  // Manifests arrive as YAML text; the apply routes parse it themselves so
  // errors carry `documents[i]` paths.
  app.addContentTypeParser(['application/yaml', 'application/x-yaml', 'text/yaml'], { parseAs: 'buffer' }, (_req, body, done) => {
    try {
      done(null, decodeUtf8Body(body as Buffer));
    } catch (e) {
      done(e as Error, undefined);
    }
  });
  // JSON with no duplicate keys, in UTF-8 (control/api/json-body.ts); fastify's parser took the last of two keys and replaced bad bytes.
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (req, body, done) => {
    try {
      // An empty body with a JSON content type, on a route that takes no body (POST .../rollback, a DELETE): no body,
      // so the route's own errors come (404 for an unknown revision), not "is empty" (curl -H 'content-type: ...').
      if ((body as Buffer).length === 0 && req.routeOptions.schema?.body === undefined) return done(null, undefined);
      done(null, parseJsonBody(body as Buffer));
    } catch (e) {
      done(e as Error, undefined);
    }
  });

  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: { title: 'weft control plane API', version: 'v1', description: 'Operator API of the weft service mesh' },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
      security: [{ bearer: [] }],
    },
  });

  await app.register(healthRoutes, deps);
  await app.register(wasmRoutes, deps);
  await app.register(uiRoutes);
  await app.register(
    async (api) => {
      installAuth(api, deps.tokens);
      // Under /api/v1 an unknown path is answered after the token is checked
      // (the context's onRequest hook runs for its 404 handler too), so a
      // caller without a token learns nothing about which paths exist (nor, from a 405, which methods they take).
      api.setNotFoundHandler((request, reply) => unrouted(app, request, reply));
      // Text bodies (YAML, or JSON sent as text/plain) are manifests, and only the manifest routes read them;
      // anywhere else they used to reach the schema as a string ("body: must be object").
      // A body nested deeper than any manifest is refused before anything walks it recursively (control/model/nesting.ts).
      api.addHook('preValidation', async (request) => {
        const tooDeep = typeof request.body === 'object' ? nestingError(request.body) : undefined;
        if (tooDeep) throw validationFailed([tooDeep], 'body');
      });
      api.addHook('preValidation', async (request) => {
        if (typeof request.body !== 'string' || MANIFEST_ROUTES.has(request.routeOptions.url ?? '')) return;
        throw new ApiError('UNSUPPORTED_MEDIA_TYPE', `content-type ${String(request.headers['content-type']).split(';')[0]} is not accepted here: send application/json (YAML manifests go to /api/v1/apply, /delete or /diff)`);
      });
      // A route that takes no body (rollback, heartbeat, delete, ...) refuses one with something in it, as an unknown
      // query parameter is refused: {"x":1} on a rollback used to be ignored and the rollback done.
      api.addHook('preValidation', async (request) => {
        const body = request.body;
        if (body === undefined || body === null || request.is404 || request.routeOptions.schema?.body !== undefined || MANIFEST_ROUTES.has(request.routeOptions.url ?? '')) return;
        if (typeof body === 'object' && !Array.isArray(body)) {
          const keys = Object.keys(body);
          if (keys.length > 0) throw validationFailed(keys.map((k) => ({ path: k, message: 'unknown field (this endpoint takes no body)' })), 'body');
          return;
        }
        throw validationFailed([{ path: '', message: 'this endpoint takes no body' }], 'body');
      });
      api.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
      await api.register(objectRoutes, deps);
      await api.register(instanceRoutes, deps);
      await api.register(applyRoutes, deps);
      await api.register(proxyRoutes, deps);
      await api.register(revisionRoutes, deps);
      await api.register(filterRoutes, deps);
      await api.register(tokenRoutes, deps);
      await api.register(joinTokenRoutes, deps);
      await api.register(whoamiRoutes, deps);
      await api.register(topologyRoutes, deps);
    },
    { prefix: '/api/v1' },
  );
  return app;
}
