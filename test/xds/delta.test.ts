// Delta protocol rules over a real socket: subscribe / unsubscribe,
// removed_resources, subscription changes whatever the nonce, NACK without
// resend, reconnect with initial_resource_versions.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { TypeUrl } from '../../control/xds/discovery.ts';
import { ProxyStatusBook } from '../../control/xds/status.ts';
import { DeltaClient, testNode } from './ads-client.ts';
import { cla, meshResources } from './fixtures.ts';
import type { Harness } from './harness.ts';
import { deltaBarrier, groupOf, meshGroup, stamp, startServer, waitFor } from './harness.ts';

let h: Harness;
before(async () => {
  h = await startServer();
});
after(() => h.close());

const setup = (id: string, clusters: string[]) => meshGroup(h, id, clusters, 1000);

test('Delta: subscribe sends only the new names, unsubscribe sends nothing, scope loss sends removed_resources', async () => {
  const { node, group } = setup('sub', ['d-a', 'd-b', 'd-c']);
  const client = new DeltaClient(h.port, node);
  try {
    client.subscribe(TypeUrl.endpoint, ['d-a']);
    const first = await client.next();
    assert.deepEqual(first.resources.map((r) => r.name), ['d-a']);
    client.ack(first);
    client.subscribe(TypeUrl.endpoint, ['d-b'], { nonce: first.nonce });
    const second = await client.next();
    assert.deepEqual(second.resources.map((r) => r.name), ['d-b']);
    assert.deepEqual(second.removed, []);
    client.ack(second);
    client.subscribe(TypeUrl.endpoint, [], { unsubscribe: ['d-a'], nonce: second.nonce });
    assert.deepEqual((await deltaBarrier(client)).filter((r) => r.typeUrl === TypeUrl.endpoint), []);
    // d-b leaves the proxy's scope
    h.cache.setGroup(group, { stamp: stamp(), resources: meshResources(['d-a', 'd-c']), endpointNames: ['d-a', 'd-c'] });
    const replies = await client.collectUntil((r) => r.typeUrl === TypeUrl.endpoint);
    const removal = replies[replies.length - 1]!;
    assert.deepEqual(removal.removed, ['d-b']);
    assert.deepEqual(removal.resources, []);
  } finally {
    client.close();
  }
});

test('Delta: subscription changes are honoured whatever the nonce', async () => {
  const { node } = setup('stale', ['s-a', 's-b']);
  const client = new DeltaClient(h.port, node);
  try {
    client.subscribe(TypeUrl.endpoint, ['s-a']);
    const first = await client.next();
    client.ack(first);
    client.subscribe(TypeUrl.endpoint, ['s-b'], { nonce: 'not-a-nonce-we-sent' });
    const second = await client.next();
    assert.deepEqual(second.resources.map((r) => r.name), ['s-b']);
  } finally {
    client.close();
  }
});

test('Delta: only changed resources are sent; a NACKed version is not resent until the config changes', async () => {
  const { node } = setup('nack', ['n-a', 'n-b']);
  const client = new DeltaClient(h.port, node);
  try {
    client.subscribe(TypeUrl.endpoint, ['n-a', 'n-b']);
    const first = await client.next();
    assert.deepEqual(first.resources.map((r) => r.name).sort(), ['n-a', 'n-b']);
    client.ack(first);
    h.cache.setEndpoints(stamp(), [cla('n-a', [2000])]);
    const change = await client.next();
    assert.deepEqual(change.resources.map((r) => r.name), ['n-a']);
    client.nack(change, 'endpoints[0].lb_endpoints[0]: rejected');
    assert.deepEqual((await deltaBarrier(client)).filter((r) => r.typeUrl === TypeUrl.endpoint), []);
    h.cache.setEndpoints(stamp(), [cla('n-a', [2001])]);
    const fixed = await client.next();
    assert.deepEqual(fixed.resources.map((r) => r.name), ['n-a']);
    assert.notEqual(fixed.resources[0]!.version, change.resources[0]!.version);
  } finally {
    client.close();
  }
});

test('Delta: a reconnect with initial_resource_versions gets only what differs', async () => {
  const { node, group } = setup('reconnect', ['r-a', 'r-b']);
  const first = new DeltaClient(h.port, node);
  const held: Record<string, string> = {};
  try {
    first.subscribe(TypeUrl.cluster);
    const cds = await first.next();
    assert.deepEqual(cds.resources.map((r) => r.name).sort(), ['r-a', 'r-b']);
    for (const r of cds.resources) held[r.name] = r.version;
    first.ack(cds);
  } finally {
    first.close();
  }
  // while disconnected: r-b changes, r-c appears
  const resources = meshResources(['r-a', 'r-b', 'r-c']);
  resources[TypeUrl.cluster]![1] = { name: 'r-b', value: { ...(resources[TypeUrl.cluster]![1]!.value as object), connect_timeout: '5s' } };
  h.cache.setGroup(group, { stamp: stamp(), resources, endpointNames: ['r-a', 'r-b', 'r-c'] });
  const second = new DeltaClient(h.port, node);
  try {
    second.subscribe(TypeUrl.cluster, [], { initialVersions: { ...held, 'r-gone': 'x1' } });
    const diff = await second.next();
    assert.deepEqual(diff.resources.map((r) => r.name).sort(), ['r-b', 'r-c']);
    assert.deepEqual(diff.removed, ['r-gone']);
  } finally {
    second.close();
  }
});

test('Delta: after a NACK of a response the client took in part, a rollback of its resources is sent again', async () => {
  // The weft sidecar applies a response's good resources and NACKs the bad: the server cannot know
  // which of them the client holds, so a later return to the earlier versions must not be skipped.
  const { node } = setup('rollback', ['rb-good', 'rb-bad']);
  const client = new DeltaClient(h.port, node);
  try {
    client.subscribe(TypeUrl.endpoint, ['rb-good', 'rb-bad']);
    const first = await client.next();
    client.ack(first);
    const v0 = Object.fromEntries(first.resources.map((r) => [r.name, r.version]));
    h.cache.setEndpoints(stamp(), [cla('rb-good', [3000]), cla('rb-bad', [3001])]);
    const mixed = await client.next();
    assert.deepEqual(mixed.resources.map((r) => r.name).sort(), ['rb-bad', 'rb-good']);
    client.nack(mixed, 'rb-bad: endpoints[0]: rejected');
    assert.deepEqual((await deltaBarrier(client)).filter((r) => r.typeUrl === TypeUrl.endpoint), [], 'the refused response is not resent');
    // The operator rolls back: both resources return to the versions first sent (setup's ports).
    h.cache.setEndpoints(stamp(), [cla('rb-good', [1000]), cla('rb-bad', [1001])]);
    const sent = (await deltaBarrier(client)).filter((r) => r.typeUrl === TypeUrl.endpoint);
    assert.deepEqual(sent.flatMap((r) => r.resources.map((x) => [x.name, x.version])).sort(), Object.entries(v0).sort(), 'both earlier versions are sent');
  } finally {
    client.close();
  }
});

test('Delta: a NACKed resource the client unsubscribes from no longer keeps the proxy NACKED', async () => {
  // A filter config the proxy refused, whose binding the operator then deletes: the proxy stops asking
  // for it and nothing of that type is ever ACKed again.
  const book = new ProxyStatusBook();
  const own = await startServer({ hooks: book });
  const node = testNode('unsub', 'svc-unsub');
  own.cache.setGroup(groupOf(node), { stamp: stamp(), resources: meshResources(['u-a', 'u-b']), endpointNames: ['u-a', 'u-b'] });
  own.cache.setEndpoints(stamp(), [cla('u-a', [1000]), cla('u-b', [1001])]);
  const client = new DeltaClient(own.port, node);
  try {
    client.subscribe(TypeUrl.endpoint, ['u-a', 'u-b']);
    client.ack(await client.next());
    own.cache.setEndpoints(stamp(), [cla('u-a', [2000])]);
    client.nack(await client.next(), 'u-a: endpoints[0]: rejected');
    await waitFor(() => book.get('unsub')?.status === 'NACKED');
    client.subscribe(TypeUrl.endpoint, [], { unsubscribe: ['u-a'] });
    await deltaBarrier(client);
    await waitFor(() => book.get('unsub')?.status !== 'STALE'); // the barrier's ACK
    assert.equal(book.get('unsub')?.status, 'SYNCED');
    assert.ok(book.get('unsub')?.lastNacks[TypeUrl.endpoint], 'the NACK stays in the history');
  } finally {
    client.close();
    await own.close();
  }
});

test('Delta: a reconnect that holds every current version gets no response, but response headers, and its versions in the proxy status', async () => {
  const book = new ProxyStatusBook();
  const own = await startServer({ hooks: book });
  const node = testNode('resume', 'svc-resume');
  own.cache.setGroup(groupOf(node), { stamp: stamp(), resources: meshResources(['rs-a']), endpointNames: ['rs-a'] });
  const first = new DeltaClient(own.port, node);
  const held: Record<string, string> = {};
  let version = '';
  try {
    first.subscribe(TypeUrl.cluster);
    const cds = await first.next();
    for (const r of cds.resources) held[r.name] = r.version;
    first.ack(cds);
    await waitFor(() => book.get('resume')?.ackedVersions[TypeUrl.cluster] !== undefined);
    version = book.get('resume')!.ackedVersions[TypeUrl.cluster]!;
  } finally {
    first.close();
  }
  const second = new DeltaClient(own.port, node);
  try {
    second.subscribe(TypeUrl.cluster, [], { initialVersions: held });
    // The client's only sign that the stream is up (a weft sidecar reports connected on it).
    await waitFor(() => second.headers !== undefined);
    assert.deepEqual((await deltaBarrier(second)).filter((r) => r.typeUrl === TypeUrl.cluster), [], 'nothing differs: nothing sent');
    assert.equal(book.get('resume')?.ackedVersions[TypeUrl.cluster], version, 'the version it said it holds, not none');
  } finally {
    second.close();
    await own.close();
  }
});
