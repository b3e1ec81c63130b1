// protoc-gen-validate: reads the (validate.rules), (validate.required) and
// (validate.disabled) options protobufjs keeps from Envoy's protos, and compiles the
// rules of one field into Check closures once, when a type's plan is built.
import type protobuf from 'protobufjs';
import type { FieldError } from './errors.ts';
import { combine, compileBytesRules, compileStringRules } from './pgv-strings.ts';
import type { Check, FieldRules, RuleSet } from './pgv-types.ts';

type Parsed = { parsedOptions?: Array<Record<string, unknown>> | null };

function isPlainObject(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

// A field may carry several `(validate.rules).x.y = ...` options; protobufjs keeps
// one entry per option, so they are merged. Repeated rules (`in`) accumulate.
function merge(into: Record<string, unknown>, from: Record<string, unknown>): void {
  for (const [key, value] of Object.entries(from)) {
    const prev = into[key];
    if (isPlainObject(prev) && isPlainObject(value)) merge(prev, value);
    else if (prev !== undefined && (key === 'in' || key === 'not_in')) into[key] = [...[prev].flat(), ...[value].flat()];
    else into[key] = isPlainObject(value) ? structuredClone(value) : value;
  }
}

function option(holder: Parsed, name: string): unknown {
  let out: unknown;
  for (const entry of holder.parsedOptions ?? []) {
    if (!(name in entry)) continue;
    const value = entry[name];
    if (isPlainObject(value)) {
      if (!isPlainObject(out)) out = {};
      merge(out as Record<string, unknown>, value);
    } else out = value;
  }
  return out;
}

export function fieldRulesOf(field: protobuf.Field): FieldRules | undefined {
  const rules = option(field as unknown as Parsed, '(validate.rules)');
  return isPlainObject(rules) ? (rules as FieldRules) : undefined;
}

export function oneofRequired(oneof: protobuf.OneOf): boolean {
  return option(oneof as unknown as Parsed, '(validate.required)') === true;
}

export function messageDisabled(type: protobuf.Type): boolean {
  return option(type as unknown as Parsed, '(validate.disabled)') === true;
}

function push(errors: FieldError[], path: string, message: string): void {
  errors.push({ path, message });
}

// Rule values arrive as numbers, strings or Longs; comparisons mix number and bigint.
function ruleNumber(x: unknown, big: boolean): number | bigint {
  if (big) return BigInt(typeof x === 'object' && x !== null ? String(x) : (x as number | string));
  return Number(x);
}

type Ordered = number | bigint;

/** const / lt / lte / gt / gte / in / not_in, shared by numbers, durations, timestamps. */
function compileOrdered(r: RuleSet, toRule: (x: unknown) => Ordered, show: (x: Ordered) => string): Check | undefined {
  const checks: Check[] = [];
  if (r.const !== undefined) {
    const c = toRule(r.const);
    checks.push((v, p, e) => (v as Ordered) != c && push(e, p, `value must equal ${show(c)}`));
  }
  const gt = r.gt !== undefined ? toRule(r.gt) : undefined;
  const gte = r.gte !== undefined ? toRule(r.gte) : undefined;
  const lt = r.lt !== undefined ? toRule(r.lt) : undefined;
  const lte = r.lte !== undefined ? toRule(r.lte) : undefined;
  const lower = gt ?? gte;
  const upper = lt ?? lte;
  const aboveLower = (v: Ordered): boolean => (gt !== undefined ? v > gt : v >= gte!);
  const belowUpper = (v: Ordered): boolean => (lt !== undefined ? v < lt : v <= lte!);
  const lowerText = lower === undefined ? '' : `greater than ${gt !== undefined ? '' : 'or equal to '}${show(lower)}`;
  const upperText = upper === undefined ? '' : `less than ${lt !== undefined ? '' : 'or equal to '}${show(upper)}`;
  if (lower !== undefined && upper !== undefined) {
    // PGV: lower < upper means "inside the range"; lower >= upper means "outside it".
    if (upper > lower) {
      checks.push((v, p, e) => !(aboveLower(v as Ordered) && belowUpper(v as Ordered)) && push(e, p, `value must be ${lowerText} and ${upperText}`));
    } else {
      checks.push((v, p, e) => !(aboveLower(v as Ordered) || belowUpper(v as Ordered)) && push(e, p, `value must be ${lowerText} or ${upperText}`));
    }
  } else if (lower !== undefined) {
    checks.push((v, p, e) => !aboveLower(v as Ordered) && push(e, p, `value must be ${lowerText}`));
  } else if (upper !== undefined) {
    checks.push((v, p, e) => !belowUpper(v as Ordered) && push(e, p, `value must be ${upperText}`));
  }
  for (const key of ['in', 'not_in'] as const) {
    if (r[key] === undefined) continue;
    const list = [r[key]].flat().map(toRule);
    const wanted = key === 'in';
    checks.push((v, p, e) => list.some((x) => x == (v as Ordered)) !== wanted && push(e, p, `value must ${wanted ? '' : 'not '}be in list [${list.map(show).join(', ')}]`));
  }
  return combine(checks);
}

// Durations and timestamps are compared as bigint nanoseconds.
export function durationNanos(d: unknown): bigint {
  const o = (isPlainObject(d) ? d : {}) as { seconds?: unknown; nanos?: unknown };
  return BigInt(String(o.seconds ?? 0)) * 1_000_000_000n + BigInt(String(o.nanos ?? 0));
}

export function formatNanos(n: Ordered): string {
  const big = BigInt(n);
  const sign = big < 0n ? '-' : '';
  const abs = big < 0n ? -big : big;
  const seconds = abs / 1_000_000_000n;
  const nanos = abs % 1_000_000_000n;
  if (nanos === 0n) return `${sign}${seconds}s`;
  let frac = nanos.toString().padStart(9, '0');
  if (frac.endsWith('000000')) frac = frac.slice(0, 3);
  else if (frac.endsWith('000')) frac = frac.slice(0, 6);
  return `${sign}${seconds}.${frac}s`;
}

/** What the walker hands to a compiled check for a field of this kind. */
export type CheckedKind = 'number' | 'bigint' | 'bool' | 'string' | 'bytes' | 'enum' | 'duration' | 'timestamp' | 'any' | 'message';

const NUMERIC_RULE_KEYS = ['double', 'float', 'int32', 'int64', 'uint32', 'uint64', 'sint32', 'sint64', 'fixed32', 'fixed64', 'sfixed32', 'sfixed64'];

/**
 * Compiles the type-specific part of `rules` for a value of `kind`.
 * `enumValues` is needed for enum.defined_only.
 */
export function compileValueRules(rules: FieldRules, kind: CheckedKind, enumValues?: ReadonlySet<number>): Check | undefined {
  switch (kind) {
    case 'number':
    case 'bigint': {
      const key = NUMERIC_RULE_KEYS.find((k) => rules[k] !== undefined);
      if (!key) return undefined;
      const big = kind === 'bigint';
      return compileOrdered(rules[key]!, (x) => ruleNumber(x, big), (x) => String(x));
    }
    case 'bool': {
      const r = rules.bool;
      if (r?.const === undefined) return undefined;
      const c = r.const === true;
      return (v, p, e) => v !== c && push(e, p, `value must equal ${c}`);
    }
    case 'string':
      return rules.string ? compileStringRules(rules.string) : undefined;
    case 'bytes':
      return rules.bytes ? compileBytesRules(rules.bytes) : undefined;
    case 'enum': {
      const r = rules.enum;
      if (!r) return undefined;
      const checks: Check[] = [];
      if (r.defined_only === true && enumValues) {
        checks.push((v, p, e) => !enumValues.has(v as number) && push(e, p, 'value must be one of the defined enum values'));
      }
      const ordered = compileOrdered({ const: r.const, in: r.in, not_in: r.not_in }, (x) => Number(x), String);
      if (ordered) checks.push(ordered);
      return combine(checks);
    }
    case 'duration': {
      const r = rules.duration;
      if (!r) return undefined;
      return compileOrdered({ ...r, required: undefined }, durationNanos, formatNanos);
    }
    case 'timestamp': {
      const r = rules.timestamp;
      if (!r) return undefined;
      const checks: Check[] = [];
      const ordered = compileOrdered({ const: r.const, lt: r.lt, lte: r.lte, gt: r.gt, gte: r.gte }, durationNanos, (x) => new Date(Number(BigInt(x) / 1_000_000n)).toISOString());
      if (ordered) checks.push(ordered);
      const nowNanos = (): bigint => BigInt(Date.now()) * 1_000_000n;
      if (r.lt_now === true) checks.push((v, p, e) => (v as bigint) >= nowNanos() && push(e, p, 'value must be less than now'));
      if (r.gt_now === true) checks.push((v, p, e) => (v as bigint) <= nowNanos() && push(e, p, 'value must be greater than now'));
      return combine(checks);
    }
    case 'any': {
      const r = rules.any;
      if (!r) return undefined;
      const checks: Check[] = [];
      if (r.in !== undefined) {
        const set = new Set([r.in].flat().map(String));
        checks.push((v, p, e) => !set.has(v as string) && push(e, p, `type URL must be in list [${[...set].join(', ')}]`));
      }
      if (r.not_in !== undefined) {
        const set = new Set([r.not_in].flat().map(String));
        checks.push((v, p, e) => set.has(v as string) && push(e, p, `type URL must not be in list [${[...set].join(', ')}]`));
      }
      return combine(checks);
    }
    case 'message':
      return undefined;
  }
}

/** message.required, duration.required, any.required, timestamp.required. */
export function isRequired(rules: FieldRules | undefined): boolean {
  if (!rules) return false;
  return rules.message?.required === true || rules.duration?.required === true || rules.any?.required === true || rules.timestamp?.required === true;
}

export function isSkipped(rules: FieldRules | undefined): boolean {
  return rules?.message?.skip === true;
}

/** repeated.min_items / max_items / unique on the decoded items. */
export function compileRepeatedRules(r: RuleSet | undefined): Check | undefined {
  if (!r) return undefined;
  const checks: Check[] = [];
  if (r.min_items !== undefined) {
    const n = Number(r.min_items);
    checks.push((v, p, e) => (v as unknown[]).length < n && push(e, p, `value must contain at least ${n} item(s)`));
  }
  if (r.max_items !== undefined) {
    const n = Number(r.max_items);
    checks.push((v, p, e) => (v as unknown[]).length > n && push(e, p, `value must contain no more than ${n} item(s)`));
  }
  if (r.unique === true) {
    checks.push((v, p, e) => {
      const items = (v as unknown[]).map((x) => (x instanceof Uint8Array ? Buffer.from(x).toString('base64') : `${typeof x}:${String(x)}`));
      if (new Set(items).size !== items.length) push(e, p, 'repeated value must contain unique items');
    });
  }
  return combine(checks);
}

/** map.min_pairs / max_pairs on the number of entries. */
export function compileMapRules(r: RuleSet | undefined): Check | undefined {
  if (!r) return undefined;
  const checks: Check[] = [];
  if (r.min_pairs !== undefined) {
    const n = Number(r.min_pairs);
    checks.push((v, p, e) => (v as number) < n && push(e, p, `value must contain at least ${n} pair(s)`));
  }
  if (r.max_pairs !== undefined) {
    const n = Number(r.max_pairs);
    checks.push((v, p, e) => (v as number) > n && push(e, p, `value must contain no more than ${n} pair(s)`));
  }
  return combine(checks);
}
