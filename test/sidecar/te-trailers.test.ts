// `te: trailers` reaches the upstream, as Envoy forwards it: C-core gRPC
// servers (python grpcio, C++) refuse a call without it ("Missing :te
// header"). Only the `trailers` token is kept; other TE values are
// hop-by-hop and dropped. From HTTP/2 and HTTP/1.1 clients alike.

import assert from 'node:assert/strict';
import http from 'node:http';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import { TestMesh, instance } from './harness.ts';

let mesh: TestMesh;
before(async () => {
  mesh = await TestMesh.start();
});
after(async () => {
  await mesh.close();
});

test('te: trailers reaches an h2c upstream from an HTTP/2 and an HTTP/1.1 client; other TE values do not', { timeout: 30_000 }, async () => {
  const seen = new Map<string, http2.IncomingHttpHeaders>();
  const server = http2.createServer();
  server.on('stream', (stream, headers) => {
    seen.set(String(headers[':path']), headers);
    stream.resume();
    stream.on('end', () => {
      stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
      stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
      stream.end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  mesh.track(() => new Promise((r) => server.close(() => r())));
  mesh.model.update({
    services: [{ name: 'te-caller', namespace: 'default', ports: [{ port: 8000, protocol: 'http' }] }, { name: 'greeter', namespace: 'default', ports: [{ port: 50051, protocol: 'grpc' }] }],
    instances: [instance('greeter', (server.address() as AddressInfo).port)],
  });
  const caller = await mesh.sidecar('te-caller', 8000);

  const client = http2.connect(`http://127.0.0.1:${caller.outboundPort}`);
  try {
    const status = await new Promise<number>((resolve, reject) => {
      const req = client.request({ ':method': 'POST', ':path': '/h2.Greeter/SayHello', ':authority': 'greeter:50051', 'content-type': 'application/grpc', te: 'trailers' });
      let s = 0;
      req.on('response', (h) => (s = Number(h[':status'])));
      req.resume();
      req.on('end', () => resolve(s));
      req.on('error', reject);
      req.end(Buffer.from('\0\0\0\0\x05hello'));
    });
    assert.equal(status, 200);
  } finally {
    client.close();
  }
  assert.equal(seen.get('/h2.Greeter/SayHello')?.te, 'trailers', 'from an HTTP/2 client');

  const h1 = (path: string, te: string) =>
    new Promise<number>((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port: caller.outboundPort, path, method: 'POST', agent: false, headers: { host: 'greeter:50051', 'content-type': 'application/grpc', te } }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      });
      req.on('error', reject);
      req.end(Buffer.from('\0\0\0\0\x05hello'));
    });
  assert.equal(await h1('/h1.Greeter/Trailers', 'trailers, deflate;q=0.5'), 200);
  assert.equal(seen.get('/h1.Greeter/Trailers')?.te, 'trailers', 'from an HTTP/1.1 client, the trailers token alone');
  assert.equal(await h1('/h1.Greeter/Gzip', 'gzip'), 200);
  assert.equal(seen.get('/h1.Greeter/Gzip')?.te, undefined, 'a TE without trailers is dropped');
});
