// SotW subscription rules from Envoy's xds_protocol doc ("How the client
// specifies what resources to return"): an empty resource_names is the legacy
// wildcard only until the stream names a resource of that type.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { TypeUrl } from '../../control/xds/discovery.ts';
import { SotwClient, testNode } from './ads-client.ts';
import { meshResources } from './fixtures.ts';
import type { Harness } from './harness.ts';
import { groupOf, sotwBarrier, stamp, startServer } from './harness.ts';

let h: Harness;
before(async () => {
  h = await startServer();
});
after(() => h.close());

function connected(id: string, clusters: string[]) {
  const node = testNode(id, `svc-${id}`);
  h.cache.setGroup(groupOf(node), { stamp: stamp(), resources: meshResources(clusters), endpointNames: clusters });
  return new SotwClient(h.port, node);
}

test('SotW: after naming a cluster, an empty resource_names unsubscribes from every cluster instead of subscribing to all', async () => {
  const client = connected('legacy-wc', ['lw-a', 'lw-b']);
  try {
    client.request(TypeUrl.cluster, ['lw-a']);
    const first = await client.next();
    assert.deepEqual(first.names, ['lw-a']);
    client.ack(first, ['lw-a']);
    client.ack(first, []);
    const replies = (await sotwBarrier(client)).filter((r) => r.typeUrl === TypeUrl.cluster);
    assert.deepEqual(replies.map((r) => r.names), [[]], 'one response with no clusters: nothing is subscribed');
  } finally {
    client.close();
  }
});

test('SotW: "*" plus a name, then the name alone, then nothing: all clusters, that one, none', async () => {
  const client = connected('star', ['st-a', 'st-b']);
  try {
    client.request(TypeUrl.cluster, ['*', 'st-a']);
    const all = await client.next();
    assert.deepEqual(all.names.sort(), ['st-a', 'st-b']);
    client.ack(all, ['st-a']);
    const one = await client.next();
    assert.deepEqual(one.names, ['st-a']);
    client.ack(one, []);
    const none = await client.next();
    assert.deepEqual(none.names, []);
    client.ack(none, []);
    assert.deepEqual((await sotwBarrier(client)).filter((r) => r.typeUrl === TypeUrl.cluster), []);
  } finally {
    client.close();
  }
});

test('SotW: a stream that never named a cluster keeps the legacy wildcard on every ACK', async () => {
  const client = connected('wc-keep', ['wk-a', 'wk-b']);
  try {
    client.request(TypeUrl.cluster);
    const first = await client.next();
    assert.deepEqual(first.names.sort(), ['wk-a', 'wk-b']);
    client.ack(first, []);
    assert.deepEqual((await sotwBarrier(client)).filter((r) => r.typeUrl === TypeUrl.cluster), []);
  } finally {
    client.close();
  }
});
