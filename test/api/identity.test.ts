// The identity surface of the REST API: join tokens (admin only, shown once,
// 404 when identity is off, bad bodies reported by field) and the two policy
// kinds through the generic object routes and manifests.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { JoinTokens } from '../../control/ca/join-tokens.ts';
import { startApi } from './harness.ts';

test('POST /tokens/join issues a token that verifies for that identity; viewers may not; bad bodies name the field', async () => {
  const tokens = new JoinTokens();
  const h = await startApi({ joinTokens: { issue: (i) => tokens.issue(i), list: () => tokens.list(), revoke: (id) => tokens.revoke(id), trustDomain: 'weft.local' } });
  try {
    const r = await h.call('POST', '/api/v1/tokens/join', { service: 'orders', namespace: 'shop' });
    assert.equal(r.status, 201);
    assert.equal(r.json.spiffeId, 'spiffe://weft.local/ns/shop/sa/orders');
    assert.deepEqual({ ...tokens.verify(r.json.token) }, { id: r.json.id, namespace: 'shop', service: 'orders', issuedAt: r.json.issuedAt });
    assert.equal((await h.call('POST', '/api/v1/tokens/join', { service: 'orders' }, h.viewer)).status, 403);
    const bad = await h.call('POST', '/api/v1/tokens/join', { service: 'Orders!' });
    assert.equal(bad.status, 400);
    assert.match(JSON.stringify(bad.json.error.details), /service/);
    // listed by id without the token; viewers may neither list nor revoke
    const listed = await h.call('GET', '/api/v1/tokens/join');
    assert.deepEqual(listed.json.items, [{ id: r.json.id, service: 'orders', namespace: 'shop', spiffeId: 'spiffe://weft.local/ns/shop/sa/orders', issuedAt: r.json.issuedAt, expiresAt: null, expired: false }]);
    assert.equal((await h.call('GET', '/api/v1/tokens/join', undefined, h.viewer)).status, 403);
    assert.equal((await h.call('DELETE', `/api/v1/tokens/join/${r.json.id}`, undefined, h.viewer)).status, 403);
    const revoked = await h.call('DELETE', `/api/v1/tokens/join/${r.json.id}`);
    assert.equal(revoked.status, 200);
    assert.deepEqual(revoked.json, { id: r.json.id, revoked: true });
    assert.equal(tokens.verify(r.json.token), undefined);
    assert.equal((await h.call('DELETE', `/api/v1/tokens/join/${r.json.id}`)).status, 404);
  } finally {
    await h.close();
  }
});

test('without identity, join tokens are 404 with the reason', async () => {
  const h = await startApi();
  try {
    const r = await h.call('POST', '/api/v1/tokens/join', { service: 'orders' });
    assert.equal(r.status, 404);
    assert.match(r.json.error.message, /--identity/);
  } finally {
    await h.close();
  }
});

test('PeerAuthentication and AuthorizationPolicy through the object routes and manifests', async () => {
  const h = await startApi();
  try {
    assert.equal((await h.call('POST', '/api/v1/services', { name: 'orders', ports: [{ port: 8080, protocol: 'http' }] })).status, 201);
    assert.equal((await h.call('POST', '/api/v1/peer-authentications', { name: 'strict', mode: 'STRICT' })).status, 201);
    const bad = await h.call('POST', '/api/v1/authorization-policies', { name: 'p', service: 'orders', rules: [{ principals: ['frontend'] }] });
    assert.equal(bad.status, 400);
    assert.equal(bad.json.error.details[0].path, 'rules[0].principals[0]');
    const dangling = await h.call('POST', '/api/v1/authorization-policies', { name: 'p', service: 'ghost', rules: [{ namespaces: ['ops'] }] });
    assert.equal(dangling.status, 422);
    const manifest = [
      'apiVersion: weft.dev/v1', 'kind: AuthorizationPolicy', 'metadata: { name: readers }',
      'spec: { service: orders, rules: [{ principals: ["spiffe://weft.local/ns/default/sa/web"], methods: [GET] }] }',
    ].join('\n');
    assert.ok((await h.call('POST', '/api/v1/apply', manifest)).status < 300);
    const got = await h.call('GET', '/api/v1/authorization-policies/readers');
    assert.equal(got.status, 200);
    assert.equal(got.json.action, 'ALLOW');
    const model = h.deps.buildModel();
    assert.equal(model.authorizationPolicies?.length, 1);
    assert.equal(model.peerAuthentications?.[0]?.mode, 'STRICT');
  } finally {
    await h.close();
  }
});
