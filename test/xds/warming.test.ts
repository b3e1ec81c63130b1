// Cluster warming (Envoy's xds_protocol "Resource warming"): Envoy puts an
// updated EDS cluster into service only once a ClusterLoadAssignment arrives
// for it, even an unchanged one, so an updated cluster's CLA follows its CDS
// response on both protocols and after a Delta reconnect.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { ResourceInput } from '../../control/xds/cache.ts';
import { TypeUrl } from '../../control/xds/discovery.ts';
import { DeltaClient, SotwClient } from './ads-client.ts';
import { cluster, meshResources } from './fixtures.ts';
import type { Harness } from './harness.ts';
import { deltaBarrier, meshGroup, sotwBarrier, stamp, startServer } from './harness.ts';

let h: Harness;
before(async () => {
  h = await startServer();
});
after(() => h.close());

/** The mesh with `changed`'s Cluster resource altered (its connect_timeout), its endpoints untouched. */
function withChangedCluster(clusters: string[], changed: string): Record<string, ResourceInput[]> {
  const resources = meshResources(clusters);
  resources[TypeUrl.cluster] = clusters.map((c) => {
    const r = cluster(c);
    return c === changed ? { name: c, value: { ...(r.value as object), connect_timeout: '2s' } } : r;
  });
  return resources;
}

const setup = (id: string, clusters: string[]) => meshGroup(h, id, clusters, 4000);

test('Delta: an updated cluster whose endpoints did not change is followed by its CLA, and only its', async () => {
  const clusters = ['wd-a', 'wd-b'];
  const { node, group } = setup('warm-delta', clusters);
  const client = new DeltaClient(h.port, node);
  try {
    client.subscribe(TypeUrl.cluster);
    client.ack(await client.next());
    client.subscribe(TypeUrl.endpoint, clusters);
    const eds = await client.next();
    client.ack(eds);

    h.cache.setGroup(group, { stamp: stamp(), resources: withChangedCluster(clusters, 'wd-a'), endpointNames: clusters });
    const cds = await client.next();
    assert.equal(cds.typeUrl, TypeUrl.cluster);
    assert.deepEqual(cds.resources.map((r) => r.name), ['wd-a']);
    client.ack(cds);
    const rewarm = await client.next();
    assert.equal(rewarm.typeUrl, TypeUrl.endpoint);
    assert.deepEqual(rewarm.resources.map((r) => [r.name, r.version]), [['wd-a', eds.resources.find((r) => r.name === 'wd-a')!.version]]);
    client.ack(rewarm);
    assert.deepEqual(await deltaBarrier(client), [], 'nothing more');
  } finally {
    client.close();
  }
});

test('Delta: a reconnect holding an old version of a cluster and the current CLA gets the cluster, then the CLA', async () => {
  const clusters = ['wr-a', 'wr-b'];
  const { node, group } = setup('warm-reconnect', clusters);
  const first = new DeltaClient(h.port, node);
  let held: { clusters: Record<string, string>; endpoints: Record<string, string> };
  try {
    first.subscribe(TypeUrl.cluster);
    const cds = await first.next();
    first.ack(cds);
    first.subscribe(TypeUrl.endpoint, clusters);
    const eds = await first.next();
    first.ack(eds);
    held = {
      clusters: Object.fromEntries(cds.resources.map((r) => [r.name, r.version])),
      endpoints: Object.fromEntries(eds.resources.map((r) => [r.name, r.version])),
    };
  } finally {
    first.close();
  }
  // changed while the proxy was away
  h.cache.setGroup(group, { stamp: stamp(), resources: withChangedCluster(clusters, 'wr-b'), endpointNames: clusters });
  const client = new DeltaClient(h.port, node);
  try {
    client.subscribe(TypeUrl.cluster, [], { initialVersions: held.clusters });
    client.subscribe(TypeUrl.endpoint, clusters, { initialVersions: held.endpoints });
    const cds = await client.next();
    assert.equal(cds.typeUrl, TypeUrl.cluster);
    assert.deepEqual(cds.resources.map((r) => r.name), ['wr-b']);
    client.ack(cds);
    const eds = await client.next();
    assert.equal(eds.typeUrl, TypeUrl.endpoint);
    assert.deepEqual(eds.resources.map((r) => r.name), ['wr-b']);
  } finally {
    client.close();
  }
});

test('SotW: an updated cluster whose endpoints did not change is followed by an EDS response', async () => {
  const clusters = ['ws-a', 'ws-b'];
  const { node, group } = setup('warm-sotw', clusters);
  const client = new SotwClient(h.port, node);
  try {
    client.request(TypeUrl.cluster);
    client.ack(await client.next());
    client.request(TypeUrl.endpoint, clusters);
    const eds = await client.next();
    client.ack(eds, clusters);

    h.cache.setGroup(group, { stamp: stamp(), resources: withChangedCluster(clusters, 'ws-b'), endpointNames: clusters });
    const cds = await client.next();
    assert.equal(cds.typeUrl, TypeUrl.cluster);
    client.ack(cds);
    const rewarm = await client.next();
    assert.equal(rewarm.typeUrl, TypeUrl.endpoint);
    assert.deepEqual(rewarm.names.sort(), clusters);
    assert.equal(rewarm.version, eds.version, 'the same endpoints');
    assert.notEqual(rewarm.nonce, eds.nonce);
    client.ack(rewarm, clusters);
    assert.deepEqual(await sotwBarrier(client), [], 'nothing more');
  } finally {
    client.close();
  }
});
