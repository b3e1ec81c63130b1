// Counters, gauges and histograms for the request path, rendered in
// Prometheus text format only when scraped. prom-client hashes a label
// object (sorting its keys and validating each value) on every inc() and
// observe(); a proxy counts about ten things per request, so that hashing
// was several percent of the sidecar's CPU. Here a series is found by its
// label values joined in declared order, and hot paths keep the series
// handle itself (`series(...)`) so a request pays one field increment.

export type LabelValues<L extends string> = Partial<Record<L, string | number>>;

const SEP = '\u0000';

function escapeLabel(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

function formatNumber(n: number): string {
  if (Number.isNaN(n)) return 'NaN';
  if (n === Infinity) return '+Inf';
  if (n === -Infinity) return '-Inf';
  return String(n);
}

/**
 * Which series a Prometheus exposition keeps (admin /stats/prometheus?filter=&usedonly):
 * by the series' Envoy stat name (its Prometheus name when it has none) and
 * whether it was ever written.
 */
export type SeriesFilter = (name: string, used: boolean) => boolean;

export abstract class Metric<L extends string, S> {
  readonly name: string;
  readonly help: string;
  readonly labelNames: readonly L[];
  protected readonly byKey = new Map<string, { values: string[]; series: S }>();
  /**
   * Series written at least once though their value does not show it now (Envoy's sticky "used" flag): a gauge set to
   * 0, a counter /reset_counters put back to 0. A series whose value is not 0 is used anyway.
   */
  protected readonly written = new WeakSet<object>();
  /** The series' name in Envoy's own stats (admin /stats), from its label values: `cluster.<name>.upstream_rq_total`. */
  envoyName: ((labels: Readonly<Record<string, string>>) => string) | undefined;
  /** Labels a series has only when set: left out of its Prometheus line where empty (Envoy's tags a stat name may lack). */
  optionalLabels: ReadonlySet<string> | undefined;

  constructor(name: string, help: string, labelNames: readonly L[]) {
    this.name = name;
    this.help = help;
    this.labelNames = labelNames;
  }

  protected abstract create(): S;
  abstract readonly type: 'counter' | 'gauge' | 'histogram';
  protected abstract lines(labels: string, series: S, out: string[]): void;
  /** Written at least once (Envoy's "used", admin ?usedonly): see Counter, Gauge and Histogram. `key` is the series' label key. */
  protected abstract used(series: S, key: string): boolean;

  /** Whether the series under this label key was written at least once (undefined: there is no such series). */
  usedAt(key: string): boolean | undefined {
    const found = this.byKey.get(key);
    return found ? this.used(found.series, key) : undefined;
  }

  /** The series for these label values (created at zero on first use); keep it to count without lookups. */
  series(labels: LabelValues<L> = {}): S {
    const names = this.labelNames;
    let key: string;
    if (names.length === 0) key = '';
    else if (names.length === 1) key = String(labels[names[0]!] ?? '');
    else {
      key = String(labels[names[0]!] ?? '');
      for (let i = 1; i < names.length; i++) key += SEP + String(labels[names[i]!] ?? '');
    }
    const found = this.byKey.get(key);
    if (found) return found.series;
    const series = this.create();
    this.byKey.set(key, { values: names.map((n) => String(labels[n] ?? '')), series });
    return series;
  }

  /** Every series with its label values by name, and whether it was ever written (Envoy's "used"). */
  *entries(): Generator<{ labels: Record<string, string>; series: S; used: boolean }> {
    if (this.labelNames.length === 0 && this.byKey.size === 0) this.series();
    for (const [key, { values, series }] of this.byKey) yield { labels: Object.fromEntries(values.map((v, i) => [this.labelNames[i]!, v])), series, used: this.used(series, key) };
  }

  /** Forgets every series (for tests and for clusters that went away). */
  reset(): void {
    this.byKey.clear();
  }

  /** Forgets the series whose label `name` is `value` (a removed cluster's); none if the metric has no such label. */
  removeWhere(name: string, value: string): void {
    const i = this.labelNames.indexOf(name as L);
    if (i < 0) return;
    for (const [key, { values }] of this.byKey) if (values[i] === value) this.byKey.delete(key);
  }

  /** The family in Prometheus text; with `keep`, only the series it keeps, and '' when none is kept. */
  render(keep?: SeriesFilter): string {
    const out = [`# HELP ${this.name} ${this.help.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')}`, `# TYPE ${this.name} ${this.type}`];
    if (this.labelNames.length === 0 && this.byKey.size === 0) this.series();
    let kept = 0;
    for (const [key, { values, series }] of this.byKey) {
      if (keep) {
        const name = this.envoyName ? this.envoyName(Object.fromEntries(values.map((v, i) => [this.labelNames[i]!, v]))) : this.name;
        if (!keep(name, this.used(series, key))) continue;
      }
      kept++;
      const optional = this.optionalLabels;
      const labels = values
        .map((v, i) => (optional !== undefined && v === '' && optional.has(this.labelNames[i]!) ? '' : `${this.labelNames[i]}="${escapeLabel(v)}"`))
        .filter((l) => l !== '')
        .join(',');
      this.lines(labels, series, out);
    }
    return keep && kept === 0 ? '' : out.join('\n') + '\n';
  }
}

export interface CounterSeries {
  value: number;
}

export class Counter<L extends string = string> extends Metric<L, CounterSeries> {
  readonly type = 'counter';

  protected create(): CounterSeries {
    return { value: 0 };
  }

  inc(labels?: LabelValues<L>, n = 1): void {
    this.series(labels).value += n;
  }

  get(labels?: LabelValues<L>): number {
    return this.series(labels).value;
  }

  /** Every series back to 0, in place: the request path keeps its series handles (admin /reset_counters). Used stays used, as in Envoy. */
  zero(): void {
    for (const { series } of this.byKey.values()) {
      if (series.value !== 0) this.written.add(series);
      series.value = 0;
    }
  }

  protected lines(labels: string, s: CounterSeries, out: string[]): void {
    out.push(`${this.name}${labels ? `{${labels}}` : ''} ${formatNumber(s.value)}`);
  }

  /** A counter only goes up: used once it is not 0, and after a reset if it was then. */
  protected used(s: CounterSeries): boolean {
    return s.value !== 0 || this.written.has(s);
  }
}

export class Gauge<L extends string = string> extends Metric<L, CounterSeries> {
  readonly type = 'gauge';
  /**
   * The counter (same labels) that counts each rise of a gauge the request path moves through its series handle
   * (downstream_rq_active with downstream_rq_total): the gauge was written once that counter was, even when it is back
   * at 0 now, as Envoy's inc() marks it used.
   */
  usedWith: Counter<string> | undefined;
  /** False for a gauge the sidecar recomputes with set() where Envoy only moves it on an event (ejections_active): then set() alone does not make it used. */
  setMarksUsed = true;

  protected create(): CounterSeries {
    return { value: 0 };
  }

  inc(labels?: LabelValues<L>, n = 1): void {
    const s = this.series(labels);
    s.value += n;
    this.written.add(s);
  }

  dec(labels?: LabelValues<L>, n = 1): void {
    const s = this.series(labels);
    s.value -= n;
    this.written.add(s);
  }

  /** set(value) for a gauge without labels, set(labels, value) otherwise. As Envoy's set(), it makes the gauge used, at 0 too. */
  set(labelsOrValue: LabelValues<L> | number, value?: number): void {
    const s = typeof labelsOrValue === 'number' ? this.series() : this.series(labelsOrValue);
    s.value = typeof labelsOrValue === 'number' ? labelsOrValue : value!;
    if (this.setMarksUsed) this.written.add(s);
  }

  get(labels?: LabelValues<L>): number {
    return this.series(labels).value;
  }

  protected lines(labels: string, s: CounterSeries, out: string[]): void {
    out.push(`${this.name}${labels ? `{${labels}}` : ''} ${formatNumber(s.value)}`);
  }

  /** Set, moved, or seen not 0 (a value seen stays used when it falls back), or its usedWith counter was written. */
  protected used(s: CounterSeries, key: string): boolean {
    if (this.written.has(s)) return true;
    if (s.value !== 0) {
      this.written.add(s);
      return true;
    }
    return this.usedWith?.usedAt(key) === true;
  }
}

export class HistogramSeries {
  readonly counts: Float64Array;
  sum = 0;
  count = 0;
  readonly #bounds: readonly number[];

  constructor(bounds: readonly number[]) {
    this.#bounds = bounds;
    this.counts = new Float64Array(bounds.length);
  }

  observe(v: number): void {
    const b = this.#bounds;
    // Buckets are cumulative at render time; here only the first bucket that holds v counts it.
    for (let i = 0; i < b.length; i++) {
      if (v <= b[i]!) {
        this.counts[i]!++;
        break;
      }
    }
    this.sum += v;
    this.count++;
  }
}

export class Histogram<L extends string = string> extends Metric<L, HistogramSeries> {
  readonly type = 'histogram';
  readonly buckets: readonly number[];

  constructor(name: string, help: string, labelNames: readonly L[], buckets: readonly number[]) {
    super(name, help, labelNames);
    this.buckets = [...buckets].sort((a, b) => a - b);
  }

  protected create(): HistogramSeries {
    return new HistogramSeries(this.buckets);
  }

  observe(labels: LabelValues<L>, v: number): void {
    this.series(labels).observe(v);
  }

  protected used(s: HistogramSeries): boolean {
    return s.count > 0;
  }

  protected lines(labels: string, s: HistogramSeries, out: string[]): void {
    const extra = labels ? `,${labels}` : '';
    let cumulative = 0;
    for (let i = 0; i < this.buckets.length; i++) {
      cumulative += s.counts[i]!;
      out.push(`${this.name}_bucket{le="${formatNumber(this.buckets[i]!)}"${extra}} ${cumulative}`);
    }
    out.push(`${this.name}_bucket{le="+Inf"${extra}} ${s.count}`);
    out.push(`${this.name}_sum${labels ? `{${labels}}` : ''} ${formatNumber(s.sum)}`);
    out.push(`${this.name}_count${labels ? `{${labels}}` : ''} ${s.count}`);
  }
}

export class MetricsRegistry {
  readonly contentType = 'text/plain; version=0.0.4; charset=utf-8';
  readonly #metrics: Metric<string, unknown>[] = [];

  register<M extends Metric<string, unknown>>(m: M): M {
    this.#metrics.push(m);
    return m;
  }

  all(): readonly Metric<string, unknown>[] {
    return this.#metrics;
  }

  /** Every counter's series to 0 (admin /reset_counters); gauges and histograms are left as they are, as in Envoy. */
  resetCounters(): void {
    for (const m of this.#metrics) if (m instanceof Counter) m.zero();
  }

  /** Prometheus text exposition of every registered metric (with `keep`, of the series it keeps). */
  metrics(keep?: SeriesFilter): string {
    return this.#metrics
      .map((m) => m.render(keep))
      .filter((text) => text !== '')
      .join('\n');
  }
}
