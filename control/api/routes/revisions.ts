// Revisions and the audit log. Every change is a revision (number, time,
// actor, summary, changes); rollback returns the operator kinds to a past
// revision's state as a new revision, so rollback itself is auditable and
// can be rolled back.
import type { FastifyPluginAsync } from 'fastify';
import { Type } from '@sinclair/typebox';
import { actorOf } from '../auth.ts';
import { rollbackChanges } from '../../store/rollback.ts';
import { commitChecked, operatorObjects, serialWrite } from '../desired-state.ts';
import { ApiError, notFound } from '../errors.ts';
import type { ApiDeps } from '../deps.ts';
import { NoQuery } from '../no-query.ts';

// Path parameters are strings (coercion is off API-wide), hence a pattern.
const RevParams = Type.Object({ n: Type.String({ pattern: '^[0-9]{1,15}$', errorMessage: 'must be a revision number' }) });
// Query values are strings too.
const Limit = Type.String({ pattern: '^[1-9][0-9]{0,3}$|^10000$', errorMessage: 'must be an integer in 1..10000' });
const LimitQuery = Type.Object(
  { limit: Type.Optional(Limit) },
  { additionalProperties: false },
);
const AuditQuery = Type.Object(
  {
    limit: Type.Optional(Limit),
    actor: Type.Optional(Type.String({ minLength: 1, maxLength: 256 })),
  },
  { additionalProperties: false },
);

const key = (o: { kind: string; namespace: string; name: string }) => `${o.kind}/${o.namespace}/${o.name}`;

export const revisionRoutes: FastifyPluginAsync<ApiDeps> = async (app, deps) => {
  const coerce = { params: RevParams };

  app.get<{ Querystring: { limit?: string } }>(
    '/revisions',
    { schema: { tags: ['Revision'], querystring: LimitQuery, summary: 'revision history, newest first' } },
    async (request) => ({ current: deps.store.revision(), items: newestFirst(deps.store.history()).slice(0, Number(request.query.limit ?? 100)) }),
  );

  app.get<{ Params: { n: string } }>(
    '/revisions/:n',
    { schema: { tags: ['Revision'], ...coerce, summary: 'one revision: what changed, and the operator objects as of it' } },
    async (request) => {
      const n = Number(request.params.n);
      const info = deps.store.history().find((r) => r.revision === n);
      if (!info) throw notFound(`revision ${n}`);
      return { ...info, objects: operatorObjects(deps.store.stateAt(n)) };
    },
  );

  app.post<{ Params: { n: string } }>(
    '/revisions/:n/rollback',
    { schema: { tags: ['Revision'], ...coerce, querystring: NoQuery, summary: "return services, routes, policies and bindings to a revision's state (a new revision)" } },
    async (request) => {
      const n = Number(request.params.n);
      // Revision 0 is the empty store: rolling back to it removes every operator object.
      if (n > deps.store.revision() || (n !== 0 && !deps.store.history().some((r) => r.revision === n))) {
        throw new ApiError('NOT_FOUND', `revision ${n} not found (current revision is ${deps.store.revision()})`);
      }
      return serialWrite(deps, async () => {
        const current = deps.store.list();
        const changes = rollbackChanges(deps.store, n);
        const objects = changes.map((c) => ({ op: c.op, kind: c.kind, namespace: c.namespace, name: c.name, action: c.op === 'delete' ? 'deleted' : current.some((o) => key(o) === key(c)) ? 'configured' : 'created' }));
        if (changes.length === 0) return { revision: deps.store.revision(), changed: false, objects };
        const result = await commitChecked(deps, changes, { actor: actorOf(request), summary: `rollback to revision ${n}` }, () => `revision ${n}`);
        return { revision: result.revision, changed: result.changed, objects };
      });
    },
  );

  app.get<{ Querystring: { limit?: string; actor?: string } }>(
    '/audit',
    { schema: { tags: ['Revision'], querystring: AuditQuery, summary: 'who changed what: every revision and token change, with the operator token that made it' } },
    async (request) => {
      const limit = Number(request.query.limit ?? 100);
      const journal = deps.audit.list();
      const byRevision = new Map(journal.filter((e) => e.revision !== undefined).map((e) => [e.revision!, e]));
      const revisions = deps.store.history().map((r) => {
        // a registry revision made for an operator is attributed to the operator's token
        const event = r.actor === 'registry' ? byRevision.get(r.revision) : undefined;
        const entry = { revision: r.revision as number | null, time: r.time, actor: event?.actor ?? r.actor, action: event?.action ?? r.summary, objects: r.changes };
        return { entry, position: r.revision };
      });
      // actions without a revision sit after the revision that was current when they happened
      const others = journal
        .filter((e) => e.revision === undefined)
        .map((e, i) => ({ entry: { revision: null, time: e.time, actor: e.actor, action: e.action, objects: [] }, position: (e.afterRevision ?? 0) + 0.5 + i * 1e-9 }));
      const wanted = request.query.actor;
      const items = [...revisions, ...others]
        .sort((a, b) => b.position - a.position)
        .map((p) => p.entry)
        .filter((e) => wanted === undefined || e.actor === wanted || e.actor === `token:${wanted}`)
        .slice(0, limit);
      return { items };
    },
  );
};

function newestFirst<T extends { revision: number }>(items: T[]): T[] {
  return [...items].sort((a, b) => b.revision - a.revision);
}
