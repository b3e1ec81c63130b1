// Envoy's layered runtime (source/common/runtime/runtime_impl.cc): the
// bootstrap's layered_runtime names layers, later ones overriding earlier
// ones key by key; the admin layer is what POST /runtime_modify writes (an
// empty value removes the override). Each value is kept as its raw string and
// read as Envoy's SnapshotImpl resolves an entry: a boolean ("true"/"false",
// or a whole number: not 0), a number (a non-negative one is also an integer,
// floored), or else a FractionalPercent in YAML ({numerator, denominator}).
//
// Consumers read a key where Envoy reads it (per request, per check) with
// their configured value as the default; with no value for the key, that is
// one Map lookup and no allocation. Keys read (docs/sidecar.md, Runtime):
// the fault filter's (fault.http.<downstream cluster>.* among them), route
// matches' and route mirrors' runtime_fraction.runtime_key, outlier
// detection's, upstream.healthy_panic_threshold, the tracing sampling keys and
// the circuit breakers' circuit_breakers.<cluster>.<priority>.* (circuit-breaker.ts).
//
// Layers: static_layer (a Struct, nested keys joined with '.'), admin_layer,
// and disk_layer (symlink_root/subdirectory[/service cluster], each file a key,
// reloaded when the symlink is swapped, as Envoy's watch on MovedTo). An
// rtds_layer is refused: weft's control plane serves no RTDS.

import { existsSync, readdirSync, readFileSync, statSync, watch, type FSWatcher } from 'node:fs';
import { basename, dirname } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { validateMessage } from '../control/envoy/index.ts';
import { layeredRuntime } from '../proxy-config/bootstrap.ts';
import type { Gauge, Counter } from './metrics.ts';

/** One resolved value, as Envoy's Snapshot::Entry. */
export interface RuntimeEntry {
  raw: string;
  bool?: boolean;
  uint?: number;
  double?: number;
  /** A FractionalPercent value, as a fraction in [0, 1]. */
  fraction?: number;
}

export type LayerSpec =
  | { name: string; kind: 'static'; values: Record<string, unknown> }
  | { name: string; kind: 'admin' }
  | { name: string; kind: 'disk'; symlinkRoot: string; subdirectory: string; appendServiceCluster: boolean };

/** The runtime.* stats Envoy keeps (RuntimeStats). */
export interface RuntimeStats {
  loadSuccess: Counter<never>;
  loadError: Counter<never>;
  overrideDirExists: Counter<never>;
  overrideDirNotExists: Counter<never>;
  numKeys: Gauge<never>;
  numLayers: Gauge<never>;
  adminOverridesActive: Gauge<never>;
}

const DENOMINATORS: Record<string, number> = { HUNDRED: 100, TEN_THOUSAND: 10_000, MILLION: 1_000_000 };

/** absl::SimpleAtoi for uint64: optional whitespace around, an optional '+', decimal digits. */
function atoiUnsigned(s: string): number | undefined {
  const m = /^\s*\+?(\d+)\s*$/.exec(s);
  return m ? Number(m[1]) : undefined;
}

/** absl::SimpleAtod: a decimal or exponent number, inf or nan, whitespace around allowed. */
function atod(s: string): number | undefined {
  const t = s.trim();
  if (/^[+-]?(inf|infinity)$/i.test(t)) return t.startsWith('-') ? -Infinity : Infinity;
  if (/^[+-]?nan$/i.test(t)) return NaN;
  if (!/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(t)) return undefined;
  return Number(t);
}

/** A FractionalPercent in YAML, as Envoy's strict loadFromYamlAndValidate would take it; undefined when it is not one. */
function fractionalPercent(raw: string): number | undefined {
  let v: unknown;
  try {
    v = parseYaml(raw);
  } catch {
    return undefined;
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return undefined;
  const o = v as Record<string, unknown>;
  if (Object.keys(o).some((k) => k !== 'numerator' && k !== 'denominator')) return undefined;
  const n = o.numerator ?? 0;
  const d = o.denominator ?? 'HUNDRED';
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 0 || n > 0xffffffff) return undefined;
  const scale = typeof d === 'string' ? DENOMINATORS[d] : typeof d === 'number' ? [100, 10_000, 1_000_000][d] : undefined;
  if (scale === undefined) return undefined;
  return Math.min(1, n / scale);
}

/** Envoy's SnapshotImpl::createEntry(string) and resolveEntryType. */
export function createEntry(raw: string): RuntimeEntry {
  const e: RuntimeEntry = { raw };
  const stripped = raw.trim();
  const asInt = atoiUnsigned(stripped);
  if (asInt !== undefined) e.bool = asInt !== 0;
  else if (stripped.toLowerCase() === 'true') return ((e.bool = true), e);
  else if (stripped.toLowerCase() === 'false') return ((e.bool = false), e);
  const d = atod(raw);
  if (d !== undefined) {
    e.double = d;
    if (d >= 0 && d <= Number.MAX_SAFE_INTEGER * 2048) {
      e.uint = Math.floor(d);
      return e;
    }
  }
  const f = fractionalPercent(raw);
  if (f !== undefined) e.fraction = f;
  return e;
}

/** A static layer's Struct as Envoy's ProtoLayer walks it: nested keys joined with '.', a FractionalPercent (or {}) kept whole. */
function walkStruct(value: unknown, prefix: string, out: Map<string, RuntimeEntry>): void {
  if (typeof value === 'string') out.set(prefix, createEntry(value));
  else if (typeof value === 'number' || typeof value === 'boolean') out.set(prefix, createEntry(String(value)));
  else if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
    const o = value as Record<string, unknown>;
    const keys = Object.keys(o);
    if (keys.length === 0 || 'numerator' in o || 'denominator' in o) {
      out.set(prefix, createEntry(keys.length === 0 ? '{}' : keys.map((k) => `${k}: ${String(o[k])}`).join('\n')));
      return;
    }
    for (const k of keys) walkStruct(o[k], prefix === '' ? k : `${prefix}.${k}`, out);
  } else throw new Error(`Invalid runtime entry value for ${prefix}`);
}

/** A disk layer's directory as Envoy's DiskLayer::walkDirectory reads it: each regular file a key, its '#' lines left out. */
function walkDirectory(path: string, prefix: string, depth: number, out: Map<string, RuntimeEntry>): void {
  if (depth > 16) throw new Error('Walk recursion depth exceeded 16');
  for (const name of readdirSync(path)) {
    const full = `${path}/${name}`;
    const key = prefix === '' ? name : `${prefix}.${name}`;
    const st = statSync(full);
    if (st.isDirectory()) walkDirectory(full, key, depth + 1, out);
    else if (st.isFile()) {
      const lines = readFileSync(full, 'utf8').split('\n').filter((l) => l !== '');
      let value = '';
      lines.forEach((line, i) => {
        if (line.startsWith('#')) return;
        value += i === lines.length - 1 ? line.trimEnd() : `${line}\n`;
      });
      out.set(key, createEntry(value));
    }
  }
}

/**
 * A LayeredRuntime (envoy.config.bootstrap.v3) checked against Envoy's proto and what the sidecar does: an error
 * naming the field, or the layers. `has` false (no layered_runtime at all) is the caller's default; an empty one is
 * Envoy's single unnamed admin layer (InitialImpl).
 */
export function parseLayeredRuntime(json: unknown): LayerSpec[] | string {
  const at = (p: string) => `layered_runtime${p ? (p.startsWith('[') ? '' : '.') + p : ''}`;
  const errors = validateMessage('envoy.config.bootstrap.v3.LayeredRuntime', json ?? {});
  if (errors.length > 0) return `${at(errors[0]!.path)}: ${errors[0]!.message}`;
  const layers = ((json as { layers?: Record<string, unknown>[] } | null)?.layers ?? []) as Record<string, unknown>[];
  if (layers.length === 0) return [{ name: '', kind: 'admin' }];
  const out: LayerSpec[] = [];
  const names = new Set<string>();
  let admin = false;
  for (const [i, l] of layers.entries()) {
    const name = typeof l.name === 'string' ? l.name : '';
    // Envoy's own messages (LoaderImpl).
    if (names.has(name)) return `${at(`layers[${i}].name`)}: Duplicate layer name: ${name}`;
    names.add(name);
    if (l.rtds_layer !== undefined) return `${at(`layers[${i}].rtds_layer`)}: not supported by the weft sidecar (weft's control plane serves no RTDS; use a static_layer, a disk_layer or /runtime_modify)`;
    if (l.static_layer !== undefined) {
      try {
        walkStruct(l.static_layer, '', new Map());
      } catch (e) {
        return `${at(`layers[${i}].static_layer`)}: ${(e as Error).message}`;
      }
      out.push({ name, kind: 'static', values: l.static_layer as Record<string, unknown> });
    } else if (l.admin_layer !== undefined) {
      if (admin) return `${at(`layers[${i}].admin_layer`)}: Too many admin layers specified in LayeredRuntime, at most one may be specified`;
      admin = true;
      out.push({ name, kind: 'admin' });
    } else if (l.disk_layer !== undefined) {
      const d = l.disk_layer as { symlink_root?: string; subdirectory?: string; append_service_cluster?: boolean };
      out.push({ name, kind: 'disk', symlinkRoot: d.symlink_root ?? '', subdirectory: d.subdirectory ?? '', appendServiceCluster: d.append_service_cluster === true });
    } else return `${at(`layers[${i}]`)}: a layer needs static_layer, disk_layer or admin_layer`;
  }
  return out;
}

interface Layer {
  name: string;
  values: ReadonlyMap<string, RuntimeEntry>;
}

export class Runtime {
  readonly specs: readonly LayerSpec[];
  readonly #serviceCluster: string;
  readonly #stats: RuntimeStats | undefined;
  /** The admin layer's overrides (undefined: there is no admin layer). */
  readonly #admin: Map<string, RuntimeEntry> | undefined;
  #layers: Layer[] = [];
  /** The snapshot: every key's value from the last layer that has it. */
  #values = new Map<string, RuntimeEntry>();
  readonly #watchers: FSWatcher[] = [];
  /** Called after every new snapshot (a /runtime_modify, a disk layer's swap). */
  onChange: (() => void) | undefined;

  constructor(specs: readonly LayerSpec[], serviceCluster: string, stats?: RuntimeStats) {
    this.specs = specs;
    this.#serviceCluster = serviceCluster;
    this.#stats = stats;
    this.#admin = specs.some((s) => s.kind === 'admin') ? new Map() : undefined;
    // As Envoy's LoaderImpl: a disk layer's symlink_root is watched for being replaced (a symlink swap, MovedTo).
    for (const s of specs) {
      if (s.kind !== 'disk' || s.symlinkRoot === '') continue;
      const dir = dirname(s.symlinkRoot);
      const file = basename(s.symlinkRoot);
      if (!existsSync(dir)) continue;
      try {
        const w = watch(dir, (event, name) => {
          if (event === 'rename' && name === file) this.#load();
        });
        w.unref();
        this.#watchers.push(w);
      } catch {
        // a directory that cannot be watched: its layer loads at start only
      }
    }
    this.#load();
  }

  /** Envoy's LoaderImpl::createNewSnapshot: the layers again, and the stats. */
  #load(): void {
    const layers: Layer[] = [];
    let diskLayers = 0;
    let errorLayers = 0;
    for (const s of this.specs) {
      if (s.kind === 'static') {
        const values = new Map<string, RuntimeEntry>();
        walkStruct(s.values, '', values);
        layers.push({ name: s.name, values });
      } else if (s.kind === 'admin') layers.push({ name: s.name, values: this.#admin! });
      else {
        let path = `${s.symlinkRoot}/${s.subdirectory}`;
        if (s.appendServiceCluster) path += `/${this.#serviceCluster}`;
        let isDir = false;
        try {
          isDir = statSync(path).isDirectory();
        } catch {
          isDir = false;
        }
        if (!isDir) continue;
        try {
          const values = new Map<string, RuntimeEntry>();
          walkDirectory(path, '', 1, values);
          layers.push({ name: s.name, values });
          diskLayers++;
        } catch {
          errorLayers++;
        }
      }
    }
    const merged = new Map<string, RuntimeEntry>();
    for (const l of layers) for (const [k, v] of l.values) merged.set(k, v);
    this.#layers = layers;
    this.#values = merged;
    const st = this.#stats;
    if (st) {
      st.numLayers.set(layers.length);
      st.numKeys.set(merged.size);
      if (errorLayers === 0) st.loadSuccess.inc();
      else st.loadError.inc();
      // As Envoy counts them: "exists" only when more than one disk layer loaded.
      if (diskLayers > 1) st.overrideDirExists.inc();
      else st.overrideDirNotExists.inc();
    }
    this.onChange?.();
  }

  get hasAdminLayer(): boolean {
    return this.#admin !== undefined;
  }

  /** The value of a key, undefined without one. */
  get(key: string): RuntimeEntry | undefined {
    return this.#values.get(key);
  }

  /** Envoy's Snapshot::getInteger: the key's value when it is a non-negative number (floored), else the default. */
  getInteger(key: string, defaultValue: number): number {
    const e = this.#values.get(key);
    return e === undefined || e.uint === undefined ? defaultValue : e.uint;
  }

  /** Envoy's Snapshot::getDouble. */
  getDouble(key: string, defaultValue: number): number {
    const e = this.#values.get(key);
    return e === undefined || e.double === undefined ? defaultValue : e.double;
  }

  /** Envoy's Snapshot::getBoolean. */
  getBoolean(key: string, defaultValue: boolean): boolean {
    const e = this.#values.get(key);
    return e === undefined || e.bool === undefined ? defaultValue : e.bool;
  }

  /**
   * Envoy's featureEnabled(key, uint64 default): the chance in percent, min(getInteger, 100), that a feature applies.
   * Callers compare random() * 100 with it.
   */
  percent(key: string, defaultPercent: number): number {
    return Math.min(this.getInteger(key, defaultPercent), 100);
  }

  /**
   * Envoy's featureEnabled(key, FractionalPercent default), as the fraction in [0, 1] to compare random() with: the
   * key's FractionalPercent, or its integer as percent (over 100: always), or the default.
   */
  fraction(key: string, defaultFraction: number): number {
    const e = this.#values.get(key);
    if (e === undefined) return defaultFraction;
    if (e.fraction !== undefined) return e.fraction;
    if (e.uint !== undefined) return e.uint > 100 ? 1 : e.uint / 100;
    return defaultFraction;
  }

  /**
   * POST /runtime_modify: Envoy's AdminLayer::mergeValues (an empty value removes the key's override). An error
   * string (Envoy's) when there is no admin layer.
   */
  merge(values: Iterable<[string, string]>): string | undefined {
    const admin = this.#admin;
    if (!admin) return 'No admin layer specified';
    for (const [k, v] of values) {
      if (v === '') admin.delete(k);
      else admin.set(k, createEntry(v));
    }
    this.#stats?.adminOverridesActive.set(admin.size === 0 ? 0 : 1);
    this.#load();
    return undefined;
  }

  /** GET /runtime as Envoy's RuntimeHandler prints it: the layer names, and per key each layer's raw value ("" where it has none) and the final one. */
  dump(): { layers: string[]; entries: Record<string, { final_value: string; layer_values: string[] }> } {
    const keys = new Set<string>();
    for (const l of this.#layers) for (const k of l.values.keys()) keys.add(k);
    const entries: Record<string, { final_value: string; layer_values: string[] }> = {};
    for (const k of [...keys].sort()) {
      const layerValues = this.#layers.map((l) => l.values.get(k)?.raw ?? '');
      let finalValue = '';
      for (const v of layerValues) if (v !== '') finalValue = v;
      entries[k] = { final_value: finalValue, layer_values: layerValues };
    }
    return { layers: this.#layers.map((l) => l.name), entries };
  }

  close(): void {
    for (const w of this.#watchers) w.close();
  }
}

/**
 * The layers a weft sidecar runs with when not told otherwise: those `weft bootstrap` writes for Envoy (a `weft`
 * static layer raising re2.max_program_size.error_level, which the sidecar itself has no use for, then `admin`), so
 * /runtime and /runtime_modify answer the same on both data planes. (Envoy with no layered_runtime at all has no
 * layers, and no admin layer for /runtime_modify.)
 */
export function defaultLayers(): LayerSpec[] {
  const layers = parseLayeredRuntime(layeredRuntime());
  if (typeof layers === 'string') throw new Error(`weft bootstrap's layered_runtime: ${layers}`);
  return layers;
}

/** The layers as the bootstrap's layered_runtime (proto3 JSON), for /config_dump's bootstrap. */
export function layeredRuntimeJson(specs: readonly LayerSpec[]): { layers: Record<string, unknown>[] } {
  return {
    layers: specs.map((s) =>
      s.kind === 'static'
        ? { name: s.name, static_layer: s.values }
        : s.kind === 'admin'
          ? { name: s.name, admin_layer: {} }
          : { name: s.name, disk_layer: { symlink_root: s.symlinkRoot, ...(s.subdirectory ? { subdirectory: s.subdirectory } : {}), ...(s.appendServiceCluster ? { append_service_cluster: true } : {}) } },
    ),
  };
}

/** A runtime with no layers (no values, no admin layer): what parts built without a sidecar's runtime read. */
export const NO_RUNTIME = new Runtime([], '');
