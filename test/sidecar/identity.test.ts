// The sidecar's identity pieces in isolation: the RBAC filter's matching
// (Envoy's semantics), the peer identity a mutual TLS connection exposes to
// filters (connection.uri_san_peer_certificate), and SDS secrets -> contexts.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { test } from 'node:test';
import { loadOrCreateCa } from '../../control/ca/root.ts';
import { issueSvid } from '../../control/ca/svid.ts';
import type { RbacConfig } from '../../sidecar/config.ts';
import { accept } from '../../sidecar/fidelity.ts';
import { SIGNING, generateKeyPair, pemOf, privateKeyPem, randomSerial, x509 } from '../../control/ca/x509.ts';
import { PEER_PRINCIPAL_PROPERTY, peerCertificate, peerProperties, type PeerCertificate } from '../../sidecar/peer-identity.ts';
import { rbacAllows } from '../../sidecar/rbac.ts';
import { TlsContexts } from '../../sidecar/tls-contexts.ts';

const req = (path: string, method: string, principal?: string, headers: Record<string, string> = {}) => ({
  authority: 'orders', path, method, peer: principal === undefined ? undefined : { uriSans: [principal], dnsSans: [], subject: '' }, header: (n: string) => headers[n],
});

function rbacOf(action: 'ALLOW' | 'DENY', policies: Record<string, unknown>): RbacConfig {
  const out = accept('listener', {
    name: 'inbound', address: { socket_address: { address: '127.0.0.1', port_value: 1 } },
    filter_chains: [{ filters: [{ name: 'hcm', typed_config: {
      '@type': 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
      stat_prefix: 'inbound', route_config: { name: 'r', virtual_hosts: [] },
      http_filters: [
        { name: 'rbac', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC', rules: { action, policies } } },
        { name: 'router', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router' } },
      ],
    } }] }],
  });
  assert.ok(out.ok, JSON.stringify(!out.ok && out.errors));
  const chain = out.value.chain;
  assert.ok(chain.kind === 'http' && chain.httpFilters[0]!.kind === 'rbac');
  return (chain.httpFilters[0] as { rbac: RbacConfig }).rbac;
}

test('RBAC ALLOW: a request matching no policy is denied; principals need an mTLS peer; url_path ignores the query', () => {
  const rbac = rbacOf('ALLOW', {
    readers: {
      permissions: [{ and_rules: { rules: [{ url_path: { path: { prefix: '/orders' } } }, { header: { name: ':method', string_match: { exact: 'GET' } } }] } }],
      principals: [{ authenticated: { principal_name: { exact: 'spiffe://weft.local/ns/default/sa/web' } } }],
    },
    ops: { permissions: [{ any: true }], principals: [{ authenticated: { principal_name: { safe_regex: { regex: '^spiffe://[^/]+/ns/ops/sa/[^/]+$' } } } }] },
  });
  assert.equal(rbacAllows(rbac, req('/orders/1?x=/admin', 'GET', 'spiffe://weft.local/ns/default/sa/web')), true);
  assert.equal(rbacAllows(rbac, req('/orders/1', 'POST', 'spiffe://weft.local/ns/default/sa/web')), false);
  assert.equal(rbacAllows(rbac, req('/orders/1', 'GET', 'spiffe://weft.local/ns/default/sa/batch')), false);
  assert.equal(rbacAllows(rbac, req('/orders/1', 'GET')), false, 'plaintext caller has no principal');
  assert.equal(rbacAllows(rbac, req('/anything', 'DELETE', 'spiffe://weft.local/ns/ops/sa/tool')), true);
});

test('RBAC DENY: matching requests are denied, the rest pass; headers (forwarded JWT claims) match exactly', () => {
  const rbac = rbacOf('DENY', { admins: { permissions: [{ header: { name: 'x-jwt-role', string_match: { exact: 'guest' } } }], principals: [{ any: true }] } });
  assert.equal(rbacAllows(rbac, req('/', 'GET', undefined, { 'x-jwt-role': 'guest' })), false);
  assert.equal(rbacAllows(rbac, req('/', 'GET', undefined, { 'x-jwt-role': 'admin' })), true);
});

test('a mutual TLS connection exposes the peer SPIFFE ID as connection.uri_san_peer_certificate; SDS secrets become contexts', { timeout: 10_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-sc-id-'));
  try {
    const ca = await loadOrCreateCa(dir, 'weft.local');
    const issue = (service: string) => issueSvid(ca, { trustDomain: 'weft.local', namespace: 'default', service, ttlMs: 60_000, now: new Date() });
    const [server, client] = await Promise.all([issue('orders'), issue('web')]);
    const contexts = new TlsContexts();
    const refs = { certificate: 'default', validation: 'ROOTCA' };
    assert.equal(contexts.context(refs), undefined, 'no context before SDS delivered both secrets');
    contexts.setSecrets(new Map([
      ['default', { name: 'default', tlsCertificate: { certificateChain: server.certificateChainPem, privateKey: server.privateKeyPem } }],
      ['ROOTCA', { name: 'ROOTCA', trustedCa: server.trustBundlePem }],
    ]));
    const material = contexts.material(refs)!;
    const srv = tls.createServer({ ...material, requestCert: true, rejectUnauthorized: true });
    const seen = new Promise<Record<string, string | boolean>>((resolve) => srv.on('secureConnection', (s) => { resolve(peerProperties(s)); s.end(); }));
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
    const port = (srv.address() as { port: number }).port;
    const sock = tls.connect({ host: '127.0.0.1', port, cert: client.certificateChainPem, key: client.privateKeyPem, ca: client.trustBundlePem, checkServerIdentity: () => undefined });
    sock.on('error', () => undefined);
    const props = await seen;
    sock.destroy();
    await new Promise<void>((r) => srv.close(() => r()));
    assert.equal(props[PEER_PRINCIPAL_PROPERTY], 'spiffe://weft.local/ns/default/sa/web');
    assert.equal(props['connection.mtls'], true);
    assert.deepEqual(peerProperties({ encrypted: false }), {}, 'plaintext: no peer identity');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('an mTLS peer whose certificate has no URI SAN (an operator CA\'s) is still authenticated, as Envoy: any URI SAN, then any DNS SAN, then the subject is its principal', { timeout: 10_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-sc-peer-'));
  try {
    const ca = await loadOrCreateCa(dir, 'weft.local');
    const server = await issueSvid(ca, { trustDomain: 'weft.local', namespace: 'default', service: 'orders', ttlMs: 60_000, now: new Date() });
    // Client certificates the same CA signed, as an operator's CA may: DNS SANs only, and two URI SANs.
    const leaf = async (names: { type: 'dns' | 'url'; value: string }[]) => {
      const keys = await generateKeyPair();
      const cert = await x509.X509CertificateGenerator.create({
        serialNumber: randomSerial(), subject: 'O=acme, CN=batch-runner', issuer: ca.cert.subject,
        notBefore: new Date(Date.now() - 60_000), notAfter: new Date(Date.now() + 3_600_000), signingAlgorithm: SIGNING,
        publicKey: keys.publicKey, signingKey: ca.key,
        extensions: [new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth]), new x509.SubjectAlternativeNameExtension(names)],
      });
      return { cert: pemOf(cert), key: await privateKeyPem(keys.privateKey) };
    };
    const peerOf = async (client: { cert: string; key: string }) => {
      const srv = tls.createServer({ cert: server.certificateChainPem, key: server.privateKeyPem, ca: server.trustBundlePem, requestCert: true, rejectUnauthorized: true });
      const seen = new Promise<{ peer: PeerCertificate | undefined; props: Record<string, string | boolean> }>((resolve) => srv.on('secureConnection', (s) => { resolve({ peer: peerCertificate(s), props: peerProperties(s) }); s.end(); }));
      await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
      const sock = tls.connect({ host: '127.0.0.1', port: (srv.address() as { port: number }).port, ...client, ca: server.trustBundlePem, checkServerIdentity: () => undefined });
      sock.on('error', () => undefined);
      const out = await seen;
      sock.destroy();
      await new Promise<void>((r) => srv.close(() => r()));
      return out;
    };
    const dnsOnly = await peerOf(await leaf([{ type: 'dns', value: 'batch.acme.internal' }]));
    const { hash, by, ...names } = dnsOnly.peer!;
    assert.deepEqual(names, { uriSans: [], dnsSans: ['batch.acme.internal'], subject: 'CN=batch-runner,O=acme' });
    assert.match(hash ?? '', /^[0-9a-f]{64}$/, "the certificate's SHA-256, for x-forwarded-client-cert's Hash");
    assert.equal(by, 'spiffe://weft.local/ns/default/sa/orders', "this side's own URI SAN, for its By");
    assert.deepEqual(dnsOnly.props, { 'connection.mtls': true }, 'mutual TLS, though no URI SAN to expose');
    const twoUris = await peerOf(await leaf([{ type: 'url', value: 'spiffe://acme/legacy' }, { type: 'url', value: 'spiffe://weft.local/ns/ops/sa/tool' }]));
    assert.equal(twoUris.props[PEER_PRINCIPAL_PROPERTY], 'spiffe://acme/legacy', 'the first URI SAN, as Envoy exposes it');

    const allow = (principals: unknown[]) => rbacOf('ALLOW', { p: { permissions: [{ any: true }], principals } });
    const asPeer = (peer: PeerCertificate | undefined) => ({ authority: 'orders', path: '/', method: 'GET', peer, header: () => undefined });
    assert.equal(rbacAllows(allow([{ authenticated: {} }]), asPeer(dnsOnly.peer)), true, '"*": any mTLS caller');
    assert.equal(rbacAllows(allow([{ authenticated: { principal_name: { exact: 'batch.acme.internal' } } }]), asPeer(dnsOnly.peer)), true, 'a DNS SAN when there is no URI SAN');
    assert.equal(rbacAllows(allow([{ authenticated: { principal_name: { exact: 'CN=batch-runner,O=acme' } } }]), asPeer(dnsOnly.peer)), true, 'the subject last');
    const ops = allow([{ authenticated: { principal_name: { safe_regex: { regex: '^spiffe://[^/]+/ns/ops/sa/[^/]+$' } } } }]);
    assert.equal(rbacAllows(ops, asPeer(twoUris.peer)), true, 'any URI SAN, not only the first');
    assert.equal(rbacAllows(ops, asPeer(dnsOnly.peer)), false);
    assert.equal(rbacAllows(allow([{ authenticated: {} }]), asPeer(undefined)), false, 'plaintext is not authenticated');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
