// Load balancers on in-process hosts.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LeastRequest } from '../../sidecar/lb/least-request.ts';
import { RandomLb } from '../../sidecar/lb/random.ts';
import { RingHash } from '../../sidecar/lb/ring-hash.ts';
import { xxHash64 } from '../../sidecar/lb/xxhash64.ts';
import { RoundRobin } from '../../sidecar/lb/round-robin.ts';
import type { LbHost } from '../../sidecar/lb/types.ts';

const hosts = (n: number, weight = 1): LbHost[] => Array.from({ length: n }, (_, i) => ({ key: `10.0.0.${i}:80`, weight, activeRequests: 0 }));

function counts(pick: () => LbHost | undefined, n: number): Map<string, number> {
  const out = new Map<string, number>();
  for (let i = 0; i < n; i++) {
    const h = pick()!;
    out.set(h.key, (out.get(h.key) ?? 0) + 1);
  }
  return out;
}

test('round robin visits every host in turn; weights are honoured smoothly', () => {
  const rr = new RoundRobin(() => 0);
  const hs = hosts(3);
  assert.deepEqual([0, 1, 2, 3, 4, 5].map(() => rr.pick(hs, {})!.key), [...hs, ...hs].map((h) => h.key));
  const weighted = [{ key: 'a', weight: 3, activeRequests: 0 }, { key: 'b', weight: 1, activeRequests: 0 }];
  const lb = new RoundRobin();
  const eight = Array.from({ length: 8 }, () => lb.pick(weighted, {})!.key);
  assert.equal(eight.filter((k) => k === 'a').length, 6);
  assert.notEqual(eight.join(''), 'aaaaaabb', 'spread, not bunched');
});

test('round robin starts at a random host, as Envoy seeds it: proxies starting together do not all pick the same first host', () => {
  const hs = hosts(10);
  const firsts = [0, 0.15, 0.35, 0.55, 0.95].map((r) => new RoundRobin(() => r).pick(hs, {})!.key);
  assert.equal(new Set(firsts).size, firsts.length, firsts.join(', '));
  // and from there in turn, wrapping around
  const rr = new RoundRobin(() => 0.999);
  const first = rr.pick(hs, {})!.key;
  const start = hs.findIndex((h) => h.key === first);
  assert.deepEqual([1, 2, 3].map(() => rr.pick(hs, {})!.key), [1, 2, 3].map((i) => hs[(start + i) % hs.length]!.key));
});

test('round robin avoids previously tried hosts when asked (retry previous_hosts)', () => {
  const rr = new RoundRobin();
  const hs = hosts(2);
  for (let i = 0; i < 4; i++) assert.equal(rr.pick(hs, { avoid: new Set([hs[0]!.key]) })!.key, hs[1]!.key);
  assert.ok(rr.pick(hosts(1), { avoid: new Set([hosts(1)[0]!.key]) }), 'falls back when every host was tried');
});

test('least request prefers the less loaded of two random choices', () => {
  const hs: LbHost[] = [{ key: 'busy', weight: 1, activeRequests: 50 }, { key: 'idle', weight: 1, activeRequests: 0 }];
  let i = 0;
  const seq = [0.1, 0.9];
  const lr = new LeastRequest(() => seq[i++ % 2]!);
  assert.equal(lr.pick(hs, {})!.key, 'idle');
  const share = counts(() => new LeastRequest().pick(hs, {}), 2000).get('idle')! / 2000;
  assert.ok(share > 0.7, `idle got ${share}`);
});

test('least request with unequal weights shares by load_balancing_weight / (active requests + 1), as Envoy', () => {
  const idle: LbHost[] = [{ key: 'a', weight: 3, activeRequests: 0 }, { key: 'b', weight: 1, activeRequests: 0 }];
  const weighted = new LeastRequest();
  assert.equal(counts(() => weighted.pick(idle, {}), 400).get('a'), 300, 'weight 3 of 4 when neither is busy');
  // a is busy: 3 / (5 + 1) = 0.5 against b's 1 / (0 + 1) = 1.
  const busy: LbHost[] = [{ key: 'a', weight: 3, activeRequests: 5 }, { key: 'b', weight: 1, activeRequests: 0 }];
  const lr = new LeastRequest();
  const byLoad = counts(() => lr.pick(busy, {}), 300);
  assert.equal(byLoad.get('b'), 200, 'the idle host takes two thirds');
});

test("random picks uniformly, weights or not, as Envoy's RandomLoadBalancer", () => {
  const hs = [{ key: 'a', weight: 1, activeRequests: 0 }, { key: 'b', weight: 3, activeRequests: 0 }];
  // Rolls spread evenly over [0, 1): each host gets the half of them Envoy's random % 2 would give it.
  let i = 0;
  const lb = new RandomLb(() => (i++ % 100) / 100);
  assert.equal(counts(() => lb.pick(hs, {}), 400).get('b'), 200);
  const c = counts(() => new RandomLb().pick(hs, {}), 4000);
  const share = c.get('b')! / 4000;
  assert.ok(share > 0.45 && share < 0.55, `b got ${share}`);
});

test('ring hash is sticky per key; removing a host moves its keys and few others', () => {
  const rh = new RingHash(1024);
  const hs = hosts(4);
  const keys = Array.from({ length: 400 }, (_, i) => xxHash64(`user-${i}`));
  const before = keys.map((h) => rh.pick(hs, { hash: h })!.key);
  assert.deepEqual(keys.map((h) => rh.pick(hs, { hash: h })!.key), before, 'same key, same host');
  assert.ok(new Set(before).size === 4, 'keys spread over every host');
  const removed = hs[2]!.key;
  const after = keys.map((h) => rh.pick(hs.filter((x) => x.key !== removed), { hash: h })!.key);
  let survivorsKept = 0;
  let survivors = 0;
  keys.forEach((_, i) => {
    if (before[i] === removed) return assert.notEqual(after[i], removed);
    survivors++;
    if (after[i] === before[i]) survivorsKept++;
  });
  // Survivors gain ring points when the ring is rebuilt (as in Envoy), so a few of their keys shift; modulo hashing would move ~3/4.
  assert.ok(survivorsKept / survivors > 0.85, `kept ${survivorsKept}/${survivors}`);
});

test("ring hash with the previous_hosts predicate: a retry steps on along the ring, one point per host selection attempt, as Envoy's", () => {
  const rh = new RingHash(1024);
  const hs = hosts(3);
  for (let i = 0; i < 50; i++) {
    const hash = xxHash64(`user-${i}`);
    const first = rh.pick(hs, { hash })!.key;
    // Istio's host_selection_retry_max_attempts 5: five more points, enough to find a host not tried.
    const retry = rh.pick(hs, { hash, avoid: new Set([first]), hostSelectionRetries: 5 })!.key;
    assert.notEqual(retry, first, `key ${i}: the retry went back to ${first}`);
    assert.equal(rh.pick(hs, { hash, avoid: new Set([first]), hostSelectionRetries: 5 })!.key, retry, 'the same next host every time');
    const third = rh.pick(hs, { hash, avoid: new Set([first, retry]), hostSelectionRetries: 20 })!.key;
    assert.ok(third !== first && third !== retry);
  }
});
