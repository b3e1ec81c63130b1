// Glue between the public API and the walkers: cached type lookup, one validation
// walk, one decode.
import protobuf from 'protobufjs';
import { messageToJson } from './decode.ts';
import type { DecodeContext } from './decode.ts';
import { EnvoyCodecError } from './errors.ts';
import type { FieldError } from './errors.ts';
import { readMessage } from './json.ts';
import type { WalkContext } from './json.ts';
import { planOf } from './plan.ts';
import { envoyRoot } from './protos.ts';

const types = new Map<string, protobuf.Type | null>();

/** The loaded message type called `fullName` (no leading dot), or undefined. */
export function lookupMessage(fullName: string): protobuf.Type | undefined {
  let type = types.get(fullName);
  if (type === undefined) {
    const found = fullName === '' ? null : envoyRoot().lookup(fullName);
    type = found instanceof protobuf.Type ? found : null;
    types.set(fullName, type);
  }
  return type ?? undefined;
}

export function walk(type: protobuf.Type, json: unknown, build: boolean): { errors: FieldError[]; wire: unknown } {
  const ctx: WalkContext = { errors: [], build, rulesOff: 0, lookup: lookupMessage };
  const wire = readMessage(planOf(type), json, '', ctx);
  return { errors: ctx.errors, wire };
}

export function decodeResourceWith(fullName: string, bytes: Uint8Array): unknown {
  const type = lookupMessage(fullName);
  if (!type) throw new EnvoyCodecError(fullName, [{ path: '', message: `unknown message type "${fullName}": it is not one of the loaded Envoy protos` }]);
  let msg: Record<string, unknown>;
  try {
    msg = type.decode(bytes) as unknown as Record<string, unknown>;
  } catch (err) {
    throw new EnvoyCodecError(fullName, [{ path: '', message: `cannot decode: ${(err as Error).message}` }]);
  }
  const ctx: DecodeContext = { errors: [], lookup: lookupMessage };
  const json = messageToJson(planOf(type), msg, '', ctx);
  if (ctx.errors.length > 0) throw new EnvoyCodecError(fullName, ctx.errors);
  return json;
}
