// Draining an HTTP/2 downstream connection. Envoy sends a shutdown notice
// (GOAWAY, last stream 2^31-1), waits drain_timeout, then the final GOAWAY,
// so a request already on its way is served. node cannot send a notice
// (docs/sidecar.md, Known gaps): the sidecar's one GOAWAY names the last
// stream it has, and a request that crossed it on the wire must then be
// refused as REFUSED_STREAM (safe to retry on a new connection), never
// half-served or left hanging, while the stream in progress completes.

import assert from 'node:assert/strict';
import http2 from 'node:http2';
import net from 'node:net';
import { after, test } from 'node:test';
import { TestMesh, freePort, instance, service, startApp } from './harness.ts';

const closers: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of closers.reverse()) await c();
});

/** A TCP relay to `port` that delays what comes back by `ms`, so a request and the GOAWAY cross on the wire. */
async function slowReturn(port: number, ms: number): Promise<number> {
  const sockets = new Set<net.Socket>();
  const relay = net.createServer((down) => {
    const up = net.connect(port, '127.0.0.1');
    sockets.add(up).add(down);
    down.pipe(up);
    up.on('data', (d: Buffer) => setTimeout(() => down.destroyed || down.write(d), ms));
    up.on('end', () => setTimeout(() => down.end(), ms));
    for (const s of [up, down]) s.on('error', () => undefined);
    down.on('close', () => up.destroy());
  });
  await new Promise<void>((r) => relay.listen(0, '127.0.0.1', () => r()));
  closers.push(
    () =>
      new Promise((r) => {
        relay.close(() => r());
        for (const s of sockets) s.destroy();
      }),
  );
  return (relay.address() as net.AddressInfo).port;
}

test('a request that crosses the drain GOAWAY on the wire is refused with REFUSED_STREAM (retryable), the app never sees it; the stream in progress completes', { timeout: 30_000 }, async () => {
  const paths: string[] = [];
  const app = await startApp('h2drain', (req, res) => {
    paths.push(req.url!);
    setTimeout(() => res.end(`done ${req.url}`), req.url === '/slow' ? 400 : 0);
  });
  closers.push(() => app.close());
  const mesh = await TestMesh.start();
  closers.push(() => mesh.close());
  const inbound = await freePort();
  mesh.model.update({ services: [service('h2drain', 9100)], instances: [instance('h2drain', inbound)], routes: [] });
  const sc = await mesh.sidecar('h2drain', app.port, { inboundPort: inbound });
  const session = http2.connect(`http://127.0.0.1:${await slowReturn(inbound, 150)}`);
  closers.push(async () => void session.destroy());
  session.on('error', () => undefined);
  const call = (path: string) =>
    new Promise<{ status: number; body: string } | { rstCode: number | undefined; code: string }>((resolve) => {
      const s = session.request({ ':path': path, ':authority': 'h2drain' });
      let status = 0;
      let body = '';
      s.on('response', (h) => (status = Number(h[':status'])));
      s.on('data', (c: Buffer) => (body += c));
      s.on('end', () => resolve({ status, body }));
      s.on('error', (e: NodeJS.ErrnoException) => resolve({ rstCode: s.rstCode, code: e.code ?? '' }));
    });
  await new Promise((r) => session.once('connect', r));
  const slow = call('/slow');
  await new Promise((r) => setTimeout(r, 250));
  // The sidecar sends GOAWAY now; the client sees it 150 ms later, after sending the next request.
  const drained = await fetch(`http://127.0.0.1:${sc.adminPort}/healthcheck/fail`, { method: 'POST' });
  assert.equal(drained.status, 200);
  const crossing = call('/crossing');
  assert.deepEqual(await slow, { status: 200, body: 'done /slow' });
  assert.deepEqual(await crossing, { rstCode: http2.constants.NGHTTP2_REFUSED_STREAM, code: 'ERR_HTTP2_STREAM_ERROR' });
  assert.deepEqual(paths, ['/slow']);
});
