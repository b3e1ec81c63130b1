// An API wired exactly as `weft control` wires it (control/api/adapters.ts),
// over the in-memory store and the real registry, for inject-based tests.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance, InjectOptions } from 'fastify';
import { Registry as PromRegistry } from 'prom-client';
import { buildApp } from '../../control/api/app.ts';
import { createApiDeps, type ApiParts } from '../../control/api/adapters.ts';
import { filterCatalogPort } from '../../control/api/filter-catalog.ts';
import { memoryTokenStore } from '../../control/api/tokens.ts';
import type { ApiDeps } from '../../control/api/deps.ts';
import { FilterCatalog } from '../../control/filters/catalog.ts';
import { createRegistry, type Registry } from '../../control/registry/registry.ts';
import { createMemoryStore } from '../../control/store/memory-store.ts';
import type { Store } from '../../control/store/store.ts';

export interface Harness {
  app: FastifyInstance;
  store: Store;
  registry: Registry;
  deps: ApiDeps;
  admin: string;
  viewer: string;
  /** inject with the admin token unless `token` is given (null = no header). */
  call(method: InjectOptions['method'], url: string, body?: unknown, token?: string | null, headers?: Record<string, string>): Promise<{ status: number; json: any; body: string; headers: Record<string, unknown> }>;
  close(): Promise<void>;
}

export async function startApi(overrides: Partial<ApiParts> = {}): Promise<Harness> {
  const dataDir = await mkdtemp(join(tmpdir(), 'weft-api-'));
  // no built-in filters: tests see only what they upload
  const catalog = new FilterCatalog({ dataDir, manifestPath: join(dataDir, 'no-builtins.json') });
  const store = createMemoryStore();
  const registry = createRegistry(store);
  const tokens = memoryTokenStore();
  const admin = (await tokens.create('alice', 'admin')).token;
  const viewer = (await tokens.create('victor', 'viewer')).token;
  const deps = createApiDeps({
    store,
    registry,
    tokens,
    filters: filterCatalogPort(store, catalog),
    metrics: [new PromRegistry()],
    translateOptions: { wasmBaseUrl: 'http://127.0.0.1:8080', wasmClusterName: 'weft-control' },
    ...overrides,
  });
  const app = await buildApp(deps);
  await app.ready();
  return {
    app,
    store,
    registry,
    deps,
    admin,
    viewer,
    async call(method, url, body, token = admin, headers = {}) {
      const h: Record<string, string> = { ...headers };
      if (token !== null) h.authorization = `Bearer ${token}`;
      const opts: InjectOptions = { method, url, headers: h };
      if (typeof body === 'string') {
        opts.payload = body;
        h['content-type'] ??= 'application/yaml';
      } else if (body !== undefined) opts.payload = body as InjectOptions['payload'];
      const res = await app.inject(opts);
      let json: unknown;
      try {
        json = res.json();
      } catch {
        json = undefined;
      }
      return { status: res.statusCode, json, body: res.body, headers: res.headers as Record<string, unknown> };
    },
    async close() {
      await app.close();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}
