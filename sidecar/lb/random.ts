// Random, weighted by load_balancing_weight.

import type { LbHost, LoadBalancer, PickContext } from './types.ts';
import { preferNotAvoided } from './types.ts';

export class RandomLb implements LoadBalancer {
  readonly #random: () => number;

  constructor(random: () => number = Math.random) {
    this.#random = random;
  }

  pick(all: readonly LbHost[], ctx: PickContext): LbHost | undefined {
    const hosts = preferNotAvoided(all, ctx.avoid);
    if (hosts.length === 0) return undefined;
    const total = hosts.reduce((s, h) => s + h.weight, 0);
    let x = this.#random() * total;
    for (const h of hosts) {
      if (x < h.weight) return h;
      x -= h.weight;
    }
    return hosts.at(-1);
  }
}
