// Delta subscription rules from Envoy's xds_protocol doc ("Incremental xDS"):
// a subscribed name that does not exist is answered in removed_resources, and
// a later subscribe to a name the client already holds is answered with it.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { TypeUrl } from '../../control/xds/discovery.ts';
import { DeltaClient } from './ads-client.ts';
import { cla, meshResources } from './fixtures.ts';
import type { Harness } from './harness.ts';
import { deltaBarrier, meshGroup, stamp, startServer } from './harness.ts';

let h: Harness;
before(async () => {
  h = await startServer();
});
after(() => h.close());

const setup = (id: string, clusters: string[]) => meshGroup(h, id, clusters, 2000);

test('Delta: a subscription to a name that does not exist is answered with it in removed_resources, once; it is sent when it appears', async () => {
  const { node, group } = setup('absent', ['ab-a']);
  const client = new DeltaClient(h.port, node);
  try {
    client.subscribe(TypeUrl.endpoint, ['ab-a', 'ab-missing']);
    const first = await client.next();
    assert.deepEqual(first.resources.map((r) => r.name), ['ab-a']);
    assert.deepEqual(first.removed, ['ab-missing']);
    client.ack(first);
    // told once: an unrelated change of ab-a does not repeat it
    h.cache.setEndpoints(stamp(), [cla('ab-a', [2100])]);
    const second = await client.next();
    assert.deepEqual(second.resources.map((r) => r.name), ['ab-a']);
    assert.deepEqual(second.removed, []);
    client.ack(second);
    // it springs into existence: sent
    h.cache.setGroup(group, { stamp: stamp(), resources: meshResources(['ab-a', 'ab-missing']), endpointNames: ['ab-a', 'ab-missing'] });
    h.cache.setEndpoints(stamp(), [cla('ab-missing', [2101])]);
    const replies = await client.collectUntil((r) => r.typeUrl === TypeUrl.endpoint && r.resources.some((x) => x.name === 'ab-missing'));
    for (const r of replies) client.ack(r);
    assert.deepEqual(replies.at(-1)!.removed, []);
  } finally {
    client.close();
  }
});

test('Delta: a route configuration subscribed to on a later request that does not exist is in removed_resources', async () => {
  const { node } = setup('absent-rds', ['ar-a']);
  const client = new DeltaClient(h.port, node);
  try {
    client.subscribe(TypeUrl.route, ['outbound']);
    const first = await client.next();
    assert.deepEqual(first.resources.map((r) => r.name), ['outbound']);
    client.ack(first);
    client.subscribe(TypeUrl.route, ['no-such-route'], { nonce: first.nonce });
    const second = await client.next();
    assert.equal(second.typeUrl, TypeUrl.route);
    assert.deepEqual(second.resources, []);
    assert.deepEqual(second.removed, ['no-such-route']);
  } finally {
    client.close();
  }
});

test('Delta: subscribing again to a name the client holds at the current version sends it again', async () => {
  const { node } = setup('resub', ['rs-a', 'rs-b']);
  const client = new DeltaClient(h.port, node);
  try {
    client.subscribe(TypeUrl.endpoint, ['rs-a', 'rs-b']);
    const first = await client.next();
    assert.deepEqual(first.resources.map((r) => r.name).sort(), ['rs-a', 'rs-b']);
    client.ack(first);
    client.subscribe(TypeUrl.endpoint, ['rs-a'], { nonce: first.nonce });
    const second = await client.next();
    assert.equal(second.typeUrl, TypeUrl.endpoint);
    assert.deepEqual(second.resources.map((r) => r.name), ['rs-a']);
    assert.equal(second.resources[0]!.version, first.resources.find((r) => r.name === 'rs-a')!.version);
    client.ack(second);
    assert.deepEqual((await deltaBarrier(client)).filter((r) => r.typeUrl === TypeUrl.endpoint), []);
  } finally {
    client.close();
  }
});

test('Delta: a first CDS request that only unsubscribes (a name) is not the legacy wildcard; "*" then subscribes to every cluster', async () => {
  const { node } = setup('no-wc', ['nw-a', 'nw-b']);
  const client = new DeltaClient(h.port, node);
  try {
    client.subscribe(TypeUrl.cluster, [], { unsubscribe: ['nw-gone'] });
    assert.deepEqual((await deltaBarrier(client)).filter((r) => r.typeUrl === TypeUrl.cluster), [], 'nothing is subscribed');
    client.subscribe(TypeUrl.cluster, ['*']);
    const all = await client.next();
    assert.equal(all.typeUrl, TypeUrl.cluster);
    assert.deepEqual(all.resources.map((r) => r.name).sort(), ['nw-a', 'nw-b']);
  } finally {
    client.close();
  }
});
