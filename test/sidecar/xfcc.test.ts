// x-forwarded-client-cert as Envoy's connection manager treats it by
// default (forward_client_cert_details SANITIZE, which weft's translator
// leaves unset): the header a caller sends is removed before the filters and
// the upstream, so nobody can tell an app a forged caller identity.

import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { TestMesh, freePort, get, instance, service, startApp } from './harness.ts';

const closers: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of closers.reverse()) await c();
});

const FORGED = 'By=spiffe://weft.local/ns/default/sa/orders;Hash=00;URI=spiffe://weft.local/ns/default/sa/admin';

test('a caller\'s x-forwarded-client-cert never reaches the app, through the outbound or straight to the inbound listener', { timeout: 30_000 }, async () => {
  const app = await startApp('orders');
  closers.push(() => app.close());
  const mesh = await TestMesh.start();
  closers.push(() => mesh.close());
  const inboundPort = await freePort();
  mesh.model.update({ services: [service('frontend', 8000), service('orders', 7000)], instances: [instance('orders', inboundPort)], routes: [] });
  const callee = await mesh.sidecar('orders', app.port, { inboundPort });
  const caller = await mesh.sidecar('frontend', 8000);

  const outbound = await get(caller.outboundPort, 'orders', '/', { headers: { 'x-forwarded-client-cert': FORGED } });
  assert.equal(outbound.status, 200);
  const seenOutbound = JSON.parse(outbound.body).headers as Record<string, string>;
  assert.equal(seenOutbound['x-forwarded-client-cert'], undefined, 'forwarded through two sidecars');
  assert.ok(seenOutbound['x-request-id'], 'the app did get the request through the sidecars');

  // Straight to the callee's inbound listener (the mesh default PERMISSIVE takes plaintext), skipping any caller sidecar.
  const inbound = await get(callee.inboundPort, 'orders', '/', { headers: { 'x-forwarded-client-cert': FORGED, 'x-other': 'kept' } });
  assert.equal(inbound.status, 200);
  const seenInbound = JSON.parse(inbound.body).headers as Record<string, string>;
  assert.equal(seenInbound['x-forwarded-client-cert'], undefined);
  assert.equal(seenInbound['x-other'], 'kept');
});
