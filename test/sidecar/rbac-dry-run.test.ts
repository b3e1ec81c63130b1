// A dry-run AuthorizationPolicy on a live sidecar: weft translates it to the
// RBAC filter's shadow_rules (Istio's istio.io/dry-run), which the sidecar
// evaluates as Envoy's RBACFilter::decodeHeaders does: counted in
// http.<prefix>.rbac.<shadow prefix>shadow_allowed / shadow_denied, written to
// the stream's dynamic metadata (envoy.filters.http.rbac), which the access
// log reads with %DYNAMIC_METADATA()%, and never enforced. The enforced rules
// count rbac.allowed / rbac.denied.

import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { defaultTranslator } from '../../control/xds/index.ts';
import { TestMesh, admin, eventually, freePort, get, instance, metric, service, startApp } from './harness.ts';

const closers: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of closers.reverse()) await c().catch(() => undefined);
});

const NS = 'envoy.filters.http.rbac';

test('dry-run policies are evaluated, counted and logged but not enforced; the enforced DENY still answers 403', { timeout: 60_000 }, async () => {
  const mesh = await TestMesh.start({
    translator: defaultTranslator({
      wasmBaseUrl: 'http://127.0.0.1:1',
      wasmClusterName: 'weft-control',
      accessLog: {
        fields: {
          path: '%REQ(:PATH)%',
          code: '%RESPONSE_CODE%',
          deny: `%DYNAMIC_METADATA(${NS}:weft_dry_run_deny_shadow_engine_result)%`,
          denyPolicy: `%DYNAMIC_METADATA(${NS}:weft_dry_run_deny_shadow_effective_policy_id)%`,
          allow: `%DYNAMIC_METADATA(${NS}:weft_dry_run_allow_shadow_engine_result)%`,
          all: `%DYNAMIC_METADATA(${NS})%`,
        },
      },
    }),
  });
  closers.push(() => mesh.close());
  const app = await startApp('orders', (_req, res) => res.end('ok'));
  closers.push(() => app.close());
  const inbound = await freePort();
  mesh.model.update({
    services: [service('orders', 7000)],
    instances: [instance('orders', inbound)],
    authorizationPolicies: [
      { name: 'no-admin', namespace: 'default', service: 'orders', action: 'DENY', rules: [{ paths: ['/admin*'] }] },
      { name: 'no-debug', namespace: 'default', service: 'orders', action: 'DENY', dryRun: true, rules: [{ paths: ['/debug*'] }] },
      // Would deny every plaintext caller (no principal) if enforced.
      { name: 'frontend-only', namespace: 'default', service: 'orders', action: 'ALLOW', dryRun: true, rules: [{ principals: ['spiffe://weft.local/ns/default/sa/frontend'] }] },
    ],
  });
  const lines: string[] = [];
  const sc = await mesh.sidecar('orders', app.port, { inboundPort: inbound, accessLog: (l) => lines.push(l) });
  // The filters' counters are there at 0 with the config, before any request, as Envoy creates them.
  const before = (await admin(sc.adminPort, '/stats/prometheus')).body;
  for (const name of ['envoy_http_rbac_denied', 'envoy_http_rbac_allowed', 'envoy_http_rbac_weft_dry_run_deny_shadow_denied', 'envoy_http_rbac_weft_dry_run_allow_shadow_allowed']) {
    assert.match(before, new RegExp(`^${name}\\{envoy_http_conn_manager_prefix="inbound"\\} 0$`, 'm'), name);
  }

  // Not enforced: /debug and / reach the app although the dry-run policies would refuse them.
  assert.equal((await get(inbound, 'orders', '/debug/vars')).status, 200);
  assert.equal((await get(inbound, 'orders', '/')).status, 200);
  // Enforced: /admin is denied by the DENY filter (the ALLOW filter, after it, never sees it).
  assert.equal((await get(inbound, 'orders', '/admin')).status, 403);
  assert.equal(app.hits, 2, 'the app saw the two requests the enforced policy let through');

  await eventually(() => lines.length >= 3, 5000, 'three access log lines');
  const byPath = Object.fromEntries(lines.map((l) => JSON.parse(l)).map((l) => [l.path, l]));
  assert.deepEqual(
    { deny: byPath['/debug/vars'].deny, denyPolicy: byPath['/debug/vars'].denyPolicy, allow: byPath['/debug/vars'].allow },
    { deny: 'denied', denyPolicy: 'default/no-debug/rules[0]', allow: 'denied' },
  );
  assert.deepEqual(byPath['/debug/vars'].all, {
    weft_dry_run_allow_shadow_engine_result: 'denied',
    weft_dry_run_deny_shadow_effective_policy_id: 'default/no-debug/rules[0]',
    weft_dry_run_deny_shadow_engine_result: 'denied',
  });
  // Allowed by the DENY shadow (no policy matched: no effective policy id); the ALLOW shadow matches no rule.
  assert.deepEqual({ deny: byPath['/'].deny, denyPolicy: byPath['/'].denyPolicy, allow: byPath['/'].allow }, { deny: 'allowed', denyPolicy: null, allow: 'denied' });
  // The enforced denial: the shadow saw it first (no-admin is among the shadow rules too); the ALLOW filter was never reached.
  assert.deepEqual({ code: byPath['/admin'].code, deny: byPath['/admin'].deny, denyPolicy: byPath['/admin'].denyPolicy, allow: byPath['/admin'].allow }, { code: 403, deny: 'denied', denyPolicy: 'default/no-admin/rules[0]', allow: null });

  const m = (name: string) => metric(sc.adminPort, name, { envoy_http_conn_manager_prefix: 'inbound' });
  // The enforced DENY filter counts every request it decided; the ALLOW filter has no rules, so no enforced counts.
  assert.equal(await m('envoy_http_rbac_allowed'), 2);
  assert.equal(await m('envoy_http_rbac_denied'), 1);
  assert.equal(await m('envoy_http_rbac_weft_dry_run_deny_shadow_denied'), 2);
  assert.equal(await m('envoy_http_rbac_weft_dry_run_deny_shadow_allowed'), 1);
  assert.equal(await m('envoy_http_rbac_weft_dry_run_allow_shadow_denied'), 2);
  assert.equal(await m('envoy_http_rbac_weft_dry_run_allow_shadow_allowed'), 0);
});
