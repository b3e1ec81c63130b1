// PeerAuthentication and AuthorizationPolicy validation: defaults filled,
// bad input reported with field paths, both kinds in the manifest table.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { kindNamed, validateAuthorizationPolicy, validatePeerAuthentication } from '../../control/model/index.ts';

test('PeerAuthentication: namespace-wide or per service; an unknown mode is refused at mode', () => {
  const ns = validatePeerAuthentication({ name: 'default', mode: 'STRICT' });
  assert.deepEqual(ns, { ok: true, value: { name: 'default', namespace: 'default', mode: 'STRICT' } });
  const svc = validatePeerAuthentication({ name: 'legacy', namespace: 'shop', service: 'legacy', mode: 'DISABLE' });
  assert.ok(svc.ok && svc.value.service === 'legacy');
  const bad = validatePeerAuthentication({ name: 'x', mode: 'STRICTEST' });
  assert.ok(!bad.ok);
  assert.equal(bad.errors[0]!.path, 'mode');
  assert.match(bad.errors[0]!.message, /STRICT, PERMISSIVE, DISABLE/);
});

test('AuthorizationPolicy: action defaults to ALLOW; every bad rule field is reported with its path', () => {
  const good = validateAuthorizationPolicy({ name: 'p', service: 'orders', rules: [{ principals: ['spiffe://weft.local/ns/default/sa/web'], paths: ['/api/*'], methods: ['GET'] }] });
  assert.ok(good.ok);
  assert.equal(good.value.action, 'ALLOW');
  assert.equal(good.value.dryRun, undefined, 'enforced unless dryRun says otherwise');
  const dry = validateAuthorizationPolicy({ name: 'p', service: 'orders', dryRun: true, rules: [{ paths: ['/debug*'] }] });
  assert.ok(dry.ok);
  assert.equal(dry.value.dryRun, true);
  const notBool = validateAuthorizationPolicy({ name: 'p', service: 'orders', dryRun: 'yes', rules: [{ paths: ['/debug*'] }] });
  assert.ok(!notBool.ok);
  assert.equal(notBool.errors[0]!.path, 'dryRun');
  const bad = validateAuthorizationPolicy({
    name: 'p', service: 'orders', action: 'DENY',
    rules: [{ principals: ['web'], paths: ['/a*b*'], headers: [{ name: 'bad header', values: ['x'] }] }],
  });
  assert.ok(!bad.ok);
  assert.deepEqual(bad.errors.map((e) => e.path).sort(), ['rules[0].headers[0].name', 'rules[0].paths[0]', 'rules[0].principals[0]']);
  const empty = validateAuthorizationPolicy({ name: 'p', service: 'orders', rules: [] });
  assert.ok(!empty.ok);
  assert.equal(empty.errors[0]!.path, 'rules');
  const method = validateAuthorizationPolicy({ name: 'p', service: 'orders', rules: [{ methods: ['FETCH'] }] });
  assert.ok(!method.ok);
  assert.match(method.errors[0]!.path, /^rules\[0\]\.methods\[0\]/);
});

test('AuthorizationPolicy: a principal pattern that could never match a SPIFFE ID (Istio\'s form without spiffe://) is refused, not silently inert', () => {
  // Istio writes principals without the scheme; here every principal is a full SPIFFE ID, so
  // "weft.local/ns/batch/*" would match no caller: a DENY rule with it would deny nobody.
  const istioStyle = validateAuthorizationPolicy({
    name: 'p', service: 'orders', action: 'DENY',
    rules: [{ principals: ['weft.local/ns/batch/*', 'spiffe://weft.local/ns/ok/*', 'cluster.local/ns/default/sa/web*'] }],
  });
  assert.ok(!istioStyle.ok);
  assert.deepEqual(istioStyle.errors.map((e) => e.path), ['rules[0].principals[0]', 'rules[0].principals[2]']);
  assert.match(istioStyle.errors[0]!.message, /spiffe:\/\/weft\.local\/ns\/batch\/\*/);
  for (const p of ['*', '*/ns/batch/sa/*', '*/sa/web', 'spiffe://weft.local/ns/*', 'spiffe://*/ns/ops/sa/*', 'spif*']) {
    assert.ok(validateAuthorizationPolicy({ name: 'p', service: 'orders', rules: [{ principals: [p] }] }).ok, p);
  }
});

test('both kinds are manifest kinds', () => {
  const pa = kindNamed('PeerAuthentication')!.validateSpec({ name: 'a', namespace: 'shop' }, { mode: 'PERMISSIVE' });
  assert.deepEqual(pa, { ok: true, value: { name: 'a', namespace: 'shop', mode: 'PERMISSIVE' } });
  const ap = kindNamed('AuthorizationPolicy')!.validateSpec({ name: 'b', namespace: 'shop' }, { service: 'orders', rules: [{ namespaces: ['ops'] }] });
  assert.ok(ap.ok);
});

test('policies naming an unknown service are reference errors at service', async () => {
  const { checkReferences } = await import('../../control/model/index.ts');
  const errors = checkReferences({
    services: [{ name: 'orders', namespace: 'default', ports: [{ port: 8080, protocol: 'http' }] }],
    routes: [], destinationPolicies: [], filterBindings: [],
    peerAuthentications: [{ name: 'ns-wide', namespace: 'default', mode: 'STRICT' }, { name: 'pa', namespace: 'default', service: 'ghost', mode: 'STRICT' }],
    authorizationPolicies: [{ name: 'ap', namespace: 'default', service: 'orders.shop', action: 'ALLOW', rules: [{}] }],
  });
  assert.deepEqual(errors.map((e) => `${e.kind}/${e.name} ${e.path}: ${e.message}`), [
    'PeerAuthentication/pa service: unknown service default/ghost',
    'AuthorizationPolicy/ap service: unknown service shop/orders',
  ]);
});

test('an authorization policy for a service with only tcp ports is refused: nothing would enforce it', async () => {
  // The inbound listener of a tcp service is a tcp_proxy with no HTTP RBAC
  // filter: the policy used to be stored and silently not enforced, so an
  // ALLOW meant to keep everyone but ops out let every caller in.
  const { checkReferences } = await import('../../control/model/index.ts');
  const errors = checkReferences({
    services: [
      { name: 'db', namespace: 'default', ports: [{ port: 5432, protocol: 'tcp' }] },
      { name: 'orders', namespace: 'default', ports: [{ port: 8080, protocol: 'http' }, { port: 9000, protocol: 'tcp' }] },
    ],
    routes: [], destinationPolicies: [], filterBindings: [],
    authorizationPolicies: [
      { name: 'only-ops', namespace: 'default', service: 'db', action: 'ALLOW', rules: [{ namespaces: ['ops'] }] },
      { name: 'orders-ops', namespace: 'default', service: 'orders', action: 'ALLOW', rules: [{ namespaces: ['ops'] }] },
    ],
  });
  assert.deepEqual(errors.map((e) => `${e.kind}/${e.name} ${e.path}`), ['AuthorizationPolicy/only-ops service']);
  assert.match(errors[0]!.message, /default\/db has only tcp ports; authorization policies are enforced on HTTP traffic only/);
});
