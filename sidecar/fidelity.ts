// The fidelity contract: the subset of Envoy's xDS API the weft sidecar
// implements (docs/sidecar.md lists it). Every resource is decoded through
// here; anything outside the subset (an unknown filter or typed_config, an
// unsupported field set to a non-default value) comes back as errors with
// field paths, which the xDS client turns into a NACK while the previous
// config keeps serving.

import type { ClusterConfig, ClusterLoadAssignmentConfig, ExtensionConfig, ListenerConfig, RouteConfig, SecretConfig } from './config.ts';
import { decodeCluster } from './fidelity/cluster.ts';
import { decodeClusterLoadAssignment } from './fidelity/endpoint.ts';
import { decodeExtensionConfig } from './fidelity/extension.ts';
import type { FieldError } from './fidelity/fields.ts';
import { decodeListener } from './fidelity/listener.ts';
import { decodeRouteConfiguration } from './fidelity/route.ts';
import { decodeSecret } from './fidelity/secret.ts';

export type { FieldError } from './fidelity/fields.ts';

export const TYPE_URLS = {
  listener: 'type.googleapis.com/envoy.config.listener.v3.Listener',
  route: 'type.googleapis.com/envoy.config.route.v3.RouteConfiguration',
  cluster: 'type.googleapis.com/envoy.config.cluster.v3.Cluster',
  endpoint: 'type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment',
  extension: 'type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig',
  secret: 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret',
} as const;

export type ResourceKind = keyof typeof TYPE_URLS;

export interface DecodedByKind {
  listener: ListenerConfig;
  route: RouteConfig;
  cluster: ClusterConfig;
  endpoint: ClusterLoadAssignmentConfig;
  extension: ExtensionConfig;
  secret: SecretConfig;
}

export type Accepted<K extends ResourceKind> = { ok: true; value: DecodedByKind[K] } | { ok: false; errors: FieldError[] };

const DECODERS: { [K in ResourceKind]: (v: unknown, e: FieldError[]) => DecodedByKind[K] | undefined } = {
  listener: decodeListener,
  route: (v, e) => decodeRouteConfiguration(v, e),
  cluster: decodeCluster,
  endpoint: decodeClusterLoadAssignment,
  extension: decodeExtensionConfig,
  secret: decodeSecret,
};

/** Decodes one resource (Envoy proto3 JSON) of `kind`, or reports every field outside the contract. */
export function accept<K extends ResourceKind>(kind: K, value: unknown): Accepted<K> {
  const errors: FieldError[] = [];
  const decoded = DECODERS[kind](value, errors);
  if (errors.length > 0 || decoded === undefined) {
    return { ok: false, errors: errors.length ? errors : [{ path: '', message: 'could not be decoded' }] };
  }
  return { ok: true, value: decoded };
}

export function kindOfTypeUrl(typeUrl: string): ResourceKind | undefined {
  for (const [k, v] of Object.entries(TYPE_URLS)) if (v === typeUrl) return k as ResourceKind;
  return undefined;
}
