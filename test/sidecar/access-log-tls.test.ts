// The access log's TLS operators on real mutual TLS connections, as Envoy's
// formatter reads Ssl::ConnectionInfo (source/common/formatter/
// stream_info_formatter.cc): %DOWNSTREAM_PEER_URI_SAN% and friends on the
// inbound listener a caller reached over mTLS, %UPSTREAM_PEER_URI_SAN% and
// friends on the outbound listener whose cluster connected over mTLS, and
// %UPSTREAM_CLUSTER% giving a cluster's alt_stat_name. One weft sidecar with
// the STRICT golden config calls its own service (web -> web), so a request
// crosses both listeners, and each logs its side.

import assert from 'node:assert/strict';
import { createHash, X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { loadOrCreateCa } from '../../control/ca/root.ts';
import { issueSvid } from '../../control/ca/svid.ts';
import { DataPlane } from '../../sidecar/dataplane.ts';
import { SidecarStats } from '../../sidecar/stats.ts';
import { eventually, get } from './harness.ts';

const closers: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of closers.reverse()) await c();
});

type Json = Record<string, any>;
const STDOUT = 'type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog';
const golden = (file: string): { name: string; value: Json }[] => JSON.parse(readFileSync(new URL(`../golden/identity-mtls-strict/${file}`, import.meta.url), 'utf8'));
const resources = (file: string, patch: (v: Json) => Json = (v) => v) => golden(file).map((r) => ({ name: r.name, version: 'v1', value: patch(structuredClone(r.value)) }));
const WEB = 'outbound|8080||web.default';
const INBOUND = 'inbound|8080||web.default';
const SPIFFE_WEB = 'spiffe://weft.local/ns/default/sa/web';

test('TLS operators: the inbound side logs the caller\'s certificate, the outbound side the callee\'s; plaintext logs none', { timeout: 30_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-alog-mtls-'));
  closers.push(async () => rmSync(dir, { recursive: true, force: true }));
  const ca = await loadOrCreateCa(dir, 'weft.local');
  const web = await issueSvid(ca, { trustDomain: 'weft.local', namespace: 'default', service: 'web', ttlMs: 600_000, now: new Date() });
  const cert = new X509Certificate(web.certificateChainPem);

  const app = http.createServer((_req, res) => res.end('ok'));
  await new Promise<void>((r) => app.listen(0, '127.0.0.1', () => r()));
  closers.push(() => new Promise<void>((r) => app.close(() => r())));
  closers.push(async () => app.closeAllConnections());
  const appPort = (app.address() as { port: number }).port;

  const lines: Json[] = [];
  const dp = new DataPlane(new SidecarStats(), { node: { id: 'web-1', cluster: 'web' }, accessLog: (l) => lines.push(JSON.parse(l)) });
  closers.push(() => dp.close());
  const inboundLog = {
    side: 'inbound',
    peer: '%DOWNSTREAM_PEER_URI_SAN%',
    local: '%DOWNSTREAM_LOCAL_URI_SAN%',
    subject: '%DOWNSTREAM_PEER_SUBJECT%',
    issuer: '%DOWNSTREAM_PEER_ISSUER%',
    version: '%DOWNSTREAM_TLS_VERSION%',
    cipher: '%DOWNSTREAM_TLS_CIPHER%',
    sha256: '%DOWNSTREAM_PEER_FINGERPRINT_256%',
    serial: '%DOWNSTREAM_PEER_SERIAL%',
    expires: '%DOWNSTREAM_PEER_CERT_V_END%',
    expires_epoch: '%DOWNSTREAM_PEER_CERT_V_END(%s)%',
    pem: '%DOWNSTREAM_PEER_CERT%',
    upstream: '%UPSTREAM_PEER_URI_SAN%',
  };
  const outboundLog = {
    side: 'outbound',
    peer: '%UPSTREAM_PEER_URI_SAN%',
    local: '%UPSTREAM_LOCAL_URI_SAN%',
    subject: '%UPSTREAM_PEER_SUBJECT%',
    version: '%UPSTREAM_TLS_VERSION%',
    pem: '%UPSTREAM_PEER_CERT%',
    downstream: '%DOWNSTREAM_PEER_URI_SAN%',
    cluster: '%UPSTREAM_CLUSTER%',
    raw: '%UPSTREAM_CLUSTER_RAW%',
  };
  const withLogs = (l: Json) => {
    l.address = { socket_address: { address: '127.0.0.1', port_value: 0 } };
    const json_format = l.name === 'inbound' ? inboundLog : outboundLog;
    l.filter_chains[0].filters[0].typed_config.access_log = [{ name: 'envoy.access_loggers.stdout', typed_config: { '@type': STDOUT, log_format: { json_format } } }];
    return l;
  };
  const clusters = resources('clusters.json', (c) => {
    if (c.name === INBOUND) c.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.port_value = appPort;
    if (c.name === WEB) c.alt_stat_name = 'web_stats';
    return c;
  });
  assert.deepEqual(await dp.apply('secret', [
    { name: 'default', version: 'v1', value: { name: 'default', tls_certificate: { certificate_chain: { inline_string: web.certificateChainPem }, private_key: { inline_string: web.privateKeyPem } } } },
    { name: 'ROOTCA', version: 'v1', value: { name: 'ROOTCA', validation_context: { trusted_ca: { inline_string: web.trustBundlePem } } } },
  ], [], false), { errors: [] });
  assert.deepEqual(await dp.apply('cluster', clusters, [], true), { errors: [] });
  assert.deepEqual(await dp.apply('listener', resources('listeners.json', withLogs), [], true), { errors: [] });
  assert.deepEqual(await dp.apply('route', resources('routes.json'), [], false), { errors: [] });
  const inboundPort = dp.listenerPort('inbound')!;
  const endpoints = resources('endpoints.json', (e) => (e.cluster_name === WEB ? { ...e, endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: inboundPort } } } }] }] } : e));
  assert.deepEqual(await dp.apply('endpoint', endpoints, [], false), { errors: [] });
  const outboundPort = dp.listenerPort('outbound')!;

  const res = await get(outboundPort, 'web');
  assert.equal(res.status, 200);
  assert.equal(res.body, 'ok');
  await eventually(() => lines.length === 2, 5000, 'a line from each listener');
  const inbound = lines.find((l) => l.side === 'inbound')!;
  const outbound = lines.find((l) => l.side === 'outbound')!;
  assert.deepEqual(inbound, {
    side: 'inbound',
    peer: SPIFFE_WEB,
    local: SPIFFE_WEB,
    subject: cert.subject.split('\n').filter((x) => x !== '').reverse().join(','),
    issuer: cert.issuer.split('\n').filter((x) => x !== '').reverse().join(','),
    version: 'TLSv1.3',
    cipher: inbound.cipher,
    sha256: createHash('sha256').update(cert.raw).digest('hex'),
    serial: cert.serialNumber.toLowerCase(),
    expires: new Date(cert.validTo).toISOString(),
    expires_epoch: String(Date.parse(cert.validTo) / 1000),
    // The peer's certificate as PEM, percent-encoded as Envoy's urlEncode: decoding gives the certificate back.
    pem: inbound.pem,
    // The inbound cluster is plaintext to the app.
    upstream: null,
  });
  assert.match(inbound.cipher, /^TLS_(AES|CHACHA20)_/);
  assert.match(inbound.pem, /^-----BEGIN%20CERTIFICATE-----%0A[A-Za-z0-9%]+%0A-----END%20CERTIFICATE-----%0A$/);
  assert.ok(new X509Certificate(decodeURIComponent(inbound.pem)).raw.equals(cert.raw), 'the logged PEM is the peer certificate');
  assert.deepEqual(outbound, {
    side: 'outbound',
    peer: SPIFFE_WEB,
    local: SPIFFE_WEB,
    subject: inbound.subject,
    version: 'TLSv1.3',
    pem: inbound.pem,
    // The caller reached the outbound listener in plaintext.
    downstream: null,
    cluster: 'web_stats',
    raw: WEB,
  });
});
