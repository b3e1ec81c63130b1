// The injectable authenticate(node, metadata) hook decides who may open a
// stream; a refused proxy gets UNAUTHENTICATED with the reason and no config.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { TypeUrl } from '../../control/xds/discovery.ts';
import { SotwClient, testNode } from './ads-client.ts';
import { meshResources } from './fixtures.ts';
import type { Harness } from './harness.ts';
import { groupOf, stamp, startServer } from './harness.ts';

let h: Harness;
const rejected: string[] = [];
before(async () => {
  h = await startServer({
    authenticate: async (node, metadata) =>
      metadata.get('authorization')[0] === 'Bearer good' ? { ok: true } : { ok: false, message: `proxy ${node.id} presented no valid token` },
    hooks: { rejected: (_node, reason) => rejected.push(reason) },
  });
  const node = testNode('any', 'svc-auth');
  h.cache.setGroup(groupOf(node), { stamp: stamp(), resources: meshResources(['a']), endpointNames: ['a'] });
});
after(() => h.close());

test('a proxy with valid credentials is served', async () => {
  const md = new grpc.Metadata();
  md.set('authorization', 'Bearer good');
  const client = new SotwClient(h.port, testNode('ok-1', 'svc-auth'), md);
  try {
    client.request(TypeUrl.cluster);
    assert.deepEqual((await client.next()).names, ['a']);
  } finally {
    client.close();
  }
});

test('a proxy without credentials is refused with UNAUTHENTICATED and the reason', async () => {
  const client = new SotwClient(h.port, testNode('bad-1', 'svc-auth'));
  try {
    client.request(TypeUrl.cluster);
    await assert.rejects(client.next(), (err: grpc.ServiceError) => err.code === grpc.status.UNAUTHENTICATED && /bad-1 presented no valid token/.test(err.details));
    assert.deepEqual(rejected, ['proxy bad-1 presented no valid token']);
  } finally {
    client.close();
  }
});

test('a node.id held by a connected proxy of another service is refused with ALREADY_EXISTS; the same service may reconnect under it', async () => {
  // proxy-status, sync and tap go by node.id: a newcomer claiming a live proxy's id took over its entry, and
  // the API then read the newcomer's admin port as the live proxy's.
  const md = new grpc.Metadata();
  md.set('authorization', 'Bearer good');
  const holder = new SotwClient(h.port, testNode('shared-1', 'svc-auth'), md);
  const clients = [holder];
  try {
    holder.request(TypeUrl.cluster);
    assert.deepEqual((await holder.next()).names, ['a']);
    const other = new SotwClient(h.port, testNode('shared-1', 'svc-other'), md);
    clients.push(other);
    other.request(TypeUrl.cluster);
    await assert.rejects(other.next(), (err: grpc.ServiceError) => err.code === grpc.status.ALREADY_EXISTS && /node\.id: "shared-1" is in use by a connected proxy of svc-auth\.default/.test(err.details));
    assert.equal(h.server.stream('shared-1')?.info.proxy.service, 'svc-auth');
    const again = new SotwClient(h.port, testNode('shared-1', 'svc-auth'), md);
    clients.push(again);
    again.request(TypeUrl.cluster);
    assert.deepEqual((await again.next()).names, ['a'], 'a restarted proxy of the same service takes its id back');
  } finally {
    for (const c of clients) c.close();
  }
});
