// Proxy status and config through the API, with the real xDS server in
// process and raw ADS clients as proxies: SYNCED with versions per type,
// NACKED with the proxy's message, resources per type, 404 for unknown ids.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { proxyStatusPort } from '../../control/api/adapters.ts';
import { TypeUrl } from '../../control/envoy/type-urls.ts';
import { createXdsServer, storeModelSource, type XdsServer } from '../../control/xds/index.ts';
import { SotwClient, testNode } from '../xds/ads-client.ts';
import { SotwProxy } from '../cli/sotw-proxy.ts';
import { startApi, type Harness } from './harness.ts';

async function until<T>(probe: () => Promise<T | undefined>, what: string): Promise<T> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function withXds(t: { after(fn: () => Promise<void> | void): void }): Promise<{ h: Harness; xds: XdsServer; port: number }> {
  let xds: XdsServer | undefined;
  const h = await startApi({
    proxies: proxyStatusPort({
      list: () => xds!.status.list(),
      get: (id) => xds!.status.get(id),
      ref: (id) => xds!.status.ref(id),
      config: (id) => xds!.status.config(id),
    }),
  });
  xds = createXdsServer({ source: storeModelSource(h.store, h.registry), debounceMs: 5 });
  const port = await xds.listen('127.0.0.1', 0);
  t.after(async () => {
    await xds!.close();
    await h.close();
  });
  await h.call('POST', '/api/v1/services', { name: 'orders', ports: [{ port: 8081, protocol: 'http' }] });
  await h.call('POST', '/api/v1/services', { name: 'frontend', ports: [{ port: 8080, protocol: 'http' }], dependsOn: ['orders'] });
  await h.call('POST', '/api/v1/services/orders/instances', { address: '127.0.0.1', port: 9301 });
  return { h, xds, port };
}

test('GET /proxies, /proxies/{id} and /proxies/{id}/config show a synced proxy and what it holds', async (t) => {
  const { h, port } = await withXds(t);
  const proxy = new SotwProxy(port, 'frontend-a', 'frontend');
  t.after(() => proxy.close());
  const view = await until(async () => {
    const r = await h.call('GET', '/api/v1/proxies/frontend-a', undefined, h.viewer);
    return r.status === 200 && r.json.status === 'SYNCED' && r.json.versions.routes && r.json.versions.endpoints ? r.json : undefined;
  }, 'frontend-a to sync');
  assert.deepEqual([view.service, view.namespace, view.kind, view.stream], ['frontend', 'default', 'sidecar', 'sotw']);
  assert.deepEqual(Object.keys(view.versions).sort(), ['clusters', 'endpoints', 'listeners', 'routes']);
  assert.deepEqual((await h.call('GET', '/api/v1/proxies')).json.items.map((p: { id: string }) => p.id), ['frontend-a']);

  const clusters = await h.call('GET', '/api/v1/proxies/frontend-a/config?type=clusters');
  assert.deepEqual(Object.keys(clusters.json).sort(), ['clusters', 'proxy']);
  assert.ok(clusters.json.clusters.some((c: { name: string }) => c.name === 'outbound|8081||orders.default'));
  const endpoints = (await h.call('GET', '/api/v1/proxies/frontend-a/config?type=endpoints')).json.endpoints;
  assert.ok(JSON.stringify(endpoints).includes('9301'), 'the registered instance is in the EDS the proxy holds');
  const all = (await h.call('GET', '/api/v1/proxies/frontend-a/config')).json;
  assert.deepEqual(Object.keys(all).sort(), ['clusters', 'endpoints', 'extension-configs', 'listeners', 'proxy', 'routes']);
  assert.ok(all.listeners.some((l: { name: string }) => l.name === 'outbound'));

  assert.equal((await h.call('GET', '/api/v1/proxies/nobody')).status, 404);
  assert.equal((await h.call('GET', '/api/v1/proxies/nobody/config')).status, 404);
});

test('a NACK shows as NACKED with the proxy\'s message', async (t) => {
  const { h, port } = await withXds(t);
  const client = new SotwClient(port, testNode('frontend-b', 'frontend'));
  t.after(() => client.close());
  client.request(TypeUrl.Cluster);
  const reply = await client.next();
  client.nack(reply, 'clusters[0].lb_policy: not supported here');
  const view = await until(async () => {
    const r = await h.call('GET', '/api/v1/proxies/frontend-b');
    return r.json?.status === 'NACKED' ? r.json : undefined;
  }, 'the NACK to be recorded');
  assert.deepEqual(view.nacks.map((n: { type: string; message: string }) => [n.type, n.message]), [['clusters', 'clusters[0].lb_policy: not supported here']]);
});
