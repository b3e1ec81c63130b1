// Proxy status as the API shows it, driven through the lifecycle hooks:
// STALE while a push is unACKed, NACKED with the rejected version and model
// revision, SYNCED after a later ACK, DISCONNECTED, then forgotten.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TypeUrl } from '../../control/xds/discovery.ts';
import { ProxyStatusBook } from '../../control/xds/status.ts';
import type { StreamInfo } from '../../control/xds/stream.ts';

const proxy = { id: 'web-1', service: 'web', namespace: 'default', kind: 'sidecar' as const, inboundPort: 15006, outboundPort: 15001, appPort: 8080, appAddress: '127.0.0.1', bindAddress: '0.0.0.0' };
const stream: StreamInfo = { streamId: 1, proxy, group: 'g', streamType: 'sotw', connectedAt: 0 };

test('status follows push, NACK, ACK and disconnect; disconnected proxies are kept for a while', () => {
  let now = 1_000_000;
  const book = new ProxyStatusBook({ now: () => now, retainDisconnectedMs: 60_000 });
  book.streamOpened(stream);
  assert.equal(book.get('web-1')?.status, 'SYNCED');
  book.responseSent(stream, { typeUrl: TypeUrl.cluster, version: 'v1', nonce: 'n1', bytes: 10, resources: 1, removed: 0 });
  assert.equal(book.get('web-1')?.status, 'STALE');
  book.nacked(stream, TypeUrl.cluster, 'v1', 'clusters[0].lb_policy: unsupported', { revision: 7, committedAt: now });
  const nacked = book.get('web-1')!;
  assert.equal(nacked.status, 'NACKED');
  assert.equal(nacked.lastAckAt, undefined, 'a NACK is not an ACK');
  assert.deepEqual(nacked.lastNacks[TypeUrl.cluster], { typeUrl: TypeUrl.cluster, message: 'clusters[0].lb_policy: unsupported', version: 'v1', time: new Date(now).toISOString(), revision: 7 });
  book.responseSent(stream, { typeUrl: TypeUrl.cluster, version: 'v2', nonce: 'n2', bytes: 10, resources: 1, removed: 0 });
  now += 5;
  book.acked(stream, TypeUrl.cluster, 'v2');
  book.converged(stream, { revision: 8, committedAt: now - 42 }, 0.042);
  const synced = book.get('web-1')!;
  assert.equal(synced.status, 'SYNCED');
  assert.deepEqual(synced.ackedVersions, { [TypeUrl.cluster]: 'v2' });
  assert.equal(synced.convergenceMs, 42);
  assert.equal(synced.syncedRevision, 8);
  assert.equal(synced.lastAckAt, new Date(now).toISOString(), 'the proxies page shows time since last ACK');

  book.streamClosed(stream);
  assert.equal(book.get('web-1')?.status, 'DISCONNECTED');
  assert.equal(book.config('web-1'), undefined);
  now += 61_000;
  assert.deepEqual(book.list(), []);
});

test('a reconnect replaces the old stream; the old stream closing later does not mark it disconnected', () => {
  const book = new ProxyStatusBook();
  book.streamOpened(stream);
  book.streamOpened({ ...stream, streamId: 2, streamType: 'delta' });
  book.streamClosed(stream);
  assert.equal(book.get('web-1')?.status, 'SYNCED');
  assert.equal(book.get('web-1')?.stream, 'delta');
});
