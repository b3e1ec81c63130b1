// The control plane's xDS server certificate (control/ca/serving-cert.ts): its
// SANs, its issuer, and a lifetime never past the CA's own.
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { createRoot, loadOrCreateCa } from '../../control/ca/root.ts';
import { issueServingCert, servingIpSans } from '../../control/ca/serving-cert.ts';

test('IP SANs: loopback of both families, plus --host when it is an IP that is not a wildcard', () => {
  assert.deepEqual(servingIpSans('127.0.0.1'), ['127.0.0.1', '::1']);
  assert.deepEqual(servingIpSans('0.0.0.0'), ['127.0.0.1', '::1']);
  assert.deepEqual(servingIpSans('::'), ['127.0.0.1', '::1']);
  assert.deepEqual(servingIpSans('10.1.2.3'), ['127.0.0.1', '::1', '10.1.2.3']);
  assert.deepEqual(servingIpSans('[fd00::7]'), ['127.0.0.1', '::1', 'fd00::7']);
  assert.deepEqual(servingIpSans('control.example'), ['127.0.0.1', '::1']);
});

test("the server certificate: DNS, IP and SPIFFE SANs, server auth, from the mesh CA, never outliving the CA", async () => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-serving-'));
  try {
    // A root that expires in about a day.
    const root = await createRoot('weft.local', new Date(Date.now() - 3649 * 86_400_000));
    writeFileSync(join(dir, 'ca.pem'), root.certPem);
    writeFileSync(join(dir, 'ca.key'), root.keyPem, { mode: 0o600 });
    const ca = await loadOrCreateCa(dir, 'weft.local', { certFile: join(dir, 'ca.pem'), keyFile: join(dir, 'ca.key') });
    const cert = await issueServingCert(ca, { trustDomain: 'weft.local', dnsNames: ['localhost', 'control.example'], ipAddresses: ['127.0.0.1', '::1', '10.1.2.3'], ttlMs: 90 * 86_400_000, now: new Date() });
    const x = new X509Certificate(cert.certificateChainPem);
    assert.equal(x.subjectAltName, 'DNS:localhost, DNS:control.example, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1, IP Address:10.1.2.3, URI:spiffe://weft.local/ns/weft-system/sa/weft-control');
    assert.equal(cert.spiffeId, 'spiffe://weft.local/ns/weft-system/sa/weft-control');
    assert.ok(x.checkIssued(new X509Certificate(root.certPem)) && x.verify(new X509Certificate(root.certPem).publicKey));
    assert.equal(x.ca, false);
    assert.deepEqual(x.keyUsage, ['1.3.6.1.5.5.7.3.1']);
    assert.ok(x.checkHost('control.example') && x.checkIP('10.1.2.3') && x.checkIP('::1'));
    // Capped at the CA's expiry rather than 90 days.
    assert.equal(Date.parse(x.validTo), Date.parse(new X509Certificate(root.certPem).validTo));
    assert.ok(x.checkPrivateKey((await import('node:crypto')).createPrivateKey(cert.privateKeyPem)));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
