// Random as Envoy's RandomLoadBalancer: one host picked uniformly from those
// that may take the request; load_balancing_weight plays no part (Envoy's
// random LB reads no weights, only round robin and least request do).

import type { LbHost, LoadBalancer, PickContext } from './types.ts';
import { pickAvoiding } from './types.ts';

export class RandomLb implements LoadBalancer {
  readonly #random: () => number;

  constructor(random: () => number = Math.random) {
    this.#random = random;
  }

  pick(hosts: readonly LbHost[], ctx: PickContext): LbHost | undefined {
    if (hosts.length === 0) return undefined;
    return pickAvoiding(ctx, () => hosts[Math.floor(this.#random() * hosts.length)]);
  }
}
