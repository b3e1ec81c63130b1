// Declarative manifests through the API: one revision per apply, idempotent
// re-apply, dry run with a per-proxy diff, JSON manifests, delete, and
// reference errors pointing into the file.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { startApi } from './harness.ts';

const services = readFileSync(new URL('../../examples/manifests/services.yaml', import.meta.url), 'utf8');
const canary = readFileSync(new URL('../../examples/manifests/canary.yaml', import.meta.url), 'utf8');
const blueGreen = readFileSync(new URL('../../examples/manifests/blue-green.yaml', import.meta.url), 'utf8');

test('apply makes one revision for the whole file, and applying it again makes none', async (t) => {
  const h = await startApi();
  t.after(() => h.close());
  const first = await h.call('POST', '/api/v1/apply', services);
  assert.equal(first.status, 200);
  assert.equal(first.json.revision, 1);
  assert.equal(first.json.changed, true);
  assert.deepEqual(first.json.objects.map((o: { action: string }) => o.action), ['created', 'created', 'created', 'created', 'created']);
  assert.equal(h.store.history()[0]!.changes.length, 5);

  const again = await h.call('POST', '/api/v1/apply', services);
  assert.equal(again.json.revision, 1);
  assert.equal(again.json.changed, false);
  assert.ok(again.json.objects.every((o: { action: string }) => o.action === 'unchanged'));
  assert.equal(h.store.revision(), 1);

  const route = await h.call('POST', '/api/v1/apply', canary);
  assert.equal(route.json.revision, 2);
  const switched = await h.call('POST', '/api/v1/apply', blueGreen);
  assert.deepEqual(switched.json.objects, [{ op: 'put', kind: 'Route', namespace: 'default', name: 'orders', action: 'configured' }]);
  assert.equal(switched.json.revision, 3);
});

test('apply accepts JSON {manifests} with paths manifests[i]', async (t) => {
  const h = await startApi();
  t.after(() => h.close());
  const ok = await h.call('POST', '/api/v1/apply', { manifests: [{ apiVersion: 'weft.dev/v1', kind: 'Service', metadata: { name: 'a' }, spec: { ports: [{ port: 80, protocol: 'http' }] } }] });
  assert.equal(ok.status, 200);
  const bad = await h.call('POST', '/api/v1/apply', { manifests: [{ apiVersion: 'weft.dev/v1', kind: 'Service', metadata: { name: 'b' }, spec: { ports: [{ port: 80, protocol: 'udp' }] } }] });
  assert.equal(bad.status, 400);
  assert.equal(bad.json.error.details[0].path, 'manifests[0].spec.ports[0].protocol');
});

test('a dangling reference anywhere in the file refuses the whole apply, naming the document', async (t) => {
  const h = await startApi();
  t.after(() => h.close());
  const res = await h.call('POST', '/api/v1/apply', services.replace('dependsOn: [inventory, payments]', 'dependsOn: [inventory, billing]'));
  assert.equal(res.status, 422);
  assert.equal(res.json.error.details[0].path, 'documents[1].spec.dependsOn[1]');
  assert.match(res.json.error.details[0].message, /unknown service default\/billing/);
  assert.equal(h.store.revision(), 0);
});

test('every example manifest applies after services.yaml, changes some proxy and breaks no proxy\'s translation', async (t) => {
  const h = await startApi();
  t.after(() => h.close());
  const dir = new URL('../../examples/manifests/', import.meta.url);
  assert.equal((await h.call('POST', '/api/v1/apply', services)).status, 200);
  const files = readdirSync(dir).filter((f) => f.endsWith('.yaml') && f !== 'services.yaml').sort();
  assert.ok(files.length >= 5 && files.includes('fault-injection.yaml'), files.join());
  const diffs: Record<string, { service: string; resources: { type: string; after?: unknown }[]; errors: unknown[] }[]> = {};
  for (const file of files) {
    const text = readFileSync(new URL(file, dir), 'utf8');
    const dry = await h.call('POST', '/api/v1/apply?dryRun=true', text);
    assert.equal(dry.status, 200, `${file}: ${JSON.stringify(dry.json)}`);
    diffs[file] = dry.json.diff.proxies;
    assert.ok(diffs[file]!.some((p) => p.resources.length > 0), `${file} changes some proxy's configuration`);
    assert.deepEqual(diffs[file]!.flatMap((p) => p.errors), [], `${file}: no proxy's translation fails`);
    assert.equal((await h.call('POST', '/api/v1/apply', text)).status, 200, file);
  }
  // The slow rule reaches orders' sidecar (orders calls payments) as the fault filter's response_rate_limit.
  const orders = diffs['fault-injection.yaml']!.find((p) => p.service === 'orders.default')!;
  const routes = JSON.stringify(orders.resources.filter((r) => r.type === 'routes').map((r) => r.after));
  assert.ok(routes.includes('"response_rate_limit":{"fixed_limit":{"limit_kbps":4}'), routes.slice(0, 400));
});

test('dry run returns the objects and the per-proxy resource diff and stores nothing', async (t) => {
  const h = await startApi();
  t.after(() => h.close());
  await h.call('POST', '/api/v1/apply', services);
  const dry = await h.call('POST', '/api/v1/apply?dryRun=true', canary);
  assert.equal(dry.status, 200);
  assert.equal(dry.json.dryRun, true);
  assert.equal(dry.json.changed, true);
  assert.equal(h.store.revision(), 1);
  // frontend depends on orders, so frontend's sidecar gets the new route; inventory's does not.
  const frontend = dry.json.diff.proxies.find((p: { service: string }) => p.service === 'frontend.default');
  assert.equal(frontend.connected, false);
  const routeChange = frontend.resources.find((r: { type: string }) => r.type === 'routes');
  assert.equal(routeChange.action, 'changed');
  assert.equal(routeChange.name, 'outbound');
  const after = JSON.stringify(routeChange.after);
  assert.ok(after.includes('weighted_clusters') && after.includes('outbound|8081|v2|orders.default'), 'the canary split shows in the new route');
  assert.ok(!JSON.stringify(routeChange.before).includes('weighted_clusters'));
  const inventory = dry.json.diff.proxies.find((p: { service: string }) => p.service === 'inventory.default');
  assert.deepEqual(inventory.resources, [], 'inventory calls nobody: nothing changes for it');
});

test('POST /diff answers which proxies change, and nothing for an unchanged file', async (t) => {
  const h = await startApi();
  t.after(() => h.close());
  await h.call('POST', '/api/v1/apply', services);
  const same = await h.call('POST', '/api/v1/diff', services);
  assert.equal(same.status, 200);
  assert.ok(same.json.proxies.every((p: { resources: unknown[] }) => p.resources.length === 0));
  const cb = readFileSync(new URL('../../examples/manifests/circuit-breaking.yaml', import.meta.url), 'utf8');
  const diff = await h.call('POST', '/api/v1/diff', cb);
  const orders = diff.json.proxies.find((p: { service: string }) => p.service === 'orders.default');
  const cluster = orders.resources.find((r: { name: string }) => r.name.endsWith('|inventory.default'));
  assert.equal(cluster.type, 'clusters');
  assert.equal(cluster.after.circuit_breakers.thresholds[0].max_connections, 100);
});

test('delete -f removes the named objects in one revision; absent ones are reported, not errors', async (t) => {
  const h = await startApi();
  t.after(() => h.close());
  await h.call('POST', '/api/v1/apply', services);
  await h.call('POST', '/api/v1/apply', canary);
  const res = await h.call('POST', '/api/v1/delete', canary + '---\napiVersion: weft.dev/v1\nkind: Route\nmetadata: {name: ghost}\n');
  assert.equal(res.status, 200);
  assert.deepEqual(res.json.objects.map((o: { name: string; action: string }) => `${o.name}:${o.action}`), ['orders:deleted', 'ghost:absent']);
  assert.equal(res.json.revision, 3);
  assert.equal((await h.call('GET', '/api/v1/routes/orders')).status, 404);
  const badKind = await h.call('POST', '/api/v1/delete', 'apiVersion: weft.dev/v1\nkind: Gateway\nmetadata: {name: x}\n');
  assert.equal(badKind.status, 400);
  assert.equal(badKind.json.error.details[0].path, 'documents[0].kind');
});
