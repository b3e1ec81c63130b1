// Load balancing as Envoy does it, checked against Envoy's own numbers: the
// xxHash64 it hashes with, the ring its ring_hash_lb_test builds, the way its
// hash policies fold several keys into one hash.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ClusterConfig, ClusterLoadAssignmentConfig, HashPolicyConfig } from '../../sidecar/config.ts';
import { accept } from '../../sidecar/fidelity.ts';
import { requestHash } from '../../sidecar/lb/hash-policy.ts';
import { RingHash, buildRing } from '../../sidecar/lb/ring-hash.ts';
import type { LbHost } from '../../sidecar/lb/types.ts';
import { xxHash64 } from '../../sidecar/lb/xxhash64.ts';
import { hostHashKey } from '../../sidecar/clusters.ts';

const host = (key: string, weight = 1): LbHost => ({ key, weight, activeRequests: 0 });

test('xxHash64 gives the published XXH64 values (seed 0), short and long inputs', () => {
  const hex = (s: string) => xxHash64(s).toString(16).padStart(16, '0');
  assert.equal(hex(''), 'ef46db3751d8e999');
  assert.equal(hex('a'), 'd24ec4f1a98c6e5b');
  assert.equal(hex('abc'), '44bc2cf5ad770999');
  // 39 bytes: the four-lane stripe loop, then 8-, 4- and 1-byte tails.
  assert.equal(hex('Nobody inspects the spammish repetition'), 'fbcea83c8a378bf1');
  assert.equal(xxHash64(new TextEncoder().encode('abc')), xxHash64('abc'));
});

// Envoy's RingHashLoadBalancerTest.Basic: hosts 127.0.0.1:90..95, minimum_ring_size 12.
const ENVOY_RING: [port: number, position: bigint][] = [
  [94, 833437586790550860n],
  [92, 928266305478181108n],
  [90, 1033482794131418490n],
  [95, 3551244743356806947n],
  [93, 3851675632748031481n],
  [91, 5583722120771150861n],
  [91, 6311230543546372928n],
  [93, 7700377290971790572n],
  [95, 13144177310400110813n],
  [92, 13444792449719432967n],
  [94, 15516499411664133160n],
  [90, 16117243373044804889n],
];

test("ring hash builds Envoy's ring and picks what Envoy's test expects", () => {
  const hosts = [90, 91, 92, 93, 94, 95].map((p) => host(`127.0.0.1:${p}`));
  const ring = buildRing(hosts, 12);
  assert.deepEqual(
    [...ring.hashes].map((h, i) => [Number(hosts[ring.hosts[i]!]!.key.split(':')[1]), h]),
    ENVOY_RING,
  );
  const rh = new RingHash(12);
  const pick = (hash: bigint) => rh.pick(hosts, { hash })!.key;
  assert.equal(pick(0n), '127.0.0.1:94');
  assert.equal(pick(2n ** 64n - 1n), '127.0.0.1:94', 'past the last point: the first');
  assert.equal(pick(3551244743356806947n), '127.0.0.1:95');
  assert.equal(pick(3551244743356806948n), '127.0.0.1:93');
  assert.equal(pick(16117243373044804880n), '127.0.0.1:90');
});

test("ring hash sizes the ring as Envoy: the lightest host gets whole points, weights share the rest, max_ring_size caps it", () => {
  // Default 1024, equal weights: 1024 points, evenly.
  const even = buildRing([host('10.0.0.1:80'), host('10.0.0.2:80'), host('10.0.0.3:80')]);
  assert.equal(even.hashes.length, 1026, 'ceil(1/3 x 1024) = 342 each');
  // Weights 1 and 3: the light host gets ceil(0.25 x 1024) = 256 points, the heavy one 768.
  const weighted = buildRing([host('a:1', 1), host('b:1', 3)]);
  const owned = (r: ReturnType<typeof buildRing>, i: number) => [...r.hosts].filter((x) => x === i).length;
  assert.deepEqual([owned(weighted, 0), owned(weighted, 1)], [256, 768]);
  // A maximum below that: Envoy's scale is capped, the running sums hand out what is left.
  const capped = buildRing([host('a:1', 1), host('b:1', 3)], 1024, 10);
  // scale 10: a's running target 2.5 takes points 0-2, b's 10 takes 3-9.
  assert.deepEqual([owned(capped, 0), owned(capped, 1)], [3, 7]);
});

test("a host's ring key is the envoy.lb hash_key, else the hostname with use_hostname_for_hashing, else Envoy's address string", () => {
  const base = { address: '::1', port: 8080, hostname: 'cart-0.cart', metadataHashKey: undefined };
  assert.equal(hostHashKey(base, false), '[::1]:8080');
  assert.equal(hostHashKey({ ...base, address: '10.1.2.3' }, false), '10.1.2.3:8080');
  assert.equal(hostHashKey(base, true), 'cart-0.cart');
  assert.equal(hostHashKey({ ...base, metadataHashKey: 'shard-7' }, true), 'shard-7');
  // The ring follows the key: the same point positions as Envoy's for a host whose hash_key is "127.0.0.1:94".
  const ring = buildRing([{ key: '10.9.9.9:1', hashKey: '127.0.0.1:94', weight: 1, activeRequests: 0 }], 2);
  assert.deepEqual([...ring.hashes], [833437586790550860n, 15516499411664133160n]);
  // And EDS carries both to the sidecar.
  const r = accept('endpoint', {
    cluster_name: 'c',
    endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: '10.0.0.1', port_value: 80 } }, hostname: 'cart-0' }, metadata: { filter_metadata: { 'envoy.lb': { hash_key: 'shard-7' } } } }] }],
  });
  assert.ok(r.ok, JSON.stringify(!r.ok && r.errors));
  const ep = (r.value as ClusterLoadAssignmentConfig).endpoints[0]!;
  assert.equal(ep.hashKey, 'shard-7');
  assert.equal(ep.hostname, 'cart-0');
});

test("a request's hash is Envoy's: xxHash64 of the value, policies folded as rotl(hash, 1) ^ next, terminal stops", () => {
  const headers: [string, string][] = [['x-user', 'alice'], ['x-tenant', 'acme'], [':path', '/']];
  const req = { headers, path: '/cart?session=s1&x=2', sourceIp: '10.1.2.3' };
  const one = (p: HashPolicyConfig[]) => requestHash(p, req, []);
  const rotl = (h: bigint) => ((h << 1n) | (h >> 63n)) & (2n ** 64n - 1n);
  assert.equal(one([{ kind: 'header', name: 'x-user', terminal: false }]), xxHash64('alice'));
  assert.equal(
    one([{ kind: 'header', name: 'x-user', terminal: false }, { kind: 'header', name: 'x-tenant', terminal: false }]),
    rotl(xxHash64('alice')) ^ xxHash64('acme'),
  );
  assert.equal(one([{ kind: 'header', name: 'x-user', terminal: true }, { kind: 'header', name: 'x-tenant', terminal: false }]), xxHash64('alice'));
  // A policy with no value adds nothing, and a terminal one that found nothing does not stop the list.
  assert.equal(one([{ kind: 'header', name: 'x-none', terminal: true }, { kind: 'source_ip', terminal: false }]), xxHash64('10.1.2.3'));
  assert.equal(one([{ kind: 'query_parameter', name: 'session', terminal: false }]), xxHash64('s1'));
  // An IPv4 client of a dual-stack listener: Envoy sees 10.1.2.3, node ::ffff:10.1.2.3.
  assert.equal(requestHash([{ kind: 'source_ip', terminal: false }], { ...req, sourceIp: '::ffff:10.1.2.3' }, []), xxHash64('10.1.2.3'));
  assert.equal(one([{ kind: 'header', name: 'x-none', terminal: false }]), undefined);
  // Several values of one header: sorted, hashed as one string, so their order does not matter.
  const twice = requestHash([{ kind: 'header', name: 'x-user', terminal: false }], { ...req, headers: [['x-user', 'bob'], ['x-user', 'alice']] }, []);
  assert.equal(twice, xxHash64('alicebob'));
  // A cookie: its value without the quotes; an h2 client may send its cookies in several headers.
  const cookie = requestHash([{ kind: 'cookie', name: 'sid', terminal: false }], { ...req, headers: [['cookie', 'a=1'], ['cookie', 'sid="abc"']] }, []);
  assert.equal(cookie, xxHash64('abc'));
});

test('the same header value lands on the host an Envoy with the same endpoints picks', () => {
  const hosts = [90, 91, 92, 93, 94, 95].map((p) => host(`127.0.0.1:${p}`));
  const rh = new RingHash(12);
  const hash = requestHash([{ kind: 'header', name: 'x-user', terminal: false }], { headers: [['x-user', 'alice']], path: '/', sourceIp: '' }, [])!;
  // By hand from Envoy's ring above: the first point at or after the hash.
  const expected = ENVOY_RING.find(([, pos]) => pos >= hash)?.[0] ?? ENVOY_RING[0]![0];
  assert.equal(rh.pick(hosts, { hash })!.key, `127.0.0.1:${expected}`);
});

function cluster(extra: Record<string, unknown>) {
  return accept('cluster', { name: 'c', type: 'STATIC', connect_timeout: '1s', load_assignment: { cluster_name: 'c', endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: 80 } } } }] }] }, ...extra });
}

test('MAGLEV, MURMUR_HASH_2, bounded loads and impossible ring sizes are NACKed naming the field; the ring settings are kept', () => {
  const errors = (extra: Record<string, unknown>) => {
    const r = cluster(extra);
    assert.equal(r.ok, false, JSON.stringify(extra));
    return !r.ok ? r.errors.map((e) => e.path) : [];
  };
  assert.deepEqual(errors({ lb_policy: 'MAGLEV' }), ['lb_policy']);
  assert.deepEqual(errors({ lb_policy: 5 }), ['lb_policy'], 'MAGLEV by number');
  assert.deepEqual(errors({ lb_policy: 'RING_HASH', ring_hash_lb_config: { hash_function: 'MURMUR_HASH_2' } }), ['ring_hash_lb_config.hash_function']);
  assert.deepEqual(errors({ lb_policy: 'RING_HASH', ring_hash_lb_config: { minimum_ring_size: 4096, maximum_ring_size: 1024 } }), ['ring_hash_lb_config.minimum_ring_size']);
  assert.deepEqual(errors({ lb_policy: 'RING_HASH', ring_hash_lb_config: { maximum_ring_size: 9_000_000 } }), ['ring_hash_lb_config.maximum_ring_size']);
  assert.deepEqual(errors({ common_lb_config: { consistent_hashing_lb_config: { hash_balance_factor: 150 } } }), ['common_lb_config.consistent_hashing_lb_config.hash_balance_factor']);
  const ok = cluster({ lb_policy: 2, ring_hash_lb_config: { minimum_ring_size: 64, maximum_ring_size: 65536 }, common_lb_config: { consistent_hashing_lb_config: { use_hostname_for_hashing: true } } });
  assert.ok(ok.ok, JSON.stringify(!ok.ok && ok.errors));
  const c = ok.value as ClusterConfig;
  assert.equal(c.lbPolicy, 'RING_HASH');
  assert.deepEqual(c.ringHash, { minimumRingSize: 64, maximumRingSize: 65536, useHostnameForHashing: true });
});

test('least request honours choice_count and active_request_bias, as Envoy reads least_request_lb_config', async () => {
  const { LeastRequest } = await import('../../sidecar/lb/least-request.ts');
  const r = cluster({ lb_policy: 'LEAST_REQUEST', least_request_lb_config: { choice_count: 4, active_request_bias: { default_value: 0, runtime_key: 'lr.bias' } } });
  assert.ok(r.ok, JSON.stringify(!r.ok && r.errors));
  assert.deepEqual((r.value as ClusterConfig).leastRequest, { choiceCount: 4, activeRequestBias: 0 });
  const bad = cluster({ lb_policy: 'LEAST_REQUEST', least_request_lb_config: { choice_count: 1 } });
  assert.deepEqual(!bad.ok && bad.errors.map((e) => e.path), ['least_request_lb_config.choice_count']);
  // Four samples land on hosts 0, 1, 2, 3: the idle one among them wins; two samples (0, 1) could not see it.
  const busy: LbHost[] = [0, 1, 2, 3].map((i) => ({ key: `h${i}`, weight: 1, activeRequests: i === 3 ? 0 : 9 }));
  const draws = () => {
    let i = 0;
    return () => (i++ % 4) / 4;
  };
  assert.equal(new LeastRequest(draws(), 4).pick(busy, {})!.key, 'h3');
  assert.notEqual(new LeastRequest(draws(), 2).pick(busy, {})!.key, 'h3');
  // Bias 0: weights alone, however busy the heavy host is.
  const weighted: LbHost[] = [{ key: 'a', weight: 3, activeRequests: 50 }, { key: 'b', weight: 1, activeRequests: 0 }];
  const lr = new LeastRequest(Math.random, 2, 0);
  const picks = Array.from({ length: 400 }, () => lr.pick(weighted, {})!.key);
  assert.equal(picks.filter((k) => k === 'a').length, 300);
});

test("a retry avoiding previous hosts gets host_selection_retry_max_attempts more picks, and the last stands, as Envoy's", async () => {
  const { RoundRobin } = await import('../../sidecar/lb/round-robin.ts');
  const { RandomLb } = await import('../../sidecar/lb/random.ts');
  // Envoy's ring above: index 5 and 6 are both :91, 7 is :93. A key on index 5, retried with :91 tried:
  const hosts = [90, 91, 92, 93, 94, 95].map((p) => host(`127.0.0.1:${p}`));
  const rh = new RingHash(12);
  const hash = 5583722120771150861n;
  const avoid = new Set(['127.0.0.1:91']);
  assert.equal(rh.pick(hosts, { hash })!.key, '127.0.0.1:91');
  // the default one more attempt is the next point, :91 again, and Envoy keeps it;
  assert.equal(rh.pick(hosts, { hash, avoid })!.key, '127.0.0.1:91');
  // two attempts reach :93.
  assert.equal(rh.pick(hosts, { hash, avoid, hostSelectionRetries: 2 })!.key, '127.0.0.1:93');
  // Random: two draws on the tried host in a row, with one retry allowed, stay there; a third draw is not made.
  const draws = [0.1, 0.2, 0.9];
  let i = 0;
  const two = [host('a:1'), host('b:1')];
  assert.equal(new RandomLb(() => draws[i++]!).pick(two, { avoid: new Set(['a:1']) })!.key, 'a:1');
  i = 0;
  assert.equal(new RandomLb(() => draws[i++]!).pick(two, { avoid: new Set(['a:1']), hostSelectionRetries: 2 })!.key, 'b:1');
  // Round robin: the rotation moves on with each attempt.
  const rr = new RoundRobin(() => 0);
  assert.equal(rr.pick(two, {})!.key, 'a:1');
  assert.equal(rr.pick(two, {})!.key, 'b:1');
  assert.equal(rr.pick(two, { avoid: new Set(['a:1']) })!.key, 'b:1', 'a is next, tried: one more pick');
});

test("weighted round robin is Envoy's EDF: interleaved, in weight shares, from a random point of the schedule", async () => {
  const { RoundRobin } = await import('../../sidecar/lb/round-robin.ts');
  const hs = [host('a:1', 1), host('b:1', 3)];
  const rr = new RoundRobin(() => 0);
  const seq = Array.from({ length: 400 }, () => rr.pick(hs, {})!.key[0]).join('');
  assert.equal(seq.slice(0, 4), 'bbab', 'deadlines 1/3, 2/3, then a (1, scheduled first) before b (1)');
  assert.equal([...seq].filter((k) => k === 'a').length, 100);
  assert.doesNotMatch(seq, /aa|bbbbb/, 'interleaved, never a burst');
  // Proxies starting together (or getting a new host set) begin at different points of the schedule, as Envoy's
  // seeded scheduler does; before, every proxy's first weighted pick went to the heaviest host.
  const three = [host('a:1', 1), host('b:1', 2), host('c:1', 3)];
  const firsts = [0, 0.4, 0.8].map((r) => new RoundRobin(() => r).pick(three, {})!.key);
  assert.ok(new Set(firsts).size > 1, firsts.join(', '));
});
