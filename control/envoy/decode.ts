// Decoded protobufjs messages -> Envoy's proto3 JSON (snake_case names, enums by
// name, durations as "0.250s", wrappers as plain values, Any expanded with "@type").
// Only fields present on the wire appear; empty repeated fields and maps are omitted.
import type protobuf from 'protobufjs';
import { indexPath, joinPath, keyPath } from './errors.ts';
import type { FieldError } from './errors.ts';
import { messageKind, planOf } from './plan.ts';
import type { MessagePlan, ValueKind } from './plan.ts';
import { scalarToJson } from './scalars.ts';
import { messageNameOf } from './type-urls.ts';
import { durationToJson, fieldMaskToJson, listWireToJson, structWireToJson, timestampToJson, valueWireToJson } from './wkt.ts';

export interface DecodeContext {
  errors: FieldError[];
  lookup: (fullName: string) => protobuf.Type | undefined;
}

type Wire = Record<string, unknown>;

export function messageToJson(plan: MessagePlan, msg: Wire, path: string, ctx: DecodeContext): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  // A decoded message's own properties are the fields on the wire (plus the empty
  // arrays and maps protobufjs creates for every repeated field and map).
  const keys = Object.keys(msg);
  for (let i = 0; i < keys.length; i++) {
    const f = plan.fields.get(keys[i]!);
    if (!f) continue;
    const v = msg[f.name];
    if (v === null || v === undefined) continue;
    const fieldPath = joinPath(path, f.name);
    if (f.mapKey !== undefined) {
      const entries = Object.entries(v as Wire);
      if (entries.length === 0) continue;
      const map: Record<string, unknown> = {};
      for (const [k, x] of entries) map[k] = valueToJson(f.kind, x, keyPath(fieldPath, k), ctx);
      out[f.name] = map;
    } else if (f.repeated) {
      const items = v as unknown[];
      if (items.length === 0) continue;
      out[f.name] = items.map((x, i) => valueToJson(f.kind, x, indexPath(fieldPath, i), ctx));
    } else {
      out[f.name] = valueToJson(f.kind, v, fieldPath, ctx);
    }
  }
  return out;
}

export function valueToJson(kind: ValueKind, v: unknown, path: string, ctx: DecodeContext): unknown {
  switch (kind.tag) {
    case 'scalar':
      return scalarToJson(kind.scalar, v);
    case 'enum':
      if (kind.nullValue) return null;
      return kind.byNumber.get(v as number) ?? v;
    case 'message': {
      const m = v as Wire;
      switch (kind.wkt) {
        case undefined:
          return messageToJson(planOf(kind.type), m, path, ctx);
        case 'wrapper':
          return scalarToJson(kind.inner!, m.value ?? kind.type.fields.value!.defaultValue);
        case 'duration':
          return durationToJson(m);
        case 'timestamp':
          return timestampToJson(m);
        case 'struct':
          return structWireToJson(m as Parameters<typeof structWireToJson>[0]);
        case 'list':
          return listWireToJson(m as Parameters<typeof listWireToJson>[0]);
        case 'value':
          return valueWireToJson(m);
        case 'fieldmask':
          return fieldMaskToJson(m as { paths?: string[] });
        case 'any':
          return anyToJson(m, path, ctx);
      }
    }
  }
}

function anyToJson(m: Wire, path: string, ctx: DecodeContext): unknown {
  const typeUrl = String(m.type_url ?? '');
  const type = ctx.lookup(messageNameOf(typeUrl));
  if (!type) {
    ctx.errors.push({ path: joinPath(path, '@type'), message: `unknown message type "${messageNameOf(typeUrl)}": it is not one of the loaded Envoy protos` });
    return { '@type': typeUrl };
  }
  let inner: Wire;
  try {
    inner = type.decode((m.value as Uint8Array | undefined) ?? new Uint8Array(0)) as unknown as Wire;
  } catch (err) {
    ctx.errors.push({ path, message: `cannot decode ${messageNameOf(typeUrl)}: ${(err as Error).message}` });
    return { '@type': typeUrl };
  }
  const kind = messageKind(type);
  if (kind.tag === 'message' && kind.wkt !== undefined) return { '@type': typeUrl, value: valueToJson(kind, inner, joinPath(path, 'value'), ctx) };
  return { '@type': typeUrl, ...messageToJson(planOf(type), inner, path, ctx) };
}
