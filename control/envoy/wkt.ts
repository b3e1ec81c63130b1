// The well-known types whose proto3 JSON is not an object of fields: Duration
// ("0.250s"), Timestamp (RFC 3339), Struct/Value/ListValue (plain JSON), FieldMask.
import type { FieldError } from './errors.ts';
import { formatNanos } from './pgv.ts';
import { describe, INVALID } from './scalars.ts';

const DURATION = /^(-)?([0-9]+)(?:\.([0-9]{1,9}))?s$/;
const MAX_SECONDS = 315_576_000_000n;
const NANOS = 1_000_000_000n;

// Resources repeat the same few durations ("5s", "15s") thousands of times.
const parsedDurations = new Map<string, bigint>();

/** "1.5s" -> 1500000000n nanoseconds, or INVALID with an error. */
export function readDuration(v: unknown, path: string, errors: FieldError[]): bigint | typeof INVALID {
  if (typeof v === 'string') {
    const known = parsedDurations.get(v);
    if (known !== undefined) return known;
  }
  const m = typeof v === 'string' ? DURATION.exec(v) : null;
  if (!m) {
    errors.push({ path, message: `expected a duration string such as "5s" or "0.250s", got ${describe(v)}` });
    return INVALID;
  }
  const seconds = BigInt(m[2]!);
  if (seconds > MAX_SECONDS) {
    errors.push({ path, message: `duration ${v as string} is out of range (at most ${MAX_SECONDS}s)` });
    return INVALID;
  }
  const nanos = seconds * NANOS + BigInt((m[3] ?? '').padEnd(9, '0') || '0');
  const value = m[1] ? -nanos : nanos;
  if (parsedDurations.size < 10_000) parsedDurations.set(v as string, value);
  return value;
}

/** Nanoseconds -> google.protobuf.Duration / Timestamp fields (nanos carry the sign of seconds). */
export function nanosToWire(n: bigint): { seconds: number; nanos: number } {
  const seconds = n / NANOS;
  return { seconds: Number(seconds), nanos: Number(n - seconds * NANOS) };
}

export function wireToNanos(m: { seconds?: unknown; nanos?: unknown }): bigint {
  const s = m.seconds;
  // protobufjs decodes int64 as a Long ({low, high}); Long#toString is slow.
  const seconds =
    typeof s === 'object' && s !== null
      ? BigInt.asIntN(64, (BigInt((s as { high: number }).high >>> 0) << 32n) | BigInt((s as { low: number }).low >>> 0))
      : BigInt(Number(s ?? 0));
  return seconds * NANOS + BigInt(Number(m.nanos ?? 0));
}

export function durationToJson(m: { seconds?: unknown; nanos?: unknown }): string {
  return formatNanos(wireToNanos(m));
}

const TIMESTAMP = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})$/;

/** RFC 3339 -> nanoseconds since the epoch. */
export function readTimestamp(v: unknown, path: string, errors: FieldError[]): bigint | typeof INVALID {
  const m = typeof v === 'string' ? TIMESTAMP.exec(v) : null;
  const millis = m ? Date.parse(`${m[1]}${m[3]}`) : NaN;
  if (!m || Number.isNaN(millis)) {
    errors.push({ path, message: `expected an RFC 3339 timestamp such as "2024-01-01T00:00:00Z", got ${describe(v)}` });
    return INVALID;
  }
  return BigInt(millis) * 1_000_000n + BigInt((m[2] ?? '').padEnd(9, '0') || '0');
}

export function timestampToJson(m: { seconds?: unknown; nanos?: unknown }): string {
  const n = wireToNanos(m);
  const seconds = n / NANOS;
  const nanos = n - seconds * NANOS;
  const base = new Date(Number(seconds) * 1000).toISOString().slice(0, 19);
  if (nanos === 0n) return `${base}Z`;
  let frac = nanos.toString().padStart(9, '0');
  if (frac.endsWith('000000')) frac = frac.slice(0, 3);
  else if (frac.endsWith('000')) frac = frac.slice(0, 6);
  return `${base}.${frac}Z`;
}

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

// protobufjs always uses its bundled google/protobuf/struct.proto, whose Value fields
// are lowerCamelCase (nullValue, numberValue, ...); only this file sees those names.

/** Plain JSON -> google.protobuf.Value fields (what protobufjs encodes). */
export function jsonToValueWire(v: unknown, path: string, errors: FieldError[]): unknown {
  if (v === null) return { nullValue: 0 };
  switch (typeof v) {
    case 'number':
      if (!Number.isFinite(v)) break;
      return { numberValue: v };
    case 'string':
      return { stringValue: v };
    case 'boolean':
      return { boolValue: v };
    case 'object':
      if (Array.isArray(v)) return { listValue: jsonToListWire(v, path, errors) };
      return { structValue: jsonToStructWire(v as Record<string, unknown>, path, errors) };
  }
  errors.push({ path, message: `expected a JSON value, got ${describe(v)}` });
  return INVALID;
}

export function jsonToStructWire(v: Record<string, unknown>, path: string, errors: FieldError[]): unknown {
  const fields: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v)) fields[k] = jsonToValueWire(x, `${path}[${JSON.stringify(k)}]`, errors);
  return { fields };
}

export function jsonToListWire(v: unknown[], path: string, errors: FieldError[]): unknown {
  return { values: v.map((x, i) => jsonToValueWire(x, `${path}[${i}]`, errors)) };
}

interface ValueWire {
  nullValue?: unknown;
  numberValue?: number;
  stringValue?: string;
  boolValue?: boolean;
  structValue?: { fields?: Record<string, ValueWire> };
  listValue?: { values?: ValueWire[] };
}

const own = (o: object, k: string): boolean => Object.prototype.hasOwnProperty.call(o, k);

export function valueWireToJson(m: ValueWire): Json {
  if (own(m, 'numberValue')) return m.numberValue!;
  if (own(m, 'stringValue')) return m.stringValue!;
  if (own(m, 'boolValue')) return m.boolValue!;
  if (own(m, 'structValue')) return structWireToJson(m.structValue!);
  if (own(m, 'listValue')) return listWireToJson(m.listValue!);
  return null;
}

export function structWireToJson(m: { fields?: Record<string, ValueWire> }): { [k: string]: Json } {
  const out: { [k: string]: Json } = {};
  for (const [k, x] of Object.entries(m.fields ?? {})) out[k] = valueWireToJson(x);
  return out;
}

export function listWireToJson(m: { values?: ValueWire[] }): Json[] {
  return (m.values ?? []).map(valueWireToJson);
}

/** FieldMask JSON is "a.b,cD" with lowerCamelCase paths; the wire form is snake_case. */
export function readFieldMask(v: unknown, path: string, errors: FieldError[]): unknown {
  if (typeof v !== 'string') {
    errors.push({ path, message: `expected a field mask string such as "a.b,c", got ${describe(v)}` });
    return INVALID;
  }
  const paths = v === '' ? [] : v.split(',').map((p) => p.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`));
  return { paths };
}

export function fieldMaskToJson(m: { paths?: string[] }): string {
  return (m.paths ?? []).map((p) => p.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase())).join(',');
}
