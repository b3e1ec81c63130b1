// Metrics a module defines with proxy_define_metric, kept per plugin so they
// survive a VM being recreated after a trap, and rendered as Prometheus text.
// Semantics follow Envoy's Context::{define,increment,record,get}Metric.

import { MetricType, WasmResult, type WasmResultCode } from './abi.ts';

export type MetricKind = 'counter' | 'gauge' | 'histogram';
const kinds: MetricKind[] = ['counter', 'gauge', 'histogram'];

/** Envoy's default histogram buckets. */
const buckets = [0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000];

export interface Metric {
  id: number;
  name: string;
  kind: MetricKind;
  /** Counter or gauge value; for histograms the number of samples. */
  value: bigint;
  /** Histogram only: samples per bucket (non-cumulative, last = above every bound) and their sum. */
  bucketCounts: number[];
  sum: number;
}

export class MetricStore {
  private readonly byId = new Map<number, Metric>();
  private readonly byName = new Map<string, Metric>();
  private nextId = 1;

  /** Same name and kind gives the same id, as the same Envoy stat is reused. */
  define(type: number, name: string): { result: WasmResultCode; id: number } {
    const kind = kinds[type];
    if (kind === undefined || name.length === 0) return { result: WasmResult.BadArgument, id: 0 };
    const key = `${kind}\0${name}`;
    let metric = this.byName.get(key);
    if (metric === undefined) {
      // The low two bits carry the kind, as in Envoy, so ids never collide across kinds.
      metric = { id: (this.nextId++ << 2) | type, name, kind, value: 0n, bucketCounts: kind === 'histogram' ? new Array<number>(buckets.length + 1).fill(0) : [], sum: 0 };
      this.byName.set(key, metric);
      this.byId.set(metric.id, metric);
    }
    return { result: WasmResult.Ok, id: metric.id };
  }

  increment(id: number, offset: bigint): WasmResultCode {
    const metric = this.byId.get(id);
    if (metric === undefined) return WasmResult.NotFound;
    if (metric.kind === 'counter') {
      if (offset <= 0n) return WasmResult.BadArgument;
      metric.value += offset;
      return WasmResult.Ok;
    }
    if (metric.kind === 'gauge') {
      metric.value += offset;
      return WasmResult.Ok;
    }
    return WasmResult.BadArgument;
  }

  record(id: number, value: bigint): WasmResultCode {
    const metric = this.byId.get(id);
    if (metric === undefined) return WasmResult.NotFound;
    if (metric.kind === 'counter') metric.value += value;
    else if (metric.kind === 'gauge') metric.value = value;
    else {
      const sample = Number(value);
      metric.value += 1n;
      metric.sum += sample;
      const index = buckets.findIndex((bound) => sample <= bound);
      metric.bucketCounts[index < 0 ? buckets.length : index]! += 1;
    }
    return WasmResult.Ok;
  }

  get(id: number): { result: WasmResultCode; value: bigint } {
    const metric = this.byId.get(id);
    if (metric === undefined) return { result: WasmResult.NotFound, value: 0n };
    if (metric.kind === 'histogram') return { result: WasmResult.BadArgument, value: 0n };
    return { result: WasmResult.Ok, value: metric.value };
  }

  /** Looks a metric up by the name the module defined it with. */
  find(name: string, kind?: MetricKind): Metric | undefined {
    for (const metric of this.byId.values()) if (metric.name === name && (kind === undefined || metric.kind === kind)) return metric;
    return undefined;
  }

  all(): Metric[] {
    return [...this.byId.values()];
  }

  /** Prometheus text exposition; names sanitized, `plugin` label added when given. */
  prometheus(labels: Record<string, string> = {}): string {
    const labelText = Object.entries(labels)
      .map(([k, v]) => `${k}="${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`)
      .join(',');
    const withLabels = (extra = ''): string => {
      const all = [labelText, extra].filter((s) => s.length > 0).join(',');
      return all.length > 0 ? `{${all}}` : '';
    };
    const lines: string[] = [];
    for (const metric of this.byId.values()) {
      const name = prometheusName(metric.name);
      lines.push(`# TYPE ${name} ${metric.kind}`);
      if (metric.kind !== 'histogram') {
        lines.push(`${name}${withLabels()} ${metric.value}`);
        continue;
      }
      let cumulative = 0;
      buckets.forEach((bound, i) => {
        cumulative += metric.bucketCounts[i]!;
        lines.push(`${name}_bucket${withLabels(`le="${bound}"`)} ${cumulative}`);
      });
      lines.push(`${name}_bucket${withLabels('le="+Inf"')} ${metric.value}`);
      lines.push(`${name}_sum${withLabels()} ${metric.sum}`);
      lines.push(`${name}_count${withLabels()} ${metric.value}`);
    }
    return lines.length > 0 ? `${lines.join('\n')}\n` : '';
  }
}

export function prometheusName(name: string): string {
  const cleaned = name.replace(/[^a-zA-Z0-9_:]/g, '_');
  return /^[0-9]/.test(cleaned) ? `_${cleaned}` : cleaned;
}

export const metricTypeOf = (kind: MetricKind): number => MetricType[kind === 'counter' ? 'Counter' : kind === 'gauge' ? 'Gauge' : 'Histogram'];
