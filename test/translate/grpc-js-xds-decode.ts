// Runs weft's resources through grpc-js-xds's own resource decoders (the
// code a proxyless gRPC app runs on every xDS response): encoded with weft's
// Envoy codec, decoded and validated by grpc-js-xds. Returns grpc-js-xds's
// NACK messages; [] means a gRPC client would accept everything.

import { ListenerResourceType } from '@grpc/grpc-js-xds/build/src/xds-resource-type/listener-resource-type.js';
import { RouteConfigurationResourceType } from '@grpc/grpc-js-xds/build/src/xds-resource-type/route-config-resource-type.js';
import { ClusterResourceType } from '@grpc/grpc-js-xds/build/src/xds-resource-type/cluster-resource-type.js';
import { EndpointResourceType } from '@grpc/grpc-js-xds/build/src/xds-resource-type/endpoint-resource-type.js';
import { register } from '@grpc/grpc-js-xds';
import type { EnvoyResource } from '../../control/translate/index.ts';

export type Encode = (typeUrl: string, json: unknown) => { bytes: Uint8Array } | { errors: { path: string; message: string }[] };

// Registers grpc-js-xds's HTTP filters (router, fault) and LB policies, as an app using xds:/// does.
register();

// The decoders read only the bootstrap's certificate providers and the server (for LRS).
const context = { server: {}, bootstrap: { certificateProviders: {} } } as never;

interface Decoder { decode(context: never, resource: never): { name: string; value?: unknown; error?: string } }
const DECODERS: Record<string, Decoder> = {
  'type.googleapis.com/envoy.config.listener.v3.Listener': ListenerResourceType.get() as unknown as Decoder,
  'type.googleapis.com/envoy.config.route.v3.RouteConfiguration': RouteConfigurationResourceType.get() as unknown as Decoder,
  'type.googleapis.com/envoy.config.cluster.v3.Cluster': ClusterResourceType.get() as unknown as Decoder,
  'type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment': EndpointResourceType.get() as unknown as Decoder,
};

export function grpcXdsRejections(encode: Encode, typeUrl: string, resources: EnvoyResource[]): string[] {
  const decoder = DECODERS[typeUrl];
  if (!decoder) throw new Error(`no grpc-js-xds decoder for ${typeUrl}`);
  const problems: string[] = [];
  for (const resource of resources) {
    const encoded = encode(typeUrl, resource.value);
    if (!('bytes' in encoded)) {
      problems.push(`${resource.name}: codec refused: ${JSON.stringify(encoded.errors)}`);
      continue;
    }
    const decoded = decoder.decode(context, { type_url: typeUrl, value: Buffer.from(encoded.bytes) } as never);
    if (decoded.error !== undefined) problems.push(`${resource.name}: ${decoded.error}`);
    // Accepted but useless: gRPC silently drops a locality without a weight.
    const cla = decoded.value as { endpoints?: { load_balancing_weight?: { value: number } | null }[] } | undefined;
    if (cla?.endpoints?.some((l) => !l.load_balancing_weight?.value)) problems.push(`${resource.name}: a locality has no load_balancing_weight, gRPC ignores it`);
  }
  return problems;
}
