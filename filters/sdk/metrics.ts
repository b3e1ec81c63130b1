// Metrics with tags. Tags are folded into the metric name the way Istio's
// Wasm stats filter does: `name_tag1=.=value1;.;tag2=.=value2;.;`. Envoy
// splits them back out with `stats_tags` regexes of the form
// `(tag1=\.=(.*?);\.;)`; a host can parse the same form. Each distinct name is
// defined once and cached, so recording costs one map lookup.

import { proxy_define_metric, proxy_get_metric, proxy_increment_metric, proxy_record_metric } from './imports';
import { MetricType, WasmResult } from './status';
import { decimal, replaceChar } from './ascii';

const ID_SLOT: usize = memory.data(4);
const VALUE_SLOT: usize = memory.data(8);
// @ts-ignore: decorator (made on first use: a filter that keeps its own ids never pays for it)
@lazy const defined = new Map<string, u32>();

/** Builds `name_k1=.=v1;.;k2=.=v2;.;` from [k1, v1, k2, v2]; no tags: `name`. */
export function taggedName(name: string, tags: string[]): string {
  if (tags.length < 2) return name;
  let out = name + '_';
  for (let i = 0; i + 1 < tags.length; i += 2) {
    out += tags[i] + '=.=' + sanitize(tags[i + 1]) + ';.;';
  }
  return out;
}

// A value containing ';' would end its tag early; Istio does the same substitution.
function sanitize(v: string): string {
  return replaceChar(v, 59, 95);
}

/** The host's id for the metric, defining it on first use; u32.MAX_VALUE on failure. */
export function metricId(type: MetricType, name: string): u32 {
  const key = decimal(<i32>type) + name;
  if (defined.has(key)) return defined.get(key);
  const id = defineMetric(type, name);
  if (id != u32.MAX_VALUE) defined.set(key, id);
  return id;
}

/**
 * Defines the metric on the host every time it is called (no cache): the
 * host's id, or u32.MAX_VALUE when it refuses. For a filter that keeps its
 * own ids for a fixed set of names; `metricId` is the cached form.
 */
export function defineMetric(type: MetricType, name: string): u32 {
  const buf = String.UTF8.encode(name);
  if (proxy_define_metric(type, changetype<usize>(buf), <usize>buf.byteLength, ID_SLOT) != WasmResult.Ok) return u32.MAX_VALUE;
  return load<u32>(ID_SLOT);
}

/**
 * One tagged metric, its host id looked up when it is made (and again on use
 * while the host refuses to define it), so recording costs no name building
 * or map lookup. Make one per distinct name and tag values and keep it.
 */
export class Metric {
  name: string;
  id: u32;

  constructor(public type: MetricType, name: string, tags: string[] = []) {
    this.name = taggedName(name, tags);
    this.id = metricId(type, this.name);
  }

  private resolve(): u32 {
    if (this.id == u32.MAX_VALUE) this.id = metricId(this.type, this.name);
    return this.id;
  }

  /** Adds to a counter or gauge. */
  increment(by: i64 = 1): WasmResult {
    const id = this.resolve();
    if (id == u32.MAX_VALUE) return WasmResult.InternalFailure;
    return <WasmResult>proxy_increment_metric(id, by);
  }

  /** Sets a gauge or records a histogram sample. */
  record(value: u64): WasmResult {
    const id = this.resolve();
    if (id == u32.MAX_VALUE) return WasmResult.InternalFailure;
    return <WasmResult>proxy_record_metric(id, value);
  }
}

export function incrementCounter(name: string, tags: string[], by: i64 = 1): WasmResult {
  const id = metricId(MetricType.Counter, taggedName(name, tags));
  if (id == u32.MAX_VALUE) return WasmResult.InternalFailure;
  return <WasmResult>proxy_increment_metric(id, by);
}

export function setGauge(name: string, tags: string[], value: u64): WasmResult {
  const id = metricId(MetricType.Gauge, taggedName(name, tags));
  if (id == u32.MAX_VALUE) return WasmResult.InternalFailure;
  return <WasmResult>proxy_record_metric(id, value);
}

export function addGauge(name: string, tags: string[], by: i64): WasmResult {
  const id = metricId(MetricType.Gauge, taggedName(name, tags));
  if (id == u32.MAX_VALUE) return WasmResult.InternalFailure;
  return <WasmResult>proxy_increment_metric(id, by);
}

export function recordHistogram(name: string, tags: string[], value: u64): WasmResult {
  const id = metricId(MetricType.Histogram, taggedName(name, tags));
  if (id == u32.MAX_VALUE) return WasmResult.InternalFailure;
  return <WasmResult>proxy_record_metric(id, value);
}

/** Current value, or -1 when the host cannot read it. */
export function getMetric(type: MetricType, name: string, tags: string[]): i64 {
  const id = metricId(type, taggedName(name, tags));
  if (id == u32.MAX_VALUE) return -1;
  if (proxy_get_metric(id, VALUE_SLOT) != WasmResult.Ok) return -1;
  return load<i64>(VALUE_SLOT);
}
