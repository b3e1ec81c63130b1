// Outbound mTLS: when identity is on, a cluster to a service whose inbound
// side accepts mTLS (STRICT or PERMISSIVE) presents this workload's
// certificate and accepts only a server certificate from the mesh CA whose
// URI SAN is the destination's SPIFFE ID. A DISABLE destination is called
// in plaintext. Proxyless gRPC clients get no SDS (grpc-js-xds has none), so
// their clusters stay plaintext.

import { registerClusterFeature } from '../registry.ts';
import type { Json } from '../envoy-json.ts';
import { trustBundleRef, workloadCertificateRef } from '../secrets.ts';
import { peerAuthenticationMode, spiffeIdOf } from './mtls-mode.ts';

export const TLS_TRANSPORT_SOCKET = 'envoy.transport_sockets.tls';
export const UPSTREAM_TLS_CONTEXT = 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext';

export function upstreamTlsSocket(serverSpiffeId: string): Json {
  return {
    name: TLS_TRANSPORT_SOCKET,
    typed_config: {
      '@type': UPSTREAM_TLS_CONTEXT,
      common_tls_context: {
        tls_certificate_sds_secret_configs: [workloadCertificateRef()],
        combined_validation_context: {
          default_validation_context: { match_typed_subject_alt_names: [{ san_type: 'URI', matcher: { exact: serverSpiffeId } }] },
          validation_context_sds_secret_config: trustBundleRef(),
        },
      },
    },
  };
}

registerClusterFeature('mtls', (cluster, target, ctx) => {
  const identity = ctx.options.identity;
  if (!identity || ctx.proxy.kind !== 'sidecar') return;
  if (peerAuthenticationMode(ctx.model, target.service) === 'DISABLE') return;
  cluster.transport_socket = upstreamTlsSocket(spiffeIdOf(identity.trustDomain, target.service));
});
