// Unauthenticated process endpoints: liveness, readiness, Prometheus metrics.
import type { FastifyPluginAsync } from 'fastify';
import { Registry } from 'prom-client';
import { ApiError } from '../errors.ts';
import type { ApiDeps } from '../deps.ts';

export const healthRoutes: FastifyPluginAsync<ApiDeps> = async (app, deps) => {
  app.get('/healthz', { schema: { hide: true } }, async () => ({ status: 'ok' }));

  app.get('/readyz', { schema: { hide: true } }, async (_request, reply) => {
    if (!deps.ready()) return reply.code(503).send(new ApiError('UNAVAILABLE', 'not ready: the store or the xDS server is not up yet').toBody());
    // A store that refuses every write cannot take registrations or operator changes: not ready, saying why.
    const unwritable = deps.store.unwritable?.();
    if (unwritable !== undefined) return reply.code(503).send(new ApiError('UNAVAILABLE', `not ready: ${unwritable}`).toBody());
    return { status: 'ready', revision: deps.store.revision() };
  });

  app.get('/metrics', { schema: { hide: true } }, async (_request, reply) => {
    // Merged per scrape: registries may join deps.metrics after the API
    // starts (the xDS server is created once the API port is known).
    const merged = deps.metrics.length === 1 ? deps.metrics[0]! : Registry.merge(deps.metrics);
    reply.header('content-type', merged.contentType);
    return merged.metrics();
  });
};
