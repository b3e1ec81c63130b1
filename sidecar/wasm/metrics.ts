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
  /** Written at least once (Envoy's "used", admin ?usedonly): a gauge set to 0 is, and a counter stays used after /reset_counters. */
  used: boolean;
}

export class MetricStore {
  /**
   * The host's own counters of the plugins writing here (weft_wasm_vm_created_total, _failed_total). A host that
   * hands a replaced plugin's store to its successor of the same name (the sidecar) keeps them going with the
   * module's own metrics, as Envoy's stats of the same name outlive a VM.
   */
  vmsCreated = 0;
  vmFailures = 0;
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
      metric = { id: (this.nextId++ << 2) | type, name, kind, value: 0n, bucketCounts: kind === 'histogram' ? new Array<number>(buckets.length + 1).fill(0) : [], sum: 0, used: false };
      this.byName.set(key, metric);
      this.byId.set(metric.id, metric);
    }
    return { result: WasmResult.Ok, id: metric.id };
  }

  increment(id: number, offset: bigint): WasmResultCode {
    // As Envoy, the kind in the id's low bits is checked first: a histogram's cannot be incremented, defined or not.
    if ((id & 3) > MetricType.Gauge) return WasmResult.BadArgument;
    const metric = this.byId.get(id);
    if (metric === undefined) return WasmResult.NotFound;
    if (metric.kind === 'counter') {
      if (offset <= 0n) return WasmResult.BadArgument;
      metric.value += offset;
      metric.used = true;
      return WasmResult.Ok;
    }
    if (metric.kind === 'gauge') {
      metric.value += offset;
      metric.used = true;
      return WasmResult.Ok;
    }
    return WasmResult.BadArgument;
  }

  record(id: number, value: bigint): WasmResultCode {
    const metric = this.byId.get(id);
    if (metric === undefined) return WasmResult.NotFound;
    metric.used = true;
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
    if ((id & 3) > MetricType.Gauge) return { result: WasmResult.BadArgument, value: 0n };
    const metric = this.byId.get(id);
    if (metric === undefined) return { result: WasmResult.NotFound, value: 0n };
    if (metric.kind === 'histogram') return { result: WasmResult.BadArgument, value: 0n };
    return { result: WasmResult.Ok, value: metric.value };
  }

  /**
   * Looks a metric up by the name the module defined it with, optionally of
   * one kind, or by its base name and Istio-style tags
   * (`find('requests', { result: 'denied' })`).
   */
  find(name: string, kindOrTags?: MetricKind | Record<string, string>): Metric | undefined {
    for (const metric of this.byId.values()) {
      if (kindOrTags === undefined || typeof kindOrTags === 'string') {
        if (metric.name === name && (kindOrTags === undefined || metric.kind === kindOrTags)) return metric;
        continue;
      }
      const parsed = parseTaggedName(metric.name);
      const want = Object.entries(kindOrTags);
      if (parsed.base === name && parsed.tags.length === want.length && want.every(([k, v]) => parsed.tags.some(([pk, pv]) => pk === k && pv === v))) return metric;
    }
    return undefined;
  }

  all(): Metric[] {
    return [...this.byId.values()];
  }

  /** Prometheus text exposition; names sanitized, Istio-style tags as labels, `labels` added to every sample. */
  prometheus(labels: Record<string, string> = {}, keep?: (envoyName: string, used: boolean) => boolean): string {
    const families = new Map<string, { kind: MetricKind; samples: { metric: Metric; labels: [string, string][] }[] }>();
    for (const metric of this.byId.values()) {
      // Envoy's stat name for a plugin's metric, as admin /stats lists it
      if (keep && !keep(`wasmcustom.${metric.name}`, metric.used)) continue;
      const { base, tags } = parseTaggedName(metric.name);
      let name = prometheusName(base);
      // One family has one type; the same name reused with another kind gets a suffix rather than invalid output.
      if (families.has(name) && families.get(name)!.kind !== metric.kind) name = `${name}_${metric.kind}`;
      const family = families.get(name) ?? { kind: metric.kind, samples: [] };
      families.set(name, family);
      family.samples.push({ metric, labels: [...Object.entries(labels), ...tags] });
    }
    const lines: string[] = [];
    for (const [name, family] of families) {
      lines.push(`# TYPE ${name} ${family.kind}`);
      for (const { metric, labels: sampleLabels } of family.samples) {
        const braces = (extra: [string, string][] = []): string => {
          const all = [...sampleLabels, ...extra];
          return all.length === 0 ? '' : `{${all.map(([k, v]) => `${prometheusName(k)}="${escapeLabel(v)}"`).join(',')}}`;
        };
        if (metric.kind !== 'histogram') {
          lines.push(`${name}${braces()} ${metric.value}`);
          continue;
        }
        let cumulative = 0;
        buckets.forEach((bound, i) => {
          cumulative += metric.bucketCounts[i]!;
          lines.push(`${name}_bucket${braces([['le', String(bound)]])} ${cumulative}`);
        });
        lines.push(`${name}_bucket${braces([['le', '+Inf']])} ${metric.value}`);
        lines.push(`${name}_sum${braces()} ${metric.sum}`);
        lines.push(`${name}_count${braces()} ${metric.value}`);
      }
    }
    return lines.length > 0 ? `${lines.join('\n')}\n` : '';
  }
}

const escapeLabel = (v: string): string => v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');

/**
 * Splits Istio's tag folding (`name_k1=.=v1;.;k2=.=v2;.;`, what Envoy's
 * stats_tags regexes extract) into the base name and its tags.
 */
export function parseTaggedName(name: string): { base: string; tags: [string, string][] } {
  const first = name.search(/_[^_=;.]+=\.=/);
  if (first < 0 || !name.endsWith(';.;')) return { base: name, tags: [] };
  const tags: [string, string][] = [];
  for (const part of name.slice(first + 1).split(';.;')) {
    if (part.length === 0) continue;
    const at = part.indexOf('=.=');
    if (at <= 0) return { base: name, tags: [] };
    tags.push([part.slice(0, at), part.slice(at + 3)]);
  }
  return { base: name.slice(0, first), tags };
}

export function prometheusName(name: string): string {
  const cleaned = name.replace(/[^a-zA-Z0-9_:]/g, '_');
  return /^[0-9]/.test(cleaned) ? `_${cleaned}` : cleaned;
}

export const metricTypeOf = (kind: MetricKind): number => MetricType[kind === 'counter' ? 'Counter' : kind === 'gauge' ? 'Gauge' : 'Histogram'];
