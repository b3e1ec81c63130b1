// Round robin as Envoy's RoundRobinLoadBalancer: equal weights, each host in
// turn from a random start; weights that differ, Envoy's EDF schedule
// (edf.ts), which interleaves a heavier host's turns with the others'.

import { EdfScheduler } from './edf.ts';
import type { LbHost, LoadBalancer, PickContext } from './types.ts';
import { pickAvoiding } from './types.ts';

export class RoundRobin implements LoadBalancer {
  /**
   * Where the rotation starts: a random host, as Envoy seeds its round robin, so a fleet of proxies that
   * start (or get a new cluster) together does not send its first requests all to the same host.
   */
  #next: number;

  readonly #edf: EdfScheduler;

  constructor(random: () => number = Math.random) {
    this.#next = Math.floor(random() * 0x7fffffff);
    this.#edf = new EdfScheduler((h) => h.weight, random);
  }

  pick(hosts: readonly LbHost[], ctx: PickContext): LbHost | undefined {
    return pickAvoiding(ctx, () => this.#pickOnce(hosts));
  }

  #pickOnce(hosts: readonly LbHost[]): LbHost | undefined {
    if (hosts.length === 0) return undefined;
    const w0 = hosts[0]!.weight;
    if (hosts.every((h) => h.weight === w0)) return hosts[this.#next++ % hosts.length];
    return this.#edf.pick(hosts);
  }
}
