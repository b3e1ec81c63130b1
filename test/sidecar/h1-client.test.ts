// The sidecar's HTTP/1.1 upstream client (sidecar/h1-client.ts) against
// real servers on loopback: keep-alive reuse, the connection limit, bodies
// framed every way HTTP/1.1 allows, informational responses, and Envoy's
// reset reasons when the upstream refuses, resets or is too slow.

import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { after, test } from 'node:test';
import { Readable } from 'node:stream';
import { Http1Pool } from '../../sidecar/h1-client.ts';
import type { UpstreamRequest } from '../../sidecar/upstream.ts';
import { UpstreamFailure } from '../../sidecar/upstream.ts';
import { freePort } from './harness.ts';

const closers: (() => void)[] = [];
after(() => {
  for (const c of closers) c();
});

async function rawServer(onConnection: (socket: net.Socket) => void): Promise<{ port: number; connections: () => number }> {
  let connections = 0;
  const s = net.createServer((socket) => {
    connections++;
    socket.on('error', () => undefined);
    onConnection(socket);
  });
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  closers.push(() => s.close());
  return { port: (s.address() as net.AddressInfo).port, connections: () => connections };
}

async function httpServer(handler: http.RequestListener, keepAliveTimeout = 5000): Promise<{ port: number; sockets: () => number }> {
  let sockets = 0;
  const s = http.createServer({ keepAliveTimeout }, handler);
  s.on('connection', () => sockets++);
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  closers.push(() => s.close());
  closers.push(() => s.closeAllConnections());
  return { port: (s.address() as net.AddressInfo).port, sockets: () => sockets };
}

function pool(port: number, extra: Partial<ConstructorParameters<typeof Http1Pool>[0]> = {}): Http1Pool {
  const p = new Http1Pool({ address: '127.0.0.1', port, connections: 8, connectTimeoutMs: 1000, idleTimeoutMs: 60_000, ...extra });
  closers.push(() => void p.close());
  return p;
}

const get = (path = '/', extra: Partial<UpstreamRequest> = {}): UpstreamRequest => ({ method: 'GET', path, authority: 'svc', headers: [['x-test', '1']], body: null, ...extra });

async function text(p: Http1Pool, req: UpstreamRequest): Promise<{ status: number; headers: [string, string][]; body: string; trailers: [string, string][] }> {
  const r = await p.start(req).response;
  const { body, trailers } = await r.body.collect();
  return { status: r.status, headers: r.headers, body: body.toString(), trailers };
}

test('sequential requests reuse one keep-alive connection; host and headers arrive as sent', async () => {
  const seen: string[] = [];
  const s = await httpServer((req, res) => {
    seen.push(`${req.method} ${req.url} host=${req.headers.host} x-test=${req.headers['x-test']}`);
    res.end(`hello ${req.url}`);
  });
  const p = pool(s.port);
  for (const path of ['/a', '/b', '/c']) assert.equal((await text(p, get(path))).body, `hello ${path}`);
  assert.deepEqual(seen, ['GET /a host=svc x-test=1', 'GET /b host=svc x-test=1', 'GET /c host=svc x-test=1']);
  assert.equal(s.sockets(), 1);
});

test('no more connections than allowed: the rest wait their turn, in order', async () => {
  let open = 0;
  let most = 0;
  const order: string[] = [];
  const s = await httpServer((req, res) => {
    open++;
    most = Math.max(most, open);
    setTimeout(() => {
      open--;
      order.push(req.url!);
      res.end('ok');
    }, 20);
  });
  const p = pool(s.port, { connections: 2 });
  const all = await Promise.all(['/1', '/2', '/3', '/4', '/5', '/6'].map((u) => text(p, get(u))));
  assert.ok(all.every((r) => r.body === 'ok'));
  assert.equal(most, 2);
  assert.equal(s.sockets(), 2);
  assert.deepEqual(order.slice(2, 4).sort(), ['/3', '/4']);
});

test("at most three connections per event, as Envoy's tryCreateNewConnections: a backlog of seven pending requests that finds room (the cluster's other connections closed) gets three connections at once, then more as each comes up, until every request has its own", async () => {
  const held: http.ServerResponse[] = [];
  const s = await httpServer((_req, res) => void held.push(res));
  // The cluster's connections as max_connections counts them: 10 of other hosts' fill it.
  const open = { value: 10, changed: () => undefined };
  let overflows = 0;
  const p = pool(s.port, { connections: 10, connectionsOpen: open, cxOverflow: () => overflows++ });
  const calls = [text(p, get('/0'))];
  assert.equal(open.value, 11, 'a pool with no connection gets one past max_connections');
  for (let i = 1; i < 7; i++) calls.push(text(p, get(`/${i}`)));
  assert.equal(open.value, 11, 'the rest wait: max_connections reached');
  assert.equal(overflows, 7);
  // The other hosts' connections close: room for nine more.
  open.value -= 10;
  calls.push(text(p, get('/7')));
  assert.equal(open.value, 1 + 3, 'three connections made in the event that found room, not seven');
  const deadline = Date.now() + 5000;
  while (held.length < 8 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  assert.equal(held.length, 8, 'every request reached the server, each on its own connection');
  assert.equal(s.sockets(), 8);
  assert.equal(open.value, 8);
  for (const r of held.splice(0)) r.end('ok');
  assert.ok((await Promise.all(calls)).every((r) => r.body === 'ok'));
});

test('request bodies: a buffer with its length, a stream chunked', async () => {
  const s = await httpServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => res.end(`${req.headers['content-length'] ?? 'no length'} ${req.headers['transfer-encoding'] ?? 'plain'} ${body}`));
  });
  const p = pool(s.port);
  assert.equal((await text(p, get('/', { method: 'POST', body: Buffer.from('abc') }))).body, '3 plain abc');
  let chunks = 0;
  const stream = Readable.from([Buffer.from('one,'), Buffer.from('two')]);
  assert.equal((await text(p, get('/', { method: 'POST', body: stream, onBodyData: () => chunks++ }))).body, 'no length chunked one,two');
  assert.equal(chunks, 2);
});

test('response bodies: chunked with trailers, close-delimited, and none for HEAD', async () => {
  const s = await rawServer((socket) => {
    socket.on('data', (d) => {
      const line = d.toString().split('\r\n')[0]!;
      if (line.startsWith('GET /chunked')) socket.write('HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ntrailer: x-sum\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\nx-sum: 11\r\n\r\n');
      else if (line.startsWith('GET /eof')) socket.end('HTTP/1.0 200 OK\r\ncontent-type: text/plain\r\n\r\nuntil the end');
      else if (line.startsWith('HEAD')) socket.write('HTTP/1.1 200 OK\r\ncontent-length: 1234\r\n\r\n');
    });
  });
  const p = pool(s.port);
  const chunked = await text(p, get('/chunked'));
  assert.equal(chunked.body, 'hello world');
  assert.deepEqual(chunked.trailers, [['x-sum', '11']]);
  assert.equal((await text(p, get('/eof'))).body, 'until the end');
  const head = await text(p, get('/', { method: 'HEAD' }));
  assert.equal(head.status, 200);
  assert.equal(head.body, '');
  assert.ok(head.headers.some(([k, v]) => k === 'content-length' && v === '1234'));
});

test('an informational 100 or 103 before the response is skipped', async () => {
  const s = await rawServer((socket) => {
    socket.once('data', () => socket.write('HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nlink: </a.css>\r\n\r\nHTTP/1.1 201 Created\r\ncontent-length: 4\r\n\r\ndone'));
  });
  const r = await text(pool(s.port), get());
  assert.equal(r.status, 201);
  assert.equal(r.body, 'done');
});

test('connection: close from the server: the next request opens a new connection', async () => {
  const s = await httpServer((_req, res) => {
    res.setHeader('connection', 'close');
    res.end('bye');
  });
  const p = pool(s.port);
  assert.equal((await text(p, get())).body, 'bye');
  assert.equal((await text(p, get())).body, 'bye');
  assert.equal(s.sockets(), 2);
});

test('the server\'s Keep-Alive timeout is honoured: a request after it does not hit a closing socket', { timeout: 20_000 }, async () => {
  const s = await httpServer((_req, res) => res.end('ok'), 1000);
  const p = pool(s.port);
  for (let i = 0; i < 3; i++) {
    assert.equal((await text(p, get())).body, 'ok');
    await new Promise((r) => setTimeout(r, 1000));
  }
  assert.equal(s.sockets(), 3, 'each idle socket was dropped a second before the server would have closed it');
});

test('refused: connection_failure; reset before the response: connection_termination; mid-body: the body fails', async () => {
  const closed = await freePort();
  await assert.rejects(pool(closed).start(get()).response, (e: UpstreamFailure) => e.reason === 'connection_failure');
  const resets = await rawServer((socket) => socket.once('data', () => socket.destroy()));
  await assert.rejects(pool(resets.port).start(get()).response, (e: UpstreamFailure) => e.reason === 'connection_termination');
  const half = await rawServer((socket) => socket.once('data', () => {
    socket.write('HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\npartial');
    setTimeout(() => socket.destroy(), 20);
  }));
  const r = await pool(half.port).start(get()).response;
  await assert.rejects(r.body.collect(), (e: UpstreamFailure) => e.reason === 'connection_termination');
});

test('a garbled response is a protocol error, not a hang', async () => {
  const s = await rawServer((socket) => socket.once('data', () => socket.write('NOT HTTP AT ALL\r\n\r\n')));
  await assert.rejects(pool(s.port).start(get()).response, (e: UpstreamFailure) => e.reason === 'protocol_error' && /protocol error/.test(e.message));
});

test('abort: waiting for a connection or for the response, the exchange rejects with the reason and frees its slot', async () => {
  const s = await rawServer(() => undefined); // accepts, never answers
  const p = pool(s.port, { connections: 1 });
  const first = p.start(get());
  const second = p.start(get());
  second.abort('overflow');
  await assert.rejects(second.response, (e: UpstreamFailure) => e.reason === 'overflow');
  await new Promise((r) => setTimeout(r, 20));
  first.abort('timeout');
  await assert.rejects(first.response, (e: UpstreamFailure) => e.reason === 'timeout' && e.message === 'upstream request timeout');
  const ok = await httpServer((_req, res) => res.end('fine'));
  const p2 = pool(ok.port, { connections: 1 });
  const a = p2.start(get());
  a.abort('timeout');
  await assert.rejects(a.response);
  assert.equal((await text(p2, get())).body, 'fine', 'the slot is usable again');
});

test('a header value with a line break is refused before anything is written', async () => {
  let received = '';
  const s = await rawServer((socket) => socket.on('data', (d) => (received += d)));
  const ex = pool(s.port).start(get('/', { headers: [['x-evil', 'a\r\nx-injected: 1']] }));
  await assert.rejects(ex.response, /invalid character in header "x-evil"/);
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(received, '');
});
