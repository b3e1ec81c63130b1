// Active HTTP health checking: GET path on each host; a response outside
// expected_statuses takes the host out at once, as Envoy's HTTP checker does,
// while connect failures and timeouts take unhealthy_threshold in a row;
// after healthy_threshold passes it takes traffic again (a new host, which
// starts out, after its first). Each host is checked once
// at the start, then after the interval Envoy would choose (nextCheckIn):
// no_traffic_interval until the cluster has carried a request (60 s unset;
// no_traffic_healthy_interval for a host that passed and stays healthy),
// then interval, unhealthy_interval for a failing host, and the edge
// intervals while a change of state waits for its threshold; each wait with
// Envoy's jitter added, and a host's first check after initial_jitter.

// Checks use the cluster's transport socket, as Envoy's do: to a mutual TLS
// cluster they present the workload certificate and verify the host's.

import http2 from 'node:http2';
import type { Socket } from 'node:net';
import { Agent, request } from 'undici';
import type { HealthCheckConfig } from './config.ts';
import { connectTls, type PoolOptions, type UpstreamTls } from './upstream.ts';

export interface CheckedHost {
  key: string;
  address: string;
  port: number;
  /** Result of active health checking. A host added to a health-checked cluster starts false (Envoy's FAILED_ACTIVE_HC) until its first check passes. */
  activeHealthy: boolean;
  hcFailures: number;
  hcSuccesses: number;
  /** Whether a check has answered since the host was added: the first pass makes it healthy whatever healthy_threshold says (Envoy's first_check_). */
  hcChecked?: boolean;
  /** Its last passing check's response carried x-envoy-degraded: up, but degraded (Envoy's DEGRADED_ACTIVE_HC). */
  activeDegraded?: boolean;
}

/** A check's answer: its status, and whether the host said it is degraded (the x-envoy-degraded response header). */
interface CheckAnswer {
  status: number;
  degraded: boolean;
}

function origin(h: CheckedHost, secure: boolean): string {
  return `${secure ? 'https' : 'http'}://${h.address.includes(':') ? `[${h.address}]` : h.address}:${h.port}`;
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
  /** Every check's result: passed, whether the host's state changed, and whether it failed on the network (connect failure, timeout). */
  readonly #onResult: (host: CheckedHost, ok: boolean, changed: boolean, network: boolean) => void;
  /** Whether the cluster has carried traffic yet (no_traffic_interval until it has). */
  readonly #hadTraffic: () => boolean;

  readonly #random: () => number;
  /** h2c connections for codec_client_type HTTP2, by host. */
  readonly #sessions = new Map<string, http2.ClientHttp2Session>();
  /** The cluster's mutual TLS, if it has it: checks go over it (an own agent, closed with the checker). */
  readonly #tls: UpstreamTls | undefined;
  readonly #tlsAgent: Agent | undefined;

  constructor(config: HealthCheckConfig, hosts: () => readonly CheckedHost[], onResult: (host: CheckedHost, ok: boolean, changed: boolean, network: boolean) => void, hadTraffic: () => boolean = () => true, random: () => number = Math.random, tls?: UpstreamTls) {
    this.#tls = tls;
    this.#tlsAgent = tls ? tlsCheckAgent(tls) : undefined;
    this.#random = random;
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

  /** Hosts were added: check the new ones now rather than at the next wake, as Envoy starts a session per added host. */
  hostsAdded(): void {
    if (!this.#stopped) this.#loop();
  }

  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    for (const s of this.#sessions.values()) s.close();
    this.#sessions.clear();
  }

  /** Stops for good: also closes the checker's own mutual TLS connections. */
  close(): void {
    this.stop();
    void this.#tlsAgent?.destroy().catch(() => undefined);
  }

  async #h1Status(h: CheckedHost): Promise<CheckAnswer> {
    const res = await request(`${origin(h, this.#tlsAgent !== undefined)}${this.#config.path}`, {
      dispatcher: this.#tlsAgent ?? checkAgent,
      headers: { host: this.#config.host ?? h.address, 'user-agent': 'Envoy/HC' },
      signal: AbortSignal.timeout(this.#config.timeoutMs),
    });
    await res.body.dump();
    return { status: res.statusCode, degraded: res.headers['x-envoy-degraded'] !== undefined };
  }

  /** codec_client_type HTTP2: a GET over an h2c connection of the checker's own, kept for the host's next checks (Envoy reuses it too). */
  #h2Status(h: CheckedHost): Promise<CheckAnswer> {
    let session = this.#sessions.get(h.key);
    if (!session || session.closed || session.destroyed) {
      // Over the cluster's mutual TLS when it has it (ALPN h2), else h2c.
      const tls = this.#tls;
      const address = h.address;
      const opened = tls
        ? http2.connect(origin(h, true), { createConnection: () => connectTls({ address, port: h.port, tls } as PoolOptions, 'h2') })
        : http2.connect(origin(h, false));
      opened.on('error', () => undefined);
      opened.on('close', () => {
        if (this.#sessions.get(h.key) === opened) this.#sessions.delete(h.key);
      });
      opened.unref();
      this.#sessions.set(h.key, opened);
      session = opened;
    }
    const s = session;
    return new Promise((resolve, reject) => {
      const fail = (err: Error) => {
        clearTimeout(timer);
        // A connection that failed or timed out is not reused.
        if (this.#sessions.get(h.key) === s) this.#sessions.delete(h.key);
        s.destroy();
        reject(err);
      };
      const timer = setTimeout(() => fail(new Error('health check timeout')), this.#config.timeoutMs);
      s.once('error', fail);
      const req = s.request({ ':method': 'GET', ':path': this.#config.path, ':authority': this.#config.host ?? h.address, 'user-agent': 'Envoy/HC' }, { endStream: true });
      const answer: CheckAnswer = { status: 0, degraded: false };
      req.on('response', (headers) => {
        answer.status = Number(headers[':status']);
        answer.degraded = headers['x-envoy-degraded'] !== undefined;
      });
      req.on('error', fail);
      req.on('end', () => {
        clearTimeout(timer);
        s.off('error', fail);
        resolve(answer);
      });
      req.resume();
    });
  }

  /** Checks the hosts that are due (new ones at once), then sleeps until the next is due (at most `interval`, to find new hosts). */
  #loop(): void {
    if (this.#stopped) return;
    const now = Date.now();
    let next = now + this.#config.intervalMs;
    const hosts = this.#hosts();
    if (this.#sessions.size > 0) {
      // A host EDS removed keeps no h2c connection open.
      const keys = new Set(hosts.map((h) => h.key));
      for (const [key, session] of this.#sessions) {
        if (keys.has(key)) continue;
        session.close();
        this.#sessions.delete(key);
      }
    }
    for (const h of hosts) {
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

  /**
   * One check, judged as Envoy's HTTP checker judges it: a response with a
   * status outside expected_statuses makes a healthy host unhealthy at once
   * (unhealthy_threshold counts only connect failures and timeouts, Envoy's
   * NETWORK failures); a host's first answered check that passes makes it
   * healthy at once, later ones need healthy_threshold passes in a row.
   */
  async check(h: CheckedHost): Promise<boolean> {
    let ok = false;
    let network = false;
    let changed = false;
    try {
      const answer = this.#config.http2 ? await this.#h2Status(h) : await this.#h1Status(h);
      ok = this.#config.expectedStatuses.some((r) => answer.status >= r.start && answer.status < r.end);
      // As Envoy's HTTP checker (handleSuccess(degraded)): a passing check sets or clears the degraded mark.
      if (ok && (h.activeDegraded ?? false) !== answer.degraded) {
        h.activeDegraded = answer.degraded;
        changed = h.activeHealthy;
      }
    } catch {
      ok = false;
      network = true;
    }
    const first = !h.hcChecked;
    h.hcChecked = true;
    if (ok) {
      h.hcFailures = 0;
      h.hcSuccesses++;
      if (!h.activeHealthy && (first || h.hcSuccesses >= this.#config.healthyThreshold)) {
        h.activeHealthy = true;
        changed = true;
      }
    } else {
      h.hcSuccesses = 0;
      h.hcFailures++;
      if (h.activeHealthy && (!network || h.hcFailures >= this.#config.unhealthyThreshold)) {
        h.activeHealthy = false;
        changed = true;
      }
    }
    const pending = ok !== h.activeHealthy;
    this.#due.set(h, Date.now() + nextCheckIn(this.#config, this.#hadTraffic(), ok, pending, this.#random));
    this.#wake(this.#due.get(h)!);
    this.#onResult(h, ok, changed, network);
    return ok;
  }
}
