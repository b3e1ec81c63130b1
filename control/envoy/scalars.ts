// proto3 JSON <-> protobufjs values for scalar fields (numbers, 64-bit integers as
// numbers or decimal strings, bytes as base64, float specials as strings).
import type { FieldError } from './errors.ts';
import { isBigScalar } from './plan.ts';
import type { Scalar } from './plan.ts';

export const INVALID: unique symbol = Symbol('invalid');
export type Invalid = typeof INVALID;

export function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  switch (typeof v) {
    case 'string':
      return `string ${JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}...` : v)}`;
    case 'number':
    case 'boolean':
      return `${typeof v} ${String(v)}`;
    case 'object':
      return 'an object';
    default:
      return typeof v;
  }
}

function mismatch(errors: FieldError[], path: string, expected: string, v: unknown): Invalid {
  errors.push({ path, message: `expected ${expected}, got ${describe(v)}` });
  return INVALID;
}

const RANGES: Partial<Record<Scalar, [bigint, bigint]>> = {
  int32: [-(2n ** 31n), 2n ** 31n - 1n],
  sint32: [-(2n ** 31n), 2n ** 31n - 1n],
  sfixed32: [-(2n ** 31n), 2n ** 31n - 1n],
  uint32: [0n, 2n ** 32n - 1n],
  fixed32: [0n, 2n ** 32n - 1n],
  int64: [-(2n ** 63n), 2n ** 63n - 1n],
  sint64: [-(2n ** 63n), 2n ** 63n - 1n],
  sfixed64: [-(2n ** 63n), 2n ** 63n - 1n],
  uint64: [0n, 2n ** 64n - 1n],
  fixed64: [0n, 2n ** 64n - 1n],
};
const RANGES_NUM: Partial<Record<Scalar, [number, number]>> = Object.fromEntries(
  Object.entries(RANGES).map(([k, [lo, hi]]) => [k, [Number(lo), Number(hi)]]),
);

const INTEGER_STRING = /^-?(0|[1-9][0-9]*)$/;
const BASE64 = /^[A-Za-z0-9+/\-_]*={0,2}$/;
const FLOAT_MAX = 3.4028234663852886e38;

/**
 * Reads one scalar from proto3 JSON. Returns the value rules are checked against:
 * number for 32-bit and floating types, bigint for 64-bit ones, string, boolean,
 * Uint8Array for bytes; or INVALID after recording an error.
 */
export function readScalar(scalar: Scalar, v: unknown, path: string, errors: FieldError[]): unknown {
  switch (scalar) {
    case 'string':
      return typeof v === 'string' ? v : mismatch(errors, path, 'a string', v);
    case 'bool':
      return typeof v === 'boolean' ? v : mismatch(errors, path, 'true or false', v);
    case 'bytes':
      if (typeof v !== 'string' || !BASE64.test(v)) return mismatch(errors, path, 'base64-encoded bytes', v);
      return new Uint8Array(Buffer.from(v, v.includes('-') || v.includes('_') ? 'base64url' : 'base64'));
    case 'double':
    case 'float': {
      let n: number;
      if (typeof v === 'number') n = v;
      else if (v === 'NaN' || v === 'Infinity' || v === '-Infinity') return Number(v);
      else if (typeof v === 'string' && v.trim() !== '' && !Number.isNaN(Number(v))) n = Number(v);
      else return mismatch(errors, path, 'a number', v);
      if (scalar === 'float' && Number.isFinite(n) && Math.abs(n) > FLOAT_MAX) {
        errors.push({ path, message: `value ${n} is out of range for a float` });
        return INVALID;
      }
      return n;
    }
    default:
      return readInteger(scalar, v, path, errors);
  }
}

function readInteger(scalar: Scalar, v: unknown, path: string, errors: FieldError[]): unknown {
  const big = isBigScalar(scalar);
  const [lo, hi] = RANGES[scalar]!;
  if (typeof v === 'number') {
    if (!Number.isInteger(v)) return mismatch(errors, path, `an integer (${scalar})`, v);
    if (big) {
      if (!Number.isSafeInteger(v)) {
        errors.push({ path, message: `${v} is not exactly representable; write 64-bit integers beyond 2^53 as decimal strings` });
        return INVALID;
      }
      const b = BigInt(v);
      if (b < lo || b > hi) return outOfRange(errors, path, scalar, v);
      return b;
    }
    const [nlo, nhi] = RANGES_NUM[scalar]!;
    if (v < nlo || v > nhi) return outOfRange(errors, path, scalar, v);
    return v;
  }
  if (typeof v === 'string' && INTEGER_STRING.test(v)) {
    const b = BigInt(v);
    if (b < lo || b > hi) return outOfRange(errors, path, scalar, v);
    return big ? b : Number(b);
  }
  return mismatch(errors, path, `an integer (${scalar})`, v);
}

function outOfRange(errors: FieldError[], path: string, scalar: Scalar, v: unknown): Invalid {
  errors.push({ path, message: `value ${String(v)} is out of range for ${scalar}` });
  return INVALID;
}

/** The value protobufjs's encoder expects for a checked scalar value. */
export function scalarToWire(scalar: Scalar, v: unknown): unknown {
  if (typeof v !== 'bigint') return v;
  if (v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER)) return Number(v);
  // protobufjs's LongBits.from accepts any {low, high} object.
  const bits = BigInt.asUintN(64, v);
  return { low: Number(bits & 0xffffffffn) | 0, high: Number(bits >> 32n) | 0, unsigned: scalar === 'uint64' || scalar === 'fixed64' };
}

function shortestFloat(n: number): number {
  for (let p = 1; p <= 9; p++) {
    const candidate = Number(n.toPrecision(p));
    if (Math.fround(candidate) === n) return candidate;
  }
  return n;
}

/** protobufjs decoded scalar -> proto3 JSON. */
export function scalarToJson(scalar: Scalar, v: unknown): unknown {
  switch (scalar) {
    case 'bytes':
      return Buffer.from(v as Uint8Array).toString('base64');
    case 'double':
    case 'float': {
      const n = v as number;
      if (!Number.isFinite(n)) return String(n);
      return scalar === 'float' ? shortestFloat(n) : n;
    }
    default:
      if (isBigScalar(scalar)) return int64ToJson(v, scalar === 'uint64' || scalar === 'fixed64');
      return v;
  }
}

interface LongLike {
  low: number;
  high: number;
  unsigned?: boolean;
}

/** 64-bit integers come back as numbers when exact, else as decimal strings. */
function int64ToJson(v: unknown, unsigned: boolean): number | string {
  if (typeof v === 'number') return v;
  if (typeof v === 'string') return /^-?\d+$/.test(v) && Number.isSafeInteger(Number(v)) ? Number(v) : v;
  const l = v as LongLike;
  const bits = (BigInt(l.high >>> 0) << 32n) | BigInt(l.low >>> 0);
  const b = unsigned ? bits : BigInt.asIntN(64, bits);
  return b >= BigInt(Number.MIN_SAFE_INTEGER) && b <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(b) : b.toString();
}
