// Manifests, the kinds table and cross-reference checks.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Type } from '@sinclair/typebox';
import { parseManifests } from '../../control/model/manifest.ts';
import { defineKind } from '../../control/model/kind.ts';
import { registerKind } from '../../control/model/kinds.ts';
import { checkReferences, type DesiredState } from '../../control/model/references.ts';
import type { DestinationPolicy, FilterBinding, Route, Service } from '../../control/model/types.ts';

const mesh = `
apiVersion: weft.dev/v1
kind: Service
metadata: { name: reviews }
spec:
  ports: [{ port: 9080, protocol: http }]
---
apiVersion: weft.dev/v1
kind: DestinationPolicy
metadata: { name: reviews, namespace: default }
spec:
  service: reviews
  subsets:
    - { name: v1, labels: { version: v1 } }
    - { name: v2, labels: { version: v2 } }
---
# an empty document is skipped
---
apiVersion: weft.dev/v1
kind: Route
metadata: { name: reviews-canary }
spec:
  service: reviews
  rules:
    - destinations:
        - { service: reviews, subset: v1, weight: 90 }
        - { service: reviews, subset: v2, weight: 10 }
`;

test('a multi-document file parses into validated objects with defaults and document indexes', () => {
  const result = parseManifests(mesh);
  assert.ok(result.ok, JSON.stringify(!result.ok && result.errors));
  assert.deepEqual(result.value.map((m) => [m.kind, m.metadata.namespace, m.metadata.name, m.document]), [
    ['Service', 'default', 'reviews', 0],
    ['DestinationPolicy', 'default', 'reviews', 1],
    ['Route', 'default', 'reviews-canary', 3],
  ]);
  const service = result.value[0]!.spec as Service;
  assert.deepEqual(service, { name: 'reviews', namespace: 'default', ports: [{ port: 9080, protocol: 'http' }] });
});

test('errors from several documents are all reported with document paths', () => {
  const broken = mesh.replace('port: 9080', 'port: 0').replace('weight: 10', 'weight: -10');
  const result = parseManifests(broken);
  assert.equal(result.ok, false);
  if (result.ok) return;
  assert.deepEqual(result.errors.map((e) => e.path), ['documents[0].spec.ports[0].port', 'documents[3].spec.rules[0].destinations[1].weight']);
});

test('a wrong envelope does not hide the spec errors of the same document', () => {
  const text = `apiVersion: weft.dev/v2
kind: Service
metadata: { name: Reviews }
spec:
  ports: [{ port: 99999, protocol: http }]
`;
  const result = parseManifests(text);
  assert.ok(!result.ok);
  assert.deepEqual(result.errors.map((e) => e.path).sort(), ['documents[0].apiVersion', 'documents[0].metadata.name', 'documents[0].spec.ports[0].port']);
  const noSpec = parseManifests('apiVersion: weft.dev/v1\nkind: Service\nmetadata: { name: reviews }\n');
  assert.ok(!noSpec.ok);
  assert.equal(noSpec.errors.length, 1, JSON.stringify(noSpec.errors));
  assert.equal(noSpec.errors[0]!.path, 'documents[0].spec');
});

test('registering a kind makes manifests of it valid', () => {
  const doc = 'apiVersion: weft.dev/v1\nkind: TestQuota\nmetadata: {name: q}\nspec: {limit: 5}\n';
  assert.equal(parseManifests(doc).ok, false);
  registerKind(
    defineKind({
      kind: 'TestQuota',
      description: 'test-only kind',
      spec: { limit: Type.Integer({ minimum: 1 }) },
      build: (meta, spec) => ({ value: { ...meta, limit: spec.limit }, errors: [] }),
    }),
  );
  const result = parseManifests(doc);
  assert.ok(result.ok);
  assert.deepEqual(result.value[0]!.spec, { name: 'q', namespace: 'default', limit: 5 });
  assert.throws(() => registerKind(defineKind({ kind: 'TestQuota', description: '', spec: {}, build: (m) => ({ value: m, errors: [] }) })), /already registered/);
});

const reviews: Service = { name: 'reviews', namespace: 'default', ports: [{ port: 9080, protocol: 'http' }] };
const policy: DestinationPolicy = { name: 'reviews', namespace: 'default', service: 'reviews', subsets: [{ name: 'v1', labels: { version: 'v1' } }] };
const route = (destinations: Route['rules'][number]['destinations'], service = 'reviews'): Route => ({ name: 'r', namespace: 'default', service, rules: [{ destinations }] });
const binding: FilterBinding = { name: 'b', namespace: 'default', service: 'reviews', direction: 'inbound', filter: 'auth', order: 0, config: {}, failurePolicy: 'fail_closed' };
const state = (over: Partial<DesiredState>): DesiredState => ({ services: [reviews], routes: [], destinationPolicies: [policy], filterBindings: [], ...over });

test('a consistent desired state has no reference errors', () => {
  assert.deepEqual(checkReferences(state({ routes: [route([{ service: 'reviews', subset: 'v1', weight: 1, port: 9080 }])], filterBindings: [binding], filters: ['auth'] })), []);
});

test('dangling references are refused, saying which', () => {
  const errors = checkReferences(
    state({
      services: [reviews, { name: 'web', namespace: 'default', ports: [{ port: 80, protocol: 'http' }], dependsOn: ['ghost'] }],
      routes: [route([{ service: 'ratings', weight: 1 }, { service: 'reviews', subset: 'v9', weight: 1 }, { service: 'reviews.other', weight: 1 }, { service: 'reviews', port: 1234, weight: 1 }])],
      destinationPolicies: [policy, { name: 'p2', namespace: 'default', service: 'payments' }],
      filterBindings: [binding],
      filters: ['telemetry'],
    }),
  );
  const by = (path: string, kind: string) => errors.find((e) => e.path === path && e.kind === kind)?.message;
  assert.match(by('dependsOn[0]', 'Service') ?? '', /unknown service default\/ghost/);
  assert.match(by('rules[0].destinations[0].service', 'Route') ?? '', /unknown service default\/ratings/);
  assert.match(by('rules[0].destinations[1].subset', 'Route') ?? '', /unknown subset v9 of service default\/reviews/);
  assert.match(by('rules[0].destinations[2].service', 'Route') ?? '', /unknown service other\/reviews/);
  assert.match(by('rules[0].destinations[3].port', 'Route') ?? '', /no port 1234/);
  assert.match(by('service', 'DestinationPolicy') ?? '', /unknown service default\/payments/);
  assert.match(by('filter', 'FilterBinding') ?? '', /unknown filter auth/);
  assert.equal(errors.length, 7);
});

test('a tcp-only service takes no HTTP route and no inbound filter binding; an outbound binding is fine', () => {
  // Translation refuses both (a tcp service has a tcp_proxy inbound and no
  // virtual host), and a refused translation keeps every proxy concerned on
  // its last good snapshot: they must be refused at write time instead.
  const db: Service = { name: 'db', namespace: 'default', ports: [{ port: 5432, protocol: 'tcp' }] };
  const errors = checkReferences(state({
    services: [reviews, db],
    routes: [route([{ service: 'db', weight: 1 }], 'db')],
    filterBindings: [{ ...binding, name: 'in', service: 'db' }, { ...binding, name: 'out', service: 'db', direction: 'outbound' }],
    filters: ['auth'],
  }));
  assert.deepEqual(errors.map((e) => `${e.kind}/${e.name} ${e.path}`), ['Route/r service', 'Route/r rules[0].destinations[0].service', 'FilterBinding/in direction']);
  assert.match(errors[0]!.message, /default\/db has only tcp ports, so HTTP routes cannot apply/);
  assert.match(errors[2]!.message, /default\/db has only tcp ports, so inbound HTTP filters cannot apply/);
});

test("a destination policy's HTTP-only settings are refused for a tcp-only service; tcp settings are fine", () => {
  const db: Service = { name: 'db', namespace: 'default', ports: [{ port: 5432, protocol: 'tcp' }] };
  const errors = checkReferences(state({
    services: [reviews, db],
    destinationPolicies: [
      policy,
      {
        name: 'db', namespace: 'default', service: 'db', connectTimeoutMs: 500, circuitBreakers: { maxConnections: 10 },
        healthCheck: { path: '/healthz', intervalMs: 1000, timeoutMs: 500, healthyThreshold: 1, unhealthyThreshold: 1 },
        idleTimeoutMs: 1000, loadBalancer: { policy: 'ring_hash', hashOn: { header: 'x-user' } },
      },
      { name: 'db-lr', namespace: 'default', service: 'db', loadBalancer: { policy: 'least_request' } },
    ],
  }));
  assert.deepEqual(errors.map((e) => `${e.name} ${e.path}`), ['db healthCheck', 'db idleTimeoutMs', 'db loadBalancer.policy']);
  assert.match(errors[0]!.message, /only tcp ports: it would have no effect/);
});

test('HTTP rules cannot send to a tcp port: an explicit tcp port, or a service with no HTTP port, is refused', () => {
  const db: Service = { name: 'db', namespace: 'default', ports: [{ port: 5432, protocol: 'tcp' }] };
  const mixed: Service = { name: 'mixed', namespace: 'default', ports: [{ port: 9091, protocol: 'tcp' }, { port: 9090, protocol: 'http' }] };
  const r: Route = { name: 'r', namespace: 'default', service: 'reviews', rules: [{
    destinations: [{ service: 'db', weight: 1 }, { service: 'mixed', port: 9091, weight: 1 }, { service: 'mixed', weight: 1 }, { service: 'mixed', port: 9090, weight: 1 }],
    mirror: { service: 'db', percentage: 1 },
  }] };
  const errors = checkReferences(state({ services: [reviews, db, mixed], routes: [r] }));
  assert.deepEqual(errors.map((e) => e.path), ['rules[0].destinations[0].service', 'rules[0].destinations[1].port', 'rules[0].mirror.service']);
  assert.match(errors[1]!.message, /port 9091 of service default\/mixed is a tcp port/);
});
