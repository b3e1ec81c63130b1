// Admin /certs as Envoy writes it (envoy.admin.v3.Certificates): for each
// TLS context the proxy uses, its trust bundle (ca_cert) and the chain it
// presents (cert_chain), each certificate with its serial number, URI SANs,
// validity and days until expiration. What an operator checks first when
// mutual TLS fails: is the certificate there, whose is it, has it expired.

import { X509Certificate } from 'node:crypto';
import type { TlsSecretRefs } from './config.ts';
import type { TlsContexts } from './tls-contexts.ts';

const PEM_BLOCK = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;
const DAY_MS = 86_400_000;

/** Envoy's CertificateDetails for one certificate. */
function details(pem: string, now: number): Record<string, unknown> | undefined {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(pem);
  } catch {
    return undefined;
  }
  const sans = (cert.subjectAltName ?? '')
    .split(', ')
    .filter((s) => s.startsWith('URI:') || s.startsWith('DNS:'))
    .map((s) => (s.startsWith('URI:') ? { uri: s.slice(4) } : { dns: s.slice(4) }));
  const expires = Date.parse(cert.validTo);
  return {
    // SDS material has no file: Envoy says <inline> for data it was given.
    path: '<inline>',
    serial_number: cert.serialNumber.toLowerCase(),
    subject_alt_names: sans,
    // uint64 in the proto: a string in its JSON.
    days_until_expiration: String(Math.max(0, Math.floor((expires - now) / DAY_MS))),
    valid_from: new Date(Date.parse(cert.validFrom)).toISOString(),
    expiration_time: new Date(expires).toISOString(),
  };
}

function chain(pems: string | undefined, now: number): Record<string, unknown>[] {
  if (!pems) return [];
  return (pems.match(PEM_BLOCK) ?? []).map((p) => details(p, now)).filter((d): d is Record<string, unknown> => d !== undefined);
}

export function certsJson(inUse: readonly TlsSecretRefs[], tls: TlsContexts, now = Date.now()): unknown {
  return {
    certificates: inUse.map((refs) => ({
      ca_cert: chain(tls.secret(refs.validation)?.trustedCa, now),
      cert_chain: chain(tls.secret(refs.certificate)?.tlsCertificate?.certificateChain, now),
    })),
  };
}
