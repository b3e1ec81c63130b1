// Ring hash (Ketama-style): each host owns weight-proportional points on a
// 32-bit ring; a request's hash picks the first point at or after it. Adding
// or removing a host moves only the keys that host owned.

import type { LbHost, LoadBalancer, PickContext } from './types.ts';

/** 32-bit FNV-1a: stable across processes, which is all consistent hashing needs. */
export function hash32(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  // Final avalanche (murmur3 fmix32) so near-identical keys spread over the ring.
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

export class RingHash implements LoadBalancer {
  readonly #minRingSize: number;
  #ringKey = '';
  #points: { hash: number; key: string }[] = [];
  readonly #random: () => number;

  constructor(minRingSize = 1024, random: () => number = Math.random) {
    this.#minRingSize = Math.min(minRingSize, 65536);
    this.#random = random;
  }

  #build(hosts: readonly LbHost[]): void {
    const key = hosts.map((h) => `${h.key}*${h.weight}`).sort().join(',');
    if (key === this.#ringKey) return;
    this.#ringKey = key;
    const total = hosts.reduce((s, h) => s + h.weight, 0);
    const points: { hash: number; key: string }[] = [];
    for (const h of hosts) {
      const n = Math.max(1, Math.ceil((this.#minRingSize * h.weight) / total));
      for (let i = 0; i < n; i++) points.push({ hash: hash32(`${h.key}_${i}`), key: h.key });
    }
    points.sort((a, b) => a.hash - b.hash);
    this.#points = points;
  }

  pick(hosts: readonly LbHost[], ctx: PickContext): LbHost | undefined {
    if (hosts.length === 0) return undefined;
    // The ring is built over the hosts that may take traffic, so an ejected host's keys move to its ring successors.
    this.#build(hosts);
    const h = ctx.hash ?? Math.floor(this.#random() * 2 ** 32);
    let lo = 0;
    let hi = this.#points.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.#points[mid]!.hash < h) lo = mid + 1;
      else hi = mid;
    }
    const size = this.#points.length;
    let key = this.#points[lo % size]!.key;
    // A retry that avoids the hosts it tried (previous_hosts) walks on along the ring, as Envoy's ring does for a
    // host selection retry (one point per attempt there; here on to the first point of a host not tried).
    const avoid = ctx.avoid;
    if (avoid && avoid.has(key)) {
      for (let i = 1; i < size; i++) {
        const next = this.#points[(lo + i) % size]!.key;
        if (!avoid.has(next)) {
          key = next;
          break;
        }
      }
    }
    return hosts.find((x) => x.key === key);
  }
}
