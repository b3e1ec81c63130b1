// The caller's identity on an inbound connection: the URI SAN (SPIFFE ID) of
// the client certificate a mutual TLS handshake verified. Exposed to wasm
// filters as Envoy does, through `connection.uri_san_peer_certificate`, and
// read by the RBAC filter for principals.

/** Envoy's attribute for the peer certificate's first URI SAN. */
export const PEER_PRINCIPAL_PROPERTY = 'connection.uri_san_peer_certificate';
/** Envoy's attribute: whether the connection is mutual TLS. */
export const MTLS_PROPERTY = 'connection.mtls';

/** The URI SANs of a peer certificate ("URI:spiffe://..., DNS:..." -> ["spiffe://..."]). */
export function uriSans(cert: { subjectaltname?: string } | undefined): string[] {
  const san = cert?.subjectaltname;
  if (!san) return [];
  return san.split(/,\s*/).filter((s) => s.startsWith('URI:')).map((s) => s.slice(4));
}

/** The peer's identity on a TLS socket (first URI SAN), or undefined for plaintext or no certificate. */
export function peerPrincipal(socket: unknown): string | undefined {
  const s = socket as { encrypted?: boolean; authorized?: boolean; getPeerCertificate?: () => { subjectaltname?: string } } | undefined;
  if (!s?.encrypted || !s.authorized || typeof s.getPeerCertificate !== 'function') return undefined;
  return uriSans(s.getPeerCertificate())[0];
}

/** Stream properties describing the connection's peer (empty for plaintext). */
export function peerProperties(socket: unknown): Record<string, string | boolean> {
  const principal = peerPrincipal(socket);
  return principal === undefined ? {} : { [PEER_PRINCIPAL_PROPERTY]: principal, [MTLS_PROPERTY]: true };
}
