// GET /api/v1/whoami: the operator behind the token, so a client (the UI)
// can show who is logged in and disable what the role may not do. The API
// refuses those writes anyway; this only spares the operator the attempt.
import type { FastifyPluginAsync } from 'fastify';
import type { ApiDeps } from '../deps.ts';

export const whoamiRoutes: FastifyPluginAsync<ApiDeps> = async (app) => {
  app.get('/whoami', { schema: { tags: ['Token'], summary: 'the operator this token identifies: name and role (admin writes, viewer reads)' } }, async (request) => {
    const op = request.operator!;
    return { name: op.name, role: op.role, createdAt: op.createdAt, canWrite: op.role === 'admin' };
  });
};
