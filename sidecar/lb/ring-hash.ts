// Ring hash as Envoy builds and reads it (ring_hash_lb.cc, Ketama): each host
// owns points on a 64-bit ring at xxHash64("<hash key>_<i>"), the number of
// points proportional to its share of the weight; a request's hash picks the
// first point at or after it, wrapping to the first. The same hosts in the
// same order give the same ring as an Envoy's, so a key lands on the same
// host whichever of the two proxies sends it.

import type { LbHost, LoadBalancer, PickContext } from './types.ts';
import { xxHash64 } from './xxhash64.ts';

/** Envoy's defaults (RingHashLoadBalancer::DefaultMinRingSize / DefaultMaxRingSize). */
export const DEFAULT_MIN_RING_SIZE = 1024;
export const DEFAULT_MAX_RING_SIZE = 8 * 1024 * 1024;

/** The string a host's points are hashed from: its `envoy.lb` `hash_key`, else its address as Envoy prints it (`[v6]:port`). */
export function ringKey(h: LbHost): string {
  return h.hashKey || h.key;
}

/** A host key's point positions computed so far (`<key>_<i>` at index i), so a rebuild after a host comes or goes hashes only new points. */
export type PointCache = Map<string, bigint[]>;

export interface Ring {
  /** Point positions, ascending. */
  readonly hashes: BigUint64Array;
  /** The host of each point (an index into the hosts the ring was built from). */
  readonly hosts: Uint32Array;
}

/**
 * Envoy's Ring constructor: weights normalised to sum 1; a scale such that the lightest host gets a whole number of
 * points (ceil(min_weight * min_ring_size) / min_weight), capped at max_ring_size; then, walking the hosts in order,
 * points are added while a running count is below the running target (scale x the weights so far).
 */
export function buildRing(hosts: readonly LbHost[], minRingSize = DEFAULT_MIN_RING_SIZE, maxRingSize = DEFAULT_MAX_RING_SIZE, points: PointCache = new Map()): Ring {
  if (hosts.length === 0) return { hashes: new BigUint64Array(0), hosts: new Uint32Array(0) };
  let sum = 0;
  for (const h of hosts) sum += h.weight;
  let minWeight = 1;
  for (const h of hosts) minWeight = Math.min(minWeight, h.weight / sum);
  const scale = Math.min(Math.ceil(minWeight * minRingSize) / minWeight, maxRingSize);
  const hashes: bigint[] = [];
  const owners: number[] = [];
  let current = 0;
  let target = 0;
  hosts.forEach((h, index) => {
    const key = ringKey(h);
    let known = points.get(key);
    if (!known) points.set(key, (known = []));
    target += scale * (h.weight / sum);
    for (let i = 0; current < target; i++, current++) {
      known[i] ??= xxHash64(`${key}_${i}`);
      hashes.push(known[i]!);
      owners.push(index);
    }
  });
  const order = hashes.map((_, i) => i).sort((a, b) => (hashes[a]! < hashes[b]! ? -1 : hashes[a]! > hashes[b]! ? 1 : 0));
  return { hashes: BigUint64Array.from(order, (i) => hashes[i]!), hosts: Uint32Array.from(order, (i) => owners[i]!) };
}

/** The index of the point a hash lands on: the first at or after it, or the first of the ring past the last. */
export function ringIndex(ring: Ring, hash: bigint): number {
  let lo = 0;
  let hi = ring.hashes.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (ring.hashes[mid]! < hash) lo = mid + 1;
    else hi = mid;
  }
  return lo === ring.hashes.length ? 0 : lo;
}

function random64(random: () => number): bigint {
  return (BigInt(Math.floor(random() * 2 ** 32)) << 32n) | BigInt(Math.floor(random() * 2 ** 32));
}

export class RingHash implements LoadBalancer {
  readonly #minRingSize: number;
  readonly #maxRingSize: number;
  readonly #random: () => number;
  #builtFor = '';
  #ring: Ring = buildRing([]);
  readonly #points: PointCache = new Map();

  constructor(minRingSize = DEFAULT_MIN_RING_SIZE, maxRingSize = DEFAULT_MAX_RING_SIZE, random: () => number = Math.random) {
    this.#minRingSize = minRingSize;
    this.#maxRingSize = maxRingSize;
    this.#random = random;
  }

  /** The ring for these hosts, rebuilt when they (their order, keys or weights) change, as Envoy rebuilds on a host set update. */
  ring(hosts: readonly LbHost[]): Ring {
    let id = '';
    for (const h of hosts) id += `${ringKey(h)}*${h.weight},`;
    if (id !== this.#builtFor) {
      this.#builtFor = id;
      // Points of hosts no longer in the cluster are forgotten; those of hosts only ejected or unhealthy are kept.
      if (this.#points.size > 2 * hosts.length + 16) this.#points.clear();
      this.#ring = buildRing(hosts, this.#minRingSize, this.#maxRingSize, this.#points);
    }
    return this.#ring;
  }

  pick(hosts: readonly LbHost[], ctx: PickContext): LbHost | undefined {
    if (hosts.length === 0) return undefined;
    // The ring is built over the hosts that may take traffic, so an ejected host's keys move to its ring successors.
    const ring = this.ring(hosts);
    // No hash (no policy matched): a random point, as Envoy's thread-aware balancer draws one.
    const start = ringIndex(ring, ctx.hash ?? random64(this.#random));
    const size = ring.hashes.length;
    // A retry with hosts to avoid (previous_hosts) steps one point along the ring per host selection attempt, up to
    // host_selection_retry_max_attempts, as Envoy's Ring::chooseHost(hash, attempt); the last point stands even if
    // its host was tried (with the default 1: the next point, whichever host it is).
    const avoid = ctx.avoid;
    const retries = avoid && avoid.size > 0 ? (ctx.hostSelectionRetries ?? 1) : 0;
    let index = ring.hosts[start]!;
    for (let attempt = 1; attempt <= retries && avoid!.has(hosts[index]!.key); attempt++) index = ring.hosts[(start + attempt) % size]!;
    return hosts[index];
  }
}
