// weft's Envoy codec: Envoy's proto3 JSON (snake_case) <-> protobuf bytes, with strict
// validation (unknown fields, types, oneofs, protoc-gen-validate rules) on the way in.
// Every resource passes validateResource before any snapshot is published.
import protobuf from 'protobufjs';
import { decodeResourceWith, lookupMessage, walk } from './codec.ts';
import { EnvoyCodecError } from './errors.ts';
import type { FieldError } from './errors.ts';
import { INVALID } from './scalars.ts';
import { envoyRoot } from './protos.ts';
import { messageNameOf, typeUrlOf } from './type-urls.ts';

export { TypeUrl, messageNameOf, typeUrlOf } from './type-urls.ts';
export type { ResourceTypeUrl } from './type-urls.ts';
export { EnvoyCodecError, formatErrors } from './errors.ts';
export type { FieldError } from './errors.ts';
export { envoyRoot, protoLoadMillis, PROTO_FILES } from './protos.ts';

function unknownType(fullName: string): FieldError[] {
  return [{ path: '', message: `unknown message type "${fullName}": it is not one of the loaded Envoy protos` }];
}

/** Every problem with `json` as a `fullName` message; [] means valid. */
export function validateMessage(fullName: string, json: unknown): FieldError[] {
  const type = lookupMessage(fullName);
  if (!type) return unknownType(fullName);
  return walk(type, json, false).errors;
}

/** validateMessage for an xDS resource named by its type URL. */
export function validateResource(typeUrl: string, json: unknown): FieldError[] {
  return validateMessage(messageNameOf(typeUrl), json);
}

/** Validates, then encodes; never encodes an invalid resource. */
export function encodeResource(typeUrl: string, json: unknown): { bytes: Uint8Array } | { errors: FieldError[] } {
  const type = lookupMessage(messageNameOf(typeUrl));
  if (!type) return { errors: unknownType(messageNameOf(typeUrl)) };
  const { errors, wire } = walk(type, json, true);
  if (errors.length > 0 || wire === INVALID) return { errors };
  return { bytes: type.encode(wire as Record<string, unknown>).finish() };
}

/** Encodes a message that must be valid (e.g. a generated bootstrap); throws EnvoyCodecError otherwise. */
export function encodeMessage(fullName: string, json: unknown): Uint8Array {
  const result = encodeResource(typeUrlOf(fullName), json);
  if ('errors' in result) throw new EnvoyCodecError(fullName, result.errors);
  return result.bytes;
}

/** Bytes -> proto3 JSON; throws EnvoyCodecError for bytes that do not decode or an Any of an unknown type. */
export function decodeMessage(fullName: string, bytes: Uint8Array): unknown {
  return decodeResourceWith(fullName, bytes);
}

export function decodeResource(typeUrl: string, bytes: Uint8Array): unknown {
  return decodeResourceWith(messageNameOf(typeUrl), bytes);
}

/** A validated resource packed as a google.protobuf.Any ({type_url, value}), as DiscoveryResponse.resources holds it. */
export function packResource(typeUrl: string, json: unknown): { any: { type_url: string; value: Uint8Array } } | { errors: FieldError[] } {
  const result = encodeResource(typeUrl, json);
  if ('errors' in result) return result;
  return { any: { type_url: typeUrl, value: result.bytes } };
}

export interface DiscoveryTypes {
  DiscoveryRequest: protobuf.Type;
  DiscoveryResponse: protobuf.Type;
  DeltaDiscoveryRequest: protobuf.Type;
  DeltaDiscoveryResponse: protobuf.Type;
  Resource: protobuf.Type;
  Any: protobuf.Type;
}

let discovery: DiscoveryTypes | undefined;

/** protobufjs Types of the ADS messages (envoy.service.discovery.v3), for the xDS server and clients. */
export function discoveryTypes(): DiscoveryTypes {
  if (!discovery) {
    const root = envoyRoot();
    const t = (name: string): protobuf.Type => root.lookupType(name);
    discovery = {
      DiscoveryRequest: t('envoy.service.discovery.v3.DiscoveryRequest'),
      DiscoveryResponse: t('envoy.service.discovery.v3.DiscoveryResponse'),
      DeltaDiscoveryRequest: t('envoy.service.discovery.v3.DeltaDiscoveryRequest'),
      DeltaDiscoveryResponse: t('envoy.service.discovery.v3.DeltaDiscoveryResponse'),
      Resource: t('envoy.service.discovery.v3.Resource'),
      Any: t('google.protobuf.Any'),
    };
  }
  return discovery;
}
