// The whole xDS path with the real store, registry, translator and Envoy
// codec: a sidecar's proxy sees only what its service may reach, an instance
// change pushes one CLA and converges (status + metrics), NACKs show up in
// proxy status, invalid translations keep the last good snapshot.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { Service } from '../../control/model/types.ts';
import { decodeResource } from '../../control/envoy/index.ts';
import { createRegistry } from '../../control/registry/index.ts';
import type { Registry } from '../../control/registry/index.ts';
import { createMemoryStore } from '../../control/store/index.ts';
import type { Store } from '../../control/store/index.ts';
import type { XdsServer } from '../../control/xds/index.ts';
import { createXdsServer, storeModelSource, TypeUrl } from '../../control/xds/index.ts';
import { DeltaClient, SotwClient, testNode } from './ads-client.ts';
import { deltaBarrier, waitFor } from './harness.ts';

let store: Store;
let registry: Registry;
let xds: XdsServer;
let port: number;

function service(name: string, port: number, dependsOn?: string[]): Service {
  return { name, namespace: 'default', ports: [{ port, protocol: 'http' }], ...(dependsOn ? { dependsOn } : {}) };
}

before(async () => {
  store = createMemoryStore();
  registry = createRegistry(store);
  await store.commit(
    [service('web', 8080, ['orders']), service('orders', 9090), service('billing', 9191)].map((s) => ({ op: 'put' as const, kind: 'Service', namespace: 'default', name: s.name, spec: s })),
    { actor: 'test', summary: 'services' },
  );
  await registry.register('orders', 'default', { address: '127.0.0.1', port: 7001 });
  await registry.register('billing', 'default', { address: '127.0.0.1', port: 7101 });
  xds = createXdsServer({ source: storeModelSource(store, registry), debounceMs: 10 });
  port = await xds.listen('127.0.0.1', 0);
});
after(() => xds.close());

const ORDERS = 'outbound|9090||orders.default';

test('a sidecar gets only the services it depends on, and its app port from the service', async () => {
  const client = new SotwClient(port, testNode('web-1', 'web'));
  try {
    client.request(TypeUrl.cluster);
    const cds = await client.next();
    assert.deepEqual(cds.names.sort(), ['inbound|8080||web.default', ORDERS]);
    client.ack(cds);
    assert.equal(xds.status.ref('web-1')?.appPort, 8080);
  } finally {
    client.close();
  }
});

test('an instance registration pushes one CLA, converges, and is visible in status and metrics', async () => {
  const client = new DeltaClient(port, testNode('web-2', 'web'));
  try {
    client.subscribe(TypeUrl.cluster);
    client.ack(await client.next());
    client.subscribe(TypeUrl.endpoint, [ORDERS]);
    const eds = await client.next();
    assert.equal(eds.resources.length, 1);
    client.ack(eds);

    await registry.register('orders', 'default', { address: '127.0.0.1', port: 7002 });
    const push = await client.next();
    assert.equal(push.typeUrl, TypeUrl.endpoint);
    assert.deepEqual(push.resources.map((r) => r.name), [ORDERS]);
    client.ack(push);
    assert.deepEqual(await deltaBarrier(client, 'outbound'), []);
    await waitFor(() => xds.status.get('web-2')?.convergenceMs !== undefined && xds.status.get('web-2')?.status === 'SYNCED');
    const status = xds.status.get('web-2')!;
    assert.equal(status.status, 'SYNCED');
    assert.equal(status.stream, 'delta');
    const metrics = await xds.metrics.metrics();
    assert.match(metrics, /weft_xds_convergence_seconds_count [1-9]/);
    assert.match(metrics, /weft_xds_pushes_total\{type="ClusterLoadAssignment"\} [1-9]/);
    assert.match(metrics, /weft_xds_connected_proxies\{stream="delta"\} 1/);
    const config = xds.status.config('web-2')!;
    assert.deepEqual(config[TypeUrl.endpoint]!.resources.map((r) => r.name), [ORDERS]);
  } finally {
    client.close();
  }
});

test('a NACK is recorded in proxy status with message and revision; disconnect is shown', async () => {
  const client = new SotwClient(port, testNode('web-3', 'web'));
  try {
    client.request(TypeUrl.cluster);
    const cds = await client.next();
    client.nack(cds, 'clusters[0]: not supported here');
    await waitFor(() => xds.status.get('web-3')?.status === 'NACKED');
    const nack = xds.status.get('web-3')!.lastNacks[TypeUrl.cluster]!;
    assert.equal(nack.message, 'clusters[0]: not supported here');
    assert.equal(nack.version, cds.version);
    assert.equal(typeof nack.revision, 'number');
    assert.match(await xds.metrics.metrics(), /weft_xds_nacks_total\{type="Cluster"\} 1/);
  } finally {
    client.close();
  }
  await waitFor(() => xds.status.get('web-3')?.status === 'DISCONNECTED');
});

test('a node without node.cluster is refused with the field path', async () => {
  const client = new SotwClient(port, { id: 'nobody' });
  client.request(TypeUrl.cluster);
  await assert.rejects(client.next(), /node\.cluster/);
  client.close();
});

test('a proxy reconnecting after its group went idle gets endpoints that changed meanwhile', async () => {
  const countEndpoints = async (id: string) => {
    const client = new DeltaClient(port, testNode(id, 'web'));
    try {
      client.subscribe(TypeUrl.cluster);
      client.ack(await client.next());
      client.subscribe(TypeUrl.endpoint, [ORDERS]);
      const eds = await client.next();
      const cla = decodeResource(TypeUrl.endpoint, eds.resources[0]!.bytes) as { endpoints: { lb_endpoints: unknown[] }[] };
      return cla.endpoints.reduce((n, l) => n + l.lb_endpoints.length, 0);
    } finally {
      client.close();
    }
  };
  const before = await countEndpoints('web-4');
  await waitFor(() => xds.ads.groupsInUse().length === 0);
  await registry.register('orders', 'default', { address: '127.0.0.1', port: 7003 });
  xds.controller.flush();
  assert.equal(await countEndpoints('web-5'), before + 1);
});

test('node metadata sent over the wire sets the proxy\'s ports and addresses', async () => {
  const client = new SotwClient(port, testNode('web-6', 'web', { WEFT_INBOUND_PORT: '16006', WEFT_OUTBOUND_PORT: 16001, WEFT_APP_PORT: '8081', WEFT_BIND_ADDRESS: '127.0.0.1', WEFT_ADMIN_PORT: '19000' }));
  try {
    client.request(TypeUrl.listener);
    const lds = await client.next();
    assert.deepEqual(lds.names.sort(), ['inbound', 'outbound']);
    const ref = xds.status.ref('web-6')!;
    assert.deepEqual([ref.inboundPort, ref.outboundPort, ref.appPort, ref.bindAddress, ref.adminPort], [16006, 16001, 8081, '127.0.0.1', 19000]);
    const inbound = decodeResource(TypeUrl.listener, lds.bytes[lds.names.indexOf('inbound')]!) as { address: { socket_address: { address: string; port_value: number } } };
    assert.deepEqual(inbound.address.socket_address, { address: '127.0.0.1', port_value: 16006 });
  } finally {
    client.close();
  }
});
