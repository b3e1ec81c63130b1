// Least request as Envoy runs it (least_request_lb.cc). Equal weights:
// choice_count hosts (default 2) sampled at random, with replacement, and the
// one with the fewest active requests taken (the first sampled on a tie).
// Weights that differ: a weighted round robin whose weights are worked out at
// each pick as load_balancing_weight / (active requests + 1) ^
// active_request_bias (default 1.0; 0 is plain weighted round robin), so a
// host of weight 3 takes three times the share of an equally loaded host of
// weight 1, on Envoy's EDF schedule (edf.ts).

import { EdfScheduler } from './edf.ts';
import type { LbHost, LoadBalancer, PickContext } from './types.ts';
import { pickAvoiding } from './types.ts';

export class LeastRequest implements LoadBalancer {
  readonly #random: () => number;
  readonly #choiceCount: number;
  readonly #activeRequestBias: number;
  readonly #edf: EdfScheduler;

  constructor(random: () => number = Math.random, choiceCount = 2, activeRequestBias = 1) {
    this.#random = random;
    this.#choiceCount = choiceCount;
    this.#activeRequestBias = activeRequestBias;
    // Envoy's LeastRequestLoadBalancer::hostWeight, read each time a host is scheduled.
    this.#edf = new EdfScheduler((h) => {
      const bias = this.#activeRequestBias;
      return bias === 0 ? h.weight : bias === 1 ? h.weight / (h.activeRequests + 1) : h.weight / (h.activeRequests + 1) ** bias;
    }, random);
  }

  pick(hosts: readonly LbHost[], ctx: PickContext): LbHost | undefined {
    return pickAvoiding(ctx, () => this.#pickOnce(hosts));
  }

  #pickOnce(hosts: readonly LbHost[]): LbHost | undefined {
    if (hosts.length <= 1) return hosts[0];
    const w0 = hosts[0]!.weight;
    if (!hosts.every((h) => h.weight === w0)) return this.#edf.pick(hosts);
    let best = hosts[Math.floor(this.#random() * hosts.length)]!;
    for (let i = 1; i < this.#choiceCount; i++) {
      const sampled = hosts[Math.floor(this.#random() * hosts.length)]!;
      if (sampled.activeRequests < best.activeRequests) best = sampled;
    }
    return best;
  }
}
