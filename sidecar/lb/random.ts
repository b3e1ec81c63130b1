// Random as Envoy's RandomLoadBalancer: one host picked uniformly from those
// that may take the request; load_balancing_weight plays no part (Envoy's
// random LB reads no weights, only round robin and least request do).

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
    return hosts[Math.floor(this.#random() * hosts.length)];
  }
}
