// Connected proxies: status (SYNCED / STALE / NACKED with the message /
// DISCONNECTED), versions per type, the resources each was sent, and whether
// what a proxy runs (its own config dump) is what the control plane means.
import { PassThrough, Readable } from 'node:stream';
import type { FastifyPluginAsync } from 'fastify';
import { Type } from '@sinclair/typebox';
import { ApiError, notFound, validationFailed } from '../errors.ts';
import { CONFIG_TYPES, type ApiDeps, type ConfigType } from '../deps.ts';
import { compareConfig, ConfigDumpError, parseConfigDump, type ProxySync } from '../proxy-sync.ts';
import { proxyAdminUrl } from '../sidecar-stats.ts';
import { streamingFetch } from '../../streaming-fetch.ts';

const tags = ['Proxy'];
// What the proxy's GET /tap takes, checked here first so a bad value is a 400 naming it.
const TapQuery = Type.Object(
  {
    listener: Type.Optional(Type.String({ minLength: 1, maxLength: 256 })),
    method: Type.Optional(Type.String({ pattern: '^[A-Za-z]{1,16}$', errorMessage: 'must be an HTTP method' })),
    authority: Type.Optional(Type.String({ minLength: 1, maxLength: 512 })),
    path_prefix: Type.Optional(Type.String({ pattern: '^/', maxLength: 2048, errorMessage: 'must start with "/"' })),
    status: Type.Optional(Type.String({ pattern: '^[1-5]([0-9]{2}|xx)$', errorMessage: 'must be a code (503) or a class (5xx)' })),
    max: Type.Optional(Type.String({ pattern: '^[1-9][0-9]{0,6}$', errorMessage: 'must be a whole number, 1 or more' })),
  },
  { additionalProperties: false },
);
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

  /** A connected proxy's admin endpoint, or the error that says why there is none. */
  function adminUrl(id: string, path: string, disconnected: string, hint = ''): string {
    const view = deps.proxies.get(id);
    const ref = deps.proxies.ref(id);
    if (!view || !ref) throw notFound(`proxy ${id}`);
    if (view.status === 'DISCONNECTED') throw new ApiError('PROXY_UNREACHABLE', `proxy ${id} is disconnected: ${disconnected}`);
    if (ref.adminPort === undefined) throw new ApiError('PROXY_UNREACHABLE', `proxy ${id} declared no admin port (node.metadata.WEFT_ADMIN_PORT)${hint}`);
    return proxyAdminUrl(ref.adminPort, path);
  }

  /** The comparison for a known proxy against a dump; `source` says where the dump came from. */
  function compare(id: string, dump: unknown, source: string, badDump: (err: ConfigDumpError) => ApiError): ProxySync {
    const ref = deps.proxies.ref(id);
    if (!ref) throw notFound(`proxy ${id}`);
    let running;
    try {
      running = parseConfigDump(dump);
    } catch (err) {
      if (err instanceof ConfigDumpError) throw badDump(err);
      throw err;
    }
    const desired = deps.translate(deps.buildModel(), ref);
    const sent = Object.fromEntries(CONFIG_TYPES.map((t) => [t, deps.proxies.config(id, t) ?? []]));
    const refused = deps.proxies.get(id)?.refused;
    // A proxy the control plane refuses to build for is not in sync, whatever it runs.
    const notSent = refused?.length ? { inSync: false, refused } : {};
    return { proxy: id, service: `${ref.service}.${ref.namespace}`, source, ...compareConfig(desired, sent, running), ...notSent };
  }

  app.get<{ Params: { id: string } }>(
    '/proxies/:id/sync',
    {
      schema: {
        tags,
        params: IdParams,
        summary: "compares the proxy's running config (its admin /config_dump) with what the control plane means it to run, resource by resource",
      },
    },
    async (request): Promise<ProxySync> => {
      const { id } = request.params;
      const source = adminUrl(id, '/config_dump?include_eds', 'there is no running config to compare', '; POST its /config_dump?include_eds here instead');
      let dump: unknown;
      try {
        const res = await fetch(source, { signal: AbortSignal.timeout(5000) });
        if (!res.ok) throw new Error(`HTTP ${res.status}`);
        dump = await res.json();
      } catch (err) {
        throw new ApiError('PROXY_UNREACHABLE', `proxy ${id}: ${source}: ${(err as Error).message}`);
      }
      return compare(id, dump, source, (err) => new ApiError('PROXY_UNREACHABLE', `proxy ${id}: ${source} answered something else than an Envoy ConfigDump: ${err.message}`));
    },
  );

  // For proxies whose admin the control plane cannot reach (Envoy in a
  // container keeps it on its own loopback): the operator fetches the dump
  // and sends it, as istioctl's `proxy-status --file`.
  app.post<{ Params: { id: string }; Body: unknown }>(
    '/proxies/:id/sync',
    {
      // it changes nothing: viewers may compare too
      config: { readOnly: true },
      schema: {
        tags,
        params: IdParams,
        body: Type.Object({}, { additionalProperties: true, description: "the proxy's /config_dump?include_eds (Envoy's ConfigDump JSON)" }),
        summary: 'compares a config dump of the proxy (sent as the body) with what the control plane means it to run, resource by resource',
      },
    },
    async (request): Promise<ProxySync> => {
      const { id } = request.params;
      if (!deps.proxies.get(id)) throw notFound(`proxy ${id}`);
      return compare(id, request.body, 'request body', (err) => validationFailed([{ path: err.path, message: err.reason }], 'config dump'));
    },
  );

  // Live requests through a proxy (its admin GET /tap, weft sidecars only), streamed as JSON lines until
  // `max` arrived or the client goes away. Admin only: it shows request paths and headers.
  app.get<{ Params: { id: string }; Querystring: Record<string, string> }>(
    '/proxies/:id/tap',
    {
      config: { adminOnly: true },
      schema: {
        tags,
        params: IdParams,
        querystring: TapQuery,
        summary: 'streams the requests going through the proxy now (JSON lines: the access log fields and headers, credentials redacted); admin only',
      },
    },
    async (request, reply) => {
      const { id } = request.params;
      // The admin port decodes %XX only, as Envoy's (a + stays a plus): a space goes as %20, not a form's +.
      const url = adminUrl(id, `/tap?${new URLSearchParams(request.query).toString().replaceAll('+', '%20')}`, 'no requests go through it');
      const abort = new AbortController();
      let res: Awaited<ReturnType<typeof streamingFetch>>;
      try {
        res = await streamingFetch(url, { signal: abort.signal });
      } catch (err) {
        throw new ApiError('PROXY_UNREACHABLE', `proxy ${id}: ${url}: ${(err as Error).message}`);
      }
      if (!res.ok) {
        const text = (await res.text()).trim();
        if (res.status === 400) throw validationFailed([{ path: text.slice(0, Math.max(0, text.indexOf(':'))), message: text.slice(text.indexOf(':') + 1).trim() }], 'query');
        if (res.status === 404) throw new ApiError('PROXY_UNREACHABLE', `proxy ${id} has no live tap (GET /tap is the weft sidecar's; use its access log)`);
        throw new ApiError(res.status === 503 ? 'UNAVAILABLE' : 'PROXY_UNREACHABLE', `proxy ${id}: ${text || `HTTP ${res.status}`}`);
      }
      const upstream = Readable.fromWeb(res.body as import('node:stream/web').ReadableStream<Uint8Array>);
      // fastify sends the headers with the first line; a stream that fails before it (the sidecar stopped
      // while nothing matched) reaches the error handler, so it fails as an ApiError, not as a bug (500).
      // Later, the answer is cut off and the client says the tap ended.
      const body = new PassThrough();
      upstream.on('error', (err) => body.destroy(abort.signal.aborted ? err : new ApiError('PROXY_UNREACHABLE', `proxy ${id}: its tap ended before any request: ${err.message}`)));
      upstream.pipe(body);
      reply.raw.once('close', () => abort.abort());
      return reply.header('content-type', 'application/x-ndjson').header('cache-control', 'no-store').send(body);
    },
  );
};
