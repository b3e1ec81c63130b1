// The mesh CA: root creation and persistence (key mode 0600), SPIFFE SVIDs,
// operator-supplied intermediates, rotation at half-life, TTL parsing.

import assert from 'node:assert/strict';
import { X509Certificate, createPrivateKey, generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { MeshCa } from '../../control/ca/authority.ts';
import { ROOT_CERT_FILE, ROOT_KEY_FILE, createRoot, loadOrCreateCa } from '../../control/ca/root.ts';
import { parseSpiffeId, spiffeId } from '../../control/ca/spiffe.ts';
import { issueSvid } from '../../control/ca/svid.ts';
import { parseTtl } from '../../control/ca/ttl.ts';
import { EC_P256, SIGNING, importPrivateKey, pemOf, privateKeyPem, randomSerial, x509 } from '../../control/ca/x509.ts';

const dirs: string[] = [];
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'weft-ca-'));
  dirs.push(d);
  return d;
}
after(() => { for (const d of dirs) rmSync(d, { recursive: true, force: true }); });

const leafOf = (chainPem: string) => new X509Certificate(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(chainPem)![0]);

test('the root is created on first start with its key file mode 0600, and reused after', async () => {
  const dir = tempDir();
  const first = await loadOrCreateCa(dir, 'weft.local');
  assert.equal(first.source, 'created');
  assert.equal(statSync(join(dir, ROOT_KEY_FILE)).mode & 0o777, 0o600);
  const root = new X509Certificate(readFileSync(join(dir, ROOT_CERT_FILE)));
  assert.ok(root.ca);
  assert.equal(root.publicKey.asymmetricKeyDetails?.namedCurve, 'prime256v1');
  const second = await loadOrCreateCa(dir, 'weft.local');
  assert.equal(second.source, 'data-dir');
  assert.equal(second.trustBundlePem, first.trustBundlePem);
});

test('a workload certificate carries the SPIFFE ID as URI SAN, is P-256, chains to the root and lives as long as asked', async () => {
  const ca = await loadOrCreateCa(tempDir(), 'weft.local');
  const now = new Date('2026-03-01T12:00:00Z');
  const svid = await issueSvid(ca, { trustDomain: 'weft.local', namespace: 'shop', service: 'orders', ttlMs: 24 * 3600_000, now });
  assert.equal(svid.spiffeId, 'spiffe://weft.local/ns/shop/sa/orders');
  const leaf = leafOf(svid.certificateChainPem);
  assert.equal(leaf.subjectAltName, 'URI:spiffe://weft.local/ns/shop/sa/orders');
  assert.equal(leaf.ca, false);
  assert.ok(leaf.verify(new X509Certificate(svid.trustBundlePem).publicKey), 'signed by the root');
  assert.equal(new Date(leaf.validTo).getTime() - now.getTime(), 24 * 3600_000);
  assert.equal(createPrivateKey(svid.privateKeyPem).asymmetricKeyDetails?.namedCurve, 'prime256v1');
  assert.ok(leaf.checkPrivateKey(createPrivateKey(svid.privateKeyPem)));
});

test('an operator intermediate signs workloads: the chain carries it and the trust bundle is the root', async () => {
  const dir = tempDir();
  const root = await createRoot('weft.local');
  const rootKey = await importPrivateKey(root.keyPem);
  const keys = await (await import('node:crypto')).webcrypto.subtle.generateKey(EC_P256, true, ['sign', 'verify']);
  const rootCert = new x509.X509Certificate(root.certPem);
  const intermediate = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(), subject: 'CN=weft intermediate', issuer: rootCert.subject,
    notBefore: new Date(Date.now() - 60_000), notAfter: new Date(Date.now() + 86_400_000),
    signingAlgorithm: SIGNING, publicKey: keys.publicKey, signingKey: rootKey,
    extensions: [new x509.BasicConstraintsExtension(true, 0, true), new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign, true)],
  });
  writeFileSync(join(dir, 'int.pem'), pemOf(intermediate));
  writeFileSync(join(dir, 'int.key'), await privateKeyPem(keys.privateKey));
  writeFileSync(join(dir, 'root.pem'), root.certPem);
  await assert.rejects(loadOrCreateCa(dir, 'weft.local', { certFile: join(dir, 'int.pem'), keyFile: join(dir, 'int.key') }), /intermediate: the root/);
  const ca = await loadOrCreateCa(dir, 'weft.local', { certFile: join(dir, 'int.pem'), keyFile: join(dir, 'int.key'), rootFile: join(dir, 'root.pem') });
  assert.equal(ca.source, 'operator');
  const svid = await issueSvid(ca, { trustDomain: 'weft.local', namespace: 'default', service: 'web', ttlMs: 60_000, now: new Date() });
  const chain = svid.certificateChainPem.match(/-----BEGIN CERTIFICATE-----/g)!;
  assert.equal(chain.length, 2, 'leaf + intermediate');
  assert.equal(svid.trustBundlePem, root.certPem);
  assert.ok(leafOf(svid.certificateChainPem).verify(new X509Certificate(pemOf(intermediate)).publicKey));
});

test('an operator CA whose key is not its certificate\'s, or whose certificate does not chain to the root given, is refused at start', async () => {
  // As istiod checks plugged-in CA files: otherwise every workload certificate fails every handshake, with nothing said at start.
  const dir = tempDir();
  const root = await createRoot('weft.local');
  const other = await createRoot('weft.local');
  writeFileSync(join(dir, 'root.pem'), root.certPem);
  writeFileSync(join(dir, 'other.key'), other.keyPem);
  writeFileSync(join(dir, 'other.pem'), other.certPem);
  await assert.rejects(loadOrCreateCa(dir, 'weft.local', { certFile: join(dir, 'root.pem'), keyFile: join(dir, 'other.key') }), /the CA key does not belong to the CA certificate/);
  // An intermediate signed by `root`, with `other` given as the trust bundle.
  const rootKey = await importPrivateKey(root.keyPem);
  const keys = await (await import('node:crypto')).webcrypto.subtle.generateKey(EC_P256, true, ['sign', 'verify']);
  const intermediate = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(), subject: 'CN=weft intermediate', issuer: new x509.X509Certificate(root.certPem).subject,
    notBefore: new Date(Date.now() - 60_000), notAfter: new Date(Date.now() + 86_400_000),
    signingAlgorithm: SIGNING, publicKey: keys.publicKey, signingKey: rootKey,
    extensions: [new x509.BasicConstraintsExtension(true, 0, true), new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign, true)],
  });
  writeFileSync(join(dir, 'int.pem'), pemOf(intermediate));
  writeFileSync(join(dir, 'int.key'), await privateKeyPem(keys.privateKey));
  await assert.rejects(loadOrCreateCa(dir, 'weft.local', { certFile: join(dir, 'int.pem'), keyFile: join(dir, 'int.key'), rootFile: join(dir, 'other.pem') }), /does not chain to a certificate of the root file/);
  const ok = await loadOrCreateCa(dir, 'weft.local', { certFile: join(dir, 'int.pem'), keyFile: join(dir, 'int.key'), rootFile: join(dir, 'root.pem') });
  assert.equal(ok.source, 'operator');
});

test('an operator key that is not ECDSA P-256 is refused with the reason', async () => {
  const dir = tempDir();
  const root = await createRoot('weft.local');
  writeFileSync(join(dir, 'root.pem'), root.certPem);
  writeFileSync(join(dir, 'rsa.key'), generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }));
  await assert.rejects(loadOrCreateCa(dir, 'weft.local', { certFile: join(dir, 'root.pem'), keyFile: join(dir, 'rsa.key') }), /ECDSA P-256/);
});

test('MeshCa reissues at half-life and tells its listeners; bad options are refused', { timeout: 10_000 }, async () => {
  await assert.rejects(MeshCa.open({ dataDir: tempDir(), certTtlMs: 10 }), /at least 1000 ms/);
  // A lifetime past 90 days is refused at start: 99999999d used to start, and then every certificate failed to issue.
  await assert.rejects(MeshCa.open({ dataDir: tempDir(), certTtlMs: 91 * 86_400_000 }), /at most 90d/);
  await assert.rejects(MeshCa.open({ dataDir: tempDir(), trustDomain: 'Bad Domain' }), /trust domain/);
  const ca = await MeshCa.open({ dataDir: tempDir(), certTtlMs: 1500 });
  // The CA's timers are unref'd (they must not keep a control plane alive); this test waits on one.
  const keepAlive = setInterval(() => undefined, 1000);
  try {
    const first = await ca.svid('default', 'web');
    assert.equal(await ca.svid('default', 'web'), first, 'cached until rotation');
    const rotated = await new Promise<string>((resolve) => ca.onRotate((id, svid) => resolve(`${id.service}:${svid.serialNumber}`)));
    assert.notEqual(rotated, `web:${first.serialNumber}`);
    assert.equal(ca.current('default', 'web')!.serialNumber, rotated.split(':')[1]);
    assert.ok(ca.current('default', 'web')!.notAfter > first.notAfter);
  } finally {
    clearInterval(keepAlive);
    ca.close();
  }
});

test('a certificate lifetime past 49.7 days (a half-life past setTimeout\'s limit) rotates once at half-life, not in a loop', { timeout: 10_000 }, async () => {
  // Node fires a setTimeout of more than 2^31-1 ms after 1 ms: with --cert-ttl 60d the CA reissued every identity
  // about every millisecond, and pushed a new certificate to every proxy each time.
  const ca = await MeshCa.open({ dataDir: tempDir(), certTtlMs: 60 * 86_400_000 });
  const keepAlive = setInterval(() => undefined, 1000);
  try {
    let rotations = 0;
    ca.onRotate(() => rotations++);
    const first = await ca.svid('default', 'web');
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(rotations, 0);
    assert.equal(ca.issued, 1);
    assert.equal(ca.current('default', 'web')!.serialNumber, first.serialNumber);
  } finally {
    clearInterval(keepAlive);
    ca.close();
  }
});

test('an expired CA is refused at start naming its end; a workload certificate never outlives the CA that signs it', async () => {
  const dir = tempDir();
  const year = 365 * 86_400_000;
  // createRoot makes a 10-year root valid from `now`: started 11 years ago, it ended a year ago.
  const expired = await createRoot('weft.local', new Date(Date.now() - 11 * year));
  writeFileSync(join(dir, 'expired.pem'), expired.certPem);
  writeFileSync(join(dir, 'expired.key'), expired.keyPem);
  await assert.rejects(loadOrCreateCa(dir, 'weft.local', { certFile: join(dir, 'expired.pem'), keyFile: join(dir, 'expired.key') }),
    (e: Error) => /--ca-cert .*expired\.pem/.test(e.message) && /expired at \d{4}-/.test(e.message));
  // One that ends in 90 s (well inside the 24 h workload lifetime) starts, and its certificates end with it.
  const short = await createRoot('weft.local', new Date(Date.now() + 90_000 - 10 * year));
  writeFileSync(join(dir, 'short.pem'), short.certPem);
  writeFileSync(join(dir, 'short.key'), short.keyPem);
  const signer = await loadOrCreateCa(dir, 'weft.local', { certFile: join(dir, 'short.pem'), keyFile: join(dir, 'short.key') });
  const svid = await issueSvid(signer, { trustDomain: 'weft.local', namespace: 'default', service: 'web', ttlMs: 86_400_000, now: new Date() });
  assert.ok(svid.notAfter.getTime() <= signer.cert.notAfter.getTime(), `leaf ends ${svid.notAfter.toISOString()}, its CA ${signer.cert.notAfter.toISOString()}`);
  assert.ok(leafOf(svid.certificateChainPem).verify(new X509Certificate(short.certPem).publicKey));
  await assert.rejects(issueSvid(signer, { trustDomain: 'weft.local', namespace: 'default', service: 'web', ttlMs: 86_400_000, now: new Date(Date.now() + 120_000) }), /CA certificate .* expired at/);
});

test('SPIFFE IDs and --cert-ttl values', () => {
  assert.equal(spiffeId('td', 'ns1', 'svc'), 'spiffe://td/ns/ns1/sa/svc');
  assert.deepEqual(parseSpiffeId('spiffe://td/ns/ns1/sa/svc'), { trustDomain: 'td', namespace: 'ns1', service: 'svc' });
  assert.equal(parseSpiffeId('spiffe://td/other'), undefined);
  assert.equal(parseTtl('24h'), 86_400_000);
  assert.equal(parseTtl('5s'), 5000);
  assert.equal(parseTtl('1500ms'), 1500);
  assert.match(String(parseTtl('10ms')), /at least/);
  assert.match(String(parseTtl('soon')), /not a duration/);
});
