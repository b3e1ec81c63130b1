// Validation happens at the API, not at the proxy: a write the API accepts
// must translate to Envoy resources that pass the control plane's own Envoy
// validation (protos + PGV), or the xDS server refuses the snapshot of every
// proxy that calls the service (NOT_SENT: no further config for them at all)
// while the operator got a 200 and a new revision. Each case here was
// accepted until 2026-11-29 and refused at translate time; now it is a 400
// naming the field, nothing stored. A regex JavaScript (the API, the weft
// sidecar) reads and RE2 (Envoy) refuses is checked with re2-wasm.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { startApi, type Harness } from './harness.ts';
import { representativeProxy } from '../../control/api/proxy-diff.ts';
import { encodeResource } from '../../control/envoy/index.ts';
import { TypeUrl } from '../../control/xds/discovery.ts';

const TYPE_URL: Record<string, string> = {
  listeners: TypeUrl.listener,
  routes: TypeUrl.route,
  clusters: TypeUrl.cluster,
  'extension-configs': TypeUrl.extensionConfig,
};

const BASE = `apiVersion: weft.dev/v1
kind: Service
metadata: {name: orders}
spec:
  ports: [{port: 8081, protocol: http}]
---
apiVersion: weft.dev/v1
kind: Service
metadata: {name: frontend}
spec:
  ports: [{port: 8080, protocol: http}]
  dependsOn: [orders]
`;

const route = (rule: string) => `apiVersion: weft.dev/v1
kind: Route
metadata: {name: r1}
spec:
  service: orders
  rules:
    - destinations: [{service: orders}]
${rule}
`;

/** Envoy validation errors of frontend's (the caller's) translated config, as the xDS server would find them. */
function callerConfigErrors(h: Harness): string[] {
  const model = h.deps.buildModel();
  const frontend = model.services.find((s) => s.name === 'frontend')!;
  const out = h.deps.translate(model, representativeProxy(frontend));
  const errors = out.errors.map((e) => `${e.path}: ${e.message}`);
  for (const [type, url] of Object.entries(TYPE_URL)) {
    for (const r of out[type as keyof typeof TYPE_URL & 'listeners'] ?? []) {
      const enc = encodeResource(url, r.value);
      if ('errors' in enc) errors.push(...enc.errors.map((e) => `${type}/${r.name}: ${e.path}: ${e.message}`));
    }
  }
  return errors;
}

interface Case {
  name: string;
  manifest: string;
  /** The field the 400 should name. */
  path: string;
}

const cases: Case[] = [
  { name: 'header match prefix ""', manifest: route(`      match: [{headers: [{name: x-a, match: {prefix: ""}}]}]`), path: 'documents[0].spec.rules[0].match[0].headers[0].match.prefix' },
  { name: 'header match regex ""', manifest: route(`      match: [{headers: [{name: x-a, match: {regex: ""}}]}]`), path: 'documents[0].spec.rules[0].match[0].headers[0].match.regex' },
  { name: 'path match regex ""', manifest: route(`      match: [{path: {regex: ""}}]`), path: 'documents[0].spec.rules[0].match[0].path.regex' },
  { name: 'query param prefix ""', manifest: route(`      match: [{queryParams: [{name: q, match: {prefix: ""}}]}]`), path: 'documents[0].spec.rules[0].match[0].queryParams[0].match.prefix' },
  { name: 'query param regex ""', manifest: route(`      match: [{queryParams: [{name: q, match: {regex: ""}}]}]`), path: 'documents[0].spec.rules[0].match[0].queryParams[0].match.regex' },
  { name: 'prefixRewrite with CR LF', manifest: route(`      match: [{path: {prefix: /a}}]\n      prefixRewrite: "/b\\r\\nx-injected: 1"`), path: 'documents[0].spec.rules[0].prefixRewrite' },
  {
    name: 'service healthCheck.path with NUL',
    manifest: `apiVersion: weft.dev/v1\nkind: Service\nmetadata: {name: orders}\nspec:\n  ports: [{port: 8081, protocol: http}]\n  healthCheck: {path: "/healthz\\0"}\n`,
    path: 'documents[0].spec.healthCheck.path',
  },
];

for (const c of cases) {
  test(`accepted config builds for its callers: ${c.name}`, async () => {
    const h = await startApi();
    try {
      const base = await h.call('POST', '/api/v1/apply', BASE);
      assert.equal(base.status, 200, base.body);
      assert.deepEqual(callerConfigErrors(h), [], 'the base config builds');
      const before = h.store.revision();
      const res = await h.call('POST', '/api/v1/apply', c.manifest);
      const errors = callerConfigErrors(h);
      assert.equal(
        res.status,
        400,
        `accepted (${res.status}, revision ${before} -> ${h.store.revision()}), and frontend's config now fails Envoy validation, so no proxy calling orders gets config any more:\n  ${errors.join('\n  ')}`,
      );
      assert.ok(res.json.error.details.some((d: { path: string }) => d.path === c.path), `error names ${c.path}: ${res.body}`);
      assert.equal(h.store.revision(), before, 'nothing stored');
    } finally {
      await h.close();
    }
  });
}

test('a path regex RE2 (Envoy) refuses is refused at the API, not by every Envoy caller', async () => {
  const { RE2 } = createRequire(import.meta.url)('re2-wasm') as { RE2: new (p: string, f: string) => unknown };
  const pattern = '/api/[^]*'; // JavaScript: "any character"; RE2: "missing ]: [^]"
  assert.throws(() => new RE2(pattern, 'u'), /missing \]/);
  const h = await startApi();
  try {
    assert.equal((await h.call('POST', '/api/v1/apply', BASE)).status, 200);
    const res = await h.call('POST', '/api/v1/apply', route(`      match: [{path: {regex: "${pattern}"}}]`));
    assert.equal(res.status, 400, `accepted: ${res.body}`);
    assert.ok(res.json.error.details.some((d: { path: string }) => d.path === 'documents[0].spec.rules[0].match[0].path.regex'), res.body);
  } finally {
    await h.close();
  }
});
