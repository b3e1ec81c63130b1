// Type URLs of the resources weft serves over xDS, and the mapping between a type
// URL and the protobuf message it names.

const PREFIX = 'type.googleapis.com/';

export const TypeUrl = {
  Listener: 'type.googleapis.com/envoy.config.listener.v3.Listener',
  RouteConfiguration: 'type.googleapis.com/envoy.config.route.v3.RouteConfiguration',
  ScopedRouteConfiguration: 'type.googleapis.com/envoy.config.route.v3.ScopedRouteConfiguration',
  VirtualHost: 'type.googleapis.com/envoy.config.route.v3.VirtualHost',
  Cluster: 'type.googleapis.com/envoy.config.cluster.v3.Cluster',
  ClusterLoadAssignment: 'type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment',
  Secret: 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret',
  ExtensionConfig: 'type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig',
  Runtime: 'type.googleapis.com/envoy.service.runtime.v3.Runtime',
} as const;

export type ResourceTypeUrl = (typeof TypeUrl)[keyof typeof TypeUrl];

/** 'type.googleapis.com/a.b.C' -> 'a.b.C'. Any host prefix is accepted, as in Envoy. */
export function messageNameOf(typeUrl: string): string {
  return typeUrl.slice(typeUrl.lastIndexOf('/') + 1);
}

/** 'a.b.C' -> 'type.googleapis.com/a.b.C'. */
export function typeUrlOf(fullName: string): string {
  return PREFIX + (fullName.startsWith('.') ? fullName.slice(1) : fullName);
}
