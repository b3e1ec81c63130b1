// What a TLS connection tells the access log, as Envoy's Ssl::ConnectionInfo
// gives it to the formatter's TLS operators (source/common/formatter/
// stream_info_formatter.cc: %DOWNSTREAM_PEER_URI_SAN%, %DOWNSTREAM_TLS_VERSION%,
// %UPSTREAM_PEER_SUBJECT%, ...; source/common/tls/connection_info_impl_base.cc):
// SANs of one kind joined with ",", subjects and issuers in RFC 2253 order,
// lower-case hex digests and serial numbers (BoringSSL's BN_bn2hex), the
// protocol and cipher names OpenSSL and BoringSSL share ("TLSv1.3",
// "TLS_AES_128_GCM_SHA256", "ECDHE-RSA-AES128-GCM-SHA256").
//
// A connection's certificates do not change: read once per socket, the first
// time a format asks, and kept with the socket (WeakMap).

import { createHash, X509Certificate } from 'node:crypto';

/** One TLS connection's facts; '' where the connection has none (the formatter then gives none). */
export interface TlsInfo {
  readonly version: string;
  readonly cipher: string;
  readonly peerUriSan: string;
  readonly peerDnsSan: string;
  readonly peerIpSan: string;
  readonly peerEmailSan: string;
  readonly peerSubject: string;
  readonly peerIssuer: string;
  readonly peerSerial: string;
  readonly peerSha256: string;
  readonly peerSha1: string;
  /** The peer certificate in PEM, percent-encoded as Envoy's urlEncodedPemEncodedPeerCertificate (%DOWNSTREAM_PEER_CERT%). */
  readonly peerCertEncoded: string;
  /** The peer certificate's validity, ms since the epoch; undefined without a peer certificate. */
  readonly peerValidFrom: number | undefined;
  readonly peerValidTo: number | undefined;
  readonly localUriSan: string;
  readonly localDnsSan: string;
  readonly localIpSan: string;
  readonly localEmailSan: string;
  readonly localSubject: string;
}

interface Cert {
  subjectaltname?: string;
  raw?: Buffer;
  valid_from?: string;
  valid_to?: string;
}

type TlsSocketLike = {
  encrypted?: boolean;
  getProtocol?: () => string | null;
  getCipher?: () => { name?: string } | null;
  getPeerCertificate?: () => Cert | null;
  getCertificate?: () => Cert | null;
};

const cache = new WeakMap<object, TlsInfo>();

/** The SANs of one kind ("URI:", "DNS:", "IP Address:", "email:") in the certificate's order, joined with ",". */
function sans(cert: Cert | null | undefined, prefix: string): string {
  const all = cert?.subjectaltname;
  if (!all) return '';
  const out: string[] = [];
  for (const entry of all.split(', ')) if (entry.startsWith(prefix)) out.push(entry.slice(prefix.length));
  return out.join(',');
}

/** A distinguished name as X509_NAME_print_ex with XN_FLAG_RFC2253 prints it: most specific first, comma-separated. */
function rfc2253(name: string): string {
  return name.split('\n').filter((l) => l !== '').reverse().join(',');
}

function x509(cert: Cert | null | undefined): X509Certificate | undefined {
  if (!cert?.raw || cert.raw.length === 0) return undefined;
  try {
    return new X509Certificate(cert.raw);
  } catch {
    return undefined;
  }
}

/**
 * Envoy's Http::Utility::PercentEncoding::urlEncode, which it applies to a PEM: every byte but ALPHA, DIGIT, '*',
 * '-', '.' and '_' as %XX in upper-case hex (so "-----BEGIN%20CERTIFICATE-----%0A...").
 */
export function urlEncode(text: string): string {
  let out = '';
  for (const byte of Buffer.from(text, 'utf8')) {
    const keep = (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5a) || (byte >= 0x61 && byte <= 0x7a) || byte === 0x2a || byte === 0x2d || byte === 0x2e || byte === 0x5f;
    out += keep ? String.fromCharCode(byte) : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

function dateOf(text: string | undefined): number | undefined {
  if (!text) return undefined;
  const ms = Date.parse(text);
  return Number.isNaN(ms) ? undefined : ms;
}

/**
 * The TLS facts of `socket` (a tls.TLSSocket, or an HTTP/2 session's socket
 * proxy); undefined on a plaintext connection. Read while the socket is open:
 * a closed one no longer answers.
 */
export function tlsInfo(socket: unknown): TlsInfo | undefined {
  const s = socket as TlsSocketLike | undefined;
  if (s === undefined || s === null || s.encrypted !== true || typeof s.getPeerCertificate !== 'function') return undefined;
  const cached = cache.get(s);
  if (cached !== undefined) return cached;
  const peer = s.getPeerCertificate();
  const local = s.getCertificate?.() ?? null;
  const peerX509 = x509(peer);
  const localX509 = x509(local);
  const info: TlsInfo = {
    version: s.getProtocol?.() ?? '',
    cipher: s.getCipher?.()?.name ?? '',
    peerUriSan: sans(peer, 'URI:'),
    peerDnsSan: sans(peer, 'DNS:'),
    peerIpSan: sans(peer, 'IP Address:'),
    peerEmailSan: sans(peer, 'email:'),
    peerSubject: peerX509 ? rfc2253(peerX509.subject) : '',
    peerIssuer: peerX509 ? rfc2253(peerX509.issuer) : '',
    // BoringSSL's BN_bn2hex is lower case; node's (OpenSSL's) upper.
    peerSerial: peerX509 ? peerX509.serialNumber.toLowerCase() : '',
    peerSha256: peer?.raw?.length ? createHash('sha256').update(peer.raw).digest('hex') : '',
    peerSha1: peer?.raw?.length ? createHash('sha1').update(peer.raw).digest('hex') : '',
    peerCertEncoded: peerX509 ? urlEncode(peerX509.toString()) : '',
    peerValidFrom: peerX509 ? dateOf(peer?.valid_from) : undefined,
    peerValidTo: peerX509 ? dateOf(peer?.valid_to) : undefined,
    localUriSan: sans(local, 'URI:'),
    localDnsSan: sans(local, 'DNS:'),
    localIpSan: sans(local, 'IP Address:'),
    localEmailSan: sans(local, 'email:'),
    localSubject: localX509 ? rfc2253(localX509.subject) : '',
  };
  cache.set(s, info);
  return info;
}
