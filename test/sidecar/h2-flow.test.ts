// HTTP/2 flow control through the sidecar, both directions: a 10 MiB gRPC
// bidirectional stream goes through whole, and a caller that stops reading
// stops the upstream within a bounded amount (the sidecar follows the h2
// windows on both sides rather than buffering the response).

import assert from 'node:assert/strict';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { after, test } from 'node:test';
import { MiB, TestMesh, eventually, instance, service } from './harness.ts';

const closers: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of closers.reverse()) await c();
});

/** An h2c upstream: /echo sends back what it reads; /flood writes `total` bytes as fast as the windows let it, counting them. */
async function upstream(total: number) {
  const sent = { flood: 0 };
  const server = http2.createServer();
  server.on('stream', (stream, headers) => {
    stream.on('error', () => undefined);
    stream.respond({ ':status': 200, 'content-type': 'application/grpc' });
    if (headers[':path'] === '/echo.Echo/Stream') {
      stream.pipe(stream);
      return;
    }
    const chunk = Buffer.alloc(16 * 1024, 0x61);
    const write = (): void => {
      while (sent.flood < total) {
        sent.flood += chunk.length;
        if (!stream.write(chunk)) return void stream.once('drain', write);
      }
      stream.end();
    };
    stream.resume();
    write();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  closers.push(() => new Promise((r) => server.close(() => r())));
  return { port: (server.address() as AddressInfo).port, sent };
}

async function meshTo(port: number, svc: string, appPort: number) {
  const mesh = await TestMesh.start();
  closers.push(() => mesh.close());
  mesh.model.update({
    services: [service(svc, 8000), { name: 'stream', namespace: 'default', ports: [{ port: appPort, protocol: 'grpc' }] }],
    instances: [instance('stream', port)],
    routes: [],
  });
  const caller = await mesh.sidecar(svc, 8000);
  const client = http2.connect(`http://127.0.0.1:${caller.outboundPort}`);
  closers.push(async () => void client.destroy());
  await new Promise((r) => client.once('connect', r));
  return client;
}

test('a 10 MiB gRPC stream both ways through the sidecar arrives whole', { timeout: 60_000 }, async () => {
  const app = await upstream(0);
  const client = await meshTo(app.port, 'bidi-caller', 7400);
  const call = client.request({ ':method': 'POST', ':path': '/echo.Echo/Stream', ':authority': 'stream:7400', 'content-type': 'application/grpc', te: 'trailers' });
  let received = 0;
  const done = new Promise<void>((resolve, reject) => {
    call.on('data', (c: Buffer) => (received += c.length));
    call.on('end', resolve);
    call.on('error', reject);
  });
  const chunk = Buffer.alloc(64 * 1024, 0x62);
  for (let sent = 0; sent < 10 * MiB; sent += chunk.length) {
    if (!call.write(chunk)) await new Promise((r) => call.once('drain', r));
  }
  call.end();
  await done;
  assert.equal(received, 10 * MiB);
});

test('a caller that stops reading a 10 MiB response: the upstream is held back by flow control, not drained into the sidecar', { timeout: 60_000 }, async () => {
  const app = await upstream(10 * MiB);
  const client = await meshTo(app.port, 'slow-caller', 7401);
  const call = client.request({ ':method': 'POST', ':path': '/flood.Flood/Get', ':authority': 'stream:7401', 'content-type': 'application/grpc' });
  call.end();
  call.pause();
  await new Promise((r) => call.once('response', r));
  // Let the windows fill.
  await new Promise((r) => setTimeout(r, 1500));
  const held = app.sent.flood;
  assert.ok(held < 4 * MiB, `the upstream wrote ${held} bytes while nobody read`);
  let received = 0;
  call.on('data', (c: Buffer) => (received += c.length));
  call.resume();
  await new Promise((r) => call.once('end', r));
  assert.equal(received, 10 * MiB);
  await eventually(() => app.sent.flood >= 10 * MiB, 5000, 'the upstream finished');
});
