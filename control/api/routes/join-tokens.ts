// Join tokens (mesh identity): an admin issues one per workload identity;
// the proxy presents it as node.metadata WEFT_TOKEN (`weft sidecar --token`,
// `weft bootstrap --token`) and may then act as that service only. The
// plaintext is returned once; afterwards a token is known by its id, under
// which it is listed and revoked (a revoked token's open xDS streams end).
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import { Type } from '@sinclair/typebox';
import { actorOf } from '../auth.ts';
import { parseTtl } from '../../ca/ttl.ts';
import { ApiError, notFound, validationFailed } from '../errors.ts';
import type { ApiDeps, JoinTokenPort, JoinTokenView } from '../deps.ts';
import { isExpired } from '../../ca/join-tokens.ts';
import { NoQuery } from '../no-query.ts';

const JoinBody = Type.Object(
  {
    service: Type.String({ minLength: 1, maxLength: 63, pattern: '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$', errorMessage: 'must be a service name (DNS-1123 label)' }),
    namespace: Type.Optional(Type.String({ minLength: 1, maxLength: 63, pattern: '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$', errorMessage: 'must be a namespace (DNS-1123 label)' })),
    ttl: Type.Optional(Type.String({ minLength: 1, maxLength: 32, description: 'lifetime, e.g. 24h, 30m, 7d; absent: valid until revoked' })),
  },
  { additionalProperties: false, title: 'JoinTokenRequest' },
);
/** Ten years: past that, leave ttl out (the date would otherwise overflow the calendar). */
const MAX_JOIN_TTL_MS = 3650 * 86_400_000;
const IdParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 64 }) });

/** The join tokens, for an admin of a control plane with identity on. */
function joinTokensFor(request: FastifyRequest, deps: ApiDeps, doing: string): JoinTokenPort {
  if (request.operator?.role !== 'admin') throw new ApiError('FORBIDDEN', `${doing} join tokens needs role admin`);
  const join = deps.joinTokens;
  if (!join) throw new ApiError('NOT_FOUND', 'mesh identity is off: start the control plane with --identity to use join tokens');
  return join;
}

function view(record: JoinTokenView, trustDomain: string) {
  return {
    id: record.id,
    service: record.service,
    namespace: record.namespace,
    spiffeId: `spiffe://${trustDomain}/ns/${record.namespace}/sa/${record.service}`,
    issuedAt: record.issuedAt,
    expiresAt: record.expiresAt ?? null,
    expired: isExpired(record),
  };
}

export const joinTokenRoutes: FastifyPluginAsync<ApiDeps> = async (app, deps) => {
  app.post('/tokens/join', { schema: { tags: ['Token'], querystring: NoQuery, body: JoinBody, summary: "issue a proxy's xDS join token for one service identity; the response carries it once" } }, async (request, reply) => {
    const join = joinTokensFor(request, deps, 'issuing');
    const body = request.body as { service: string; namespace?: string; ttl?: string };
    const identity = { service: body.service, namespace: body.namespace ?? 'default' };
    let ttlMs: number | undefined;
    if (body.ttl !== undefined) {
      const parsed = parseTtl(body.ttl);
      if (typeof parsed === 'string') throw validationFailed([{ path: 'ttl', message: parsed }], 'body');
      if (parsed > MAX_JOIN_TTL_MS) throw validationFailed([{ path: 'ttl', message: `must be at most ${MAX_JOIN_TTL_MS / 86_400_000}d (leave it out for a token that never expires)` }], 'body');
      ttlMs = parsed;
    }
    const { token, record } = join.issue(identity, ttlMs);
    const until = record.expiresAt ? `, expires ${record.expiresAt}` : '';
    await deps.audit.record({ time: record.issuedAt, actor: actorOf(request), action: `issue join token ${record.id} for ${identity.service}.${identity.namespace}${until}`, afterRevision: deps.store.revision() });
    return reply.code(201).send({ token, ...view(record, join.trustDomain) });
  });

  app.get('/tokens/join', { schema: { tags: ['Token'], summary: 'the join tokens issued and not revoked, by id, with expiresAt and expired (never the tokens themselves)' } }, async (request) => {
    const join = joinTokensFor(request, deps, 'listing');
    const items = join.list().map((r) => view(r, join.trustDomain));
    items.sort((a, b) => a.issuedAt.localeCompare(b.issuedAt) || a.id.localeCompare(b.id));
    return { items };
  });

  app.delete<{ Params: { id: string } }>('/tokens/join/:id', { schema: { tags: ['Token'], querystring: NoQuery, params: IdParams, summary: 'revoke a join token: no new xDS stream with it, and the open ones end' } }, async (request) => {
    const join = joinTokensFor(request, deps, 'revoking');
    const { id } = request.params;
    if (!join.revoke(id)) throw notFound(`join token ${id}`);
    await deps.audit.record({ time: new Date().toISOString(), actor: actorOf(request), action: `revoke join token ${id}`, afterRevision: deps.store.revision() });
    return { id, revoked: true };
  });
};
