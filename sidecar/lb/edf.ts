// Earliest deadline first, as Envoy's EdfScheduler schedules weighted round
// robin and weighted least request: each host waits for a deadline of
// 1 / weight after the time it was last picked; a pick takes the earliest
// deadline (the host scheduled first on a tie), moves the clock there and
// gives the host its next deadline with its weight at that moment (least
// request's weight changes with its load). A 1:3 split interleaves
// (b b a b b b a b ...), never bursts.

import type { LbHost } from './types.ts';

interface Entry {
  host: LbHost;
  deadline: number;
  order: number;
}

interface Schedule {
  entries: Entry[];
  now: number;
  order: number;
}

/** Envoy keeps one scheduler per host source (all, healthy, degraded hosts); beyond a few, old ones go. */
const MAX_SCHEDULES = 8;

export class EdfScheduler {
  readonly #weight: (h: LbHost) => number;
  readonly #random: () => number;
  readonly #schedules = new Map<string, Schedule>();

  /** `weight` is read when a host is (re)scheduled; `random` picks how far into its schedule a new one starts. */
  constructor(weight: (h: LbHost) => number, random: () => number = Math.random) {
    this.#weight = weight;
    this.#random = random;
  }

  /**
   * The next host of this host set's schedule. A new or changed host set gets a new schedule (as Envoy rebuilds
   * its schedulers on a host set update), started a random number of picks in (Envoy's seed % hosts), so proxies
   * that start together do not all follow the same sequence.
   */
  pick(hosts: readonly LbHost[]): LbHost | undefined {
    if (hosts.length === 0) return undefined;
    let id = '';
    for (const h of hosts) id += `${h.key}*${h.weight},`;
    let s = this.#schedules.get(id);
    if (!s) {
      if (this.#schedules.size >= MAX_SCHEDULES) this.#schedules.clear();
      let order = 0;
      s = { entries: hosts.map((host) => ({ host, deadline: 1 / this.#weight(host), order: order++ })), now: 0, order };
      this.#schedules.set(id, s);
      const skip = Math.floor(this.#random() * hosts.length);
      for (let i = 0; i < skip; i++) this.#next(s);
    } else {
      // The same hosts, maybe as new objects: weights are read from the current ones.
      for (let i = 0; i < hosts.length; i++) s.entries[i]!.host = hosts[i]!;
    }
    return this.#next(s);
  }

  #next(s: Schedule): LbHost {
    let best = s.entries[0]!;
    for (const e of s.entries) if (e.deadline < best.deadline || (e.deadline === best.deadline && e.order < best.order)) best = e;
    s.now = best.deadline;
    best.deadline = s.now + 1 / this.#weight(best.host);
    best.order = s.order++;
    return best.host;
  }
}
