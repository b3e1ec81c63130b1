// Least request as Envoy runs it. Equal weights: power of two choices
// (choice_count 2), pick two hosts at random, send to the one with fewer
// active requests. Weights that differ: a weighted round robin whose weights
// are worked out at each pick as load_balancing_weight / (active requests + 1)
// (active_request_bias 1.0), so a host of weight 3 takes three times the
// share of an equally loaded host of weight 1. The schedule is smooth
// weighted round robin (round-robin.ts) where Envoy's is EDF; the shares are
// the same.

import type { LbHost, LoadBalancer, PickContext } from './types.ts';
import { preferNotAvoided } from './types.ts';

export class LeastRequest implements LoadBalancer {
  readonly #random: () => number;
  readonly #current = new Map<string, number>();

  constructor(random: () => number = Math.random) {
    this.#random = random;
  }

  pick(all: readonly LbHost[], ctx: PickContext): LbHost | undefined {
    const hosts = preferNotAvoided(all, ctx.avoid);
    if (hosts.length <= 1) return hosts[0];
    const w0 = hosts[0]!.weight;
    if (!hosts.every((h) => h.weight === w0)) return this.#weighted(hosts);
    const a = hosts[Math.floor(this.#random() * hosts.length)]!;
    const b = hosts[Math.floor(this.#random() * hosts.length)]!;
    return b.activeRequests < a.activeRequests ? b : a;
  }

  #weighted(hosts: readonly LbHost[]): LbHost {
    let total = 0;
    let best: LbHost | undefined;
    let bestScore = -Infinity;
    for (const h of hosts) {
      const weight = h.weight / (h.activeRequests + 1);
      const score = (this.#current.get(h.key) ?? 0) + weight;
      this.#current.set(h.key, score);
      total += weight;
      if (score > bestScore) {
        bestScore = score;
        best = h;
      }
    }
    this.#current.set(best!.key, bestScore - total);
    return best!;
  }
}
