// The peer identity reaches wasm filters (issue 7): the built-in auth filter,
// bound inbound with `spiffe.allow`, admits a caller by the SPIFFE ID of its
// mTLS client certificate (connection.uri_san_peer_certificate), refuses
// another mesh identity with 403 and a plaintext caller with 401.

import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, test } from 'node:test';
import type { RunningSidecar } from '../../sidecar/main.ts';
import { IdentityMesh, callVia, eventually } from './identity-mesh.ts';

let mesh: IdentityMesh;
let frontend: RunningSidecar;
let batch: RunningSidecar;
let catalog: RunningSidecar;

before(async () => {
  mesh = await IdentityMesh.start();
  for (const name of ['frontend', 'batch', 'catalog']) await mesh.must('POST', '/services', { name, ports: [{ port: 8080, protocol: 'http' }] });
  await mesh.must('POST', '/filter-bindings', {
    name: 'catalog-auth', service: 'catalog', direction: 'inbound', filter: 'auth',
    config: { spiffe: { allow: ['spiffe://weft.local/ns/default/sa/frontend'] } },
  });
  ({ sidecar: frontend } = await mesh.workload('frontend'));
  ({ sidecar: batch } = await mesh.workload('batch'));
  ({ sidecar: catalog } = await mesh.workload('catalog'));
}, { timeout: 60_000 });

after(() => mesh?.close(), { timeout: 20_000 });

test('the auth wasm filter admits the allowed SPIFFE ID, 403s another identity, 401s a plaintext caller', { timeout: 30_000 }, async () => {
  await eventually(async () => (await callVia(frontend, 'catalog', '/items')).status === 200, 'frontend -> catalog 200 by SPIFFE ID', 20_000);
  // No waiting here: a sidecar is ready only with its first config, and that config already carries the binding
  // (created before the sidecars started), so the filter is in force from the first request. Until 2026-11-28 a
  // sidecar that connected while the control plane's debounce window held a change got the previous push's model,
  // without the binding, and served unfiltered for up to a second (test/xds/debounce.test.ts).
  const denied = await callVia(batch, 'catalog', '/items');
  assert.equal(denied.status, 403);
  assert.match(denied.body, /peer identity not allowed/);
  // PERMISSIVE (the default): a plaintext caller reaches the filter without an identity.
  const plaintext = await new Promise<number>((resolve, reject) => {
    http.get({ host: '127.0.0.1', port: catalog.inboundPort, path: '/items', agent: false, timeout: 5000 }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    }).on('error', reject);
  });
  assert.equal(plaintext, 401);
});
