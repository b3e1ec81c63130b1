// The web UI's static assets at /ui (control/ui: plain HTML, CSS and ES
// modules; no build step, no CDN, so it works offline). Served without auth:
// the assets hold no data; every figure comes from /api/v1 with the token the
// operator logs in with. Only files inside control/ui are served.
import type { FastifyPluginAsync } from 'fastify';
import { readFile } from 'node:fs/promises';
import { extname, join, normalize, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ApiError } from './errors.ts';

export const UI_DIR = fileURLToPath(new URL('../ui/', import.meta.url));

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
};

/** The file under `root` a /ui path names, or undefined when it would leave `root`. */
export function uiFile(root: string, urlPath: string): string | undefined {
  let rel: string;
  try {
    rel = decodeURIComponent(urlPath.split('?')[0]!.replace(/^\/ui\/?/, ''));
  } catch {
    return undefined;
  }
  if (rel === '' || rel.endsWith('/')) rel += 'index.html';
  const file = normalize(join(root, rel));
  return file.startsWith(root.endsWith(sep) ? root : root + sep) ? file : undefined;
}

export const uiRoutes: FastifyPluginAsync<{ root?: string }> = async (app, opts) => {
  const root = opts.root ?? UI_DIR;
  const notFound = (url: string) => new ApiError('NOT_FOUND', `no UI asset ${url.split('?')[0]}`).toBody();
  app.get('/ui', { schema: { hide: true } }, (_request, reply) => reply.redirect('/ui/'));
  // The API's address opened in a browser: the UI (it was a 404, and the UI's own first load logged it).
  app.get('/', { schema: { hide: true } }, (_request, reply) => reply.redirect('/ui/'));
  app.get('/ui/*', { schema: { hide: true } }, async (request, reply) => {
    const file = uiFile(root, request.url);
    const type = file ? TYPES[extname(file)] : undefined;
    const body = file && type ? await readFile(file).catch(() => undefined) : undefined;
    if (!body || !type) return reply.code(404).send(notFound(request.url));
    // no-cache: a control-plane upgrade must not leave an old UI in the browser
    return reply.header('content-type', type).header('cache-control', 'no-cache').header('x-content-type-options', 'nosniff').send(body);
  });
};
