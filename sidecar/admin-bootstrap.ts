// The weft sidecar's bootstrap as Envoy's /config_dump shows one
// (envoy.admin.v3.BootstrapConfigDump): the node it sends the control plane
// (id, cluster, the metadata the control plane reads, user_agent_name), where
// its config comes from (ADS to the --xds address, Delta or, with --sotw,
// state of the world), its static clusters (the xDS server, an OTLP collector)
// and the admin address. What `istioctl proxy-config bootstrap` prints, and
// what an operator reads first to see which control plane a proxy talks to.
// The join token in the metadata is a credential: it is shown [redacted].

import { XDS_CLUSTER_NAME } from '../proxy-config/options.ts';

type Json = Record<string, unknown>;

export interface SidecarBootstrap {
  node: { id: string; cluster: string; metadata: Readonly<Record<string, string>> };
  /** host:port of the control plane's ADS (--xds). */
  xds: string;
  /** State-of-the-world ADS (--sotw) rather than Delta. */
  sotw: boolean;
  adminPort: number;
  /** The OTLP collectors the tracer may export to (--otel-collector), by bootstrap cluster name. */
  collectors: ReadonlyMap<string, { host: string; port: number }>;
  /** When the sidecar started: the bootstrap's last_updated. */
  startedAt: Date;
  /** The runtime's layers (--layered-runtime, or the default ones), as the bootstrap's layered_runtime. */
  layeredRuntime?: Json;
}

/** Node metadata keys whose values are credentials. */
const SECRET_METADATA = new Set(['WEFT_TOKEN']);
/** What the sidecar sends as node.user_agent_name (sidecar/xds-client.ts). */
export const USER_AGENT_NAME = 'weft-sidecar';

/** The node as the sidecar sends it, its credentials [redacted] (admin /server_info and the bootstrap dump). */
export function nodeJson(b: SidecarBootstrap): Json {
  const metadata = Object.fromEntries(Object.entries(b.node.metadata).map(([k, v]) => [k, SECRET_METADATA.has(k) ? '[redacted]' : v]));
  return { id: b.node.id, cluster: b.node.cluster, metadata, user_agent_name: USER_AGENT_NAME };
}

function socketAddress(host: string, port: number): Json {
  return { socket_address: { address: host.replace(/^\[|\]$/g, ''), port_value: port } };
}

/** A one-host HTTP/2 (gRPC) cluster: STATIC for an IP, LOGICAL_DNS for a name, as weft's Envoy bootstraps write them. */
function grpcCluster(name: string, host: string, port: number): Json {
  const ip = /^\d{1,3}(\.\d{1,3}){3}$/.test(host) || host.replace(/^\[|\]$/g, '').includes(':');
  return {
    name,
    type: ip ? 'STATIC' : 'LOGICAL_DNS',
    load_assignment: { cluster_name: name, endpoints: [{ lb_endpoints: [{ endpoint: { address: socketAddress(host, port) } }] }] },
    typed_extension_protocol_options: {
      'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': {
        '@type': 'type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions',
        explicit_http_config: { http2_protocol_options: {} },
      },
    },
  };
}

/** The BootstrapConfigDump config (the first of /config_dump's). */
export function bootstrapConfigDump(b: SidecarBootstrap): Json {
  const xds = /^(.+):(\d+)$/.exec(b.xds);
  const clusters = [
    ...(xds ? [grpcCluster(XDS_CLUSTER_NAME, xds[1]!, Number(xds[2]))] : []),
    ...[...b.collectors].map(([name, c]) => grpcCluster(name, c.host, c.port)),
  ];
  const ads = { ads: {}, resource_api_version: 'V3' };
  return {
    '@type': 'type.googleapis.com/envoy.admin.v3.BootstrapConfigDump',
    bootstrap: {
      node: nodeJson(b),
      dynamic_resources: {
        ads_config: { api_type: b.sotw ? 'GRPC' : 'DELTA_GRPC', transport_api_version: 'V3', grpc_services: [{ envoy_grpc: { cluster_name: XDS_CLUSTER_NAME } }], set_node_on_first_message_only: true },
        cds_config: ads,
        lds_config: ads,
      },
      static_resources: { clusters },
      admin: { address: socketAddress('127.0.0.1', b.adminPort) },
      ...(b.layeredRuntime ? { layered_runtime: b.layeredRuntime } : {}),
    },
    last_updated: b.startedAt.toISOString(),
  };
}
