// The mesh CA's signing certificate: a self-signed ECDSA P-256 root created on
// first start and kept in the data dir (key mode 0600), or an operator's root
// or intermediate loaded from PEM. With an intermediate, the chain served to
// workloads is leaf + intermediate(s) and the trust bundle is the root.

import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type CryptoKey, generateKeyPair, importPrivateKey, parsePemBundle, pemOf, privateKeyPem, randomSerial, SIGNING, x509 } from './x509.ts';

export interface SigningCa {
  /** The certificate that signs workload certificates. */
  cert: x509.X509Certificate;
  key: CryptoKey;
  /** PEM of the intermediates between the signer and the root, signer first (empty for a root signer). */
  intermediatesPem: string;
  /** PEM of the trust anchors proxies verify peers against. */
  trustBundlePem: string;
  /** Where the CA came from, for logs. */
  source: 'created' | 'data-dir' | 'operator';
}

export interface CaFiles {
  /** Operator PEM of the signing certificate (root or intermediate). */
  certFile?: string;
  keyFile?: string;
  /** For an intermediate: PEM of the root (and any further intermediates), the trust bundle. */
  rootFile?: string;
}

export const ROOT_CERT_FILE = 'ca-root.pem';
export const ROOT_KEY_FILE = 'ca-root.key';
const ROOT_LIFETIME_DAYS = 3650;

export async function createRoot(trustDomain: string, now = new Date()): Promise<{ certPem: string; keyPem: string }> {
  const keys = await generateKeyPair();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerial(),
    name: `O=weft, CN=weft mesh root CA (${trustDomain})`,
    notBefore: new Date(now.getTime() - 60_000),
    notAfter: new Date(now.getTime() + ROOT_LIFETIME_DAYS * 86_400_000),
    signingAlgorithm: SIGNING,
    keys,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature, true),
      new x509.SubjectAlternativeNameExtension([{ type: 'url', value: `spiffe://${trustDomain}` }], false),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { certPem: pemOf(cert), keyPem: await privateKeyPem(keys.privateKey) };
}

async function fromPem(certPem: string, keyPem: string, rootPem: string | undefined, source: SigningCa['source']): Promise<SigningCa> {
  const [cert, ...rest] = parsePemBundle(certPem);
  if (!cert) throw new Error('the CA certificate file holds no PEM certificate');
  const basic = cert.getExtension(x509.BasicConstraintsExtension);
  if (!basic?.ca) throw new Error('the CA certificate is not a CA (basicConstraints CA:TRUE missing)');
  const key = await importPrivateKey(keyPem);
  const selfSigned = cert.subject === cert.issuer && (await cert.verify({ signatureOnly: true }));
  if (!selfSigned && !rootPem) throw new Error('the CA certificate is an intermediate: the root (trust bundle) must be supplied too');
  const trustBundlePem = selfSigned ? pemOf(cert) : rootPem!;
  if (parsePemBundle(trustBundlePem).length === 0) throw new Error('the root file holds no PEM certificate');
  return { cert, key, intermediatesPem: selfSigned ? '' : [cert, ...rest].map(pemOf).join(''), trustBundlePem, source };
}

/**
 * The data dir's root, created on first start; or the operator's CA when
 * files are given (never written to the data dir: the operator owns it).
 */
export async function loadOrCreateCa(dataDir: string, trustDomain: string, files: CaFiles = {}): Promise<SigningCa> {
  if (files.certFile || files.keyFile) {
    if (!files.certFile || !files.keyFile) throw new Error('an operator CA needs both a certificate and a key file');
    return fromPem(readFileSync(files.certFile, 'utf8'), readFileSync(files.keyFile, 'utf8'), files.rootFile ? readFileSync(files.rootFile, 'utf8') : undefined, 'operator');
  }
  const certPath = join(dataDir, ROOT_CERT_FILE);
  const keyPath = join(dataDir, ROOT_KEY_FILE);
  if (existsSync(certPath) && existsSync(keyPath)) {
    return fromPem(readFileSync(certPath, 'utf8'), readFileSync(keyPath, 'utf8'), undefined, 'data-dir');
  }
  mkdirSync(dataDir, { recursive: true });
  const created = await createRoot(trustDomain);
  writeFileSync(keyPath, created.keyPem, { mode: 0o600 });
  chmodSync(keyPath, 0o600);
  writeFileSync(certPath, created.certPem, { mode: 0o644 });
  return fromPem(created.certPem, created.keyPem, undefined, 'created');
}
