// The caller's identity on an inbound connection: the client certificate a
// mutual TLS handshake verified. Exposed to wasm filters as Envoy does
// (`connection.mtls`, and `connection.uri_san_peer_certificate`, the first
// URI SAN: the SPIFFE ID of a mesh workload), and read by the RBAC filter,
// whose principals match, as Envoy's AuthenticatedMatcher does, any URI SAN,
// else any DNS SAN, else the subject.

import { createHash, X509Certificate } from 'node:crypto';

/** Envoy's attribute for the peer certificate's first URI SAN. */
export const PEER_PRINCIPAL_PROPERTY = 'connection.uri_san_peer_certificate';
/** Envoy's attribute: whether the connection is mutual TLS. */
export const MTLS_PROPERTY = 'connection.mtls';

/** What RBAC principals match of a verified client certificate. */
export interface PeerCertificate {
  uriSans: string[];
  dnsSans: string[];
  /** RFC 2253 order, as Envoy prints it: `CN=web,O=acme`. */
  subject: string;
  /** SHA-256 of the certificate's DER, lower-case hex (x-forwarded-client-cert's Hash). */
  hash?: string;
  /** The URI SAN of this proxy's own certificate on the connection (x-forwarded-client-cert's By). */
  by?: string;
}

function sansOf(san: string | undefined, prefix: 'URI:' | 'DNS:'): string[] {
  if (!san) return [];
  return san.split(/,\s*/).filter((s) => s.startsWith(prefix)).map((s) => s.slice(prefix.length));
}

/** The URI SANs of a peer certificate ("URI:spiffe://..., DNS:..." -> ["spiffe://..."]). */
export function uriSans(cert: { subjectaltname?: string } | undefined): string[] {
  return sansOf(cert?.subjectaltname, 'URI:');
}

type PeerSocket = { encrypted?: boolean; authorized?: boolean; getPeerCertificate?: () => { subjectaltname?: string; raw?: Buffer }; getCertificate?: () => { subjectaltname?: string } | null };

// A connection's certificate does not change: read it once per socket, not per request.
const seen = new WeakMap<object, PeerCertificate | null>();

/** The verified client certificate of a mutual TLS connection; undefined for plaintext or no certificate. */
export function peerCertificate(socket: unknown): PeerCertificate | undefined {
  const s = socket as PeerSocket | undefined;
  if (!s?.encrypted || !s.authorized || typeof s.getPeerCertificate !== 'function') return undefined;
  const cached = seen.get(s);
  if (cached !== undefined) return cached ?? undefined;
  const cert = s.getPeerCertificate();
  let peer: PeerCertificate | null = null;
  if (cert?.raw) {
    const subject = new X509Certificate(cert.raw).subject.split('\n').filter((l) => l !== '').reverse().join(',');
    const by = uriSans(s.getCertificate?.() ?? undefined)[0];
    peer = { uriSans: uriSans(cert), dnsSans: sansOf(cert.subjectaltname, 'DNS:'), subject, hash: createHash('sha256').update(cert.raw).digest('hex'), ...(by ? { by } : {}) };
  }
  seen.set(s, peer);
  return peer ?? undefined;
}

/** The peer's identity on a TLS socket (first URI SAN), or undefined for plaintext or no URI SAN. */
export function peerPrincipal(socket: unknown): string | undefined {
  return peerCertificate(socket)?.uriSans[0];
}

/** Stream properties describing the connection's peer (empty for plaintext). */
export function peerProperties(socket: unknown): Record<string, string | boolean> {
  const peer = peerCertificate(socket);
  if (!peer) return {};
  const principal = peer.uriSans[0];
  return principal === undefined ? { [MTLS_PROPERTY]: true } : { [PEER_PRINCIPAL_PROPERTY]: principal, [MTLS_PROPERTY]: true };
}

/**
 * x-forwarded-client-cert for a verified peer, as Envoy's SANITIZE_SET writes
 * it: `By` (this proxy's URI SAN) and `Hash`, then the fields asked for, in
 * Envoy's order; a subject is quoted; one URI/DNS element per SAN.
 */
export function forwardedClientCert(peer: PeerCertificate, fields: { subject: boolean; uri: boolean; dns: boolean }): string {
  const parts: string[] = [];
  if (peer.by) parts.push(`By=${peer.by}`);
  if (peer.hash) parts.push(`Hash=${peer.hash}`);
  if (fields.subject) parts.push(`Subject="${peer.subject.replace(/(["\\])/g, '\\$1')}"`);
  if (fields.uri) for (const u of peer.uriSans) parts.push(`URI=${u}`);
  if (fields.dns) for (const d of peer.dnsSans) parts.push(`DNS=${d}`);
  return parts.join(';');
}
