// GET /whoami, GET /topology (nodes, declared and observed edges, health,
// rates from the proxies' /stats/prometheus between two requests), the
// Prometheus sample arithmetic behind it, and the /ui static assets.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Fastify from 'fastify';
import { startApi } from './harness.ts';
import type { ProxyStatusPort, ProxyView } from '../../control/api/deps.ts';
import { p99, parsePrometheus, ratesBetween, sampleOf } from '../../control/api/sidecar-stats.ts';
import { uiFile, uiRoutes } from '../../control/api/ui.ts';
import { proxyFromNode } from '../../control/xds/node.ts';
import { testNode } from '../xds/ads-client.ts';

const MESH = `
apiVersion: weft.dev/v1
kind: Service
metadata: { name: frontend }
spec: { ports: [{ port: 8080, protocol: http }], dependsOn: [orders] }
---
apiVersion: weft.dev/v1
kind: Service
metadata: { name: orders }
spec: { ports: [{ port: 8081, protocol: http }], dependsOn: [] }
---
apiVersion: weft.dev/v1
kind: Service
metadata: { name: inventory }
spec: { ports: [{ port: 8082, protocol: http }] }
`;

/** Envoy-style stats text for a sidecar that served `requests` inbound (`errors` of them 5xx) and sent `upstream` to orders. */
function stats(requests: number, errors: number, upstream: number, slow = 0): string {
  return [
    '# TYPE envoy_http_downstream_rq_total counter',
    `envoy_http_downstream_rq_total{envoy_http_conn_manager_prefix="inbound"} ${requests}`,
    `envoy_http_downstream_rq_total{envoy_http_conn_manager_prefix="outbound"} ${upstream}`,
    `envoy_http_downstream_rq_xx{envoy_http_conn_manager_prefix="inbound",envoy_response_code_class="2"} ${requests - errors}`,
    `envoy_http_downstream_rq_xx{envoy_http_conn_manager_prefix="inbound",envoy_response_code_class="5"} ${errors}`,
    `envoy_http_downstream_rq_time_bucket{le="5",envoy_http_conn_manager_prefix="inbound"} ${requests - slow}`,
    `envoy_http_downstream_rq_time_bucket{le="250",envoy_http_conn_manager_prefix="inbound"} ${requests}`,
    `envoy_http_downstream_rq_time_bucket{le="+Inf",envoy_http_conn_manager_prefix="inbound"} ${requests}`,
    `envoy_cluster_upstream_rq_total{envoy_cluster_name="outbound|8081|v1|orders.default"} ${upstream}`,
    '',
  ].join('\n');
}

test('parsePrometheus, sampleOf and p99 read Envoy-named stats', () => {
  const lines = parsePrometheus('# HELP x\nenvoy_x{a="q\\"uote",b="2"} 7\nplain 3\n');
  assert.deepEqual(lines, [{ name: 'envoy_x', labels: { a: 'q"uote', b: '2' }, value: 7 }, { name: 'plain', labels: {}, value: 3 }]);
  const s = sampleOf(stats(100, 10, 40, 5), 1000);
  assert.equal(s.inboundRequests, 100);
  assert.equal(s.inbound5xx, 10);
  assert.deepEqual(s.upstreamRequests, { 'orders.default': 40 });
  // 95 of 100 under 5 ms: the 99th percentile lies in the 250 ms bucket
  assert.equal(p99(s.inboundBuckets), 250);
  assert.equal(p99(sampleOf(stats(100, 0, 0, 0), 0).inboundBuckets), 5);
  assert.equal(p99([]), null);
});

test('ratesBetween: rates over the interval, whole-life figures after a counter reset', () => {
  const a = sampleOf(stats(100, 0, 0), 10_000);
  const b = sampleOf(stats(150, 5, 0), 12_000);
  const r = ratesBetween(a, b, 0);
  assert.equal(r.requests, 50);
  assert.equal(r.requestsPerSecond, 25);
  assert.equal(r.errorRate, 0.1);
  const restarted = ratesBetween(b, sampleOf(stats(4, 0, 0), 14_000), 13_000);
  assert.equal(restarted.requests, 4);
  assert.equal(restarted.windowSeconds, 1);
});

test('proxyFromNode reads WEFT_ADMIN_PORT into adminPort, and refuses a bad one by path', () => {
  const ok = proxyFromNode(testNode('p', 'orders', { WEFT_ADMIN_PORT: '15000' }));
  assert.ok('proxy' in ok);
  assert.equal(ok.proxy.adminPort, 15000);
  const none = proxyFromNode(testNode('p', 'orders'));
  assert.ok('proxy' in none && none.proxy.adminPort === undefined);
  const bad = proxyFromNode(testNode('p', 'orders', { WEFT_ADMIN_PORT: '70000' }));
  assert.ok('errors' in bad);
  assert.equal(bad.errors[0]!.path, 'node.metadata.WEFT_ADMIN_PORT');
});

test('GET /whoami names the operator and role; no token is 401', async (t) => {
  const h = await startApi();
  t.after(() => h.close());
  assert.deepEqual(
    { ...(await h.call('GET', '/api/v1/whoami')).json, createdAt: undefined },
    { name: 'alice', role: 'admin', canWrite: true, createdAt: undefined },
  );
  const viewer = (await h.call('GET', '/api/v1/whoami', undefined, h.viewer)).json;
  assert.equal(viewer.role, 'viewer');
  assert.equal(viewer.canWrite, false);
  assert.equal((await h.call('GET', '/api/v1/whoami', undefined, null)).status, 401);
});

test('GET /topology: nodes with health and traffic from proxy stats, declared and observed edges', async (t) => {
  // Two sidecars' admin endpoints: frontend (calls orders) and orders.
  const counters = { frontend: stats(0, 0, 0), orders: stats(0, 0, 0) };
  const ordersAdmin = http.createServer((_req, res) => res.end(counters.orders));
  await new Promise<void>((r) => ordersAdmin.listen(0, '127.0.0.1', () => r()));
  t.after(() => ordersAdmin.close());
  const frontendAdmin = http.createServer((_req, res) => res.end(counters.frontend));
  await new Promise<void>((r) => frontendAdmin.listen(0, '127.0.0.1', () => r()));
  t.after(() => frontendAdmin.close());

  const view = (id: string, service: string, status: ProxyView['status']): ProxyView => ({ id, service, namespace: 'default', kind: 'sidecar', status, versions: {}, nacks: [] });
  // inventory: no instance registered, one proxy gone and one connected (with no admin port to scrape).
  const views = [view('fe-1', 'frontend', 'SYNCED'), view('or-1', 'orders', 'NACKED'), view('gone', 'inventory', 'DISCONNECTED'), view('inv-1', 'inventory', 'NOT_SENT')];
  const ports: Record<string, number> = { 'fe-1': (frontendAdmin.address() as AddressInfo).port, 'or-1': (ordersAdmin.address() as AddressInfo).port, gone: 1 };
  const proxies: ProxyStatusPort = {
    list: () => views,
    get: (id) => views.find((v) => v.id === id),
    config: () => [],
    ref: (id) => ({ id, service: 'x', namespace: 'default', kind: 'sidecar', inboundPort: 1, outboundPort: 2, appPort: 3, appAddress: '127.0.0.1', bindAddress: '127.0.0.1', adminPort: ports[id] }),
  };
  const h = await startApi({ proxies });
  t.after(() => h.close());
  assert.equal((await h.call('POST', '/api/v1/apply', MESH)).status, 200);
  for (const labels of [{ v: '1' }, { v: '2' }]) {
    assert.equal((await h.call('POST', '/api/v1/services/orders/instances', { address: '127.0.0.1', port: 9000 + Number(labels.v), labels })).status, 201);
  }
  const id = (await h.call('POST', '/api/v1/services/frontend/instances', { address: '127.0.0.1', port: 9100 })).json.id;
  assert.equal((await h.call('PUT', `/api/v1/services/frontend/instances/${id}/health`, { health: 'unhealthy' })).status, 200);

  const first = (await h.call('GET', '/api/v1/topology', undefined, h.viewer)).json;
  assert.deepEqual(first.nodes.map((n: { id: string }) => n.id), ['frontend.default', 'inventory.default', 'orders.default']);
  const node = (topo: any, id: string) => topo.nodes.find((n: { id: string }) => n.id === id);
  assert.equal(node(first, 'frontend.default').health, 'down');
  assert.equal(node(first, 'inventory.default').health, 'unknown', 'nothing registered, a proxy connected or not (it was healthy, "0/0 up")');
  assert.equal(node(first, 'orders.default').health, 'degraded');
  assert.match(node(first, 'orders.default').reasons.join(), /NACK/);
  assert.deepEqual(first.edges, [{ from: 'frontend.default', to: 'orders.default', declared: true, observed: false, requestsPerSecond: 0 }]);
  assert.deepEqual(first.scrapeErrors, []);

  // traffic arrives between two requests: rates, error rate, p99 and an observed edge
  counters.orders = stats(200, 20, 0);
  counters.frontend = stats(200, 0, 200);
  const second = (await h.call('GET', '/api/v1/topology')).json;
  const orders = node(second, 'orders.default').stats;
  assert.equal(orders.requests, 200);
  assert.ok(orders.requestsPerSecond > 0);
  assert.equal(orders.errorRate, 0.1);
  assert.equal(orders.p99Ms, 5);
  const edge = second.edges.find((e: { from: string }) => e.from === 'frontend.default');
  assert.equal(edge.observed, true);
  assert.ok(edge.requestsPerSecond > 0);

  // a proxy whose stats cannot be read is reported, not hidden
  await new Promise<void>((r) => ordersAdmin.close(() => r()));
  ordersAdmin.closeAllConnections();
  const third = (await h.call('GET', '/api/v1/topology')).json;
  assert.deepEqual(third.scrapeErrors.map((e: { proxy: string }) => e.proxy), ['or-1']);
  assert.equal(node(third, 'orders.default').stats, null);
});

test('/ui serves the assets without auth, with content types, and nothing outside its folder', async (t) => {
  const root = await mkdtemp(join(tmpdir(), 'weft-ui-assets-'));
  t.after(() => rm(root, { recursive: true, force: true }));
  await mkdir(join(root, 'js'));
  await writeFile(join(root, 'index.html'), '<!doctype html><title>weft</title>');
  await writeFile(join(root, 'js', 'app.js'), 'export {};');
  await writeFile(join(root, 'notes.txt'), 'not an asset type');
  const app = Fastify();
  await app.register(uiRoutes, { root });
  t.after(() => app.close());
  const redirect = await app.inject('/ui');
  assert.equal(redirect.statusCode, 302);
  assert.equal(redirect.headers.location, '/ui/');
  const home = await app.inject('/');
  assert.deepEqual([home.statusCode, home.headers.location], [302, '/ui/'], "the API's address in a browser opens the UI");
  const index = await app.inject('/ui/');
  assert.equal(index.statusCode, 200);
  assert.match(String(index.headers['content-type']), /text\/html/);
  const js = await app.inject('/ui/js/app.js?v=1');
  assert.match(String(js.headers['content-type']), /text\/javascript/);
  assert.equal((await app.inject('/ui/missing.js')).statusCode, 404);
  assert.equal((await app.inject('/ui/notes.txt')).statusCode, 404);
  assert.equal((await app.inject('/ui/..%2F..%2Fetc%2Fpasswd')).statusCode, 404);
  assert.equal(uiFile(root, '/ui/../../etc/passwd'), undefined);
  assert.equal(uiFile(root, '/ui/js/app.js'), join(root, 'js', 'app.js'));
});
