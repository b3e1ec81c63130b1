// Per-message validation plans: everything the JSON walker needs to know about a
// message type (fields by JSON name, kinds, compiled PGV checks, oneofs), computed
// once per type and cached, so validating thousands of resources costs only the walk.
import protobuf from 'protobufjs';
import { compileMapRules, compileRepeatedRules, compileValueRules, fieldRulesOf, isRequired, isSkipped, messageDisabled, oneofRequired } from './pgv.ts';
import type { CheckedKind } from './pgv.ts';
import type { Check, FieldRules } from './pgv-types.ts';
import { semanticChecks } from './semantic.ts';
import type { SemanticCheck } from './semantic.ts';

export type Scalar =
  | 'double' | 'float' | 'int32' | 'uint32' | 'sint32' | 'fixed32' | 'sfixed32'
  | 'int64' | 'uint64' | 'sint64' | 'fixed64' | 'sfixed64' | 'bool' | 'string' | 'bytes';

/** Well-known types whose proto3 JSON form is not an object of their fields. */
export type WellKnown = 'any' | 'duration' | 'timestamp' | 'struct' | 'value' | 'list' | 'fieldmask' | 'wrapper';

export type ValueKind =
  | { tag: 'scalar'; scalar: Scalar }
  | {
      tag: 'enum';
      name: string;
      byName: ReadonlyMap<string, number>;
      byNumber: ReadonlyMap<number, string>;
      nullValue: boolean;
      /** Values marked deprecated + (envoy.annotations.disallowed_by_default_enum): Envoy refuses them. */
      disallowed: ReadonlySet<number>;
    }
  | { tag: 'message'; type: protobuf.Type; wkt: WellKnown | undefined; inner?: Scalar; plan?: MessagePlan };

export interface FieldPlan {
  name: string;
  kind: ValueKind;
  repeated: boolean;
  /** Key type for map fields. */
  mapKey?: Scalar;
  /** The real oneof this field belongs to (not proto3 `optional`'s synthetic one). */
  oneof?: string;
  /** message.required / duration.required / any.required. */
  required: boolean;
  /** message.skip: the nested message is parsed but its rules are not applied. */
  skip: boolean;
  /** Rules on the value (or on each item / map value). */
  valueCheck?: Check;
  /** repeated min_items / max_items / unique. */
  listCheck?: Check;
  /** map min_pairs / max_pairs (given the pair count) and rules on keys. */
  pairsCheck?: Check;
  keyCheck?: Check;
  /** For proto3 scalars without presence: the value an absent field has, to check rules against. */
  absentValue?: unknown;
  /** Deprecated + (envoy.annotations.disallowed_by_default): Envoy refuses the field when set. */
  disallowed: boolean;
  /** A singular enum whose default value Envoy refuses, so it must be set explicitly. */
  defaultDisallowed: boolean;
}

export interface OneofPlan {
  name: string;
  members: readonly string[];
  required: boolean;
}

export interface MessagePlan {
  type: protobuf.Type;
  fullName: string;
  fields: ReadonlyMap<string, FieldPlan>;
  list: readonly FieldPlan[];
  oneofs: readonly OneofPlan[];
  /** (validate.disabled): no rules apply in this message or below it. */
  disabled: boolean;
  /** Fields whose rules must be checked even when the field is absent. */
  absent: readonly FieldPlan[];
  /** absent is non-empty or a oneof is required: the walker must look for missing fields. */
  checksAbsent: boolean;
  /** lowerCamelCase JSON name -> proto field name, for a helpful "did you mean". */
  camel: ReadonlyMap<string, string>;
  /** Envoy's own refusals for this message beyond PGV (semantic.ts). */
  semantic?: SemanticCheck;
}

const WRAPPERS: Record<string, Scalar> = {
  'google.protobuf.DoubleValue': 'double',
  'google.protobuf.FloatValue': 'float',
  'google.protobuf.Int64Value': 'int64',
  'google.protobuf.UInt64Value': 'uint64',
  'google.protobuf.Int32Value': 'int32',
  'google.protobuf.UInt32Value': 'uint32',
  'google.protobuf.BoolValue': 'bool',
  'google.protobuf.StringValue': 'string',
  'google.protobuf.BytesValue': 'bytes',
};

const SPECIAL: Record<string, WellKnown> = {
  'google.protobuf.Any': 'any',
  'google.protobuf.Duration': 'duration',
  'google.protobuf.Timestamp': 'timestamp',
  'google.protobuf.Struct': 'struct',
  'google.protobuf.Value': 'value',
  'google.protobuf.ListValue': 'list',
  'google.protobuf.FieldMask': 'fieldmask',
};

export function fullNameOf(t: protobuf.ReflectionObject): string {
  return t.fullName.startsWith('.') ? t.fullName.slice(1) : t.fullName;
}

const BIG: ReadonlySet<string> = new Set(['int64', 'uint64', 'sint64', 'fixed64', 'sfixed64']);

export function checkedKindOf(kind: ValueKind): CheckedKind {
  switch (kind.tag) {
    case 'enum':
      return 'enum';
    case 'scalar':
      return scalarCheckedKind(kind.scalar);
    case 'message':
      if (kind.wkt === 'wrapper') return scalarCheckedKind(kind.inner!);
      if (kind.wkt === 'duration' || kind.wkt === 'timestamp' || kind.wkt === 'any') return kind.wkt;
      return 'message';
  }
}

function scalarCheckedKind(s: Scalar): CheckedKind {
  if (BIG.has(s)) return 'bigint';
  if (s === 'bool' || s === 'string' || s === 'bytes') return s;
  return 'number';
}

export function isBigScalar(s: Scalar): boolean {
  return BIG.has(s);
}

const kindCache = new WeakMap<protobuf.ReflectionObject, ValueKind>();

export function messageKind(type: protobuf.Type): ValueKind {
  let kind = kindCache.get(type);
  if (!kind) {
    const name = fullNameOf(type);
    const inner = WRAPPERS[name];
    kind = inner ? { tag: 'message', type, wkt: 'wrapper', inner } : { tag: 'message', type, wkt: SPECIAL[name] };
    kindCache.set(type, kind);
  }
  return kind;
}

function kindOf(field: protobuf.Field): ValueKind {
  const resolved = field.resolvedType;
  if (resolved instanceof protobuf.Type) return messageKind(resolved);
  if (resolved instanceof protobuf.Enum) {
    let kind = kindCache.get(resolved);
    if (!kind) {
      const byName = new Map(Object.entries(resolved.values));
      const byNumber = new Map<number, string>();
      for (const [n, v] of byName) if (!byNumber.has(v)) byNumber.set(v, n);
      const disallowed = new Set<number>();
      for (const [valueName, options] of Object.entries(resolved.valuesOptions ?? {})) {
        if (options?.deprecated === true && options['(envoy.annotations.disallowed_by_default_enum)'] === true) disallowed.add(resolved.values[valueName]!);
      }
      kind = { tag: 'enum', name: fullNameOf(resolved), byName, byNumber, nullValue: fullNameOf(resolved) === 'google.protobuf.NullValue', disallowed };
      kindCache.set(resolved, kind);
    }
    return kind;
  }
  return { tag: 'scalar', scalar: field.type as Scalar };
}

function defaultOf(kind: ValueKind): unknown {
  if (kind.tag === 'enum') return 0;
  if (kind.tag !== 'scalar') return undefined;
  switch (kind.scalar) {
    case 'string':
      return '';
    case 'bytes':
      return new Uint8Array(0);
    case 'bool':
      return false;
    default:
      return BIG.has(kind.scalar) ? 0n : 0;
  }
}

function enumNumbers(kind: ValueKind): ReadonlySet<number> | undefined {
  return kind.tag === 'enum' ? new Set(kind.byNumber.keys()) : undefined;
}

function toCamel(name: string): string {
  return name.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

function planField(field: protobuf.Field, disabled: boolean): FieldPlan {
  const kind = kindOf(field);
  const rules: FieldRules | undefined = disabled ? undefined : fieldRulesOf(field);
  const oneof = field.partOf && !field.options?.proto3_optional ? field.partOf.name : undefined;
  const plan: FieldPlan = {
    name: field.name,
    kind,
    repeated: field.repeated,
    oneof,
    required: isRequired(rules),
    skip: isSkipped(rules),
    disallowed: field.options?.deprecated === true && field.options['(envoy.annotations.disallowed_by_default)'] === true,
    defaultDisallowed: kind.tag === 'enum' && !field.repeated && !field.partOf && kind.disallowed.has(0),
  };
  if (field instanceof protobuf.MapField) {
    plan.mapKey = field.keyType as Scalar;
    plan.repeated = false;
    const mapRules = rules?.map as Record<string, unknown> | undefined;
    plan.pairsCheck = compileMapRules(mapRules);
    const keys = mapRules?.keys as FieldRules | undefined;
    const values = mapRules?.values as FieldRules | undefined;
    if (keys) plan.keyCheck = compileValueRules(keys, scalarCheckedKind(plan.mapKey));
    if (values) plan.valueCheck = compileValueRules(values, checkedKindOf(kind), enumNumbers(kind));
    return plan;
  }
  if (!rules) return plan;
  if (field.repeated) {
    plan.listCheck = compileRepeatedRules(rules.repeated);
    const items = rules.repeated?.items as FieldRules | undefined;
    if (items) {
      plan.valueCheck = compileValueRules(items, checkedKindOf(kind), enumNumbers(kind));
      plan.skip = isSkipped(items);
    }
    return plan;
  }
  plan.valueCheck = compileValueRules(rules, checkedKindOf(kind), enumNumbers(kind));
  // proto3 scalars without presence always have a value: rules apply to the default.
  if (plan.valueCheck && kind.tag !== 'message' && !field.partOf) plan.absentValue = defaultOf(kind);
  return plan;
}

const plans = new WeakMap<protobuf.Type, MessagePlan>();

/** The cached plan for `type`, built on first use. */
export function planOf(type: protobuf.Type): MessagePlan {
  let plan = plans.get(type);
  if (plan) return plan;
  const disabled = messageDisabled(type);
  const list = type.fieldsArray.map((f) => planField(f, disabled));
  const oneofs = type.oneofsArray
    .filter((o) => !o.fieldsArray.every((f) => f.options?.proto3_optional))
    .map((o) => ({ name: o.name, members: o.fieldsArray.map((f) => f.name), required: !disabled && oneofRequired(o) }));
  // Rules on a oneof member (even `required`) apply only when that member is set.
  const absent = list.filter(
    (f) =>
      !type.fields[f.name]!.partOf &&
      (f.required || f.defaultDisallowed || f.absentValue !== undefined || f.listCheck !== undefined || f.pairsCheck !== undefined),
  );
  const camel = new Map<string, string>();
  for (const f of list) if (toCamel(f.name) !== f.name) camel.set(toCamel(f.name), f.name);
  const checksAbsent = absent.length > 0 || oneofs.some((o) => o.required);
  const fullName = fullNameOf(type);
  plan = { type, fullName, fields: new Map(list.map((f) => [f.name, f])), list, oneofs, disabled, absent, checksAbsent, camel, semantic: semanticChecks.get(fullName) };
  plans.set(type, plan);
  return plan;
}
