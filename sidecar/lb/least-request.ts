// Least request as Envoy runs it (least_request_lb.cc). Equal weights:
// choice_count hosts (default 2) sampled at random, with replacement, and the
// one with the fewest active requests taken (the first sampled on a tie).
// Weights that differ: a weighted round robin whose weights are worked out at
// each pick as load_balancing_weight / (active requests + 1) ^
// active_request_bias (default 1.0; 0 is plain weighted round robin), so a
// host of weight 3 takes three times the share of an equally loaded host of
// weight 1. The schedule is smooth weighted round robin (round-robin.ts)
// where Envoy's is EDF; the shares are the same.

import type { LbHost, LoadBalancer, PickContext } from './types.ts';
import { pickAvoiding } from './types.ts';

export class LeastRequest implements LoadBalancer {
  readonly #random: () => number;
  readonly #choiceCount: number;
  readonly #activeRequestBias: number;
  readonly #current = new Map<string, number>();

  constructor(random: () => number = Math.random, choiceCount = 2, activeRequestBias = 1) {
    this.#random = random;
    this.#choiceCount = choiceCount;
    this.#activeRequestBias = activeRequestBias;
  }

  pick(hosts: readonly LbHost[], ctx: PickContext): LbHost | undefined {
    return pickAvoiding(ctx, () => this.#pickOnce(hosts));
  }

  #pickOnce(hosts: readonly LbHost[]): LbHost | undefined {
    if (hosts.length <= 1) return hosts[0];
    const w0 = hosts[0]!.weight;
    if (!hosts.every((h) => h.weight === w0)) return this.#weighted(hosts);
    let best = hosts[Math.floor(this.#random() * hosts.length)]!;
    for (let i = 1; i < this.#choiceCount; i++) {
      const sampled = hosts[Math.floor(this.#random() * hosts.length)]!;
      if (sampled.activeRequests < best.activeRequests) best = sampled;
    }
    return best;
  }

  #weighted(hosts: readonly LbHost[]): LbHost {
    let total = 0;
    let best: LbHost | undefined;
    let bestScore = -Infinity;
    for (const h of hosts) {
      const bias = this.#activeRequestBias;
      const weight = bias === 0 ? h.weight : bias === 1 ? h.weight / (h.activeRequests + 1) : h.weight / (h.activeRequests + 1) ** bias;
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
