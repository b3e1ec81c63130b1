// Operator tokens: admins create viewer or admin tokens; the plaintext is
// returned once. Listing shows names and roles only.
import type { FastifyPluginAsync } from 'fastify';
import { Type } from '@sinclair/typebox';
import { actorOf } from '../auth.ts';
import { ApiError } from '../errors.ts';
import type { ApiDeps } from '../deps.ts';
import { TokenNameTakenError, type Role } from '../tokens.ts';
import { NoQuery } from '../no-query.ts';

const CreateBody = Type.Object(
  {
    role: Type.Union([Type.Literal('admin'), Type.Literal('viewer')], { errorMessage: 'must be one of: admin, viewer' }),
    name: Type.Optional(Type.String({ minLength: 1, maxLength: 63, pattern: '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$', errorMessage: 'must be a DNS-1123 label' })),
  },
  { additionalProperties: false, title: 'TokenRequest' },
);

export const tokenRoutes: FastifyPluginAsync<ApiDeps> = async (app, deps) => {
  app.get('/tokens', { schema: { tags: ['Token'], summary: 'operator tokens (names and roles; never the tokens)' } }, async (request) => {
    if (request.operator?.role !== 'admin') throw new ApiError('FORBIDDEN', 'listing tokens needs role admin');
    return { items: deps.tokens.list() };
  });

  app.delete<{ Params: { name: string } }>(
    '/tokens/:name',
    { schema: { tags: ['Token'], querystring: NoQuery, params: Type.Object({ name: Type.String({ minLength: 1, maxLength: 63 }) }), summary: 'revoke an operator token: from now on it is answered 401' } },
    async (request) => {
      const name = request.params.name;
      const outcome = await deps.tokens.revoke(name);
      if (outcome === 'unknown') throw new ApiError('NOT_FOUND', `no token named "${name}"`);
      if (outcome === 'last-admin') throw new ApiError('CONFLICT', `"${name}" is the last admin token: create another admin token before revoking it`);
      await deps.audit.record({ time: new Date().toISOString(), actor: actorOf(request), action: `revoke token "${name}"`, afterRevision: deps.store.revision() });
      return { revoked: name };
    },
  );

  app.post('/tokens', { schema: { tags: ['Token'], querystring: NoQuery, body: CreateBody, summary: 'create a token; the response carries it once' } }, async (request, reply) => {
    const body = request.body as { role: Role; name?: string };
    const name = body.name ?? `${body.role}-${Date.now().toString(36)}`;
    const { token, info } = await deps.tokens.create(name, body.role).catch((e: unknown) => {
      throw e instanceof TokenNameTakenError ? new ApiError('ALREADY_EXISTS', e.message, [{ path: 'name', message: e.message }]) : e;
    });
    await deps.audit.record({ time: info.createdAt, actor: actorOf(request), action: `create ${info.role} token "${info.name}"`, afterRevision: deps.store.revision() });
    return reply.code(201).send({ token, ...info, createdBy: request.operator?.name });
  });
};
