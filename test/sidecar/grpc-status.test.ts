// gRPC status through sidecars with a real gRPC stack (@grpc/grpc-js on both
// ends): an error answer (trailers-only: grpc-status in the headers, which end
// the stream) and the sidecar's own local replies reach the caller with their
// code and message, as through Envoy.

import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import http2 from 'node:http2';
import { after, before, test } from 'node:test';
import { localReplies, renderLocalReply } from '../../sidecar/local-reply.ts';
import { encodeGrpcMessage } from '../../sidecar/wasm/grpc.ts';
import { TestMesh, freePort, instance, service } from './harness.ts';

let mesh: TestMesh;
before(async () => {
  mesh = await TestMesh.start();
});
after(async () => {
  await mesh.close();
});

const raw = (b: Buffer): Buffer => b;
const unary = (path: string) => ({ path, requestStream: false, responseStream: false, requestSerialize: raw, requestDeserialize: raw, responseSerialize: raw, responseDeserialize: raw });
const definition = { check: unary('/acl.Acl/Check'), echo: unary('/acl.Acl/Echo') };

interface Outcome {
  code: number;
  details: string;
  trailer?: string;
}

test('a gRPC error through two sidecars keeps its code, message and trailing metadata, and a local reply is a gRPC status (not INTERNAL) with grpc-message as Envoy writes it', { timeout: 30_000 }, async () => {
  const server = new grpc.Server();
  server.addService(definition as unknown as grpc.ServiceDefinition, {
    check: (_call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
      const metadata = new grpc.Metadata();
      metadata.set('x-denied-by', 'policy-7');
      // Before any message: grpc-js answers trailers-only (grpc-status in the HEADERS frame that ends the stream).
      cb({ code: grpc.status.PERMISSION_DENIED, details: 'not allowed: ünïcode 100%', metadata });
    },
    echo: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => cb(null, call.request),
  });
  const appPort = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
  mesh.track(async () => void server.forceShutdown());
  const inbound = await freePort();
  mesh.model.update({
    services: [service('portal', 8000), { name: 'acl', namespace: 'default', ports: [{ port: 50051, protocol: 'grpc' }] }, { name: 'gone', namespace: 'default', ports: [{ port: 50052, protocol: 'grpc' }] }],
    instances: [instance('acl', inbound)],
  });
  await mesh.sidecar('acl', appPort, { inboundPort: inbound });
  const portal = await mesh.sidecar('portal', 8000);
  const Client = grpc.makeGenericClientConstructor(definition as unknown as grpc.ServiceDefinition, 'Acl');
  const clients: grpc.Client[] = [];
  const call = (authority: string, method: 'check' | 'echo') =>
    new Promise<Outcome>((resolve) => {
      const client = new Client(`127.0.0.1:${portal.outboundPort}`, grpc.credentials.createInsecure(), { 'grpc.default_authority': authority });
      clients.push(client);
      (client as unknown as Record<string, (req: Buffer, cb: (e: grpc.ServiceError | null) => void) => void>)[method]!(Buffer.from('req'), (e) => {
        resolve(e ? { code: e.code, details: e.details, trailer: e.metadata.get('x-denied-by')[0] as string | undefined } : { code: 0, details: '' });
      });
    });
  try {
    assert.deepEqual(await call('acl:50051', 'echo'), { code: 0, details: '' });
    assert.deepEqual(await call('acl:50051', 'check'), { code: grpc.status.PERMISSION_DENIED, details: 'not allowed: ünïcode 100%', trailer: 'policy-7' });
    // The sidecar's own answer (Envoy's 503 `no healthy upstream`, mapped as Envoy maps it): UNAVAILABLE.
    assert.deepEqual(await call('gone:50052', 'echo'), { code: grpc.status.UNAVAILABLE, details: 'no healthy upstream', trailer: undefined });
    // The catch-all route's direct_response body is the message of its 404 (UNIMPLEMENTED), as Envoy sends it.
    assert.deepEqual(await call('nowhere:50053', 'echo'), { code: grpc.status.UNIMPLEMENTED, details: 'weft: no service matches this authority\n', trailer: undefined });
    // On the wire, grpc-message is encoded as Envoy encodes it: spaces and '/' as they are, '%' and non-ASCII as %XX.
    const session = http2.connect(`http://127.0.0.1:${portal.outboundPort}`);
    const head = await new Promise<http2.IncomingHttpHeaders>((resolve, reject) => {
      const req = session.request({ ':method': 'POST', ':path': '/acl.Acl/Echo', ':authority': 'gone:50052', 'content-type': 'application/grpc', te: 'trailers' });
      req.on('response', resolve);
      req.on('error', reject);
      req.end();
    });
    session.close();
    assert.deepEqual([head['grpc-status'], head['grpc-message']], ['14', 'no healthy upstream']);
    assert.equal(encodeGrpcMessage('reset/100% ü~'), 'reset/100%25 %C3%BC%7E');
    // A reply without a body (Envoy's 404 for no route) has no grpc-message, as from Envoy (it used to say "404").
    assert.deepEqual(renderLocalReply(localReplies.noRoute(), true).headers, [['content-type', 'application/grpc'], ['grpc-status', '12']]);
  } finally {
    for (const c of clients) c.close();
  }
});

test("a local reply's headers as Envoy's prepareLocalReply makes them from the reply's own (a wasm filter's)", () => {
  const filterReply = (headers: [string, string][], body: string, grpcStatus?: number) => ({ status: 400, body, headers, flag: '-', ...(grpcStatus !== undefined ? { grpcStatus } : {}) });
  // HTTP: the filter's content-type stays, alone; content-length is the body's.
  assert.deepEqual(renderLocalReply(filterReply([['content-type', 'application/json'], ['content-length', '99'], ['x-a', '1']], '{}'), false).headers, [['content-type', 'application/json'], ['x-a', '1'], ['content-length', '2']]);
  assert.deepEqual(renderLocalReply(filterReply([['x-a', '1']], 'no'), false).headers, [['x-a', '1'], ['content-type', 'text/plain'], ['content-length', '2']]);
  // No body: no content-type (Envoy removes it), content-length 0.
  assert.deepEqual(renderLocalReply(filterReply([['content-type', 'application/json']], ''), false).headers, [['content-length', '0']]);
  // gRPC: a grpc-status the headers carry wins over the filter's grpc_status; content-type and grpc-message once each.
  assert.deepEqual(renderLocalReply(filterReply([['grpc-status', '7'], ['content-type', 'text/html'], ['grpc-message', 'x'], ['content-length', '3']], 'denied', 16), true).headers, [['content-type', 'application/grpc'], ['grpc-status', '7'], ['grpc-message', 'denied']]);
  assert.deepEqual(renderLocalReply(filterReply([], 'denied', 16), true).headers, [['content-type', 'application/grpc'], ['grpc-status', '16'], ['grpc-message', 'denied']]);
});
