// Ring hash with a cookie hash policy, as Envoy's: a request without the
// cookie gets one generated (Set-Cookie, the value in double quotes) and is
// hashed on it, and every later request that sends it back lands on the same
// instance: Envoy reads a cookie value without its quotes (parseCookieValue).

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { TestMesh, get, instance, policy, service, startApp } from './harness.ts';

let mesh: TestMesh;
before(async () => {
  mesh = await TestMesh.start();
});
after(async () => {
  await mesh.close();
});

test('a generated hash cookie keeps its client on the instance its first request went to', { timeout: 60_000 }, async () => {
  const apps = await Promise.all(['a', 'b', 'c', 'd'].map((n) => startApp(n)));
  for (const app of apps) mesh.track(() => app.close());
  mesh.model.update({
    services: [service('web', 8000), service('cart', 7000)],
    instances: apps.map((app) => instance('cart', app.port)),
    destinationPolicies: [policy('cart', { loadBalancer: { policy: 'ring_hash', hashOn: { cookie: 'cart-session', ttlSeconds: 3600 } } })],
    routes: [],
  });
  const web = await mesh.sidecar('web', 8000);
  // Twelve clients: under a hash that differed between the first request and the rest, about three in four would move.
  for (let client = 0; client < 12; client++) {
    const first = await get(web.outboundPort, 'cart', '/');
    assert.equal(first.status, 200);
    const setCookie = String(first.headers['set-cookie']);
    assert.match(setCookie, /^cart-session="[0-9a-f]+"; Max-Age=3600; HttpOnly$/);
    const cookie = setCookie.split(';')[0]!;
    for (let i = 0; i < 3; i++) {
      const again = await get(web.outboundPort, 'cart', '/', { headers: { cookie: `lang=en; ${cookie}` } });
      assert.equal(again.headers['set-cookie'], undefined, 'the cookie was sent: none generated');
      assert.equal(again.headers['x-app'], first.headers['x-app'], `client ${client}: ${cookie} moved`);
    }
  }
});
