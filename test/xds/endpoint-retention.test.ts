// The control plane's endpoint cache does not grow with every service that
// ever existed: a ClusterLoadAssignment no proxy group's snapshot names any
// more is dropped once no connected proxy watches it. A proxy that still
// watches one (it NACKed, or has not yet applied, the CDS that removed its
// cluster) keeps being served it. bench:soak found the cache holding one CLA
// (8 KiB of encoded bytes each) per service that came and went.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { createXdsServer, TypeUrl } from '../../control/xds/index.ts';
import type { XdsServer } from '../../control/xds/index.ts';
import { MemoryModel, instance, service } from '../sidecar/harness.ts';
import { DeltaClient, testNode } from './ads-client.ts';
import { waitFor } from './harness.ts';

const cla = (svc: string) => `outbound|8080||${svc}.default`;
let model: MemoryModel;
let xds: XdsServer;
let port: number;

before(async () => {
  model = new MemoryModel();
  model.update({ services: [service('web', 8080), service('orders', 8080), service('gone', 8080)], instances: [instance('orders', 7001), instance('gone', 7002)] });
  xds = createXdsServer({ source: model, debounceMs: 1 });
  port = await xds.listen('127.0.0.1', 0);
});
after(() => xds.close());

/** Applies a model change now (no debounce wait). */
function change(patch: Parameters<MemoryModel['update']>[0]): void {
  model.update(patch);
  xds.controller.flush();
}

test('a removed service\'s CLA stays while a proxy still watches it, and is dropped from the cache after', async () => {
  const client = new DeltaClient(port, testNode('web-1', 'web'));
  try {
    client.subscribe(TypeUrl.cluster);
    const cds = await client.next();
    assert.ok(cds.resources.some((r) => r.name === cla('gone')), 'the proxy gets gone\'s cluster');
    client.ack(cds);
    client.subscribe(TypeUrl.endpoint, [cla('orders'), cla('gone')]);
    client.ack(await client.next());
    assert.ok(xds.cache.endpoint(cla('gone')));

    // The service goes; the proxy has not applied the CDS that removes its cluster (it NACKs it), so it still
    // watches gone's endpoints: they stay served.
    change({ services: [service('web', 8080), service('orders', 8080)], instances: [instance('orders', 7001)] });
    const removal = await client.next();
    assert.equal(removal.typeUrl, TypeUrl.cluster);
    assert.deepEqual(removal.removed, [cla('gone')]);
    client.nack(removal, 'clusters: not now');
    assert.ok(xds.cache.endpoint(cla('gone')), 'a CLA a connected proxy watches is kept');

    // The proxy lets the cluster go (unsubscribes); the next change drops the CLA from the cache.
    client.subscribe(TypeUrl.endpoint, [], { unsubscribe: [cla('gone')] });
    await waitFor(() => !xds.ads.watchedEndpoints().has(cla('gone')));
    change({ services: [service('web', 8080), service('orders', 8080), service('billing', 8080)] });
    assert.equal(xds.cache.endpoint(cla('gone')), undefined, 'no proxy names or watches it: dropped');
    assert.ok(xds.cache.endpoint(cla('orders')), 'one still named stays');
  } finally {
    client.close();
  }
});

test('a hundred services that come and go leave the endpoint cache as it was', async () => {
  const client = new DeltaClient(port, testNode('web-2', 'web'));
  try {
    client.subscribe(TypeUrl.cluster);
    client.ack(await client.next());
    await waitFor(() => xds.cache.endpointNames().length > 0);
    for (let i = 0; i < 100; i++) {
      change({ services: [service('web', 8080), service('orders', 8080), service(`passing-${i}`, 8080)], instances: [instance('orders', 7001), instance(`passing-${i}`, 7100 + i)] });
    }
    change({ services: [service('web', 8080), service('orders', 8080)], instances: [instance('orders', 7001)] });
    // What the mesh has now, and nothing of the hundred.
    assert.deepEqual(xds.cache.endpointNames().sort(), [cla('orders'), cla('web')]);
  } finally {
    client.close();
  }
});
