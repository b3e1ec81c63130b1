// Join tokens (mesh identity): an admin issues one per workload identity;
// the proxy presents it as node.metadata WEFT_TOKEN (`weft sidecar --token`,
// `weft bootstrap --token`) and may then act as that service only. The
// plaintext is returned once.
import type { FastifyPluginAsync } from 'fastify';
import { Type } from '@sinclair/typebox';
import { actorOf } from '../auth.ts';
import { ApiError } from '../errors.ts';
import type { ApiDeps } from '../deps.ts';

const JoinBody = Type.Object(
  {
    service: Type.String({ minLength: 1, maxLength: 63, pattern: '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$', errorMessage: 'must be a service name (DNS-1123 label)' }),
    namespace: Type.Optional(Type.String({ minLength: 1, maxLength: 63, pattern: '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$', errorMessage: 'must be a namespace (DNS-1123 label)' })),
  },
  { additionalProperties: false, title: 'JoinTokenRequest' },
);

export const joinTokenRoutes: FastifyPluginAsync<ApiDeps> = async (app, deps) => {
  app.post('/tokens/join', { schema: { tags: ['Token'], body: JoinBody, summary: "issue a proxy's xDS join token for one service identity; the response carries it once" } }, async (request, reply) => {
    if (request.operator?.role !== 'admin') throw new ApiError('FORBIDDEN', 'issuing join tokens needs role admin');
    const join = deps.joinTokens;
    if (!join) throw new ApiError('NOT_FOUND', 'mesh identity is off: start the control plane with --identity to issue join tokens');
    const body = request.body as { service: string; namespace?: string };
    const identity = { service: body.service, namespace: body.namespace ?? 'default' };
    const { token, record } = join.issue(identity);
    await deps.audit.record({ time: record.issuedAt, actor: actorOf(request), action: `issue join token ${record.id} for ${identity.service}.${identity.namespace}`, afterRevision: deps.store.revision() });
    return reply.code(201).send({
      token,
      id: record.id,
      service: record.service,
      namespace: record.namespace,
      spiffeId: `spiffe://${join.trustDomain}/ns/${record.namespace}/sa/${record.service}`,
      issuedAt: record.issuedAt,
    });
  });
};
