// Join token revocation: an operator who learns a join token leaked lists
// the tokens and revokes that one; whoever holds it then gets nothing more,
// not even on the xDS stream it already has open (which would otherwise keep
// receiving the identity's rotated certificates for as long as it lasts).

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { TypeUrl } from '../../control/xds/discovery.ts';
import { SotwClient, testNode } from '../xds/ads-client.ts';
import { IdentityMesh } from './identity-mesh.ts';

let mesh: IdentityMesh;

before(async () => {
  mesh = await IdentityMesh.start();
  await mesh.must('POST', '/services', { name: 'frontend', ports: [{ port: 8080, protocol: 'http' }] });
}, { timeout: 30_000 });

after(() => mesh?.close(), { timeout: 20_000 });

test('a revoked join token ends the streams it opened and admits no new one; tokens are listed without their secret', { timeout: 30_000 }, async () => {
  const issued = await mesh.must('POST', '/tokens/join', { service: 'frontend' });
  const kept = await mesh.must('POST', '/tokens/join', { service: 'frontend' });

  const listed = await mesh.must('GET', '/tokens/join');
  const ids = (listed.items as { id: string }[]).map((t) => t.id).sort();
  assert.deepEqual(ids, [issued.id, kept.id].sort());
  const entry = (listed.items as Record<string, unknown>[]).find((t) => t.id === issued.id)!;
  assert.deepEqual(entry, { id: issued.id, service: 'frontend', namespace: 'default', spiffeId: 'spiffe://weft.local/ns/default/sa/frontend', issuedAt: issued.issuedAt, expiresAt: null, expired: false });
  assert.ok(!JSON.stringify(listed).includes(issued.token), 'the token itself is never shown again');

  const open = new SotwClient(mesh.control.xdsPort, testNode('frontend-1', 'frontend', { WEFT_TOKEN: issued.token, WEFT_KIND: 'sidecar' }));
  const other = new SotwClient(mesh.control.xdsPort, testNode('frontend-2', 'frontend', { WEFT_TOKEN: kept.token, WEFT_KIND: 'sidecar' }));
  try {
    open.request(TypeUrl.secret, ['default']);
    other.request(TypeUrl.secret, ['default']);
    assert.equal((await open.next()).typeUrl, TypeUrl.secret, 'the token admits its proxy');
    assert.equal((await other.next()).typeUrl, TypeUrl.secret);

    const revoked = await mesh.api('DELETE', `/tokens/join/${issued.id}`);
    assert.equal(revoked.status, 200);
    await assert.rejects(open.next(), (err: grpc.ServiceError) => err.code === grpc.status.UNAUTHENTICATED && /revoked/.test(err.details));

    const again = new SotwClient(mesh.control.xdsPort, testNode('frontend-3', 'frontend', { WEFT_TOKEN: issued.token, WEFT_KIND: 'sidecar' }));
    try {
      again.request(TypeUrl.secret, ['default']);
      await assert.rejects(again.next(), (err: grpc.ServiceError) => err.code === grpc.status.UNAUTHENTICATED);
    } finally {
      again.close();
    }
    // Another token of the same identity is untouched.
    assert.equal(other.error, undefined);
    assert.deepEqual((await mesh.must('GET', '/tokens/join')).items.map((t: { id: string }) => t.id), [kept.id]);
    const unknown = await mesh.api('DELETE', `/tokens/join/${issued.id}`);
    assert.equal(unknown.status, 404);
    assert.equal(unknown.json.error.code, 'NOT_FOUND');
  } finally {
    open.close();
    other.close();
  }
});
