// The control plane's own TLS server certificate for xDS (weft control
// --xds-tls): issued by the mesh CA, with the DNS and IP SANs proxies dial
// and the control plane's SPIFFE ID, and reissued at half-life while the
// server runs (listeners swap it into the running server's secure context),
// as workload certificates are. Proxies verify it against the mesh root.

import { isIP } from 'node:net';
import { leafValidity } from './svid.ts';
import type { SigningCa } from './root.ts';
import { CONTROL_NAMESPACE, CONTROL_SERVICE, spiffeId } from './spiffe.ts';
import { generateKeyPair, pemOf, privateKeyPem, randomSerial, SIGNING, x509 } from './x509.ts';


export function controlPlaneSpiffeId(trustDomain: string): string {
  return spiffeId(trustDomain, CONTROL_NAMESPACE, CONTROL_SERVICE);
}

export interface ServingCert {
  spiffeId: string;
  /** Leaf first, then the CA's intermediates. */
  certificateChainPem: string;
  privateKeyPem: string;
  dnsNames: string[];
  ipAddresses: string[];
  notBefore: Date;
  notAfter: Date;
}

export interface ServingCertRequest {
  trustDomain: string;
  dnsNames: string[];
  ipAddresses: string[];
  ttlMs: number;
  now: Date;
}

export async function issueServingCert(ca: SigningCa, req: ServingCertRequest): Promise<ServingCert> {
  const id = controlPlaneSpiffeId(req.trustDomain);
  for (const ip of req.ipAddresses) if (isIP(ip) === 0) throw new Error(`not an IP address: ${ip}`);
  const { notBefore, notAfter } = leafValidity(ca, req.now, req.ttlMs);
  const keys = await generateKeyPair();
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(),
    subject: `O=weft, CN=${CONTROL_SERVICE}.${CONTROL_NAMESPACE}`,
    issuer: ca.cert.subject,
    notBefore,
    notAfter,
    signingAlgorithm: SIGNING,
    publicKey: keys.publicKey,
    signingKey: ca.key,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth], false),
      new x509.SubjectAlternativeNameExtension([
        ...req.dnsNames.map((value) => ({ type: 'dns' as const, value })),
        ...req.ipAddresses.map((value) => ({ type: 'ip' as const, value })),
        { type: 'url' as const, value: id },
      ], false),
      await x509.AuthorityKeyIdentifierExtension.create(ca.cert, false),
    ],
  });
  return {
    spiffeId: id,
    certificateChainPem: pemOf(cert) + ca.intermediatesPem,
    privateKeyPem: await privateKeyPem(keys.privateKey),
    dnsNames: [...req.dnsNames],
    ipAddresses: [...req.ipAddresses],
    notBefore,
    notAfter,
  };
}

/**
 * The IP SANs of the xDS server certificate: loopback (both families), plus
 * the --host it binds when that is an IP literal other than a wildcard.
 */
export function servingIpSans(host: string): string[] {
  const h = host.replace(/^\[|\]$/g, '');
  const ips = ['127.0.0.1', '::1'];
  if (isIP(h) !== 0 && h !== '0.0.0.0' && h !== '::' && !ips.includes(h)) ips.push(h);
  return ips;
}
