// The proto3 JSON walker: reads a resource written in Envoy's JSON form (snake_case
// field names), records every problem with its field path (type mismatches, unknown
// fields, oneof conflicts, PGV rules), and, when asked, builds the plain object that
// protobufjs encodes. protobufjs's own fromObject would drop unknown fields silently.
import type protobuf from 'protobufjs';
import { indexPath, joinPath, keyPath } from './errors.ts';
import type { FieldError } from './errors.ts';
import { fullNameOf, messageKind, planOf } from './plan.ts';
import type { FieldPlan, MessagePlan, Scalar, ValueKind } from './plan.ts';
import type { Check } from './pgv-types.ts';
import { describe, INVALID, readScalar, scalarToWire } from './scalars.ts';
import { messageNameOf } from './type-urls.ts';
import { jsonToListWire, jsonToStructWire, jsonToValueWire, nanosToWire, readDuration, readFieldMask, readTimestamp } from './wkt.ts';

export interface WalkContext {
  errors: FieldError[];
  /** Build the encodable object (encode), or only validate. */
  build: boolean;
  /** > 0 inside (validate.disabled) messages and message.skip fields: no rules apply. */
  rulesOff: number;
  /** Resolves the message named by an Any's @type; undefined when not loaded. */
  lookup: (fullName: string) => protobuf.Type | undefined;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function check(ctx: WalkContext, c: Check | undefined, value: unknown, path: string): void {
  if (c && ctx.rulesOff === 0) c(value, path, ctx.errors);
}

/** Reads one message; `anyType` skips the "@type" key of an Any being expanded. */
export function readMessage(plan: MessagePlan, json: unknown, path: string, ctx: WalkContext, anyType = false): unknown {
  if (!isObject(json)) {
    ctx.errors.push({ path, message: `expected an object (${plan.fullName}), got ${describe(json)}` });
    return INVALID;
  }
  if (plan.disabled) ctx.rulesOff++;
  const out: Record<string, unknown> | undefined = ctx.build ? {} : undefined;
  let oneofSet: Map<string, string> | undefined;
  const keys = Object.keys(json);
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i]!;
    if (anyType && key === '@type') continue;
    const value = json[key];
    if (value === undefined) continue;
    const field = plan.fields.get(key);
    const fieldPath = joinPath(path, key);
    if (!field) {
      const snake = plan.camel.get(key);
      ctx.errors.push({ path: fieldPath, message: `unknown field "${key}" in ${plan.fullName}${snake ? ` (use the proto name "${snake}")` : ''}` });
      continue;
    }
    // proto3 JSON: null means "not set", except for google.protobuf.Value.
    if (value === null && !(field.kind.tag === 'message' && field.kind.wkt === 'value') && !(field.kind.tag === 'enum' && field.kind.nullValue)) continue;
    if (field.oneof !== undefined) {
      oneofSet ??= new Map();
      const other = oneofSet.get(field.oneof);
      if (other !== undefined) {
        ctx.errors.push({ path: fieldPath, message: `"${key}" and "${other}" are both set, but they belong to oneof "${field.oneof}" and at most one may be set` });
      } else oneofSet.set(field.oneof, key);
    }
    if (field.disallowed) ctx.errors.push({ path: fieldPath, message: `field "${key}" is deprecated and disallowed by default in Envoy` });
    const wire = field.mapKey !== undefined ? readMap(field, value, fieldPath, ctx) : field.repeated ? readList(field, value, fieldPath, ctx) : readField(field, value, fieldPath, ctx);
    if (out && wire !== INVALID) out[key] = wire;
  }
  if (ctx.rulesOff === 0 && plan.checksAbsent) checkAbsent(plan, json, path, ctx, oneofSet);
  if (ctx.rulesOff === 0 && plan.semantic) plan.semantic(json, path, ctx.errors, (name) => ctx.lookup(name) !== undefined);
  if (TYPED_STRUCTS.has(plan.fullName)) checkTypedStruct(json, path, ctx);
  if (plan.disabled) ctx.rulesOff--;
  return out ?? null;
}

const TYPED_STRUCTS: ReadonlySet<string> = new Set(['xds.type.v3.TypedStruct', 'udpa.type.v1.TypedStruct']);

// Envoy converts a TypedStruct's value into the message its type_url names and
// validates that, so a typo inside one is as fatal as anywhere else.
function checkTypedStruct(json: Record<string, unknown>, path: string, ctx: WalkContext): void {
  const typeUrl = json.type_url;
  if (typeof typeUrl !== 'string' || typeUrl === '') return;
  const type = ctx.lookup(messageNameOf(typeUrl));
  if (!type) {
    ctx.errors.push({ path: joinPath(path, 'type_url'), message: `unknown message type "${messageNameOf(typeUrl)}": it is not one of the loaded Envoy protos` });
    return;
  }
  readMessage(planOf(type), json.value ?? {}, joinPath(path, 'value'), { ...ctx, build: false });
}

function checkAbsent(plan: MessagePlan, json: Record<string, unknown>, path: string, ctx: WalkContext, oneofSet: Map<string, string> | undefined): void {
  for (const f of plan.absent) {
    if (json[f.name] != null) continue;
    const fieldPath = joinPath(path, f.name);
    if (f.defaultDisallowed) {
      const kind = f.kind as Extract<ValueKind, { tag: 'enum' }>;
      ctx.errors.push({ path: fieldPath, message: `must be set: its default value ${kind.byNumber.get(0)} is deprecated and disallowed by default in Envoy` });
    } else if (f.required) ctx.errors.push({ path: fieldPath, message: 'value is required' });
    else if (f.listCheck) f.listCheck([], fieldPath, ctx.errors);
    else if (f.pairsCheck) f.pairsCheck(0, fieldPath, ctx.errors);
    else if (f.absentValue !== undefined) f.valueCheck!(f.absentValue, fieldPath, ctx.errors);
  }
  for (const o of plan.oneofs) {
    if (o.required && !oneofSet?.has(o.name)) {
      ctx.errors.push({ path: joinPath(path, o.name), message: `exactly one of ${o.members.join(', ')} must be set (oneof "${o.name}" is required)` });
    }
  }
}

function readList(field: FieldPlan, value: unknown, path: string, ctx: WalkContext): unknown {
  if (!Array.isArray(value)) {
    ctx.errors.push({ path, message: `expected an array, got ${describe(value)}` });
    return INVALID;
  }
  check(ctx, field.listCheck, value, path);
  const out: unknown[] = [];
  for (let i = 0; i < value.length; i++) {
    const itemPath = indexPath(path, i);
    if (value[i] === null) {
      ctx.errors.push({ path: itemPath, message: 'null is not allowed in a repeated field' });
      continue;
    }
    const wire = readField(field, value[i], itemPath, ctx);
    if (wire !== INVALID) out.push(wire);
  }
  return out;
}

function readMap(field: FieldPlan, value: unknown, path: string, ctx: WalkContext): unknown {
  if (!isObject(value)) {
    ctx.errors.push({ path, message: `expected an object (map), got ${describe(value)}` });
    return INVALID;
  }
  const keys = Object.keys(value);
  check(ctx, field.pairsCheck, keys.length, path);
  const out: Record<string, unknown> = {};
  for (const key of keys) {
    const entryPath = keyPath(path, key);
    const k = readMapKey(field.mapKey!, key, entryPath, ctx);
    if (k === INVALID) continue;
    check(ctx, field.keyCheck, k, entryPath);
    const wire = readField(field, value[key], entryPath, ctx);
    if (wire !== INVALID) out[key] = wire;
  }
  return out;
}

function readMapKey(scalar: Scalar, key: string, path: string, ctx: WalkContext): unknown {
  if (scalar === 'string') return key;
  if (scalar === 'bool') {
    if (key === 'true' || key === 'false') return key === 'true';
    ctx.errors.push({ path, message: 'map key must be "true" or "false"' });
    return INVALID;
  }
  return readScalar(scalar, key, path, ctx.errors);
}

/** One (non-repeated) value of `field`, checked against the field's value rules. */
function readField(field: FieldPlan, value: unknown, path: string, ctx: WalkContext): unknown {
  if (field.skip) ctx.rulesOff++;
  const wire = readValue(field.kind, value, path, ctx, field.valueCheck);
  if (field.skip) ctx.rulesOff--;
  return wire;
}

export function readValue(kind: ValueKind, value: unknown, path: string, ctx: WalkContext, rules: Check | undefined): unknown {
  switch (kind.tag) {
    case 'scalar': {
      const v = readScalar(kind.scalar, value, path, ctx.errors);
      if (v === INVALID) return INVALID;
      check(ctx, rules, v, path);
      return ctx.build ? scalarToWire(kind.scalar, v) : null;
    }
    case 'enum': {
      const n = readEnum(kind, value, path, ctx);
      if (n === INVALID) return n;
      // Envoy refuses these whatever PGV says (checkForDeprecatedNonRepeatedEnumValue).
      if (kind.disallowed.has(n)) ctx.errors.push({ path, message: `value ${kind.byNumber.get(n)} of ${kind.name} is deprecated and disallowed by default in Envoy` });
      check(ctx, rules, n, path);
      return n;
    }
    case 'message':
      return readMessageValue(kind, value, path, ctx, rules);
  }
}

function readEnum(kind: Extract<ValueKind, { tag: 'enum' }>, value: unknown, path: string, ctx: WalkContext): number | typeof INVALID {
  if (kind.nullValue && value === null) return 0;
  if (typeof value === 'string') {
    const n = kind.byName.get(value);
    if (n !== undefined) return n;
    ctx.errors.push({ path, message: `unknown value ${JSON.stringify(value)} for enum ${kind.name} (expected one of ${[...kind.byName.keys()].join(', ')})` });
    return INVALID;
  }
  if (typeof value === 'number' && Number.isInteger(value) && value >= -(2 ** 31) && value < 2 ** 31) return value;
  ctx.errors.push({ path, message: `expected an enum name of ${kind.name}, got ${describe(value)}` });
  return INVALID;
}

function readMessageValue(kind: Extract<ValueKind, { tag: 'message' }>, value: unknown, path: string, ctx: WalkContext, rules: Check | undefined): unknown {
  switch (kind.wkt) {
    case undefined:
      return readMessage((kind.plan ??= planOf(kind.type)), value, path, ctx);
    case 'wrapper': {
      const v = readScalar(kind.inner!, value, path, ctx.errors);
      if (v === INVALID) return INVALID;
      check(ctx, rules, v, path);
      return ctx.build ? { value: scalarToWire(kind.inner!, v) } : null;
    }
    case 'duration':
    case 'timestamp': {
      const n = kind.wkt === 'duration' ? readDuration(value, path, ctx.errors) : readTimestamp(value, path, ctx.errors);
      if (n === INVALID) return INVALID;
      check(ctx, rules, n, path);
      return ctx.build ? nanosToWire(n) : null;
    }
    case 'fieldmask':
      return readFieldMask(value, path, ctx.errors);
    case 'struct':
      if (!isObject(value)) {
        ctx.errors.push({ path, message: `expected an object (google.protobuf.Struct), got ${describe(value)}` });
        return INVALID;
      }
      return ctx.build ? jsonToStructWire(value, path, ctx.errors) : null;
    case 'list':
      if (!Array.isArray(value)) {
        ctx.errors.push({ path, message: `expected an array (google.protobuf.ListValue), got ${describe(value)}` });
        return INVALID;
      }
      return ctx.build ? jsonToListWire(value, path, ctx.errors) : null;
    case 'value':
      return ctx.build ? jsonToValueWire(value, path, ctx.errors) : null;
    case 'any':
      return readAny(value, path, ctx, rules);
  }
}

/** An Any is {"@type": "type.googleapis.com/<name>", ...fields of <name>}. */
function readAny(value: unknown, path: string, ctx: WalkContext, rules: Check | undefined): unknown {
  if (!isObject(value)) {
    ctx.errors.push({ path, message: `expected an object with "@type" (google.protobuf.Any), got ${describe(value)}` });
    return INVALID;
  }
  const typeUrl = value['@type'];
  const typePath = joinPath(path, '@type');
  if (typeof typeUrl !== 'string' || typeUrl === '') {
    ctx.errors.push({ path: typePath, message: 'an Any needs "@type": "type.googleapis.com/<message name>"' });
    return INVALID;
  }
  const type = ctx.lookup(messageNameOf(typeUrl));
  if (!type) {
    ctx.errors.push({ path: typePath, message: `unknown message type "${messageNameOf(typeUrl)}": it is not one of the loaded Envoy protos` });
    return INVALID;
  }
  check(ctx, rules, typeUrl, path);
  const kind = messageKind(type);
  let inner: unknown;
  if (kind.tag === 'message' && kind.wkt !== undefined) {
    // Well-known types with a special JSON form carry it under "value".
    for (const key of Object.keys(value)) {
      if (key !== '@type' && key !== 'value') ctx.errors.push({ path: joinPath(path, key), message: `unknown field "${key}" in an Any of ${fullNameOf(type)} (expected "value")` });
    }
    inner = readValue(kind, value.value, joinPath(path, 'value'), ctx, undefined);
  } else {
    inner = readMessage(planOf(type), value, path, ctx, true);
  }
  if (!ctx.build || inner === INVALID) return inner === INVALID ? INVALID : null;
  return { type_url: typeUrl, value: type.encode(inner as Record<string, unknown>).finish() };
}
