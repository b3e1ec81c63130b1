// After a NACK, and around subscription changes: the server neither loops on a
// refused version nor strands what the client may not hold (xds_protocol.rst:
// the server "must supply the requested resources if they exist", and a
// client that subscribes again may have forgotten them).
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { TypeUrl } from '../../control/xds/discovery.ts';
import { DeltaClient, SotwClient, testNode } from '../xds/ads-client.ts';
import { cla, meshResources } from '../xds/fixtures.ts';
import type { Harness } from '../xds/harness.ts';
import { deltaBarrier, groupOf, meshGroup, sotwBarrier, stamp, startServer } from '../xds/harness.ts';

let h: Harness;
before(async () => {
  h = await startServer();
});
after(() => h.close());

test('SotW: A acked, B NACKed, C acked, then config returns to B: B must be sent (config changed since the NACK)', async () => {
  const node = testNode('sotw-abcb', 'svc-sotw-abcb');
  const group = groupOf(node);
  const set = (cs: string[]) => h.cache.setGroup(group, { stamp: stamp(), resources: meshResources(cs), endpointNames: cs });
  set(['a']);
  const client = new SotwClient(h.port, node);
  try {
    client.request(TypeUrl.cluster);
    const A = await client.next();
    client.ack(A);
    set(['a', 'b']);
    const B = await client.next();
    client.nack(B, 'transient: port in use', A.version);
    await sotwBarrier(client); // the NACK is processed before the next change
    set(['a', 'c']);
    const C = await client.next();
    assert.deepEqual(C.names.sort(), ['a', 'c']);
    client.ack(C, []);
    await sotwBarrier(client);
    set(['a', 'b']);
    const after = (await sotwBarrier(client)).filter((r) => r.typeUrl === TypeUrl.cluster);
    assert.equal(after.length, 1, 'the client runs [a,c] while the snapshot is [a,b]: B must be pushed again after the config changed');
    assert.deepEqual(after[0]!.names.sort(), ['a', 'b']);
  } finally {
    client.close();
  }
});

test('SotW: a NACK quoting a stale nonce is ignored (no NACK recorded, newer response still in flight)', async () => {
  const events: string[] = [];
  const hh = await startServer({ hooks: { nacked: (_s, _t, v) => events.push(`nack ${v}`), acked: (_s, _t, v) => events.push(`ack ${v}`) } });
  const node = testNode('sotw-stale-nack', 'svc-sotw-stale-nack');
  const group = groupOf(node);
  hh.cache.setGroup(group, { stamp: stamp(), resources: meshResources(['a']), endpointNames: ['a'] });
  const client = new SotwClient(hh.port, node);
  try {
    client.request(TypeUrl.cluster);
    const r1 = await client.next();
    hh.cache.setGroup(group, { stamp: stamp(), resources: meshResources(['a', 'b']), endpointNames: ['a', 'b'] });
    const r2 = await client.next();
    client.nack(r1, 'old');
    await sotwBarrier(client);
    assert.deepEqual(events, []);
    client.ack(r2);
    await sotwBarrier(client);
    assert.deepEqual(events, [`ack ${r2.version}`]);
  } finally {
    client.close();
    await hh.close();
  }
});

test('Delta: subscribing again (no unsubscribe) to a name whose current version was NACKed: server "must still provide those resources"', async () => {
  const { node } = meshGroup(h, 'd-resub-nack', ['x'], 3000);
  const client = new DeltaClient(h.port, node);
  try {
    client.subscribe(TypeUrl.endpoint, ['x']);
    const first = await client.next();
    assert.deepEqual(first.resources.map((r) => r.name), ['x']);
    client.nack(first, 'rejected');
    await deltaBarrier(client);
    client.subscribe(TypeUrl.endpoint, ['x']);
    const replies = (await deltaBarrier(client)).filter((r) => r.typeUrl === TypeUrl.endpoint);
    assert.deepEqual(replies.flatMap((r) => r.resources.map((x) => x.name)), ['x']);
  } finally {
    client.close();
  }
});

test('Delta: unsubscribe then resubscribe the same name gets it again', async () => {
  const { node } = meshGroup(h, 'd-unsub-resub', ['u'], 3100);
  const client = new DeltaClient(h.port, node);
  try {
    client.subscribe(TypeUrl.endpoint, ['u']);
    const first = await client.next();
    client.ack(first);
    client.subscribe(TypeUrl.endpoint, [], { unsubscribe: ['u'] });
    client.subscribe(TypeUrl.endpoint, ['u']);
    const replies = (await deltaBarrier(client)).filter((r) => r.typeUrl === TypeUrl.endpoint);
    assert.deepEqual(replies.flatMap((r) => r.resources.map((x) => x.name)), ['u']);
  } finally {
    client.close();
  }
});

test('Delta: unsubscribe with a late NACK of the earlier response, then resubscribe: the resource is provided', async () => {
  const { node } = meshGroup(h, 'd-late-nack', ['l'], 3200);
  const client = new DeltaClient(h.port, node);
  try {
    client.subscribe(TypeUrl.endpoint, ['l']);
    const first = await client.next();
    client.subscribe(TypeUrl.endpoint, [], { unsubscribe: ['l'] });
    client.nack(first, 'bad');
    await deltaBarrier(client);
    client.subscribe(TypeUrl.endpoint, ['l']);
    const replies = (await deltaBarrier(client)).filter((r) => r.typeUrl === TypeUrl.endpoint);
    assert.deepEqual(replies.flatMap((r) => r.resources.map((x) => x.name)), ['l']);
  } finally {
    client.close();
  }
});

test('Delta: wildcard + explicit name that exists, unsubscribing the explicit name: resent in resources', async () => {
  const { node } = meshGroup(h, 'd-wc-explicit', ['w1', 'w2'], 3300);
  const client = new DeltaClient(h.port, node);
  try {
    client.subscribe(TypeUrl.cluster, ['*', 'w1']);
    const first = await client.next();
    client.ack(first);
    client.subscribe(TypeUrl.cluster, [], { unsubscribe: ['w1'] });
    const r = await client.next();
    assert.equal(r.typeUrl, TypeUrl.cluster);
    assert.deepEqual(r.resources.map((x) => x.name), ['w1']);
  } finally {
    client.close();
  }
});

test('Delta: reconnect with initial_resource_versions for EDS: vanished name is removed, unchanged not resent', async () => {
  const { node, group } = meshGroup(h, 'd-eds-resume', ['e1', 'e2'], 3400);
  const c1 = new DeltaClient(h.port, node);
  const held: Record<string, string> = {};
  try {
    c1.subscribe(TypeUrl.endpoint, ['e1', 'e2']);
    const r = await c1.next();
    for (const x of r.resources) held[x.name] = x.version;
    c1.ack(r);
  } finally {
    c1.close();
  }
  h.cache.setGroup(group, { stamp: stamp(), resources: meshResources(['e1']), endpointNames: ['e1'] });
  const c2 = new DeltaClient(h.port, node);
  try {
    c2.subscribe(TypeUrl.endpoint, ['e1', 'e2'], { initialVersions: held });
    const r = await c2.next();
    assert.deepEqual(r.resources, []);
    assert.deepEqual(r.removed, ['e2']);
  } finally {
    c2.close();
  }
});

test('SotW: EDS resubscribe to a name dropped earlier resends it', async () => {
  const node = testNode('sotw-eds-resub', 'svc-sotw-eds-resub');
  const group = groupOf(node);
  h.cache.setEndpoints(stamp(), [cla('q1', [1]), cla('q2', [2])]);
  h.cache.setGroup(group, { stamp: stamp(), resources: meshResources(['q1', 'q2']), endpointNames: ['q1', 'q2'] });
  const client = new SotwClient(h.port, node);
  try {
    client.request(TypeUrl.endpoint, ['q1', 'q2']);
    const r1 = await client.next();
    client.ack(r1, ['q1', 'q2']);
    client.request(TypeUrl.endpoint, ['q1'], r1);
    const r2 = await client.next();
    assert.deepEqual(r2.names, ['q1']);
    client.ack(r2, ['q1']);
    client.request(TypeUrl.endpoint, ['q1', 'q2'], r2);
    const r3 = await client.next();
    assert.deepEqual(r3.names.sort(), ['q1', 'q2']);
  } finally {
    client.close();
  }
});

test('Delta: a NACKed response of two CLAs (x good, y bad); y is then fixed: x\'s version must still be supplied', async () => {
  const { node } = meshGroup(h, 'd-nack-pair', ['px', 'py'], 3500);
  const client = new DeltaClient(h.port, node);
  try {
    client.subscribe(TypeUrl.endpoint, ['px', 'py']);
    const first = await client.next();
    client.ack(first);
    h.cache.setEndpoints(stamp(), [cla('px', [3600]), cla('py', [3601])]);
    const both = await client.next();
    assert.deepEqual(both.resources.map((r) => r.name).sort(), ['px', 'py']);
    const pxV2 = both.resources.find((r) => r.name === 'px')!.version;
    // Envoy rejects the update (py invalid): nothing of it is applied; it keeps px v1.
    client.nack(both, 'py: invalid');
    await deltaBarrier(client);
    h.cache.setEndpoints(stamp(), [cla('py', [3602])]); // py fixed; px unchanged at v2
    const replies = (await deltaBarrier(client)).filter((r) => r.typeUrl === TypeUrl.endpoint);
    for (const r of replies) client.ack(r);
    const sent = replies.flatMap((r) => r.resources.map((x) => `${x.name}@${x.version}`));
    assert.ok(sent.includes(`px@${pxV2}`), `px v2 never re-supplied after the NACK; sent: ${JSON.stringify(sent)}`);
  } finally {
    client.close();
  }
});

test('Delta: a refused resource is not resent with unrelated changes (a client that stops at the first bad resource would take nothing), only once one refused with it changes', async () => {
  const { node } = meshGroup(h, 'd-nack-unrelated', ['ux', 'uy', 'uz'], 3800);
  const client = new DeltaClient(h.port, node);
  try {
    client.subscribe(TypeUrl.endpoint, ['ux', 'uy', 'uz']);
    client.ack(await client.next());
    h.cache.setEndpoints(stamp(), [cla('ux', [3810]), cla('uy', [3811])]);
    const both = await client.next();
    assert.deepEqual(both.resources.map((r) => r.name).sort(), ['ux', 'uy']);
    const uxV2 = both.resources.find((r) => r.name === 'ux')!.version;
    client.nack(both, 'uy: invalid');
    await deltaBarrier(client);
    // uz changes: nothing of the refused response comes with it
    h.cache.setEndpoints(stamp(), [cla('uz', [3812])]);
    const unrelated = (await deltaBarrier(client)).filter((r) => r.typeUrl === TypeUrl.endpoint);
    assert.deepEqual(unrelated.flatMap((r) => r.resources.map((x) => x.name)), ['uz']);
    for (const r of unrelated) client.ack(r);
    // uy fixed: ux, refused with it, comes again beside it
    h.cache.setEndpoints(stamp(), [cla('uy', [3813])]);
    const fixed = (await deltaBarrier(client)).filter((r) => r.typeUrl === TypeUrl.endpoint);
    assert.deepEqual(fixed.flatMap((r) => r.resources.map((x) => x.name)).sort(), ['ux', 'uy']);
    assert.ok(fixed.some((r) => r.resources.some((x) => x.name === 'ux' && x.version === uxV2)));
  } finally {
    client.close();
  }
});

test('SotW counterpart: a NACKed [x v2, y bad]; y fixed: the next response carries x v2', async () => {
  const node = testNode('s-nack-pair', 'svc-s-nack-pair');
  const group = groupOf(node);
  h.cache.setEndpoints(stamp(), [cla('sx', [1]), cla('sy', [2])]);
  h.cache.setGroup(group, { stamp: stamp(), resources: meshResources(['sx', 'sy']), endpointNames: ['sx', 'sy'] });
  const client = new SotwClient(h.port, node);
  try {
    client.request(TypeUrl.endpoint, ['sx', 'sy']);
    const r1 = await client.next();
    client.ack(r1, ['sx', 'sy']);
    h.cache.setEndpoints(stamp(), [cla('sx', [11]), cla('sy', [12])]);
    const r2 = await client.next();
    client.nack(r2, 'sy: invalid', r1.version, ['sx', 'sy']);
    await sotwBarrier(client);
    h.cache.setEndpoints(stamp(), [cla('sy', [13])]);
    const r3 = await client.next();
    assert.deepEqual(r3.names.sort(), ['sx', 'sy']);
  } finally {
    client.close();
  }
});

test('Delta: wildcard + explicit name not in the wildcard; unsubscribing the explicit name gets a response with it in removed_resources', async () => {
  const { node } = meshGroup(h, 'd-wc-ghost', ['g1'], 3700);
  const client = new DeltaClient(h.port, node);
  try {
    client.subscribe(TypeUrl.cluster, ['*', 'ghost']);
    const first = await client.next();
    client.ack(first);
    client.subscribe(TypeUrl.cluster, [], { unsubscribe: ['ghost'] });
    const replies = (await deltaBarrier(client)).filter((r) => r.typeUrl === TypeUrl.cluster);
    assert.deepEqual(replies.flatMap((r) => r.removed), ['ghost'], `first response removed: ${JSON.stringify(first.removed)}`);
  } finally {
    client.close();
  }
});

