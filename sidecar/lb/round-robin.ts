// Round robin as Envoy's RoundRobinLoadBalancer: equal weights, each host in
// turn from a random start; weights that differ, Envoy's EDF schedule
// (edf.ts), which interleaves a heavier host's turns with the others'.

import { EdfScheduler } from './edf.ts';
import type { HostSource, LbHost, LoadBalancer, PickContext } from './types.ts';
import { pickAvoiding } from './types.ts';

export class RoundRobin implements LoadBalancer {
  /**
   * Where the rotation starts: a random host, as Envoy seeds its round robin, so a fleet of proxies that
   * start (or get a new cluster) together does not send its first requests all to the same host.
   */
  readonly #seed: number;
  /** The rotation's place in each host set (Envoy's rr_indexes_ per HostsSource), so healthy and degraded picks do not share one. */
  readonly #next = new Map<HostSource, number>();
  readonly #edf: EdfScheduler;

  constructor(random: () => number = Math.random) {
    this.#seed = Math.floor(random() * 0x7fffffff);
    this.#edf = new EdfScheduler((h) => h.weight, random);
  }

  pick(hosts: readonly LbHost[], ctx: PickContext): LbHost | undefined {
    return pickAvoiding(ctx, () => this.#pickOnce(hosts, ctx.source ?? 'healthy'));
  }

  #pickOnce(hosts: readonly LbHost[], source: HostSource): LbHost | undefined {
    if (hosts.length === 0) return undefined;
    const w0 = hosts[0]!.weight;
    if (hosts.every((h) => h.weight === w0)) {
      const next = this.#next.get(source) ?? this.#seed;
      this.#next.set(source, next + 1);
      return hosts[next % hosts.length];
    }
    return this.#edf.pick(hosts);
  }
}
