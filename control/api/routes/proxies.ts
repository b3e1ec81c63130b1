// Connected proxies: status (SYNCED / STALE / NACKED with the message /
// DISCONNECTED), versions per type, and the resources each was sent.
import type { FastifyPluginAsync } from 'fastify';
import { Type } from '@sinclair/typebox';
import { notFound } from '../errors.ts';
import { CONFIG_TYPES, type ApiDeps, type ConfigType } from '../deps.ts';

const tags = ['Proxy'];
const IdParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 512 }) });
const ConfigQuery = Type.Object(
  {
    type: Type.Optional(
      Type.Union(CONFIG_TYPES.map((t) => Type.Literal(t)), { errorMessage: `must be one of: ${CONFIG_TYPES.join(', ')}` }),
    ),
  },
  { additionalProperties: false },
);

export const proxyRoutes: FastifyPluginAsync<ApiDeps> = async (app, deps) => {
  app.get('/proxies', { schema: { tags, summary: 'every proxy the control plane knows, with its sync status' } }, async () => ({
    items: deps.proxies.list(),
  }));

  app.get<{ Params: { id: string } }>('/proxies/:id', { schema: { tags, params: IdParams, summary: 'one proxy' } }, async (request) => {
    const proxy = deps.proxies.get(request.params.id);
    if (!proxy) throw notFound(`proxy ${request.params.id}`);
    return proxy;
  });

  app.get<{ Params: { id: string }; Querystring: { type?: ConfigType } }>(
    '/proxies/:id/config',
    { schema: { tags, params: IdParams, querystring: ConfigQuery, summary: "the proxy's current resources (Envoy JSON), all types or one" } },
    async (request) => {
      const { id } = request.params;
      if (!deps.proxies.get(id)) throw notFound(`proxy ${id}`);
      const types = request.query.type ? [request.query.type] : CONFIG_TYPES;
      const out: Record<string, { name: string; value: unknown }[]> = {};
      for (const type of types) out[type] = deps.proxies.config(id, type) ?? [];
      return { proxy: id, ...out };
    },
  );
};
