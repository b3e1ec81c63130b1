// Wasm module bytes for Envoy (vm_config.code.remote) and weft sidecars.
// Content-addressed, so a URL's bytes never change: immutable caching is safe,
// and no token is needed (Envoy's remote fetch cannot send one; the sha256 in
// the config is what protects the proxy).
import type { FastifyPluginAsync } from 'fastify';
import { ApiError } from '../errors.ts';
import type { ApiDeps } from '../deps.ts';

const SHA256_FILE = /^([0-9a-f]{64})\.wasm$/;

export const wasmRoutes: FastifyPluginAsync<ApiDeps> = async (app, deps) => {
  app.get<{ Params: { file: string } }>('/wasm/:file', { schema: { hide: true } }, async (request, reply) => {
    const match = SHA256_FILE.exec(request.params.file);
    if (!match) throw new ApiError('NOT_FOUND', 'wasm modules are served as /wasm/<sha256 hex>.wasm');
    const bytes = await deps.filters.read(match[1]!);
    if (!bytes) throw new ApiError('NOT_FOUND', `no wasm module with sha256 ${match[1]}`);
    reply
      .header('content-type', 'application/wasm')
      .header('cache-control', 'public, max-age=31536000, immutable')
      .header('etag', `"${match[1]}"`);
    return reply.send(Buffer.from(bytes));
  });
};
