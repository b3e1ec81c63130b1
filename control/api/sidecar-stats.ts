// Per-service traffic figures for the UI topology, taken from the proxies'
// own stats: the control plane scrapes each connected proxy's admin
// /stats/prometheus (Envoy's names, which the weft sidecar keeps) at the admin
// port the proxy declared in its node metadata (WEFT_ADMIN_PORT). Admin ports
// listen on the proxy's loopback, so this works where the control plane runs
// beside its proxies (the local mesh); elsewhere use Prometheus.

/** One proxy's counters at one instant. */
export interface ProxySample {
  at: number;
  /** Requests its inbound listener served (the service's own traffic). */
  inboundRequests: number;
  inbound5xx: number;
  /** Cumulative inbound latency histogram: upper bound (ms) -> count. */
  inboundBuckets: [number, number][];
  /** Requests sent per upstream service ("name.namespace"), from outbound cluster stats. */
  upstreamRequests: Record<string, number>;
}

export interface Rates {
  requestsPerSecond: number;
  /** 0..1 */
  errorRate: number;
  /** null when no request fell in the window. */
  p99Ms: number | null;
  /** Requests in the window. */
  requests: number;
  windowSeconds: number;
}

interface PromLine {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Parses Prometheus text exposition (the subset prom-client and Envoy write). */
export function parsePrometheus(text: string): PromLine[] {
  const out: PromLine[] = [];
  const line = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/;
  const label = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
  for (const raw of text.split('\n')) {
    if (raw === '' || raw.startsWith('#')) continue;
    const m = line.exec(raw);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(label)) labels[l[1]!] = l[2]!.replace(/\\(.)/g, (_s, c: string) => (c === 'n' ? '\n' : c));
    const value = Number(m[3]);
    if (!Number.isNaN(value)) out.push({ name: m[1]!, labels, value });
  }
  return out;
}

/** outbound|<port>|<subset>|<service>.<namespace> -> "service.namespace" */
function upstreamOf(cluster: string): string | undefined {
  const parts = cluster.split('|');
  return parts.length === 4 && parts[0] === 'outbound' ? parts[3] : undefined;
}

export function sampleOf(text: string, at: number): ProxySample {
  const sample: ProxySample = { at, inboundRequests: 0, inbound5xx: 0, inboundBuckets: [], upstreamRequests: {} };
  const buckets = new Map<number, number>();
  for (const l of parsePrometheus(text)) {
    const inbound = l.labels.envoy_http_conn_manager_prefix === 'inbound';
    if (l.name === 'envoy_http_downstream_rq_total' && inbound) sample.inboundRequests += l.value;
    else if (l.name === 'envoy_http_downstream_rq_xx' && inbound && l.labels.envoy_response_code_class === '5') sample.inbound5xx += l.value;
    else if (l.name === 'envoy_http_downstream_rq_time_bucket' && inbound) {
      const le = l.labels.le === '+Inf' ? Infinity : Number(l.labels.le);
      buckets.set(le, (buckets.get(le) ?? 0) + l.value);
    } else if (l.name === 'envoy_cluster_upstream_rq_total') {
      const to = upstreamOf(l.labels.envoy_cluster_name ?? '');
      if (to) sample.upstreamRequests[to] = (sample.upstreamRequests[to] ?? 0) + l.value;
    }
  }
  sample.inboundBuckets = [...buckets].sort((a, b) => a[0] - b[0]);
  return sample;
}

/** Sums samples of one service's proxies (same instant, give or take a scrape). */
export function sumSamples(samples: ProxySample[]): ProxySample {
  const buckets = new Map<number, number>();
  const upstream: Record<string, number> = {};
  let inboundRequests = 0;
  let inbound5xx = 0;
  for (const s of samples) {
    inboundRequests += s.inboundRequests;
    inbound5xx += s.inbound5xx;
    for (const [le, n] of s.inboundBuckets) buckets.set(le, (buckets.get(le) ?? 0) + n);
    for (const [to, n] of Object.entries(s.upstreamRequests)) upstream[to] = (upstream[to] ?? 0) + n;
  }
  return { at: Math.max(0, ...samples.map((s) => s.at)), inboundRequests, inbound5xx, inboundBuckets: [...buckets].sort((a, b) => a[0] - b[0]), upstreamRequests: upstream };
}

/** The 99th percentile from a cumulative histogram: the upper bound of the bucket holding it (Prometheus' rule, without interpolation). */
export function p99(buckets: [number, number][]): number | null {
  const total = buckets.length > 0 ? buckets[buckets.length - 1]![1] : 0;
  if (total <= 0) return null;
  const rank = total * 0.99;
  let lastFinite = 0;
  for (const [le, count] of buckets) {
    if (Number.isFinite(le)) lastFinite = le;
    if (count >= rank) return Number.isFinite(le) ? le : lastFinite;
  }
  return lastFinite;
}

/**
 * Rates between two samples of the same proxies. Without a previous sample
 * (first scrape, or a proxy restarted and its counters went down) the figures
 * cover the proxies' whole life, with the window saying so.
 */
export function ratesBetween(previous: ProxySample | undefined, current: ProxySample, since: number): Rates {
  const reset = !previous || current.inboundRequests < previous.inboundRequests;
  const base = reset ? undefined : previous;
  const seconds = Math.max(0.001, (current.at - (base?.at ?? since)) / 1000);
  const requests = current.inboundRequests - (base?.inboundRequests ?? 0);
  const errors = current.inbound5xx - (base?.inbound5xx ?? 0);
  const before = new Map(base?.inboundBuckets ?? []);
  const window = current.inboundBuckets.map(([le, n]) => [le, n - (before.get(le) ?? 0)] as [number, number]);
  return {
    requestsPerSecond: requests / seconds,
    errorRate: requests > 0 ? errors / requests : 0,
    p99Ms: p99(window),
    requests,
    windowSeconds: seconds,
  };
}

/** A proxy's admin endpoint: on the control plane's loopback (see the header). */
export function proxyAdminUrl(adminPort: number, path: string): string {
  return `http://127.0.0.1:${adminPort}${path}`;
}

/** Fetches one proxy's stats; errors are values (the topology shows them beside the proxy). */
export async function scrapeProxy(url: string, timeoutMs = 1500): Promise<{ ok: true; sample: ProxySample } | { ok: false; message: string }> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
    if (!res.ok) return { ok: false, message: `${url}: HTTP ${res.status}` };
    return { ok: true, sample: sampleOf(await res.text(), Date.now()) };
  } catch (err) {
    return { ok: false, message: `${url}: ${(err as Error).message}` };
  }
}
