// Admin /stats in Envoy's own formats, the first thing an Envoy operator
// runs (`curl :15000/stats | grep retry`): `name: value` lines under Envoy's
// dotted stat names (cluster.<name>.upstream_rq_200, http.<prefix>.no_route),
// counters and gauges sorted by name, then histograms as quantiles; or, with
// ?format=json, Envoy's {"stats": [...]}. ?filter=REGEX keeps the names it
// matches, ?usedonly the stats written at least once, ?type=Counters|Gauges|
// Histograms one kind, ?histogram_buckets=cumulative|disjoint the histograms'
// bucket counts in place of their quantiles. Wasm filters' metrics are
// wasmcustom.<name>, as in Envoy.

import { Histogram, type HistogramSeries, type Metric } from './metrics.ts';
import type { Metric as WasmMetric } from './wasm/metrics.ts';

/** The quantiles Envoy's /stats prints for every histogram. */
export const SUPPORTED_QUANTILES = [0, 25, 50, 75, 90, 95, 99, 99.5, 99.9, 100];
/** The wasm host's histogram bounds (Envoy's defaults), for its bucket counts. */
const WASM_BUCKETS = [0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000];

/** Envoy's ?type values but All; the sidecar has no text readouts, so TextReadouts lists nothing. */
export type StatKind = 'Counters' | 'Gauges' | 'Histograms' | 'TextReadouts';

export interface StatsQuery {
  filter?: RegExp;
  usedOnly?: boolean;
  type?: StatKind;
}

interface Scalar {
  name: string;
  value: number;
}

interface Quantiles {
  name: string;
  /** Cumulative values at SUPPORTED_QUANTILES; undefined when nothing was recorded. */
  values: number[] | undefined;
  /** The bucket bounds, and the samples at or below each bound and above the one before it (the last count: above every bound). */
  bounds: readonly number[];
  counts: readonly number[];
}

/** Envoy's ?histogram_buckets for /stats: summary (also `none`, its old name) is the default quantiles. */
export type HistogramBuckets = 'summary' | 'cumulative' | 'disjoint';

/**
 * ?histogram_buckets as Envoy's /stats reads it (admin utils.cc histogramBucketsParam), or the 400 body. `detailed`
 * is Envoy's too, but it prints the buckets of Envoy's own histogram implementation, which the sidecar does not have.
 */
export function parseHistogramBuckets(value: string | null): { mode: HistogramBuckets } | { error: string } {
  if (value === null || value === '' || value === 'summary' || value === 'none') return { mode: 'summary' };
  if (value === 'cumulative' || value === 'disjoint') return { mode: value };
  if (value === 'detailed') return { error: "histogram_buckets: detailed is not served by the weft sidecar (it keeps Prometheus-style buckets, not Envoy's detailed ones); use cumulative or disjoint\n" };
  return { error: 'usage: /stats?histogram_buckets=(cumulative|disjoint|detailed|summary)\n' };
}

/**
 * A quantile from bucket counts (non-cumulative, the last one above every
 * bound): linear within the bucket that holds it, as far as buckets tell.
 */
function quantile(bounds: readonly number[], counts: ArrayLike<number>, total: number, q: number): number {
  const rank = (q / 100) * total;
  let seen = 0;
  for (let i = 0; i < counts.length; i++) {
    const c = counts[i]!;
    if (c > 0 && seen + c >= rank) {
      const lo = i === 0 ? 0 : bounds[i - 1]!;
      const hi = i < bounds.length ? bounds[i]! : bounds[bounds.length - 1]!;
      return lo + (hi - lo) * Math.max(0, Math.min(1, (rank - seen) / c));
    }
    seen += c;
  }
  return bounds[bounds.length - 1]!;
}

function quantilesOf(bounds: readonly number[], counts: ArrayLike<number>, total: number): number[] | undefined {
  if (total === 0) return undefined;
  return SUPPORTED_QUANTILES.map((q) => Number(quantile(bounds, counts, total, q).toPrecision(6)));
}

/** Every stat the sidecar and its wasm plugins keep, under Envoy's names: counters and gauges sorted by name, then histograms. */
export function collectStats(metrics: readonly Metric<string, unknown>[], wasm: readonly { plugin: string; metrics: WasmMetric[] }[], query: StatsQuery = {}): { scalars: Scalar[]; histograms: Quantiles[] } {
  const scalars: Scalar[] = [];
  const histograms: Quantiles[] = [];
  const wantScalar = (kind: string) => query.type === undefined || query.type === (kind === 'counter' ? 'Counters' : 'Gauges');
  const wantHistograms = query.type === undefined || query.type === 'Histograms';
  const keep = (name: string) => !query.filter || query.filter.test(name);
  for (const m of metrics) {
    const namer = m.envoyName;
    if (!namer || !(m instanceof Histogram ? wantHistograms : wantScalar(m.type))) continue;
    for (const { labels, series, used } of m.entries()) {
      const name = namer(labels);
      if (!keep(name)) continue;
      // Envoy's used: written at least once (a gauge set to 0 is; metrics.ts)
      if (query.usedOnly && !used) continue;
      if (m instanceof Histogram) {
        const h = series as HistogramSeries;
        const counts = [...h.counts, h.count - h.counts.reduce((a, b) => a + b, 0)];
        histograms.push({ name, values: quantilesOf(m.buckets, counts, h.count), bounds: m.buckets, counts });
      } else {
        scalars.push({ name, value: (series as { value: number }).value });
      }
    }
  }
  const seen = new Set<string>();
  for (const { metrics: list } of wasm) {
    for (const m of list) {
      const name = `wasmcustom.${m.name}`;
      // Two plugins defining one name share Envoy's stat: it is listed once.
      if (seen.has(name) || !keep(name) || !(m.kind === 'histogram' ? wantHistograms : wantScalar(m.kind))) continue;
      seen.add(name);
      if (m.kind === 'histogram') {
        const total = m.bucketCounts.reduce((a, b) => a + b, 0);
        if (query.usedOnly && !m.used) continue;
        histograms.push({ name, values: quantilesOf(WASM_BUCKETS, m.bucketCounts, total), bounds: WASM_BUCKETS, counts: m.bucketCounts });
      } else {
        if (query.usedOnly && !m.used) continue;
        scalars.push({ name, value: Number(m.value) });
      }
    }
  }
  const byName = (a: { name: string }, b: { name: string }) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
  return { scalars: scalars.sort(byName), histograms: histograms.sort(byName) };
}

function fmt(n: number): string {
  return Number.isInteger(n) ? String(n) : String(Number(n.toPrecision(6)));
}

/** A number as C's %g prints it (Envoy's `{:g}` for bucket bounds): 6 significant digits, 3.6e+06 from a million up. */
function fmtG(n: number): string {
  if (n === 0) return '0';
  const exp = Math.floor(Math.log10(Math.abs(Number(n.toPrecision(6)))));
  if (exp < -4 || exp >= 6) {
    const [mantissa, e] = n.toExponential(5).split('e') as [string, string];
    const m = mantissa.includes('.') ? mantissa.replace(/\.?0+$/, '') : mantissa;
    const power = Math.abs(Number(e));
    return `${m}e${Number(e) < 0 ? '-' : '+'}${power < 10 ? '0' : ''}${power}`;
  }
  return String(Number(n.toPrecision(6)));
}

/** Each bound with the samples at or below it (cumulative) or in its bucket alone (disjoint); +Inf is not one of them, as in Envoy. */
function bucketCounts(h: Quantiles, mode: 'cumulative' | 'disjoint'): { bound: number; count: number }[] {
  let sum = 0;
  return h.bounds.map((bound, i) => {
    sum += h.counts[i]!;
    return { bound, count: mode === 'cumulative' ? sum : h.counts[i]! };
  });
}

/**
 * Envoy's text: `name: value`, counters and gauges by name, then `name: P0(nan,v) P25(nan,v) ...` per histogram, or with
 * histogram_buckets `name: B0.5(0,n) B1(0,n) ...`. The interval (since the last flush) column is not kept: it is what
 * Envoy prints for an empty interval (nan, 0).
 */
export function statsText(s: ReturnType<typeof collectStats>, buckets: HistogramBuckets = 'summary'): string {
  let out = '';
  for (const c of s.scalars) out += `${c.name}: ${c.value}\n`;
  for (const h of s.histograms) {
    if (!h.values) out += `${h.name}: No recorded values\n`;
    else if (buckets === 'summary') out += `${h.name}: ${SUPPORTED_QUANTILES.map((q, i) => `P${q}(nan,${fmt(h.values![i]!)})`).join(' ')}\n`;
    else out += `${h.name}: ${bucketCounts(h, buckets).map(({ bound, count }) => `B${fmtG(bound)}(0,${count})`).join(' ')}\n`;
  }
  return out;
}

/**
 * Envoy's ?format=json: {"stats": [{"name","value"}..., {"histograms": {supported_quantiles, computed_quantiles}}]}, or with
 * histogram_buckets {"histograms": [{"name", "buckets": [{"upper_bound", "interval", "cumulative"}]}]}.
 */
export function statsJson(s: ReturnType<typeof collectStats>, buckets: HistogramBuckets = 'summary'): unknown {
  const stats: unknown[] = s.scalars.map((c) => ({ name: c.name, value: c.value }));
  if (s.histograms.length > 0 && buckets !== 'summary') {
    stats.push({ histograms: s.histograms.map((h) => ({ name: h.name, buckets: bucketCounts(h, buckets).map(({ bound, count }) => ({ upper_bound: bound, interval: 0, cumulative: count })) })) });
  } else if (s.histograms.length > 0) {
    stats.push({
      histograms: {
        supported_quantiles: SUPPORTED_QUANTILES,
        computed_quantiles: s.histograms.map((h) => ({ name: h.name, values: SUPPORTED_QUANTILES.map((_, i) => ({ interval: null, cumulative: h.values ? h.values[i]! : null })) })),
      },
    });
  }
  return { stats };
}
