// A WebSocket across a mesh with identity on: the caller's sidecar opens the
// upgrade's own connection to the callee's sidecar over mutual TLS (the
// callee is STRICT, so plaintext would be refused), and the callee's sidecar
// sees the caller's SPIFFE ID, as for any request.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { RunningSidecar } from '../../sidecar/main.ts';
import { withTimeout } from '../sidecar/harness.ts';
import { connect, nextMessage, startWsApp } from '../sidecar/ws-app.ts';
import { IdentityMesh, eventually } from './identity-mesh.ts';

let mesh: IdentityMesh;
let web: RunningSidecar;
const closers: (() => Promise<void>)[] = [];

before(async () => {
  mesh = await IdentityMesh.start();
  for (const name of ['web', 'chat']) await mesh.must('POST', '/services', { name, ports: [{ port: 8080, protocol: 'http' }] });
  await mesh.must('POST', '/peer-authentications', { name: 'chat-strict', service: 'chat', mode: 'STRICT' });
  await mesh.must('POST', '/authorization-policies', { name: 'chat-from-web', service: 'chat', rules: [{ principals: ['spiffe://weft.local/ns/default/sa/web'] }] });
  ({ sidecar: web } = await mesh.workload('web'));
  await mesh.workload('chat', { app: await startWsApp() });
}, { timeout: 60_000 });

after(async () => {
  for (const c of closers.reverse()) await c();
  await mesh?.close();
}, { timeout: 20_000 });

test('a WebSocket from web to a STRICT chat goes over mutual TLS between the sidecars, and RBAC sees the caller', { timeout: 30_000 }, async () => {
  // The first upgrade may come before the endpoints and certificates are everywhere: retry the open until it works.
  let greeting = '';
  let ws: ReturnType<typeof connect> | undefined;
  await eventually(async () => {
    const attempt = connect(web.outboundPort, 'chat', '/chat', closers);
    try {
      greeting = await withTimeout(nextMessage(attempt), 2_000, 'greeting');
      ws = attempt;
      return true;
    } catch {
      attempt.close();
      return false;
    }
  }, 'a WebSocket from web to chat');
  assert.match(greeting, /^hello /);
  const reply = nextMessage(ws!);
  ws!.send('over mtls');
  assert.equal(await withTimeout(reply, 5_000, 'echo'), 'OVER MTLS');
  ws!.close(1000);
});
