// Outlier detection, consecutive-5xx flavour: a host that answers
// consecutive_5xx 5xx responses in a row (connect failures and resets count,
// as Envoy does without split_external_local_origin_errors) is ejected for
// base_ejection_time x times-ejected (capped at max_ejection_time), never
// ejecting more than max_ejection_percent of the cluster (but always at least one host).

import type { OutlierDetectionConfig } from './config.ts';

export interface OutlierHost {
  key: string;
  consecutive5xx: number;
  ejectedUntil: number;
  ejectionCount: number;
}

export class OutlierDetector {
  #config: OutlierDetectionConfig;
  readonly #now: () => number;
  readonly #onEject: (host: OutlierHost) => void;

  constructor(config: OutlierDetectionConfig, onEject: (host: OutlierHost) => void, now: () => number = Date.now) {
    this.#config = config;
    this.#now = now;
    this.#onEject = onEject;
  }

  update(config: OutlierDetectionConfig): void {
    this.#config = config;
  }

  isEjected(h: OutlierHost): boolean {
    return h.ejectedUntil > this.#now();
  }

  /** Records one response (status 0 = connect failure / reset / timeout) and ejects when the threshold is reached. */
  record(h: OutlierHost, status: number, all: readonly OutlierHost[]): void {
    if (status !== 0 && status < 500) {
      h.consecutive5xx = 0;
      return;
    }
    h.consecutive5xx++;
    if (h.consecutive5xx < this.#config.consecutive5xx || this.isEjected(h)) return;
    h.consecutive5xx = 0;
    if (Math.random() * 100 >= this.#config.enforcingConsecutive5xx) return;
    const ejected = all.filter((x) => this.isEjected(x)).length;
    const allowed = Math.max(1, Math.floor((all.length * this.#config.maxEjectionPercent) / 100));
    if (ejected >= allowed) return;
    h.ejectionCount++;
    const ms = Math.min(this.#config.baseEjectionTimeMs * h.ejectionCount, Math.max(this.#config.maxEjectionTimeMs, this.#config.baseEjectionTimeMs));
    h.ejectedUntil = this.#now() + ms;
    this.#onEject(h);
  }

  /** Envoy decrements a host's ejection multiplier on each healthy interval; called every `interval`. */
  tick(all: readonly OutlierHost[]): void {
    for (const h of all) if (!this.isEjected(h) && h.ejectionCount > 0 && h.consecutive5xx === 0 && h.ejectedUntil + this.#config.baseEjectionTimeMs < this.#now()) h.ejectionCount--;
  }
}
