// Certificate rotation (issue 7): with a 2 s certificate lifetime, the CA
// reissues every workload certificate at half-life and pushes it over SDS.
// Traffic runs through two sidecars (keep-alive, mTLS) and over fresh mTLS
// handshakes against the callee's inbound listener while at least three
// rotations happen on the wire; not one request may fail.

import assert from 'node:assert/strict';
import https from 'node:https';
import { after, before, test } from 'node:test';
import type { RunningSidecar } from '../../sidecar/main.ts';
import { IdentityMesh, callVia, eventually } from './identity-mesh.ts';

let mesh: IdentityMesh;
let frontend: RunningSidecar;
let orders: RunningSidecar;

before(async () => {
  mesh = await IdentityMesh.start(2000);
  for (const name of ['frontend', 'orders']) await mesh.must('POST', '/services', { name, ports: [{ port: 8080, protocol: 'http' }] });
  await mesh.must('POST', '/peer-authentications', { name: 'strict', mode: 'STRICT' });
  ({ sidecar: frontend } = await mesh.workload('frontend'));
  ({ sidecar: orders } = await mesh.workload('orders'));
  await eventually(async () => (await callVia(frontend, 'orders', '/warm')).status === 200, 'frontend -> orders');
}, { timeout: 60_000 });

after(() => mesh?.close(), { timeout: 20_000 });

/** frontend's current certificate, key and trust bundle, as SDS delivered them to its sidecar. */
function frontendMaterial(): { cert: string; key: string; ca: string } {
  return frontend.dataPlane.tls.material({ certificate: 'default', validation: 'ROOTCA' })!;
}

/** One request on a new mTLS connection to orders' inbound listener; resolves with orders' certificate serial. */
function freshHandshake(): Promise<{ status: number; serial: string }> {
  const m = frontendMaterial();
  return new Promise((resolve, reject) => {
    const req = https.request({
      host: '127.0.0.1', port: orders.inboundPort, path: '/direct', agent: false, timeout: 5000, ...m,
      checkServerIdentity: (_h, cert) => (cert.subjectaltname === 'URI:spiffe://weft.local/ns/default/sa/orders' ? undefined : new Error(`unexpected SAN ${cert.subjectaltname}`)),
    }, (res) => {
      const serial = (res.socket as import('node:tls').TLSSocket).getPeerCertificate().serialNumber;
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, serial }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

test('traffic crosses at least three certificate rotations with zero failed requests', { timeout: 45_000 }, async () => {
  const serials = new Set<string>();
  const failures: string[] = [];
  let requests = 0;
  const deadline = Date.now() + 30_000;
  while (serials.size < 4 && Date.now() < deadline) {
    const viaSidecars = callVia(frontend, 'orders', `/orders/${requests}`).then(
      (r) => { if (r.status !== 200) failures.push(`sidecar path: ${r.status} ${r.body}`); },
      (e: Error) => failures.push(`sidecar path: ${e.message}`),
    );
    const direct = freshHandshake().then(
      (r) => { serials.add(r.serial); if (r.status !== 200) failures.push(`fresh handshake: ${r.status}`); },
      (e: Error) => failures.push(`fresh handshake: ${e.message}`),
    );
    await Promise.all([viaSidecars, direct]);
    requests += 2;
    await new Promise((r) => setTimeout(r, 25));
  }
  assert.deepEqual(failures, [], `${failures.length} of ${requests} requests failed`);
  assert.ok(serials.size >= 4, `saw ${serials.size} distinct server certificates (${serials.size - 1} rotations) in ${requests} requests`);
});
