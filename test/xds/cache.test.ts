// Snapshot cache contracts without sockets: per-resource content versions,
// bytes shared across groups, per-cluster endpoint versions, all-or-nothing
// sets, events only for what changed.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { CacheEvent } from '../../control/xds/cache.ts';
import { SnapshotCache } from '../../control/xds/cache.ts';
import { TypeUrl } from '../../control/xds/discovery.ts';
import { cla, meshResources } from './fixtures.ts';
import { stamp } from './harness.ts';
import { testEncoder } from './fixtures.ts';

function newCache() {
  const cache = new SnapshotCache(testEncoder);
  const events: CacheEvent[] = [];
  cache.subscribe((e) => events.push(e));
  return { cache, events };
}

test('groups with identical resources share the same encoded bytes; versions are content hashes', () => {
  const { cache } = newCache();
  assert.ok(cache.setGroup('g1', { stamp: stamp(), resources: meshResources(['a', 'b']), endpointNames: ['a', 'b'] }).ok);
  assert.ok(cache.setGroup('g2', { stamp: stamp(), resources: meshResources(['a', 'c']), endpointNames: ['a', 'c'] }).ok);
  const a1 = cache.group('g1')!.types.get(TypeUrl.cluster)!.resources.get('a')!;
  const a2 = cache.group('g2')!.types.get(TypeUrl.cluster)!.resources.get('a')!;
  assert.equal(a1.bytes, a2.bytes, 'one encoding shared by both groups');
  assert.equal(a1.version, a2.version);
  const b = cache.group('g1')!.types.get(TypeUrl.cluster)!.resources.get('b')!;
  assert.notEqual(a1.version, b.version);
  assert.notEqual(cache.group('g1')!.types.get(TypeUrl.cluster)!.version, cache.group('g2')!.types.get(TypeUrl.cluster)!.version);
});

test('re-setting an identical snapshot emits nothing; a change names only the changed types', () => {
  const { cache, events } = newCache();
  cache.setGroup('g', { stamp: stamp(), resources: meshResources(['a']), endpointNames: ['a'] });
  events.length = 0;
  assert.deepEqual(cache.setGroup('g', { stamp: stamp(), resources: meshResources(['a']), endpointNames: ['a'] }), { ok: true, changed: 0 });
  assert.deepEqual(events, []);
  cache.setGroup('g', { stamp: stamp(), resources: meshResources(['a', 'b']), endpointNames: ['a', 'b'] });
  assert.equal(events.length, 1);
  const e = events[0] as CacheEvent;
  assert.ok(e.kind === 'group');
  assert.deepEqual([...e.changedTypes].sort(), [TypeUrl.cluster, TypeUrl.endpoint, TypeUrl.route].sort());
});

test('endpoints are versioned per cluster: one changed CLA is the only one reported', () => {
  const { cache, events } = newCache();
  cache.setEndpoints(stamp(), [cla('a', [1]), cla('b', [2]), cla('c', [3])]);
  const before = cache.endpoint('b')!.version;
  events.length = 0;
  assert.deepEqual(cache.setEndpoints(stamp(), [cla('a', [1]), cla('b', [2, 4]), cla('c', [3])]), { ok: true, changed: 1 });
  assert.equal(events.length, 1);
  assert.ok(events[0]!.kind === 'endpoints');
  assert.deepEqual([...events[0]!.names], ['b']);
  assert.notEqual(cache.endpoint('b')!.version, before);
});

test('an invalid CLA refuses the whole endpoint update with its name and path', () => {
  const { cache, events } = newCache();
  cache.setEndpoints(stamp(), [cla('a', [1])]);
  events.length = 0;
  const bad = cla('b', [70000]);
  const result = cache.setEndpoints(stamp(), [cla('a', [9]), bad]);
  assert.equal(result.ok, false);
  assert.ok(!result.ok && result.errors.some((e) => e.resource === 'b' && e.path.includes('port_value')), JSON.stringify(result));
  assert.deepEqual(events, []);
  assert.deepEqual((cache.endpoint('a')!.json as { endpoints: { lb_endpoints: { endpoint: { address: { socket_address: { port_value: number } } } }[] }[] }).endpoints[0]!.lb_endpoints[0]!.endpoint.address.socket_address.port_value, 1);
});
