// Active HTTP health checking: every interval, GET path on each host; after
// unhealthy_threshold failures in a row the host stops taking traffic, after
// healthy_threshold passes it takes traffic again.

import { Agent, request } from 'undici';
import type { HealthCheckConfig } from './config.ts';

export interface CheckedHost {
  key: string;
  address: string;
  port: number;
  /** Result of active health checking; true until a check fails enough times. */
  activeHealthy: boolean;
  hcFailures: number;
  hcSuccesses: number;
}

/** Dedicated connections, as Envoy's checker uses its own: a saturated request pool never starves checks. */
const checkAgent = new Agent({ keepAliveTimeout: 30_000, connections: 4 });

export class HealthChecker {
  #config: HealthCheckConfig;
  #timer: NodeJS.Timeout | undefined;
  readonly #hosts: () => readonly CheckedHost[];
  readonly #onResult: (host: CheckedHost, ok: boolean, changed: boolean) => void;

  constructor(config: HealthCheckConfig, hosts: () => readonly CheckedHost[], onResult: (host: CheckedHost, ok: boolean, changed: boolean) => void) {
    this.#config = config;
    this.#hosts = hosts;
    this.#onResult = onResult;
  }

  start(): void {
    this.stop();
    const run = () => {
      for (const h of this.#hosts()) void this.check(h);
    };
    run();
    this.#timer = setInterval(run, this.#config.intervalMs);
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  async check(h: CheckedHost): Promise<boolean> {
    let ok = false;
    try {
      const res = await request(`http://${h.address.includes(':') ? `[${h.address}]` : h.address}:${h.port}${this.#config.path}`, {
        dispatcher: checkAgent,
        headers: { host: this.#config.host ?? h.address, 'user-agent': 'Envoy/HC' },
        signal: AbortSignal.timeout(this.#config.timeoutMs),
      });
      await res.body.dump();
      ok = this.#config.expectedStatuses.some((r) => res.statusCode >= r.start && res.statusCode < r.end);
    } catch {
      ok = false;
    }
    let changed = false;
    if (ok) {
      h.hcFailures = 0;
      h.hcSuccesses++;
      if (!h.activeHealthy && h.hcSuccesses >= this.#config.healthyThreshold) {
        h.activeHealthy = true;
        changed = true;
      }
    } else {
      h.hcSuccesses = 0;
      h.hcFailures++;
      if (h.activeHealthy && h.hcFailures >= this.#config.unhealthyThreshold) {
        h.activeHealthy = false;
        changed = true;
      }
    }
    this.#onResult(h, ok, changed);
    return ok;
  }
}
