// Instances: register, heartbeat, health (draining), deregister, list with
// health. Liveness is the registry's; heartbeats never touch the disk.
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { Type } from '@sinclair/typebox';
import { INSTANCE_HEALTH, InstanceRegistrationSchema } from '../../model/instance.ts';
import type { InstanceHealth } from '../../model/types.ts';
import { actorOf } from '../auth.ts';
import { ApiError, notFound, validationFailed } from '../errors.ts';
import type { ApiDeps } from '../deps.ts';

const tags = ['Instance'];
const NamespaceQuery = Type.Object(
  { namespace: Type.Optional(Type.String({ minLength: 1, maxLength: 63, pattern: '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$' })) },
  { additionalProperties: false },
);
const ServiceParams = Type.Object({ name: Type.String({ minLength: 1, maxLength: 63 }) });
const InstanceParams = Type.Object({ name: Type.String({ minLength: 1, maxLength: 63 }), id: Type.String({ minLength: 1, maxLength: 128 }) });
const HealthBody = Type.Object(
  { health: Type.Union(INSTANCE_HEALTH.map((h) => Type.Literal(h)), { errorMessage: `must be one of: ${INSTANCE_HEALTH.join(', ')}` }) },
  { additionalProperties: false },
);

type ServiceReq = { Params: { name: string }; Querystring: { namespace?: string } };
type InstanceReq = { Params: { name: string; id: string }; Querystring: { namespace?: string } };

export const instanceRoutes: FastifyPluginAsync<ApiDeps> = async (app, deps) => {
  /** The registry commits under its own actor; this records which operator it was for. */
  /** `before`: the store revision before the registry call; only a revision it made is attributed. */
  const journal = (request: FastifyRequest, action: string, before: number) => {
    const after = deps.store.revision();
    return deps.audit.record({ time: new Date().toISOString(), actor: actorOf(request), action, ...(after > before ? { revision: after } : {}) });
  };

  /**
   * The store revision a registry write made, in `x-weft-revision` as every other write answers (`weft apply --wait`
   * and scripts read it); none when it changed nothing (the same health set again). Until 2026-11-29 instance
   * writes did not say it.
   */
  const revisionHeader = (reply: FastifyReply, before: number): FastifyReply => {
    const after = deps.store.revision();
    return after > before ? reply.header('x-weft-revision', String(after)) : reply;
  };

  /** The instance, if it belongs to the service named in the URL. */
  const instanceOf = (service: string, namespace: string, id: string) => {
    const found = deps.registry.instance(id);
    if (!found || found.service !== service || found.namespace !== namespace) throw notFound(`instance ${id} of service ${namespace}/${service}`);
    return found;
  };

  app.get('/instances', { schema: { tags, summary: 'every registered instance with its health and liveness' } }, async () => ({
    items: deps.registry.instances(),
  }));

  app.get<ServiceReq>(
    '/services/:name/instances',
    { schema: { tags, params: ServiceParams, querystring: NamespaceQuery, summary: "a service's instances with health" } },
    async (request) => {
      const ns = request.query.namespace ?? 'default';
      if (!deps.store.get('Service', ns, request.params.name)) throw notFound(`service ${ns}/${request.params.name}`);
      return { items: deps.registry.instances().filter((i) => i.service === request.params.name && i.namespace === ns) };
    },
  );

  app.post<ServiceReq>(
    '/services/:name/instances',
    { schema: { tags, params: ServiceParams, querystring: NamespaceQuery, body: InstanceRegistrationSchema, summary: 'register an instance; returns its id' } },
    async (request, reply) => {
      const ns = request.query.namespace ?? 'default';
      if (!deps.store.get('Service', ns, request.params.name)) {
        throw new ApiError('NOT_FOUND', `service ${ns}/${request.params.name} not found; create it before registering instances`);
      }
      const before = deps.store.revision();
      const result = await deps.registry.register(request.params.name, ns, request.body, actorOf(request));
      if (!result.ok) throw validationFailed(result.errors, 'instance');
      const i = result.value;
      await journal(request, `register instance ${i.id} of ${ns}/${i.service} at ${i.address}:${i.port}`, before);
      return revisionHeader(reply, before).code(201).send({ id: result.value.id, instance: result.value });
    },
  );

  app.put<InstanceReq>(
    '/services/:name/instances/:id/heartbeat',
    { schema: { tags, params: InstanceParams, querystring: NamespaceQuery, summary: 'renew the TTL of an instance' } },
    async (request) => {
      const ns = request.query.namespace ?? 'default';
      instanceOf(request.params.name, ns, request.params.id);
      if (!deps.registry.heartbeat(request.params.id)) throw notFound(`instance ${request.params.id}`);
      return { id: request.params.id, ok: true };
    },
  );

  app.put<InstanceReq>(
    '/services/:name/instances/:id/health',
    { schema: { tags, params: InstanceParams, querystring: NamespaceQuery, body: HealthBody, summary: 'set health: healthy, unhealthy or draining' } },
    async (request, reply) => {
      const ns = request.query.namespace ?? 'default';
      instanceOf(request.params.name, ns, request.params.id);
      const { health } = request.body as { health: InstanceHealth };
      const before = deps.store.revision();
      if (!(await deps.registry.setHealth(request.params.id, health, actorOf(request)))) throw notFound(`instance ${request.params.id}`);
      await journal(request, `set health of instance ${request.params.id} of ${ns}/${request.params.name} to ${health}`, before);
      return revisionHeader(reply, before).send({ id: request.params.id, health });
    },
  );

  app.delete<InstanceReq>(
    '/services/:name/instances/:id',
    { schema: { tags, params: InstanceParams, querystring: NamespaceQuery, summary: 'deregister an instance' } },
    async (request, reply) => {
      const ns = request.query.namespace ?? 'default';
      instanceOf(request.params.name, ns, request.params.id);
      const before = deps.store.revision();
      if (!(await deps.registry.deregister(request.params.id, actorOf(request)))) throw notFound(`instance ${request.params.id}`);
      await journal(request, `deregister instance ${request.params.id} of ${ns}/${request.params.name}`, before);
      return revisionHeader(reply, before).send({ id: request.params.id, deregistered: true });
    },
  );
};
