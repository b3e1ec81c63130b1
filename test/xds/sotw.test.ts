// SotW protocol rules over a real socket: ACK, NACK without resend, a change
// after a NACK, stale nonces, invalid snapshots never reaching proxies.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { TypeUrl } from '../../control/xds/discovery.ts';
import type { XdsHooks } from '../../control/xds/stream.ts';
import { SotwClient, testNode } from './ads-client.ts';
import { cla, cluster, meshResources } from './fixtures.ts';
import type { Harness } from './harness.ts';
import { groupOf, sotwBarrier, stamp, startServer } from './harness.ts';

let h: Harness;
const events: string[] = [];
const hooks: XdsHooks = {
  acked: (s, t, v) => events.push(`ack ${s.proxy.id} ${t} ${v}`),
  nacked: (s, t, v, m) => events.push(`nack ${s.proxy.id} ${t} ${v} ${m}`),
};

before(async () => {
  h = await startServer({ hooks });
});
after(() => h.close());

async function connected(id: string, clusters: string[]) {
  const node = testNode(id, `svc-${id}`);
  h.cache.setGroup(groupOf(node), { stamp: stamp(), resources: meshResources(clusters), endpointNames: clusters });
  const client = new SotwClient(h.port, node);
  return { client, group: groupOf(node) };
}

test('SotW: a response is ACKed with its version and nonce and the ACK is recorded', async () => {
  const { client } = await connected('ack', ['a', 'b']);
  try {
    client.request(TypeUrl.cluster);
    const cds = await client.next();
    assert.equal(cds.typeUrl, TypeUrl.cluster);
    assert.deepEqual(cds.names.sort(), ['a', 'b']);
    assert.ok(cds.version && cds.nonce);
    client.ack(cds);
    await sotwBarrier(client);
    assert.ok(events.includes(`ack ack ${TypeUrl.cluster} ${cds.version}`));
  } finally {
    client.close();
  }
});

test('SotW: every response carries a fresh nonce', async () => {
  const { client, group } = await connected('nonce', ['a']);
  try {
    client.request(TypeUrl.cluster);
    const first = await client.next();
    client.ack(first);
    h.cache.setGroup(group, { stamp: stamp(), resources: meshResources(['a', 'b']), endpointNames: ['a', 'b'] });
    const second = await client.next();
    assert.notEqual(first.nonce, second.nonce);
    assert.notEqual(first.version, second.version);
  } finally {
    client.close();
  }
});

test('SotW: a NACKed version is recorded and not resent; a later config change is sent', async () => {
  const { client, group } = await connected('nack', ['a']);
  try {
    client.request(TypeUrl.cluster);
    const good = await client.next();
    client.ack(good);
    h.cache.setGroup(group, { stamp: stamp(), resources: meshResources(['a', 'b']), endpointNames: ['a', 'b'] });
    const bad = await client.next();
    assert.deepEqual(bad.names.sort(), ['a', 'b']);
    client.nack(bad, 'clusters[1]: unsupported', good.version);
    // a go-control-plane server answers the NACK request with the same version again
    const before = await sotwBarrier(client);
    assert.deepEqual(before.filter((r) => r.typeUrl === TypeUrl.cluster), []);
    assert.ok(events.includes(`nack nack ${TypeUrl.cluster} ${bad.version} clusters[1]: unsupported`));
    // an unrelated change to another type must not resend the rejected clusters either
    h.cache.setEndpoints(stamp(), [cla('zzz', [1])]);
    assert.deepEqual((await sotwBarrier(client)).filter((r) => r.typeUrl === TypeUrl.cluster), []);

    h.cache.setGroup(group, { stamp: stamp(), resources: meshResources(['a', 'c']), endpointNames: ['a', 'c'] });
    const fixed = await client.next();
    assert.equal(fixed.typeUrl, TypeUrl.cluster);
    assert.deepEqual(fixed.names.sort(), ['a', 'c']);
  } finally {
    client.close();
  }
});

test('SotW: a request quoting a superseded nonce is ignored', async () => {
  const { client } = await connected('stale', ['a', 'b']);
  h.cache.setEndpoints(stamp(), [cla('a', [1]), cla('b', [2])]);
  try {
    client.request(TypeUrl.endpoint, ['a']);
    const r1 = await client.next();
    assert.deepEqual(r1.names, ['a']);
    h.cache.setEndpoints(stamp(), [cla('a', [1, 3])]);
    const r2 = await client.next();
    assert.notEqual(r1.nonce, r2.nonce);
    // stale: quotes r1's nonce while r2 is the latest; its new subscription must be ignored
    client.request(TypeUrl.endpoint, ['a', 'b'], r1);
    assert.deepEqual((await sotwBarrier(client)).filter((r) => r.typeUrl === TypeUrl.endpoint), []);
    // the same change quoting the latest nonce is honoured
    client.request(TypeUrl.endpoint, ['a', 'b'], r2);
    const r3 = await client.next();
    assert.equal(r3.typeUrl, TypeUrl.endpoint);
    assert.deepEqual(r3.names.sort(), ['a', 'b']);
  } finally {
    client.close();
  }
});

test('SotW: an invalid snapshot is refused with resource name and field path; proxies keep the last good one', async () => {
  const { client, group } = await connected('invalid', ['a']);
  try {
    client.request(TypeUrl.cluster);
    const good = await client.next();
    client.ack(good);
    const resources = meshResources(['a', 'b']);
    resources[TypeUrl.cluster]![1] = { name: 'b', value: { ...(cluster('b').value as object), lb_policy: 'NOT_A_POLICY' } };
    const result = h.cache.setGroup(group, { stamp: stamp(), resources, endpointNames: ['a', 'b'] });
    assert.equal(result.ok, false);
    assert.ok(!result.ok && result.errors.some((e) => e.resource === 'b' && e.path === 'lb_policy' && e.typeUrl === TypeUrl.cluster));
    assert.deepEqual(await sotwBarrier(client), []);
    assert.deepEqual([...h.cache.group(group)!.types.get(TypeUrl.cluster)!.resources.keys()], ['a']);
  } finally {
    client.close();
  }
});

test('SotW: an inconsistent snapshot (listener names a missing route config) is refused', async () => {
  const { group } = await connected('inconsistent', ['a']);
  const resources = meshResources(['a']);
  resources[TypeUrl.route] = [];
  const result = h.cache.setGroup(group, { stamp: stamp(), resources, endpointNames: ['a'] });
  assert.equal(result.ok, false);
  assert.ok(!result.ok && result.errors.some((e) => e.resource === 'outbound' && e.typeUrl === TypeUrl.listener && e.path.endsWith('rds.route_config_name')));
  const missingCla = h.cache.setGroup(group, { stamp: stamp(), resources: meshResources(['a']), endpointNames: [] });
  assert.ok(!missingCla.ok && missingCla.errors.some((e) => e.resource === 'a' && e.path === 'eds_cluster_config.service_name'));
});
