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
  // catalog's inbound listener changes once its instance is registered (after its sidecar is ready), and the new
  // version warms until its ECDS filter config comes; meanwhile the previous version serves, as Envoy's listener
  // manager keeps it (docs/sidecar.md, listener warming). So wait until the filter is in force before judging it.
  await eventually(async () => (await callVia(batch, 'catalog', '/items')).status === 403, 'the auth filter in force on catalog: batch -> catalog 403', 20_000);
  const denied = await callVia(batch, 'catalog', '/items');
  assert.equal(denied.status, 403);
  assert.match(denied.body, /peer identity not allowed/);
  assert.equal((await callVia(frontend, 'catalog', '/items')).status, 200, 'frontend -> catalog 200 by SPIFFE ID');
  // PERMISSIVE (the default): a plaintext caller reaches the filter without an identity.
  const plaintext = await new Promise<number>((resolve, reject) => {
    http.get({ host: '127.0.0.1', port: catalog.inboundPort, path: '/items', agent: false, timeout: 5000 }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    }).on('error', reject);
  });
  assert.equal(plaintext, 401);
});
