// Mesh identity end to end (issue 7): a control plane with --identity, weft
// sidecars joining with API-issued tokens, mutual TLS between them,
// AuthorizationPolicy enforced as RBAC, PeerAuthentication modes, and rogue
// xDS clients refused.

import assert from 'node:assert/strict';
import net from 'node:net';
import tls from 'node:tls';
import { after, before, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { loadOrCreateCa } from '../../control/ca/root.ts';
import { issueSvid } from '../../control/ca/svid.ts';
import { TypeUrl } from '../../control/xds/discovery.ts';
import type { RunningSidecar } from '../../sidecar/main.ts';
import { SotwClient, testNode } from '../xds/ads-client.ts';
import { IdentityMesh, callVia, eventually } from './identity-mesh.ts';
import { get, metric } from '../sidecar/harness.ts';

let mesh: IdentityMesh;
let frontend: RunningSidecar;
let batch: RunningSidecar;
let orders: RunningSidecar;
let catalog: RunningSidecar;

before(async () => {
  mesh = await IdentityMesh.start();
  for (const name of ['frontend', 'batch', 'orders', 'catalog']) {
    await mesh.must('POST', '/services', { name, ports: [{ port: 8080, protocol: 'http' }] });
  }
  await mesh.must('POST', '/peer-authentications', { name: 'orders-strict', service: 'orders', mode: 'STRICT' });
  await mesh.must('POST', '/authorization-policies', {
    name: 'orders-readers',
    service: 'orders',
    rules: [{ principals: ['spiffe://weft.local/ns/default/sa/frontend'], methods: ['GET'] }],
  });
  await mesh.must('POST', '/authorization-policies', { name: 'orders-no-admin', service: 'orders', action: 'DENY', rules: [{ paths: ['/admin*'] }] });
  ({ sidecar: frontend } = await mesh.workload('frontend'));
  // batch speaks state-of-the-world ADS: SDS works on both protocols
  ({ sidecar: batch } = await mesh.workload('batch', { sotw: true }));
  ({ sidecar: orders } = await mesh.workload('orders'));
  ({ sidecar: catalog } = await mesh.workload('catalog'));
}, { timeout: 60_000 });

after(() => mesh?.close(), { timeout: 20_000 });

test('an allowed caller gets 200 over mutual TLS, and the callee saw its SPIFFE ID', { timeout: 20_000 }, async () => {
  await eventually(async () => (await callVia(frontend, 'orders', '/orders/1')).status === 200, 'frontend -> orders 200');
  const r = await callVia(frontend, 'orders', '/orders/1');
  assert.equal(r.status, 200);
  assert.equal(JSON.parse(r.body).app, 'orders');
  // The callee's connection manager counts the connection as a TLS one (downstream_cx_ssl_total), as Envoy does.
  assert.ok((await metric(orders.adminPort, 'envoy_http_downstream_cx_ssl_total')) >= 1, 'a TLS connection counted');
  assert.equal(await metric(orders.adminPort, 'envoy_http_downstream_cx_ssl_total'), await metric(orders.adminPort, 'envoy_http_downstream_cx_total'), 'STRICT: every connection is TLS');
});

test('a caller the policy does not allow gets 403 "RBAC: access denied"', { timeout: 20_000 }, async () => {
  await eventually(async () => (await callVia(batch, 'orders', '/orders/1')).status === 403, 'batch -> orders 403');
  const r = await callVia(batch, 'orders', '/orders/1');
  assert.equal(r.status, 403);
  assert.equal(r.body, 'RBAC: access denied');
  // the allowed identity, with a method or path the policy excludes, is denied too (deny wins over allow)
  assert.equal((await callVia(frontend, 'orders', '/orders/1', 'DELETE')).status, 403);
  assert.equal((await callVia(frontend, 'orders', '/admin/stats')).status, 403);
  // Spellings of /admin an app resolves to /admin are /admin to the policy too (normalize_path, and merge_slashes inbound).
  for (const path of ['//admin/stats', '/orders/../admin/stats', '/./admin/stats', '/%61dmin/stats', '/orders/..\\admin/stats', '/orders/%2e%2e/admin/stats']) {
    assert.equal((await callVia(frontend, 'orders', path)).status, 403, path);
  }
  assert.equal((await callVia(frontend, 'orders', '/admin/../orders/./1')).status, 200, 'and a path that resolves elsewhere is not denied');
});

function plaintextGet(port: number): Promise<{ status?: number; error?: string }> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1', () => socket.write('GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n'));
    let data = '';
    socket.setTimeout(5000, () => socket.destroy(new Error('timeout')));
    socket.on('data', (c) => (data += c.toString()));
    socket.on('error', (e) => resolve({ error: e.message }));
    socket.on('close', () => {
      const m = /^HTTP\/1\.1 (\d{3})/.exec(data);
      resolve(m ? { status: Number(m[1]) } : { error: data ? `not HTTP: ${JSON.stringify(data.slice(0, 40))}` : 'closed without a response' });
    });
  });
}

test('a plaintext client against a STRICT service is refused', { timeout: 20_000 }, async () => {
  const r = await plaintextGet(orders.inboundPort);
  assert.equal(r.status, undefined, `STRICT inbound answered plaintext with ${r.status}`);
  assert.ok(r.error);
});

test('a PERMISSIVE service (the mesh default) accepts plaintext and mutual TLS callers', { timeout: 20_000 }, async () => {
  assert.equal((await plaintextGet(catalog.inboundPort)).status, 200);
  await eventually(async () => (await callVia(frontend, 'catalog', '/items')).status === 200, 'frontend -> catalog over mTLS');
});

test("a connection to a PERMISSIVE listener that sends nothing is closed once tls_inspector gives up (Envoy's listener_filters_timeout, 15 s)", { timeout: 40_000 }, async () => {
  const started = Date.now();
  const closedAfter = await new Promise<number | 'open'>((resolve) => {
    const socket = net.connect(catalog.inboundPort, '127.0.0.1');
    const timer = setTimeout(() => {
      socket.destroy();
      resolve('open');
    }, 30_000);
    socket.on('error', () => undefined);
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(Date.now() - started);
    });
  });
  assert.notEqual(closedAfter, 'open', 'held open for 30 s');
  assert.ok((closedAfter as number) >= 14_000, `closed after ${closedAfter} ms, before the 15 s the inspector waits`);
  // Counted as the listener filter's timeout, and never the listener's connection.
  const listener = { envoy_listener_address: `127.0.0.1_${catalog.inboundPort}` };
  assert.equal(await metric(catalog.adminPort, 'envoy_listener_downstream_pre_cx_timeout', listener), 1);
  assert.equal(await metric(catalog.adminPort, 'envoy_listener_downstream_pre_cx_active', listener), 0);
});

test("a callee that presents another identity's certificate: the caller's 503 says why, in Envoy's words (transport failure reason)", { timeout: 30_000 }, async () => {
  // "vault" is STRICT, and its one registered instance is really catalog's sidecar, which proves it is catalog.
  await mesh.must('POST', '/services', { name: 'vault', ports: [{ port: 8080, protocol: 'http' }] });
  await mesh.must('POST', '/peer-authentications', { name: 'vault-strict', service: 'vault', mode: 'STRICT' });
  await mesh.must('POST', '/services/vault/instances', { address: '127.0.0.1', port: catalog.inboundPort });
  let r: { status: number; body: string } | undefined;
  await eventually(async () => (r = await callVia(frontend, 'vault', '/secrets')).status === 503 && r.body.includes('transport failure reason'), 'frontend -> vault 503 with the reason');
  assert.match(r!.body, /^upstream connect error or disconnect\/reset before headers\. reset reason: connection failure, transport failure reason: TLS_error:ERR_TLS_CERT_ALTNAME_INVALID:server certificate SAN spiffe:\/\/weft\.local\/ns\/default\/sa\/catalog is not spiffe:\/\/weft\.local\/ns\/default\/sa\/vault$/);
});

test("each mutual TLS handshake's outcome is counted as Envoy's ssl.* stats: the callee's listener and the caller's cluster", { timeout: 30_000 }, async () => {
  await eventually(async () => (await callVia(frontend, 'orders', '/orders/1')).status === 200, 'frontend -> orders 200');
  const ordersListener = { envoy_listener_address: `127.0.0.1_${orders.inboundPort}` };
  const listenerStat = (name: string) => metric(orders.adminPort, `envoy_listener_ssl_${name}`, ordersListener);
  assert.ok((await listenerStat('handshake')) >= 1, 'the callee counted the handshake');
  assert.ok((await metric(frontend.adminPort, 'envoy_cluster_ssl_handshake', { envoy_cluster_name: 'outbound|8080||orders.default' })) >= 1, 'so did the caller, under the destination cluster');
  const handshake = (opts: tls.ConnectionOptions) =>
    new Promise<void>((resolve) => {
      const s = tls.connect({ host: '127.0.0.1', port: orders.inboundPort, ALPNProtocols: ['http/1.1'], checkServerIdentity: () => undefined, rejectUnauthorized: false, ...opts });
      s.on('error', () => undefined);
      s.on('close', () => resolve());
      s.resume();
    });
  // No client certificate where STRICT requires one.
  await handshake({});
  await eventually(async () => (await listenerStat('fail_verify_no_cert')) === 1, 'fail_verify_no_cert');
  // A certificate from another mesh's CA.
  const { mkdtemp } = await import('node:fs/promises');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const foreignCa = await loadOrCreateCa(await mkdtemp(join(tmpdir(), 'weft-foreign-ca-')), 'weft.local');
  const foreign = await issueSvid(foreignCa, { trustDomain: 'weft.local', namespace: 'default', service: 'frontend', ttlMs: 60_000, now: new Date() });
  await handshake({ cert: foreign.certificateChainPem, key: foreign.privateKeyPem });
  await eventually(async () => (await listenerStat('fail_verify_error')) === 1, 'fail_verify_error');
  // Plaintext bytes at a TLS listener (the earlier STRICT test's client): a TLS error, not a verification failure.
  assert.ok((await listenerStat('connection_error')) >= 1, 'connection_error');
  // The caller's side: the callee "vault" proved to be catalog (the earlier test), a SAN verification failure.
  assert.ok((await metric(frontend.adminPort, 'envoy_cluster_ssl_fail_verify_san', { envoy_cluster_name: 'outbound|8080||vault.default' })) >= 1, 'fail_verify_san');
  // Envoy's names.
  const text = (await get(orders.adminPort, 'admin', '/stats?filter=^listener\\..*\\.ssl\\.')).body;
  assert.match(text, new RegExp(`^listener\\.127\\.0\\.0\\.1_${orders.inboundPort}\\.ssl\\.fail_verify_no_cert: 1$`, 'm'));
});

test("the app learns its verified caller from x-forwarded-client-cert, as Istio's apps do; a plaintext caller's own header never arrives", { timeout: 20_000 }, async () => {
  let seen: Record<string, string> | undefined;
  await eventually(async () => {
    const r = await callVia(frontend, 'catalog', '/who');
    if (r.status !== 200) return false;
    seen = JSON.parse(r.body).headers;
    return true;
  }, 'frontend -> catalog');
  const xfcc = seen!['x-forwarded-client-cert'] ?? '';
  assert.match(xfcc, /^By=spiffe:\/\/weft\.local\/ns\/default\/sa\/catalog;Hash=[0-9a-f]{64};Subject="[^"]*";URI=spiffe:\/\/weft\.local\/ns\/default\/sa\/frontend$/, xfcc);
  // Plaintext, straight to catalog's PERMISSIVE inbound, with a forged header: removed, and nothing set in its place.
  const forged = await new Promise<Record<string, string>>((resolve, reject) => {
    const socket = net.connect(catalog.inboundPort, '127.0.0.1', () => socket.write('GET /who HTTP/1.1\r\nhost: catalog\r\nx-forwarded-client-cert: URI=spiffe://weft.local/ns/default/sa/admin\r\nconnection: close\r\n\r\n'));
    let data = '';
    socket.on('data', (c) => (data += c.toString()));
    socket.on('error', reject);
    socket.on('close', () => resolve(JSON.parse(data.slice(data.indexOf('\r\n\r\n') + 4)).headers));
  });
  assert.equal(forged['x-forwarded-client-cert'], undefined);
});

test('x-forwarded-proto, when the caller sent none, says https on a mutual TLS connection and http on a plaintext one (as Envoy sets it)', { timeout: 20_000 }, async () => {
  const ca = await loadOrCreateCa(mesh.dataDir, 'weft.local');
  const client = await issueSvid(ca, { trustDomain: 'weft.local', namespace: 'default', service: 'tester', ttlMs: 60_000, now: new Date() });
  const seen = (socket: net.Socket | tls.TLSSocket) => new Promise<Record<string, string>>((resolve, reject) => {
    let data = '';
    socket.on('data', (c: Buffer) => (data += c.toString()));
    socket.on('error', reject);
    socket.on('close', () => {
      const body = data.slice(data.indexOf('\r\n\r\n') + 4);
      try {
        resolve(JSON.parse(body).headers);
      } catch {
        reject(new Error(`no JSON response: ${JSON.stringify(data.slice(0, 80))}`));
      }
    });
  });
  const request = 'GET /proto HTTP/1.1\r\nhost: catalog\r\nconnection: close\r\n\r\n';
  const mtls = tls.connect({ host: '127.0.0.1', port: catalog.inboundPort, cert: client.certificateChainPem, key: client.privateKeyPem, ca: client.trustBundlePem, ALPNProtocols: ['http/1.1'], checkServerIdentity: () => undefined }, () => mtls.write(request));
  assert.equal((await seen(mtls))['x-forwarded-proto'], 'https');
  const plain = net.connect(catalog.inboundPort, '127.0.0.1', () => plain.write(request));
  assert.equal((await seen(plain))['x-forwarded-proto'], 'http');
});

test('each sidecar holds its own certificate over SDS, and a rogue or foreign xDS client gets nothing', { timeout: 20_000 }, async () => {
  type Secret = { name: string; secret: { tls_certificate: { certificate_chain: { inline_string: string }; private_key: { inline_string: string } } } };
  // As Envoy's admin shows it: the SecretsConfigDump of /config_dump.
  const dump = JSON.parse((await get(frontend.adminPort, 'admin', '/config_dump')).body) as { configs: { '@type': string; dynamic_active_secrets?: Secret[] }[] };
  const secrets = dump.configs.find((c) => c['@type'] === 'type.googleapis.com/envoy.admin.v3.SecretsConfigDump')?.dynamic_active_secrets;
  const secret = secrets?.find((s) => s.name === 'default');
  assert.ok(secret, 'frontend has its workload certificate');
  const pem = secret.secret.tls_certificate.certificate_chain.inline_string;
  const { X509Certificate } = await import('node:crypto');
  assert.match(new X509Certificate(pem).subjectAltName ?? '', /URI:spiffe:\/\/weft\.local\/ns\/default\/sa\/frontend/);
  const dumped = secret.secret.tls_certificate.private_key.inline_string;
  assert.equal(dumped, '[redacted]', "the admin config dump never shows the private key");
  // /certs, as Envoy's: per TLS context the chain presented (frontend's SPIFFE ID, valid for a while) and the mesh CA.
  type Cert = { serial_number: string; subject_alt_names: { uri?: string }[]; days_until_expiration: string; valid_from: string; expiration_time: string };
  const certs = JSON.parse((await get(frontend.adminPort, 'admin', '/certs')).body) as { certificates: { ca_cert: Cert[]; cert_chain: Cert[] }[] };
  assert.ok(certs.certificates.length >= 1);
  const presented = certs.certificates[0]!.cert_chain[0]!;
  assert.deepEqual(presented.subject_alt_names, [{ uri: 'spiffe://weft.local/ns/default/sa/frontend' }]);
  assert.equal(presented.serial_number, new X509Certificate(pem).serialNumber.toLowerCase());
  assert.ok(Date.parse(presented.expiration_time) > Date.now() && Date.parse(presented.valid_from) <= Date.now());
  assert.match(presented.days_until_expiration, /^\d+$/);
  assert.ok(certs.certificates[0]!.ca_cert.length >= 1, 'the trust bundle');

  const refusedWith = async (node: ReturnType<typeof testNode>) => {
    const client = new SotwClient(mesh.control.xdsPort, node);
    try {
      client.request(TypeUrl.secret, ['default', 'ROOTCA']);
      client.request(TypeUrl.cluster);
      client.request(TypeUrl.listener);
      await assert.rejects(client.next(), (err: grpc.ServiceError) => err.code === grpc.status.UNAUTHENTICATED);
    } finally {
      client.close();
    }
  };
  // no token at all
  await refusedWith(testNode('rogue-1', 'orders'));
  // frontend's token, claiming to be orders to get orders' certificate
  const frontendToken = await mesh.joinToken('frontend');
  await refusedWith(testNode('rogue-2', 'orders', { WEFT_TOKEN: frontendToken }));
  // a made-up token
  await refusedWith(testNode('rogue-3', 'frontend', { WEFT_TOKEN: 'wjt_not-a-real-token' }));

  const metrics = await (await fetch(`${mesh.control.apiUrl}/metrics`)).text();
  assert.match(metrics, /weft_xds_auth_refusals_total\{reason="missing"\} [1-9]/);
  assert.match(metrics, /weft_xds_auth_refusals_total\{reason="foreign"\} [1-9]/);
  assert.match(metrics, /weft_xds_auth_refusals_total\{reason="unknown"\} [1-9]/);

  // the same token, for the service it names, is served: its own certificate only
  const client = new SotwClient(mesh.control.xdsPort, testNode('frontend-2', 'frontend', { WEFT_TOKEN: frontendToken, WEFT_KIND: 'sidecar' }));
  try {
    client.request(TypeUrl.secret, ['default']);
    const reply = await client.next();
    assert.equal(reply.typeUrl, TypeUrl.secret);
    assert.deepEqual(reply.names, ['default']);
    const text = Buffer.from(reply.bytes[0]!).toString('latin1');
    const leaf = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(text)![0];
    assert.match(new X509Certificate(leaf).subjectAltName ?? '', /sa\/frontend$/);
  } finally {
    client.close();
  }
});
