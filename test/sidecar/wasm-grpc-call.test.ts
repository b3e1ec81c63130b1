// A wasm filter's unary gRPC callout (proxy_grpc_call) through a real weft
// sidecar to a real HTTP/2 gRPC server behind the mesh's cluster for it: the
// server sees the call as a gRPC client would make it, the filter holds the
// request until the answer and continues it (OK) or answers 403 (a status,
// or no server at all: UNAVAILABLE).
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { after, test } from 'node:test';
import { defaultTranslator } from '../../control/xds/index.ts';
import { TestMesh, eventually, freePort, get, instance, moduleServer, service, startApp } from './harness.ts';
import { grpcCaller, grpcServiceBytes } from '../wasm/grpc-caller.ts';

const closers: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of closers.reverse()) await c();
});

const frame = (text: string) => {
  const bytes = Buffer.from(text);
  const out = Buffer.alloc(5 + bytes.length);
  out.writeUInt32BE(bytes.length, 1);
  bytes.copy(out, 5);
  return out;
};

test('a wasm filter calls a gRPC service (proxy_grpc_call) through the sidecar: OK lets the request on, a status or a server gone answers 403', { timeout: 60_000 }, async () => {
  const seen: { path: string; authority: string; contentType: string; te: string; token: string; timeout: string; message: string }[] = [];
  const authz = http2.createServer();
  authz.on('stream', (stream, headers) => {
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => {
      const body = Buffer.concat(chunks);
      seen.push({ path: String(headers[':path']), authority: String(headers[':authority']), contentType: String(headers['content-type']), te: String(headers.te), token: String(headers['x-token']), timeout: String(headers['grpc-timeout']), message: body.subarray(5).toString() });
      if (seen.length === 1) {
        stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
        stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
        stream.end(frame('allowed'));
      } else stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': '7', 'grpc-message': 'not%20you' }, { endStream: true });
    });
  });
  await new Promise<void>((r) => authz.listen(0, '127.0.0.1', () => r()));
  const sessions = new Set<http2.ServerHttp2Session>();
  authz.on('session', (s) => {
    sessions.add(s);
    s.on('close', () => sessions.delete(s));
  });
  let authzOpen = true;
  const closeAuthz = async () => {
    if (!authzOpen) return;
    authzOpen = false;
    const closed = new Promise<void>((r) => authz.close(() => r()));
    for (const s of sessions) s.destroy();
    await closed;
  };
  closers.push(closeAuthz);

  // A GrpcService naming the authority: by default it would be the cluster's name, as in Envoy, which an
  // HTTP/2 server that checks :authority (nghttp2's, node's) refuses for its '|'.
  const module = await grpcCaller({ service: grpcServiceBytes('outbound|50090||authz.default', 'authz:50090') });
  const sha = createHash('sha256').update(module).digest('hex');
  const served = await moduleServer(new Map([[sha, module]]));
  closers.push(served.close);
  const mesh = await TestMesh.start({ translator: defaultTranslator({ wasmBaseUrl: served.url, wasmClusterName: 'weft-control' }) });
  closers.push(() => mesh.close());
  const app = await startApp('shop');
  mesh.track(() => app.close());
  const inbound = await freePort();
  mesh.model.update({
    services: [service('shop', 7995), { name: 'authz', namespace: 'default', ports: [{ port: 50090, protocol: 'grpc' }] }],
    instances: [instance('shop', inbound), instance('authz', (authz.address() as AddressInfo).port)],
    filterModules: [{ name: 'grpc-caller', sha256: sha, size: module.length, abiVersion: '0.2.1' }],
    filterBindings: [{ name: 'shop-grpc-caller', namespace: 'default', service: 'shop', direction: 'inbound', filter: 'grpc-caller', order: 0, config: {}, failurePolicy: 'fail_closed' }],
  });
  const lines: string[] = [];
  await mesh.sidecar('shop', app.port, { inboundPort: inbound, log: (l) => lines.push(l) });
  const wasmLines = () => lines.filter((l) => l.includes('"source":"wasm"')).map((l) => JSON.parse(l).msg as string);

  const allowed = await get(inbound, 'shop', '/orders');
  assert.equal(allowed.status, 200, JSON.stringify(wasmLines()));
  assert.deepEqual(seen[0], { path: '/weft.test.Authz/Check', authority: 'authz:50090', contentType: 'application/grpc', te: 'trailers', token: 'abc', timeout: '1000m', message: 'hello' });
  await eventually(() => wasmLines().includes('allowed'), 5000, 'the response message logged by the filter');

  const denied = await get(inbound, 'shop', '/orders');
  assert.equal(denied.status, 403);
  assert.equal(denied.body, 'denied');
  // The grpc-message as the server sent it (not percent-decoded) with the response code details, as Envoy's
  // async client hands it on (enhancedGrpcMessage); until 2026-11-28 'not you'.
  await eventually(() => wasmLines().includes('not%20you{via_upstream}') && wasmLines().includes('#7'), 5000, "the status and its message in the filter's proxy_on_grpc_close");

  await closeAuthz();
  const gone = await get(inbound, 'shop', '/orders');
  assert.equal(gone.status, 403);
  await eventually(() => wasmLines().includes(`#${String.fromCharCode(48 + 14)}`), 5000, 'UNAVAILABLE when no server answers');
  // The router's own answer, with its details: the reset reason, as Envoy's router words them.
  assert.ok(
    wasmLines().some((l) => l.startsWith('upstream connect error or disconnect/reset before headers. reset reason: connection failure') && l.includes('{upstream_reset_before_response_started{connection_failure')),
    JSON.stringify(wasmLines()),
  );
  assert.equal(app.hits, 1, 'only the allowed request reached the app');
});
