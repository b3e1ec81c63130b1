// What an HTTP connection manager says about headers, honoured as Envoy
// honours it: the `server` response header (server_name, by default "envoy",
// under server_header_transformation, by default OVERWRITE) on proxied and
// local replies, and generate_request_id; and the limits on a request's head.

import assert from 'node:assert/strict';
import http from 'node:http';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { after, test } from 'node:test';
import { TestMesh, get, instance, service, startApp, withFields, withTimeout } from './harness.ts';

const closers: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of closers.reverse()) await c();
});

/** A mesh whose connection managers carry `hcm`; the app answers with its own server header and echoes x-request-id. */
async function meshWith(hcm: Record<string, unknown>): Promise<number> {
  const mesh = await TestMesh.start({ translator: withFields(hcm) });
  closers.push(() => mesh.close());
  const app = await startApp('origin', (req, res) => {
    res.setHeader('server', 'origin/1.0');
    res.end(String(req.headers['x-request-id'] ?? 'none'));
  });
  closers.push(() => app.close());
  mesh.model.update({ services: [service('caller', 8000), service('origin', 7000)], instances: [instance('origin', app.port)], routes: [] });
  return (await mesh.sidecar('caller', 8000)).outboundPort;
}

test('by default the server header is "envoy" on every response (the app\'s is replaced), and requests get an x-request-id', { timeout: 30_000 }, async () => {
  const port = await meshWith({});
  const proxied = await get(port, 'origin', '/');
  assert.equal(proxied.headers.server, 'envoy');
  assert.match(proxied.body, /^[0-9a-f-]{36}$/, 'the app got a generated x-request-id');
  const local = await get(port, 'nowhere', '/');
  assert.equal(local.status, 404);
  assert.equal(local.headers.server, 'envoy');
});

test('server_name with APPEND_IF_ABSENT keeps the app\'s header and names local replies; PASS_THROUGH adds none; generate_request_id false adds no id', { timeout: 30_000 }, async () => {
  const append = await meshWith({ server_name: 'weft', server_header_transformation: 'APPEND_IF_ABSENT', generate_request_id: false });
  const proxied = await get(append, 'origin', '/');
  assert.equal(proxied.headers.server, 'origin/1.0');
  assert.equal(proxied.body, 'none');
  assert.equal((await get(append, 'nowhere', '/')).headers.server, 'weft');
  const pass = await meshWith({ server_header_transformation: 'PASS_THROUGH' });
  assert.equal((await get(pass, 'origin', '/')).headers.server, 'origin/1.0');
  assert.equal((await get(pass, 'nowhere', '/')).headers.server, undefined);
});

/** A request through the mesh with `headers`, by a client and to an app that both allow 256 KiB heads (node's default is 16 KiB). */
async function bigHeads(port: number, headers: Record<string, string>): Promise<{ status: number; appHeaders: number; echoed: string | undefined }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: '/', headers: { host: 'wide', ...headers }, maxHeaderSize: 256 * 1024 }, (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode!, appHeaders: body ? Number(body) : -1, echoed: res.headers['x-echo'] as string | undefined }));
    });
    req.on('error', reject);
    req.end();
  });
}

test("request heads as Envoy limits them: 60 KiB and 100 headers by default (431 past either), max_request_headers_kb and max_headers_count; 60 KiB response heads", { timeout: 30_000 }, async () => {
  const app = http.createServer({ maxHeaderSize: 256 * 1024 }, (req, res) => {
    // Echoes the big header back: the response head is as large as the request's.
    if (req.headers['x-big']) res.setHeader('x-echo', req.headers['x-big'] as string);
    res.end(String(req.rawHeaders.length / 2));
  });
  await new Promise<void>((r) => app.listen(0, '127.0.0.1', () => r()));
  closers.push(() => new Promise((r) => app.close(() => r())));
  const mesh = async (hcm: Record<string, unknown>) => {
    const m = await TestMesh.start({ translator: withFields(hcm) });
    closers.push(() => m.close());
    m.model.update({ services: [service('caller', 8000), service('wide', 7000)], instances: [instance('wide', (app.address() as AddressInfo).port)], routes: [] });
    return (await m.sidecar('caller', 8000)).outboundPort;
  };
  const many = (n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`x-h${i}`, 'v']));

  const port = await mesh({});
  // 30 KiB: over node's 16 KiB default, under Envoy's 60; it reaches the app, and its 30 KiB echo comes back.
  const big = 'a'.repeat(30 * 1024);
  const r30 = await bigHeads(port, { 'x-big': big });
  assert.equal(r30.status, 200);
  assert.equal(r30.echoed, big);
  assert.equal((await bigHeads(port, { 'x-big': 'a'.repeat(70 * 1024) })).status, 431);
  // host + 95: under 100 (the sidecar adds its own on the way, as Envoy does); host + 100 is past it.
  assert.equal((await bigHeads(port, many(95))).status, 200);
  assert.equal((await bigHeads(port, many(100))).status, 431);

  const tight = await mesh({ max_request_headers_kb: 8, common_http_protocol_options: { max_headers_count: 10 } });
  assert.equal((await bigHeads(tight, { 'x-big': 'a'.repeat(6 * 1024) })).status, 200);
  assert.equal((await bigHeads(tight, { 'x-big': 'a'.repeat(10 * 1024) })).status, 431);
  assert.equal((await bigHeads(tight, many(8))).status, 200);
  assert.equal((await bigHeads(tight, many(10))).status, 431);

  // HTTP/2 (h2c): the same limits, the header list counted with its pseudo-headers; past either the stream is reset, as Envoy resets it.
  const h2 = async (p: number, headers: Record<string, string>) => {
    const session = http2.connect(`http://127.0.0.1:${p}`, { maxHeaderListPairs: 1000, settings: { maxHeaderListSize: 256 * 1024 } });
    session.on('error', () => undefined);
    try {
      return await new Promise<{ status: number | undefined; rst: number; echoed: string | undefined }>((resolve) => {
        const req = session.request({ ':path': '/', ':authority': 'wide', ...headers });
        let status: number | undefined;
        let echoed: string | undefined;
        req.on('response', (h) => {
          status = h[':status'];
          echoed = h['x-echo'] as string | undefined;
        });
        req.on('data', () => undefined);
        req.on('error', () => undefined);
        req.on('close', () => resolve({ status, rst: req.rstCode ?? 0, echoed }));
        req.end();
      });
    } finally {
      session.close();
    }
  };
  const h2ok = await h2(port, { 'x-big': big });
  assert.equal(h2ok.status, 200);
  assert.equal(h2ok.echoed, big);
  const h2big = await h2(port, { 'x-big': 'a'.repeat(70 * 1024) });
  assert.equal(h2big.status, undefined);
  assert.notEqual(h2big.rst, 0, 'a 70 KiB header list: the stream is reset');
  assert.equal((await h2(port, many(90))).status, 200);
  assert.notEqual((await h2(port, many(100))).rst, 0, '100 headers and 4 pseudo-headers');
  assert.equal((await h2(tight, { 'x-big': 'a'.repeat(6 * 1024) })).status, 200);
  assert.notEqual((await h2(tight, { 'x-big': 'a'.repeat(10 * 1024) })).rst, 0);
  assert.equal((await h2(tight, many(5))).status, 200);
  assert.notEqual((await h2(tight, many(8))).rst, 0);
});

test('common_http_protocol_options.max_requests_per_connection: an HTTP/1.1 connection says connection: close on its last request; HTTP/2 gets GOAWAY', { timeout: 30_000 }, async () => {
  const port = await meshWith({ common_http_protocol_options: { max_requests_per_connection: 2 } });
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const seen: { port: number; connection: string | undefined }[] = [];
  for (let i = 0; i < 4; i++) {
    await new Promise<void>((resolve, reject) => {
      const req = http.get({ host: '127.0.0.1', port, path: '/', headers: { host: 'origin' }, agent }, (res) => {
        seen.push({ port: req.socket!.localPort!, connection: res.headers.connection });
        res.resume();
        res.on('end', () => resolve());
      });
      req.on('error', reject);
    });
  }
  agent.destroy();
  assert.deepEqual(seen.map((s) => s.connection), [undefined, 'close', undefined, 'close']);
  assert.equal(new Set(seen.map((s) => s.port)).size, 2);

  const session = http2.connect(`http://127.0.0.1:${port}`);
  session.on('error', () => undefined);
  const goaway = new Promise<void>((r) => session.once('goaway', () => r()));
  for (let i = 0; i < 2; i++) {
    await new Promise<void>((resolve, reject) => {
      const s = session.request({ ':path': '/', ':authority': 'origin' });
      s.on('response', (h) => assert.equal(h[':status'], 200));
      s.resume();
      s.on('end', () => resolve());
      s.on('error', reject);
    });
  }
  await withTimeout(goaway, 5000, 'GOAWAY after the second stream');
  session.close();
});
