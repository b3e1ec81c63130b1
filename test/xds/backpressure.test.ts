// A slow stream never blocks the producer: a proxy that stops reading makes
// the server hold dirty flags, not a queue of snapshots; changes coalesce
// (counted as overflows) and the proxy gets the latest config once it reads.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { TypeUrl } from '../../control/xds/discovery.ts';
import { SotwClient, testNode } from './ads-client.ts';
import { meshResources } from './fixtures.ts';
import type { Harness } from './harness.ts';
import { groupOf, stamp, startServer, waitFor } from './harness.ts';

let h: Harness;
let overflows = 0;
let sent = 0;
before(async () => {
  h = await startServer({ hooks: { overflow: () => overflows++, responseSent: () => sent++ } });
});
after(() => h.close());

const names = (n: number, tag: string) => Array.from({ length: n }, (_, i) => `cluster-${tag}-${i}-with-a-long-name-to-fill-the-window`);

test('a proxy that stops reading does not block publishing; it later gets the latest snapshot, coalesced', async () => {
  const node = testNode('slow', 'svc-slow');
  const group = groupOf(node);
  h.cache.setGroup(group, { stamp: stamp(), resources: meshResources(names(400, 'v0')), endpointNames: names(400, 'v0') });
  const client = new SotwClient(h.port, node);
  try {
    client.request(TypeUrl.cluster);
    const first = await client.next();
    client.ack(first);
    client.pause();
    const publishes = 60;
    for (let v = 1; v <= publishes; v++) {
      const cs = names(400, `v${v}`);
      assert.equal(h.cache.setGroup(group, { stamp: stamp(), resources: meshResources(cs), endpointNames: cs }).ok, true);
    }
    await waitFor(() => overflows > 0);
    const sentWhilePaused = sent;
    assert.ok(sentWhilePaused < publishes, `responses queued for the slow proxy are bounded (${sentWhilePaused} for ${publishes} publishes)`);
    client.resume();
    const latest = names(400, `v${publishes}`);
    const replies = await client.collectUntil((r) => r.names.length === latest.length && r.names[0] === latest[0], 15_000);
    assert.ok(replies.length < publishes, `received ${replies.length} responses for ${publishes} publishes`);
  } finally {
    client.close();
  }
});

test('a proxy that reads nothing for maxBlockedMs is reset and can reconnect to resync', async () => {
  const closed: string[] = [];
  const strict = await startServer({ maxBlockedMs: 300, hooks: { streamClosed: (s) => closed.push(s.proxy.id) } });
  const node = testNode('stuck', 'svc-stuck');
  const group = groupOf(node);
  strict.cache.setGroup(group, { stamp: stamp(), resources: meshResources(names(400, 'v0')), endpointNames: names(400, 'v0') });
  const client = new SotwClient(strict.port, node);
  try {
    client.request(TypeUrl.cluster);
    client.ack(await client.next());
    client.pause();
    // Each version is published on its own turn so it is really written: set
    // back to back, they coalesce into one push (by design) and, on a quiet
    // machine, never fill the paused client's flow-control window.
    for (let v = 1; v <= 40; v++) {
      const cs = names(400, `v${v}`);
      strict.cache.setGroup(group, { stamp: stamp(), resources: meshResources(cs), endpointNames: cs });
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    await waitFor(() => closed.includes('stuck'));
    assert.equal(strict.server.stream('stuck'), undefined, 'the stuck stream no longer receives pushes');
    client.resume();
    await assert.rejects(client.collectUntil(() => false), (err: Error & { code?: number }) => err.code === 14 && /reconnect to resync/.test(err.message));
    const again = new SotwClient(strict.port, node);
    again.request(TypeUrl.cluster);
    assert.equal((await again.next()).names[0], names(400, 'v40')[0]);
    again.close();
  } finally {
    client.close();
    await strict.close();
  }
});
