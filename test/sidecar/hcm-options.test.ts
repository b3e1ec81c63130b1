// What an HTTP connection manager says about headers, honoured as Envoy
// honours it: the `server` response header (server_name, by default "envoy",
// under server_header_transformation, by default OVERWRITE) on proxied and
// local replies, and generate_request_id.

import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { TestMesh, get, instance, service, startApp, withFields } from './harness.ts';

const closers: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of closers.reverse()) await c();
});

/** A mesh whose connection managers carry `hcm`; the app answers with its own server header and echoes x-request-id. */
async function meshWith(hcm: Record<string, unknown>): Promise<number> {
  const mesh = await TestMesh.start({ translator: withFields(hcm) });
  closers.push(() => mesh.close());
  const app = await startApp('origin', (req, res) => {
    res.setHeader('server', 'origin/1.0');
    res.end(String(req.headers['x-request-id'] ?? 'none'));
  });
  closers.push(() => app.close());
  mesh.model.update({ services: [service('caller', 8000), service('origin', 7000)], instances: [instance('origin', app.port)], routes: [] });
  return (await mesh.sidecar('caller', 8000)).outboundPort;
}

test('by default the server header is "envoy" on every response (the app\'s is replaced), and requests get an x-request-id', { timeout: 30_000 }, async () => {
  const port = await meshWith({});
  const proxied = await get(port, 'origin', '/');
  assert.equal(proxied.headers.server, 'envoy');
  assert.match(proxied.body, /^[0-9a-f-]{36}$/, 'the app got a generated x-request-id');
  const local = await get(port, 'nowhere', '/');
  assert.equal(local.status, 404);
  assert.equal(local.headers.server, 'envoy');
});

test('server_name with APPEND_IF_ABSENT keeps the app\'s header and names local replies; PASS_THROUGH adds none; generate_request_id false adds no id', { timeout: 30_000 }, async () => {
  const append = await meshWith({ server_name: 'weft', server_header_transformation: 'APPEND_IF_ABSENT', generate_request_id: false });
  const proxied = await get(append, 'origin', '/');
  assert.equal(proxied.headers.server, 'origin/1.0');
  assert.equal(proxied.body, 'none');
  assert.equal((await get(append, 'nowhere', '/')).headers.server, 'weft');
  const pass = await meshWith({ server_header_transformation: 'PASS_THROUGH' });
  assert.equal((await get(pass, 'origin', '/')).headers.server, 'origin/1.0');
  assert.equal((await get(pass, 'nowhere', '/')).headers.server, undefined);
});
