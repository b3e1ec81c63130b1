// Least request: Envoy's power of two choices (choice_count 2): pick two
// hosts at random, send to the one with fewer active requests.

import type { LbHost, LoadBalancer, PickContext } from './types.ts';
import { preferNotAvoided } from './types.ts';

export class LeastRequest implements LoadBalancer {
  readonly #random: () => number;

  constructor(random: () => number = Math.random) {
    this.#random = random;
  }

  pick(all: readonly LbHost[], ctx: PickContext): LbHost | undefined {
    const hosts = preferNotAvoided(all, ctx.avoid);
    if (hosts.length <= 1) return hosts[0];
    const a = hosts[Math.floor(this.#random() * hosts.length)]!;
    const b = hosts[Math.floor(this.#random() * hosts.length)]!;
    return b.activeRequests < a.activeRequests ? b : a;
  }
}
