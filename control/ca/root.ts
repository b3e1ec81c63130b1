// The mesh CA's signing certificate: a self-signed ECDSA P-256 root created on
// first start and kept in the data dir (key mode 0600), or an operator's root
// or intermediate loaded from PEM. With an intermediate, the chain served to
// workloads is leaf + intermediate(s) and the trust bundle is the root.

import { X509Certificate, createPrivateKey, createPublicKey } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { mkdirDurable, removeLeftoverTemps, writeFileAtomicSync } from '../store/atomic-file.ts';
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

/** The CA files (the operator's, or the data dir's root) cannot be used: the operator's to fix, said without a stack. */
export class CaFilesError extends Error {
  override name = 'CaFilesError';
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

/** Whether `chain[0]` chains, through `chain`'s other certificates, to one of `roots` (signatures and issuer names). */
function chainsTo(chain: X509Certificate[], roots: X509Certificate[]): boolean {
  let current = chain[0]!;
  const seen = new Set<X509Certificate>();
  for (;;) {
    if (roots.some((r) => current.checkIssued(r) && current.verify(r.publicKey))) return true;
    const next = chain.find((c) => c !== current && !seen.has(c) && current.checkIssued(c) && current.verify(c.publicKey));
    if (!next) return false;
    seen.add(next);
    current = next;
  }
}

async function fromPem(certPem: string, keyPem: string, rootPem: string | undefined, source: SigningCa['source']): Promise<SigningCa> {
  const [cert, ...rest] = parsePemBundle(certPem);
  if (!cert) throw new Error('the CA certificate file holds no PEM certificate');
  const basic = cert.getExtension(x509.BasicConstraintsExtension);
  if (!basic?.ca) throw new Error('the CA certificate is not a CA (basicConstraints CA:TRUE missing)');
  // An expired signer (or one not yet valid) signs certificates no peer accepts: every mTLS handshake would
  // fail, and rotation could not mend it, since it reissues under the same CA.
  const now = Date.now();
  if (cert.notAfter.getTime() <= now) throw new Error(`the CA certificate (${cert.subject}) expired at ${cert.notAfter.toISOString()}: every workload certificate it signed would fail verification; supply a current CA`);
  if (cert.notBefore.getTime() > now + 60_000) throw new Error(`the CA certificate (${cert.subject}) is not valid before ${cert.notBefore.toISOString()}, and this machine's clock reads ${new Date(now).toISOString()}`);
  const key = await importPrivateKey(keyPem);
  // As istiod checks plugged-in CA files: a key or root that does not fit would make every workload
  // certificate fail every handshake, and nothing would say why.
  const spki = (k: ReturnType<typeof createPublicKey>) => k.export({ type: 'spki', format: 'der' });
  if (!spki(createPublicKey(createPrivateKey(keyPem))).equals(spki(new X509Certificate(pemOf(cert)).publicKey))) {
    throw new Error('the CA key does not belong to the CA certificate (their public keys differ)');
  }
  const selfSigned = cert.subject === cert.issuer && (await cert.verify({ signatureOnly: true }));
  if (!selfSigned && !rootPem) throw new Error('the CA certificate is an intermediate: the root (trust bundle) must be supplied too');
  const trustBundlePem = selfSigned ? pemOf(cert) : rootPem!;
  const roots = parsePemBundle(trustBundlePem);
  if (roots.length === 0) throw new Error('the root file holds no PEM certificate');
  if (!selfSigned && !chainsTo([cert, ...rest].map((c) => new X509Certificate(pemOf(c))), roots.map((r) => new X509Certificate(pemOf(r))))) {
    throw new Error(`the CA certificate (${cert.subject}, issued by ${cert.issuer}) does not chain to a certificate of the root file: workloads would trust none of the certificates it signs`);
  }
  return { cert, key, intermediatesPem: selfSigned ? '' : [cert, ...rest].map(pemOf).join(''), trustBundlePem, source };
}

/**
 * The data dir's root, created on first start; or the operator's CA when
 * files are given (never written to the data dir: the operator owns it).
 */
export async function loadOrCreateCa(dataDir: string, trustDomain: string, files: CaFiles = {}): Promise<SigningCa> {
  // Whatever goes wrong reading or checking these files is about the files (unreadable, not PEM, a key
  // that is not the certificate's, ...): said as a CaFilesError naming them.
  const load = async (what: string, read: () => Promise<SigningCa>): Promise<SigningCa> => {
    try {
      return await read();
    } catch (e) {
      throw new CaFilesError(`${what}: ${(e as Error).message}`);
    }
  };
  if (files.certFile || files.keyFile) {
    if (!files.certFile || !files.keyFile) throw new CaFilesError('an operator CA needs both a certificate and a key file (--ca-cert and --ca-key)');
    const { certFile, keyFile, rootFile } = files;
    return load(`--ca-cert ${certFile} --ca-key ${keyFile}${rootFile ? ` --ca-root ${rootFile}` : ''}`, () =>
      fromPem(readFileSync(certFile, 'utf8'), readFileSync(keyFile, 'utf8'), rootFile ? readFileSync(rootFile, 'utf8') : undefined, 'operator'));
  }
  const certPath = join(dataDir, ROOT_CERT_FILE);
  const keyPath = join(dataDir, ROOT_KEY_FILE);
  // A crash while writing the root left its temp file (the key's holds a private key in the clear): the
  // control plane opens the CA holding the data dir's lock, so any such file is a dead process's.
  removeLeftoverTemps(dataDir, (name) => name === ROOT_CERT_FILE || name === ROOT_KEY_FILE);
  if (existsSync(certPath) && existsSync(keyPath)) {
    return load(`the data dir's CA root (${certPath}, ${keyPath})`, () => fromPem(readFileSync(certPath, 'utf8'), readFileSync(keyPath, 'utf8'), undefined, 'data-dir'));
  }
  // The key is written before the certificate, so a certificate without its key was not left by a
  // crash here: the key was lost (a partial restore, a deleted file). A new root would silently
  // replace the one every workload trusts.
  if (existsSync(certPath)) {
    throw new CaFilesError(`${certPath} exists but its key ${keyPath} does not: restore the key, or remove the certificate too to create a new root (every workload certificate is then reissued under it)`);
  }
  mkdirDurable(dataDir);
  const created = await createRoot(trustDomain);
  // Each file whole or not there (temp, fsync, rename), the key before the certificate: a crash
  // in between leaves a key without a certificate, which the next start replaces, never a torn
  // file that would keep the control plane from starting.
  writeFileAtomicSync(keyPath, created.keyPem, 0o600);
  writeFileAtomicSync(certPath, created.certPem, 0o644);
  return fromPem(created.certPem, created.keyPem, undefined, 'created');
}
