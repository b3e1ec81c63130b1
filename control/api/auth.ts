// Operator auth for /api/v1: a bearer token identifies an operator (its name
// goes into every revision's actor and the audit log); its role decides
// whether it may write. Reads are open to viewers (unless the route says
// adminOnly: a proxy's live requests); everything else needs admin unless the
// route declares itself read-only (diff, dry-run apply).
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { ApiError } from './errors.ts';
import type { TokenInfo, TokenStore } from './tokens.ts';

declare module 'fastify' {
  interface FastifyRequest {
    /** The authenticated operator; set by the auth hook on every /api/v1 request. */
    operator?: TokenInfo;
  }
  interface FastifyContextConfig {
    /** A non-GET route that changes nothing (viewers may call it). */
    readOnly?: boolean;
    /** A GET that shows what viewers may not see (live request data: tap): admin only. */
    adminOnly?: boolean;
  }
}

const READ_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

export function bearerToken(header: string | undefined): string | undefined {
  if (!header) return undefined;
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
  return match?.[1];
}

/** Installs the auth hook on an encapsulated context (the /api/v1 plugin). */
export function installAuth(app: FastifyInstance, tokens: TokenStore): void {
  app.addHook('onRequest', async (request) => {
    const token = bearerToken(request.headers.authorization);
    if (!token) throw new ApiError('UNAUTHENTICATED', 'missing bearer token: send "Authorization: Bearer <token>"');
    const operator = tokens.authenticate(token);
    if (!operator) throw new ApiError('UNAUTHENTICATED', 'unknown or revoked token');
    request.operator = operator;
    const config = request.routeOptions.config;
    const readOnly = (READ_METHODS.has(request.method) && config?.adminOnly !== true) || config?.readOnly === true;
    if (!readOnly && operator.role !== 'admin') {
      throw new ApiError('FORBIDDEN', `token "${operator.name}" has role ${operator.role}; this request needs role admin`);
    }
  });
}

/** The actor recorded with a revision: who, by token name. */
export function actorOf(request: FastifyRequest): string {
  return request.operator ? `token:${request.operator.name}` : 'anonymous';
}
