// Inbound mTLS: with identity on, the inbound listener's filter chain
// requires a client certificate from the mesh CA (STRICT); PERMISSIVE adds
// tls_inspector and a second, plaintext chain matched on transport_protocol
// raw_buffer, so both kinds of caller are served during a migration;
// DISABLE leaves the listener plaintext. The certificate and trust bundle
// come over SDS.

import type { Service } from '../../model/types.ts';
import type { TranslationContext } from '../context.ts';
import type { Json } from '../envoy-json.ts';
import { trustBundleRef, workloadCertificateRef } from '../secrets.ts';
import { TLS_TRANSPORT_SOCKET } from './cluster-mtls.ts';
import { peerAuthenticationMode } from './mtls-mode.ts';

export const DOWNSTREAM_TLS_CONTEXT = 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext';
export const TLS_INSPECTOR = 'type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector';

export function downstreamTlsSocket(): Json {
  return {
    name: TLS_TRANSPORT_SOCKET,
    typed_config: {
      '@type': DOWNSTREAM_TLS_CONTEXT,
      require_client_certificate: true,
      common_tls_context: {
        tls_certificate_sds_secret_configs: [workloadCertificateRef()],
        validation_context_sds_secret_config: trustBundleRef(),
        // As Istio's inbound: the caller's ALPN picks the protocol. Without it an Envoy callee negotiates none,
        // and an HTTP/2 client that requires "h2" over TLS (gRPC, the weft sidecar's HTTP/2 pool) cannot talk to it.
        alpn_protocols: ['h2', 'http/1.1'],
      },
    },
  };
}

/** Rewrites the inbound listener's single plaintext chain for the service's mTLS mode. */
export function applyInboundMtls(listener: Json, self: Service, ctx: TranslationContext): void {
  if (!ctx.options.identity) return;
  const mode = peerAuthenticationMode(ctx.model, self);
  if (mode === 'DISABLE') return;
  const [chain] = listener.filter_chains as Json[];
  const tls: Json = { ...chain, transport_socket: downstreamTlsSocket() };
  if (mode === 'STRICT') {
    listener.filter_chains = [tls];
    return;
  }
  listener.listener_filters = [{ name: 'envoy.filters.listener.tls_inspector', typed_config: { '@type': TLS_INSPECTOR } }];
  listener.filter_chains = [
    { filter_chain_match: { transport_protocol: 'tls' }, ...tls },
    { filter_chain_match: { transport_protocol: 'raw_buffer' }, ...chain },
  ];
}
