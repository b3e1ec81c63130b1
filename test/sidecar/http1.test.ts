// The sidecar's own HTTP/1.x server (sidecar/http1.ts), spoken to byte by
// byte over a real loopback socket: keep-alive, pipelining, bodies both
// ways, 100-continue, HEAD, HTTP/1.0, bad requests, upgrades, disconnects.
// And through a sidecar: a POST with Expect: 100-continue (what curl sends
// for a body over 1 KB) reaches the app.

import assert from 'node:assert/strict';
import net from 'node:net';
import { after, test } from 'node:test';
import type { H1Request, H1Response } from '../../sidecar/http1.ts';
import { serveHttp1 } from '../../sidecar/http1.ts';
import { TestMesh, instance, service, startApp } from './harness.ts';

type Handler = (req: H1Request, res: H1Response) => void;

const servers: net.Server[] = [];
const sockets = new Set<net.Socket>();
after(() => {
  for (const s of servers) s.close();
  for (const s of sockets) s.destroy();
});

async function server(handler: Handler): Promise<number> {
  const s = net.createServer((socket) => {
    sockets.add(socket);
    serveHttp1(socket, handler, () => sockets.delete(socket), 60_000);
  });
  servers.push(s);
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  return (s.address() as net.AddressInfo).port;
}

/** Opens a connection, writes `text`, and collects everything until `until` matches or the server closes. */
function exchange(port: number, text: string | string[], until?: (got: string) => boolean): Promise<{ data: string; closed: boolean }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    let data = '';
    let done = false;
    const finish = (closed: boolean) => {
      if (done) return;
      done = true;
      socket.destroy();
      resolve({ data, closed });
    };
    socket.on('data', (d) => {
      data += d.toString('latin1');
      if (until?.(data)) finish(false);
    });
    socket.on('close', () => finish(true));
    socket.on('error', reject);
    const parts = Array.isArray(text) ? text : [text];
    let i = 0;
    const next = () => {
      if (i < parts.length) socket.write(parts[i++]!, next);
    };
    socket.once('connect', () => setTimeout(next, 0));
    setTimeout(() => (done ? undefined : reject(new Error(`no answer; got so far: ${JSON.stringify(data)}`))), 5000).unref();
  });
}

function readBody(req: H1Request): Promise<string> {
  return new Promise((resolve) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => resolve(body));
  });
}

const responses = (data: string) => data.split(/(?=HTTP\/1\.1 \d{3} )/).filter(Boolean);

test('keep-alive: two requests on one connection, each with a length and a date', async () => {
  let n = 0;
  const port = await server((req, res) => {
    res.writeHead(200, ['content-type', 'text/plain', 'x-n', String(++n)]);
    res.end(`hello ${req.url}`);
  });
  const { data, closed } = await exchange(port, ['GET /a HTTP/1.1\r\nHost: x\r\n\r\n', 'GET /bb HTTP/1.1\r\nHost: x\r\n\r\n'], (d) => responses(d).length === 2 && d.endsWith('hello /bb'));
  const [a, b] = responses(data);
  assert.match(a!, /^HTTP\/1\.1 200 OK\r\n/);
  assert.match(a!, /\r\ncontent-length: 8\r\n/);
  assert.match(a!, /\r\ndate: \w{3}, \d{2} \w{3} \d{4} /);
  assert.match(a!, /\r\n\r\nhello \/a$/);
  assert.match(b!, /x-n: 2\r\n[\s\S]*\r\n\r\nhello \/bb$/);
  assert.equal(closed, false, 'the connection stays open between requests');
});

test('pipelined requests are answered in order even when the first is slower', async () => {
  const port = await server((req, res) => {
    const reply = () => res.end(req.url);
    if (req.url === '/slow') setTimeout(reply, 50);
    else reply();
  });
  const { data } = await exchange(port, 'GET /slow HTTP/1.1\r\nHost: x\r\n\r\nGET /fast HTTP/1.1\r\nHost: x\r\n\r\n', (d) => d.endsWith('/fast'));
  const [first, second] = responses(data);
  assert.match(first!, /\/slow$/);
  assert.match(second!, /\/fast$/);
});

test('a pipelined Connection: close ends the connection after its own response, not the first one: every request before it is answered', async () => {
  // Answered a little later, as through a proxy: all three are queued before the first response goes out.
  const port = await server((req, res) => setTimeout(() => res.end(req.url), 10));
  const { data, closed } = await exchange(port, 'GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\nGET /3 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
  const answered = responses(data);
  assert.deepEqual(answered.map((r) => r.slice(r.indexOf('\r\n\r\n') + 4)), ['/1', '/2', '/3']);
  assert.deepEqual(answered.map((r) => /\r\nconnection: close\r\n/.test(r)), [false, false, true], 'only the last response says connection: close');
  assert.equal(closed, true);
});

test('a pipelined request\'s body waits in the socket, not in memory, until its turn', async () => {
  let serverSocket: net.Socket | undefined;
  const s = net.createServer((socket) => {
    serverSocket = socket;
    sockets.add(socket);
    serveHttp1(socket, async (req, res) => {
      if (req.url === '/slow') {
        setTimeout(() => res.end('slow done'), 300);
        return;
      }
      const body = await readBody(req);
      res.end(`got ${body.length}`);
    }, () => sockets.delete(socket), 60_000);
  });
  servers.push(s);
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const port = (s.address() as net.AddressInfo).port;
  const big = 'x'.repeat(4 * 1024 * 1024);
  const pending = exchange(port, `GET /slow HTTP/1.1\r\nHost: x\r\n\r\nPOST /big HTTP/1.1\r\nHost: x\r\nContent-Length: ${big.length}\r\n\r\n${big}`, (d) => d.includes('got '));
  await new Promise((r) => setTimeout(r, 150));
  const readWhileWaiting = serverSocket!.bytesRead;
  const { data } = await pending;
  assert.ok(readWhileWaiting < 1024 * 1024, `the server read ${readWhileWaiting} bytes while the body had no reader`);
  assert.match(data, /slow done[\s\S]*got 4194304$/);
});

test('request bodies arrive decoded, by content-length or chunked, even when read after an await', async () => {
  const port = await server(async (req, res) => {
    await new Promise((r) => setTimeout(r, 10));
    const body = await readBody(req);
    res.end(`got ${body.length}: ${body}`);
  });
  const fixed = await exchange(port, 'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello', (d) => d.includes('got '));
  assert.match(fixed.data, /got 5: hello$/);
  const chunked = await exchange(port, ['POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n', '4\r\ndefg\r\n0\r\n\r\n'], (d) => d.includes('got '));
  assert.match(chunked.data, /got 7: abcdefg$/);
});

test('a response without a length is chunked to HTTP/1.1 and close-delimited to HTTP/1.0', async () => {
  const port = await server((_req, res) => {
    res.writeHead(200, ['content-type', 'text/plain']);
    res.write(Buffer.from('part one, '));
    setTimeout(() => {
      res.write(Buffer.from('part two'));
      res.end();
    }, 10);
  });
  const v11 = await exchange(port, 'GET / HTTP/1.1\r\nHost: x\r\n\r\n', (d) => d.endsWith('0\r\n\r\n'));
  assert.match(v11.data, /transfer-encoding: chunked\r\n/);
  assert.match(v11.data, /\r\n\r\na\r\npart one, \r\n8\r\npart two\r\n0\r\n\r\n$/);
  const v10 = await exchange(port, 'GET / HTTP/1.0\r\n\r\n');
  assert.equal(v10.closed, true);
  assert.doesNotMatch(v10.data, /transfer-encoding/);
  assert.match(v10.data, /connection: close\r\n/);
  assert.match(v10.data, /\r\n\r\npart one, part two$/);
});

test('HTTP/1.0 with keep-alive keeps the connection; Connection: close from a client closes it', async () => {
  const port = await server((_req, res) => res.end('ok'));
  const keep = await exchange(port, ['GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n', 'GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n'], (d) => responses(d).length === 2 && d.endsWith('ok'));
  assert.equal(keep.closed, false);
  assert.match(keep.data, /connection: keep-alive\r\n/);
  const close = await exchange(port, 'GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
  assert.equal(close.closed, true);
  assert.match(close.data, /connection: close\r\n[\s\S]*ok$/);
});

test('HEAD gets the headers and no body; 204 gets neither a length nor a body', async () => {
  const port = await server((req, res) => {
    if (req.url === '/none') {
      res.writeHead(204, []);
      res.end();
    } else {
      res.writeHead(200, ['content-length', '11']);
      res.end('hello world');
    }
  });
  const head = await exchange(port, ['HEAD / HTTP/1.1\r\nHost: x\r\n\r\n', 'GET /none HTTP/1.1\r\nHost: x\r\n\r\n'], (d) => responses(d).length === 2 && d.endsWith('\r\n\r\n'));
  const [h, none] = responses(head.data);
  assert.match(h!, /content-length: 11\r\n/);
  assert.match(h!, /\r\n\r\n$/, 'no body after HEAD');
  assert.doesNotMatch(none!, /content-length|transfer-encoding/);
});

test('a malformed request gets 400, oversized headers 431, and the connection closes', async () => {
  let called = 0;
  const port = await server((_req, res) => {
    called++;
    res.end('ok');
  });
  const bad = await exchange(port, 'GET / HTTP/1.1\r\nHost x\r\n\r\n');
  assert.match(bad.data, /^HTTP\/1\.1 400 Bad Request\r\n/);
  assert.equal(bad.closed, true);
  const smuggle = await exchange(port, 'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n');
  assert.match(smuggle.data, /^HTTP\/1\.1 400 /, 'content-length together with chunked is refused');
  // Envoy's defaults: a 60 KiB head and 100 headers.
  const big = await exchange(port, `GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(70_000)}\r\n\r\n`);
  assert.match(big.data, /^HTTP\/1\.1 431 /);
  assert.equal(big.closed, true);
  const many = await exchange(port, `GET / HTTP/1.1\r\nHost: x\r\n${Array.from({ length: 100 }, (_, i) => `X-H${i}: v\r\n`).join('')}\r\n`);
  assert.match(many.data, /^HTTP\/1\.1 431 /);
  assert.equal(called, 0);
});

test('requests pipelined before a malformed one are all answered, then 400 and close', async () => {
  const port = await server((req, res) => {
    if (req.url === '/slow') setTimeout(() => res.end('slow'), 30);
    else res.end(req.url);
  });
  const { data, closed } = await exchange(port, 'GET /slow HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost x\r\n\r\n');
  const [a, b, bad] = responses(data);
  assert.match(a!, /\r\n\r\nslow$/);
  assert.match(b!, /\r\n\r\n\/b$/);
  assert.match(bad!, /^HTTP\/1\.1 400 Bad Request\r\n/);
  assert.equal(closed, true);
});

test('Expect: 100-continue is answered by the proxy and not passed on', async () => {
  let seen: string[] = [];
  const port = await server(async (req, res) => {
    seen = req.rawHeaders;
    res.end(`body: ${await readBody(req)}`);
  });
  const { data } = await exchange(port, ['POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n', 'data'], (d) => d.endsWith('body: data'));
  assert.match(data, /^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 200 OK\r\n/);
  assert.ok(!seen.some((h) => h.toLowerCase() === 'expect'), `rawHeaders: ${seen.join(', ')}`);
});

test('an Upgrade other than websocket (and h2c, served as HTTP/1.1), and CONNECT, are refused with 403, as Envoy refuses an upgrade nothing allows', async () => {
  let called = 0;
  const port = await server((_req, res) => {
    called++;
    res.end('ok');
  });
  for (const text of ['GET /x HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: TLS/1.2\r\n\r\n', 'CONNECT x:443 HTTP/1.1\r\nHost: x:443\r\n\r\n']) {
    const { data, closed } = await exchange(port, text);
    assert.match(data, /^HTTP\/1\.1 403 Forbidden\r\n[\s\S]*upgrade failed$/);
    assert.equal(closed, true);
  }
  assert.equal(called, 0);
});

test('a WebSocket upgrade reaches the handler: an ordinary answer closes the connection; switchProtocols sends 101 and hands over the socket with the bytes sent past the head', async () => {
  const port = await server((req, res) => {
    if (req.url === '/no') return res.end('no');
    assert.equal((req as { upgrade?: boolean }).upgrade, true);
    const { socket, head } = res.switchProtocols(['upgrade', 'websocket', 'connection', 'Upgrade']);
    socket.write(`head=${head.toString()};`);
    socket.on('data', (d: Buffer) => socket.write(`echo=${d.toString()};`));
    socket.resume();
  });
  const refused = await exchange(port, 'GET /no HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n');
  assert.match(refused.data, /^HTTP\/1\.1 200 OK\r\n[\s\S]*\r\n\r\nno$/);
  assert.equal(refused.closed, true);
  const { data } = await exchange(port, ['GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: WebSocket\r\n\r\nearly', 'later'], (d) => d.includes('later;'));
  const [head, after] = data.split('\r\n\r\n');
  assert.equal(head, 'HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade');
  // 'early' came with the request head; 'later' may share its read or come on its own.
  assert.match(after!, /^head=early(later;|;echo=later;)$/);
});

test('a header value with a line break is refused, not written', async () => {
  let error = '';
  const port = await server((_req, res) => {
    try {
      res.writeHead(200, ['x-evil', 'a\r\nset-cookie: stolen=1']);
      res.end('ok');
    } catch (e) {
      error = (e as Error).message;
      res.writeHead(500, []);
      res.end('refused');
    }
  });
  const { data } = await exchange(port, 'GET / HTTP/1.1\r\nHost: x\r\n\r\n', (d) => d.endsWith('refused'));
  assert.match(error, /invalid character in header "x-evil"/);
  assert.doesNotMatch(data, /stolen/);
});

test('a client that goes away mid-request: the request and the unfinished response see close', async () => {
  const closed = { req: false, res: false, finished: true };
  let resolve!: () => void;
  const seen = new Promise<void>((r) => (resolve = r));
  const port = await server((req, res) => {
    req.on('close', () => (closed.req = true));
    res.on('close', () => {
      closed.res = true;
      closed.finished = res.writableFinished;
      resolve();
    });
  });
  const socket = net.connect(port, '127.0.0.1');
  socket.write('POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\npartial');
  await new Promise((r) => setTimeout(r, 50));
  socket.destroy();
  await seen;
  assert.deepEqual(closed, { req: true, res: true, finished: false });
});

test('through a sidecar: a POST with Expect: 100-continue reaches the app', { timeout: 30_000 }, async () => {
  const mesh = await TestMesh.start();
  try {
    const app = await startApp('echo', (req, res) => {
      let body = '';
      req.on('data', (c) => (body += c));
      req.on('end', () => res.end(`${req.headers.expect ?? 'no expect'}; ${body.length} bytes`));
    });
    mesh.track(() => app.close());
    mesh.model.update({ services: [service('web', 8000), service('echo', 7000)], instances: [instance('echo', app.port)] });
    const web = await mesh.sidecar('web', 8000);
    const body = 'x'.repeat(2048);
    const { data } = await exchange(web.outboundPort, [`POST /upload HTTP/1.1\r\nHost: echo\r\nExpect: 100-continue\r\nContent-Length: ${body.length}\r\n\r\n`, body], (d) => d.includes('bytes'));
    assert.match(data, /^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 200 OK\r\n/);
    assert.match(data, /no expect; 2048 bytes$/);
  } finally {
    await mesh.close();
  }
});
