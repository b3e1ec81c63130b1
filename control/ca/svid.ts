// Workload certificates (X.509 SVIDs): a fresh P-256 key per issue, the SPIFFE
// ID as the only (URI) SAN, usable for both TLS server and client auth.

import type { SigningCa } from './root.ts';
import { spiffeId } from './spiffe.ts';
import { generateKeyPair, pemOf, privateKeyPem, randomSerial, SIGNING, x509 } from './x509.ts';

export interface Svid {
  spiffeId: string;
  /** Leaf first, then the CA's intermediates (not the root). */
  certificateChainPem: string;
  privateKeyPem: string;
  trustBundlePem: string;
  notBefore: Date;
  notAfter: Date;
  serialNumber: string;
}

export interface IssueRequest {
  trustDomain: string;
  namespace: string;
  service: string;
  ttlMs: number;
  now: Date;
}

/** Clock skew tolerated between proxies: a certificate is valid from slightly before it was issued. */
export const BACKDATE_MS = 5_000;

/**
 * A leaf's validity: from BACKDATE_MS before `now` for `ttlMs`, rounded up to X.509's whole seconds so the
 * lifetime is never shorter than asked, and never past the CA's own end, as Vault and step-ca clamp (a
 * certificate outliving its issuer fails verification from then on). Throws once the CA has expired.
 */
export function leafValidity(ca: SigningCa, now: Date, ttlMs: number): { notBefore: Date; notAfter: Date } {
  const caEnd = ca.cert.notAfter.getTime();
  if (caEnd <= now.getTime()) throw new Error(`the CA certificate (${ca.cert.subject}) expired at ${ca.cert.notAfter.toISOString()}: no certificate can be issued under it`);
  return { notBefore: new Date(now.getTime() - BACKDATE_MS), notAfter: new Date(Math.min(Math.ceil((now.getTime() + ttlMs) / 1000) * 1000, caEnd)) };
}

export async function issueSvid(ca: SigningCa, req: IssueRequest): Promise<Svid> {
  const id = spiffeId(req.trustDomain, req.namespace, req.service);
  const { notBefore, notAfter } = leafValidity(ca, req.now, req.ttlMs);
  const keys = await generateKeyPair();
  const serialNumber = randomSerial();
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber,
    subject: `O=weft, CN=${req.service}.${req.namespace}`,
    issuer: ca.cert.subject,
    notBefore,
    notAfter,
    signingAlgorithm: SIGNING,
    publicKey: keys.publicKey,
    signingKey: ca.key,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth], false),
      // SPIFFE X.509-SVID: the URI SAN is the identity; critical because the subject says nothing.
      new x509.SubjectAlternativeNameExtension([{ type: 'url', value: id }], true),
      await x509.AuthorityKeyIdentifierExtension.create(ca.cert, false),
    ],
  });
  return {
    spiffeId: id,
    certificateChainPem: pemOf(cert) + ca.intermediatesPem,
    privateKeyPem: await privateKeyPem(keys.privateKey),
    trustBundlePem: ca.trustBundlePem,
    notBefore,
    notAfter,
    serialNumber,
  };
}
