// Active HTTP health checking: GET path on each host; after
// unhealthy_threshold failures in a row the host stops taking traffic, after
// healthy_threshold passes it takes traffic again. Each host is checked once
// at the start, then after the interval Envoy would choose (nextCheckIn):
// no_traffic_interval until the cluster has carried a request (60 s unset;
// no_traffic_healthy_interval for a host that passed and stays healthy),
// then interval, unhealthy_interval for a failing host, and the edge
// intervals while a change of state waits for its threshold; each wait with
// Envoy's jitter added, and a host's first check after initial_jitter.
// Checks use the cluster's transport socket, as Envoy's do: to a mutual TLS
// cluster they present the workload certificate and verify the host's.

import type { Socket } from 'node:net';
import { Agent, request } from 'undici';
import type { HealthCheckConfig } from './config.ts';
import { connectTls, type PoolOptions, type UpstreamTls } from './upstream.ts';

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

/** The same, over mutual TLS: each new connection with the cluster's current certificate and SAN check. */
function tlsCheckAgent(tls: UpstreamTls): Agent {
  return new Agent({
    keepAliveTimeout: 30_000,
    connections: 4,
    connect: (opts, callback) => {
      const address = opts.hostname.replace(/^\[(.*)\]$/, '$1');
      const socket = connectTls({ address, port: Number(opts.port), tls } as PoolOptions, 'http/1.1');
      const onError = (err: Error) => callback(err, null);
      socket.once('error', onError);
      socket.once('secureConnect', () => {
        socket.off('error', onError);
        callback(null, socket as Socket);
      });
    },
  });
}

/**
 * Envoy's HealthCheckerImplBase::interval: before any traffic the no-traffic
 * interval; after, by this check's result, the edge interval while the host's
 * state disagrees with it (a change waiting for its threshold), else the
 * interval for that result.
 */
export function nextCheckIn(c: HealthCheckConfig, hadTraffic: boolean, passed: boolean, changePending: boolean, random: () => number = Math.random): number {
  const noTraffic = passed && !changePending ? (c.noTrafficHealthyIntervalMs ?? c.noTrafficIntervalMs) : c.noTrafficIntervalMs;
  const base = !hadTraffic ? noTraffic : passed ? (changePending ? c.healthyEdgeIntervalMs : c.intervalMs) : changePending ? c.unhealthyEdgeIntervalMs : c.unhealthyIntervalMs;
  return withJitter(c, base, random);
}

/** Envoy's intervalWithJitter: up to interval_jitter_percent of the wait, then up to interval_jitter, added; never 0. */
export function withJitter(c: HealthCheckConfig, baseMs: number, random: () => number = Math.random): number {
  let ms = baseMs;
  const percentMod = Math.floor(((c.intervalJitterPercent ?? 0) * baseMs) / 100);
  if (percentMod > 0) ms += Math.floor(random() * percentMod);
  const jitter = c.intervalJitterMs ?? 0;
  if (jitter > 0) ms += Math.floor(random() * jitter);
  return Math.max(1, ms);
}

export class HealthChecker {
  #config: HealthCheckConfig;
  #timer: NodeJS.Timeout | undefined;
  #wakeAt = 0;
  #stopped = true;
  /** When each host's next check is due (Infinity while one is in flight). */
  readonly #due = new WeakMap<CheckedHost, number>();
  readonly #hosts: () => readonly CheckedHost[];
  readonly #onResult: (host: CheckedHost, ok: boolean, changed: boolean) => void;
  /** Whether the cluster has carried traffic yet (no_traffic_interval until it has). */
  readonly #hadTraffic: () => boolean;

  readonly #random: () => number;
  /** The cluster's mutual TLS, if it has it: checks go over it (an own agent, closed with the checker). */
  readonly #tlsAgent: Agent | undefined;

  constructor(config: HealthCheckConfig, hosts: () => readonly CheckedHost[], onResult: (host: CheckedHost, ok: boolean, changed: boolean) => void, hadTraffic: () => boolean = () => true, random: () => number = Math.random, tls?: UpstreamTls) {
    this.#random = random;
    this.#tlsAgent = tls ? tlsCheckAgent(tls) : undefined;
    this.#config = config;
    this.#hosts = hosts;
    this.#onResult = onResult;
    this.#hadTraffic = hadTraffic;
  }

  start(): void {
    this.stop();
    this.#stopped = false;
    this.#loop();
  }

  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  /** Stops for good: also closes the checker's own mutual TLS connections. */
  close(): void {
    this.stop();
    void this.#tlsAgent?.destroy().catch(() => undefined);
  }

  /** Checks the hosts that are due (new ones at once), then sleeps until the next is due (at most `interval`, to find new hosts). */
  #loop(): void {
    if (this.#stopped) return;
    const now = Date.now();
    let next = now + this.#config.intervalMs;
    for (const h of this.#hosts()) {
      let due = this.#due.get(h);
      // initial_jitter: a new host's first check waits a random time below it (Envoy's onInitialInterval).
      if (due === undefined && (this.#config.initialJitterMs ?? 0) > 0) {
        due = now + Math.floor(this.#random() * this.#config.initialJitterMs!);
        this.#due.set(h, due);
      }
      if (due === undefined || due <= now) {
        // In flight: not due again until it has answered.
        this.#due.set(h, Infinity);
        void this.check(h);
      } else next = Math.min(next, due);
    }
    this.#wake(next);
  }

  #wake(at: number): void {
    if (this.#stopped || (this.#timer && this.#wakeAt <= at)) return;
    clearTimeout(this.#timer);
    this.#wakeAt = at;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#loop();
    }, Math.max(1, at - Date.now()));
    this.#timer.unref();
  }

  async check(h: CheckedHost): Promise<boolean> {
    let ok = false;
    try {
      const res = await request(`${this.#tlsAgent ? 'https' : 'http'}://${h.address.includes(':') ? `[${h.address}]` : h.address}:${h.port}${this.#config.path}`, {
        dispatcher: this.#tlsAgent ?? checkAgent,
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
    const pending = ok !== h.activeHealthy;
    this.#due.set(h, Date.now() + nextCheckIn(this.#config, this.#hadTraffic(), ok, pending, this.#random));
    this.#wake(this.#due.get(h)!);
    this.#onResult(h, ok, changed);
    return ok;
  }
}
