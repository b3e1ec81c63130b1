// The ADS wire messages (DiscoveryRequest/Response and their Delta variants),
// from control/envoy's protobufjs root (Envoy's protos from @grpc/grpc-js-xds).
// The server needs only the envelopes: resources travel as pre-encoded bytes
// inside google.protobuf.Any, so nothing here knows any resource's schema.
import type protobuf from 'protobufjs';

export const TypeUrl = {
  cluster: 'type.googleapis.com/envoy.config.cluster.v3.Cluster',
  endpoint: 'type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment',
  listener: 'type.googleapis.com/envoy.config.listener.v3.Listener',
  route: 'type.googleapis.com/envoy.config.route.v3.RouteConfiguration',
  extensionConfig: 'type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig',
  secret: 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret',
} as const;
export type TypeUrl = (typeof TypeUrl)[keyof typeof TypeUrl];

/**
 * Make before break: the order in which one change is pushed to a proxy.
 * Clusters first (a route must never name a cluster the proxy lacks), their
 * endpoints next (warming), extension configs before the listeners that
 * reference them, listeners, then routes. Secrets go first: clusters and
 * listeners may reference them.
 */
export const PUSH_ORDER: readonly string[] = [
  TypeUrl.secret,
  TypeUrl.cluster,
  TypeUrl.endpoint,
  TypeUrl.extensionConfig,
  TypeUrl.listener,
  TypeUrl.route,
];

/** Types whose SotW responses always carry every resource (wildcard by default). */
export const WILDCARD_TYPES: ReadonlySet<string> = new Set([TypeUrl.cluster, TypeUrl.listener]);

/**
 * google.protobuf.Value as decoded. protobufjs's built-in struct.proto names
 * its fields in camelCase (stringValue), unlike the Envoy protos (keepCase),
 * so that is the wire spelling here; snake_case is accepted for hand-built
 * nodes.
 */
export interface StructValue {
  nullValue?: unknown;
  numberValue?: number;
  stringValue?: string;
  boolValue?: boolean;
  structValue?: { fields?: Record<string, StructValue> };
  listValue?: { values?: StructValue[] };
  null_value?: unknown;
  number_value?: number;
  string_value?: string;
  bool_value?: boolean;
  struct_value?: { fields?: Record<string, StructValue> };
  list_value?: { values?: StructValue[] };
}

export interface XdsNode {
  id?: string;
  cluster?: string;
  metadata?: { fields?: Record<string, StructValue> };
  user_agent_name?: string;
  client_features?: string[];
}

export interface RpcStatus {
  code?: number;
  message?: string;
}

export interface DiscoveryRequest {
  version_info?: string;
  node?: XdsNode;
  resource_names?: string[];
  type_url?: string;
  response_nonce?: string;
  error_detail?: RpcStatus;
}

export interface AnyMessage {
  type_url: string;
  value: Uint8Array;
}

export interface DiscoveryResponse {
  version_info: string;
  resources: AnyMessage[];
  type_url: string;
  nonce: string;
}

export interface DeltaDiscoveryRequest {
  node?: XdsNode;
  type_url?: string;
  resource_names_subscribe?: string[];
  resource_names_unsubscribe?: string[];
  initial_resource_versions?: Record<string, string>;
  response_nonce?: string;
  error_detail?: RpcStatus;
}

export interface DeltaResource {
  name: string;
  version: string;
  resource: AnyMessage;
}

export interface DeltaDiscoveryResponse {
  system_version_info: string;
  resources: DeltaResource[];
  type_url: string;
  removed_resources: string[];
  nonce: string;
}

/** protobufjs Types of the ADS envelopes, shared with control/envoy's proto root. */
export { discoveryTypes } from '../envoy/index.ts';

const DECODE_OPTIONS: protobuf.IConversionOptions = { longs: Number, enums: String, bytes: Buffer, defaults: false, arrays: true, objects: true };

export function decodeMessage<T>(type: protobuf.Type, bytes: Uint8Array): T {
  return type.toObject(type.decode(bytes), DECODE_OPTIONS) as T;
}

export function encodeMessage(type: protobuf.Type, message: object): Buffer {
  const bytes = type.encode(type.fromObject(message)).finish();
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}
