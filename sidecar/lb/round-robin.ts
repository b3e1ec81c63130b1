// Round robin; smooth weighted (nginx's algorithm) when weights differ, which
// spreads a weighted host's turns instead of bunching them like Envoy's EDF does not.

import type { LbHost, LoadBalancer, PickContext } from './types.ts';
import { pickAvoiding } from './types.ts';

export class RoundRobin implements LoadBalancer {
  /**
   * Where the rotation starts: a random host, as Envoy seeds its round robin, so a fleet of proxies that
   * start (or get a new cluster) together does not send its first requests all to the same host.
   */
  #next: number;

  constructor(random: () => number = Math.random) {
    this.#next = Math.floor(random() * 0x7fffffff);
  }
  readonly #current = new Map<string, number>();

  pick(hosts: readonly LbHost[], ctx: PickContext): LbHost | undefined {
    return pickAvoiding(ctx, () => this.#pickOnce(hosts));
  }

  #pickOnce(hosts: readonly LbHost[]): LbHost | undefined {
    if (hosts.length === 0) return undefined;
    const w0 = hosts[0]!.weight;
    if (hosts.every((h) => h.weight === w0)) return hosts[this.#next++ % hosts.length];
    let total = 0;
    let best: LbHost | undefined;
    let bestScore = -Infinity;
    for (const h of hosts) {
      const score = (this.#current.get(h.key) ?? 0) + h.weight;
      this.#current.set(h.key, score);
      total += h.weight;
      if (score > bestScore) {
        bestScore = score;
        best = h;
      }
    }
    this.#current.set(best!.key, bestScore - total);
    return best;
  }
}
