// HTTP/1.x on the wire through a sidecar, as Envoy behaves there: what the
// sidecar does when an upstream answers before it has the whole request,
// which hop-by-hop headers it keeps, which requests it refuses and how.
// Raw sockets on both sides, so every byte is the one the sidecar wrote.

import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, test } from 'node:test';
import { TestMesh, instance, metric, service, tap, withFields, withTimeout } from './harness.ts';

let mesh: TestMesh;
before(async () => {
  mesh = await TestMesh.start();
});
after(async () => {
  await mesh.close();
});

/** What a raw upstream saw: each request head, with the connection it came on. */
interface Seen {
  conn: number;
  head: string;
}

/**
 * A raw HTTP/1.1 upstream. `POST /early...` is answered 413 as soon as its
 * head arrives; its body is then read and dropped (by its content-length)
 * before the connection serves anything else, as a server that answers early
 * does. Anything else is answered 200 with the request head it saw as the
 * body. `/raw/<name>` answers with `responses[name]` as it stands.
 */
async function rawUpstream(responses: Record<string, string> = {}): Promise<{ port: number; seen: Seen[] }> {
  const seen: Seen[] = [];
  let conns = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((sock) => {
    const conn = ++conns;
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    let buf = Buffer.alloc(0);
    let skip = 0;
    sock.on('error', () => undefined);
    sock.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      for (;;) {
        if (skip > 0) {
          const n = Math.min(skip, buf.length);
          skip -= n;
          buf = buf.subarray(n);
          if (skip > 0) return;
        }
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        const head = buf.subarray(0, end).toString('latin1');
        buf = buf.subarray(end + 4);
        seen.push({ conn, head });
        const length = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? 0);
        const path = head.split(' ')[1] ?? '';
        if (path.startsWith('/early')) {
          sock.write('HTTP/1.1 413 Payload Too Large\r\ncontent-length: 4\r\n\r\nnope');
          skip = length;
          continue;
        }
        skip = length;
        if (path.startsWith('/raw/')) {
          sock.write(responses[path.slice(5)] ?? 'HTTP/1.1 500 Internal Server Error\r\ncontent-length: 0\r\n\r\n', 'latin1');
          continue;
        }
        const body = Buffer.from(head, 'latin1');
        sock.write(`HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: ${body.length}\r\n\r\n`);
        sock.write(body);
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  mesh.track(
    () =>
      new Promise<void>((r) => {
        server.close(() => r());
        for (const s of sockets) s.destroy();
      }),
  );
  return { port: (server.address() as net.AddressInfo).port, seen };
}

interface RawAnswer {
  data: string;
  /** The sidecar closed (or reset) the connection. */
  closed: boolean;
}

/**
 * Connects, writes each part in turn, and reads until `until` says the answer
 * is complete (the connection stays open) or the sidecar closes it.
 */
function send(port: number, parts: (string | Buffer)[], until: (data: string) => boolean = () => false, what = 'an answer'): Promise<RawAnswer> {
  const socket = net.connect(port, '127.0.0.1');
  const answer = new Promise<RawAnswer>((resolve) => {
    let data = '';
    let done = false;
    const finish = (closed: boolean) => {
      if (done) return;
      done = true;
      socket.destroy();
      resolve({ data, closed });
    };
    socket.on('data', (d: Buffer) => {
      data += d.toString('latin1');
      if (until(data)) finish(false);
    });
    socket.on('end', () => finish(true));
    socket.on('close', () => finish(true));
    socket.on('error', () => finish(true));
  });
  socket.once('connect', () => {
    for (const p of parts) socket.write(p);
  });
  return withTimeout(answer, 10_000, what);
}

/** A complete response with a content-length is in `data`. */
function complete(data: string): boolean {
  const end = data.indexOf('\r\n\r\n');
  if (end < 0) return false;
  const length = /\r\ncontent-length: *(\d+)/i.exec(data.slice(0, end));
  return length !== null && data.length >= end + 4 + Number(length[1]);
}

/** A sidecar whose outbound listener routes `name` to the port. */
async function outboundTo(name: string, port: number): Promise<{ outbound: number; admin: number }> {
  const caller = `${name}-caller`;
  mesh.model.update({ services: [service(caller, 8000), service(name, 7000)], instances: [instance(name, port)], routes: [], destinationPolicies: [] });
  const sc = await mesh.sidecar(caller, 8000);
  return { outbound: sc.outboundPort, admin: sc.adminPort };
}


test('an upstream that answers a streamed upload early: its connection is not reused, the client is told connection: close and its connection closes', { timeout: 60_000 }, async () => {
  const up = await rawUpstream();
  const sc = await outboundTo('early', up.port);

  // 1.2 MB of a declared 3 MB: past the 1 MiB buffer limit, so the body streams, and the upstream answers at its head.
  const a = await send(sc.outbound, ['POST /early HTTP/1.1\r\nHost: early\r\nContent-Length: 3000000\r\n\r\n', Buffer.alloc(1_200_000, 65)], undefined, 'the early answer and the close');
  assert.match(a.data, /^HTTP\/1\.1 413 /);
  assert.match(a.data, /\r\nconnection: close\r\n/i, 'the response says the connection closes');
  assert.ok(a.closed, 'the sidecar closes the connection after the response (not paused for a body nobody reads)');

  // Another client's request does not land in the middle of the unfinished body on a reused upstream connection.
  const b = await send(sc.outbound, ['GET /next HTTP/1.1\r\nHost: early\r\nx-victim: yes\r\n\r\n'], complete, 'the next request');
  assert.match(b.data, /^HTTP\/1\.1 200 /, b.data.slice(0, 200));
  assert.match(b.data, /GET \/next HTTP\/1\.1/);
  const next = up.seen.find((s) => s.head.startsWith('GET /next'));
  const early = up.seen.find((s) => s.head.startsWith('POST /early'));
  assert.ok(next && early && next.conn !== early.conn, 'on a fresh upstream connection');
  assert.equal(await metric(sc.admin, 'envoy_http_downstream_rq_response_before_rq_complete'), 1);
});

test('an Upgrade: h2c request is served as plain HTTP/1.1 (as Envoy ignores it): no Upgrade or HTTP2-Settings upstream, and the connection goes on', { timeout: 30_000 }, async () => {
  const up = await rawUpstream();
  const sc = await outboundTo('h2c', up.port);
  const upgrade = 'Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n';
  const r = await send(
    sc.outbound,
    [`GET /first HTTP/1.1\r\nHost: h2c\r\n${upgrade}\r\nPOST /second HTTP/1.1\r\nHost: h2c\r\n${upgrade}Content-Length: 5\r\n\r\nhello`, 'GET /third HTTP/1.1\r\nHost: h2c\r\n\r\n'],
    (d) => d.split('HTTP/1.1 200 OK').length === 4 && complete(d.slice(d.lastIndexOf('HTTP/1.1 200 OK'))),
    'three answers on one connection',
  );
  assert.equal(r.closed, false);
  assert.doesNotMatch(r.data, /HTTP\/1\.1 (403|101)/);
  const heads = up.seen.map((s) => s.head);
  assert.deepEqual(heads.map((h) => h.split('\r\n')[0]), ['GET /first HTTP/1.1', 'POST /second HTTP/1.1', 'GET /third HTTP/1.1']);
  for (const h of heads) assert.doesNotMatch(h, /^(upgrade|http2-settings|connection):/im);
  assert.match(heads[1]!, /\r\ncontent-length: 5/i);
});

test('a malformed upstream response is a protocol error: 502 (Bad Gateway, as Envoy; it was 503) with reset reason protocol error, flag UPE', { timeout: 30_000 }, async () => {
  const up = await rawUpstream({ malformed: 'HTTP/1.1 200 OK\r\nBad Header Line\r\ncontent-length: 2\r\n\r\nok', garbage: 'NOT HTTP AT ALL\r\n\r\n' });
  const sc = await outboundTo('broken', up.port);
  const tapped = await tap(sc.admin, '?max=2');
  for (const path of ['/raw/malformed', '/raw/garbage']) {
    const r = await send(sc.outbound, [`GET ${path} HTTP/1.1\r\nHost: broken\r\n\r\n`], complete, path);
    assert.match(r.data, /^HTTP\/1\.1 502 /, `${path}: ${r.data.slice(0, 100)}`);
    assert.match(r.data, /\r\n\r\nupstream connect error or disconnect\/reset before headers\. reset reason: protocol error$/, path);
  }
  await withTimeout(tapped.ended, 10_000, 'the tapped requests');
  assert.deepEqual(
    tapped.lines.map((l) => [l.path, l.response_code, l.response_flags]),
    [
      ['/raw/malformed', 502, 'UPE'],
      ['/raw/garbage', 502, 'UPE'],
    ],
  );
  // Each connection the sidecar closed under its request, as Envoy's codec client counts it.
  const cluster = { envoy_cluster_name: 'outbound|7000||broken.default' };
  assert.deepEqual(
    [await metric(sc.admin, 'envoy_cluster_upstream_cx_protocol_error', cluster), await metric(sc.admin, 'envoy_cluster_upstream_cx_destroy_local_with_active_rq', cluster), await metric(sc.admin, 'envoy_cluster_upstream_cx_destroy_remote_with_active_rq', cluster)],
    [2, 2, 0],
  );
});

test('an upstream 101 to a request that asked for no upgrade is a protocol error at once (502 UPE), not a 15 s wait and a 504', { timeout: 30_000 }, async () => {
  const up = await rawUpstream({ switch: 'HTTP/1.1 101 Switching Protocols\r\nupgrade: foo\r\nconnection: upgrade\r\n\r\n' });
  const sc = await outboundTo('switcher', up.port);
  const tapped = await tap(sc.admin, '?max=1');
  const r = await send(sc.outbound, ['GET /raw/switch HTTP/1.1\r\nHost: switcher\r\n\r\n'], complete, 'the answer to a 101');
  assert.match(r.data, /^HTTP\/1\.1 502 /, r.data.slice(0, 100));
  assert.match(r.data, /reset reason: protocol error$/);
  await withTimeout(tapped.ended, 10_000, 'the tapped request');
  assert.deepEqual(tapped.lines.map((l) => [l.response_code, l.response_flags]), [[502, 'UPE']]);
  // The connection that switched is gone: the next request gets a fresh one.
  const next = await send(sc.outbound, ['GET /after HTTP/1.1\r\nHost: switcher\r\n\r\n'], complete, 'the next request');
  assert.match(next.data, /^HTTP\/1\.1 200 /);
  const conns = up.seen.map((s) => s.conn);
  assert.notEqual(conns[0], conns[1]);
});

test('a malformed request body gets 400 and the connection closes at once, not after the 5-minute stream timeout; nothing reaches the app', { timeout: 30_000 }, async () => {
  const up = await rawUpstream();
  const sc = await outboundTo('chunky', up.port);
  const tapped = await tap(sc.admin, '?max=2');
  for (const body of ['ZZZ\r\nhello\r\n0\r\n\r\n', '5\r\nhelloXX0\r\n\r\n']) {
    const r = await send(sc.outbound, [`POST /put HTTP/1.1\r\nHost: chunky\r\nTransfer-Encoding: chunked\r\n\r\n${body}`], undefined, 'the 400 and the close');
    assert.match(r.data, /^HTTP\/1\.1 400 /, JSON.stringify(body));
    assert.match(r.data, /\r\nconnection: close\r\n/i);
    assert.ok(r.closed);
  }
  await withTimeout(tapped.ended, 10_000, 'the tapped requests');
  assert.deepEqual(tapped.lines.map((l) => [l.response_code, l.response_flags]), [[400, 'DPE'], [400, 'DPE']]);
  assert.equal(up.seen.length, 0);
});

test('a request transfer-encoding other than exactly chunked gets 501; on an upstream response it is a protocol error (502 UPE)', { timeout: 30_000 }, async () => {
  const up = await rawUpstream({ gzipped: 'HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n' });
  const sc = await outboundTo('coded', up.port);
  for (const [te, body] of [['gzip, chunked', '5\r\nhello\r\n0\r\n\r\n'], ['gzip', 'hello']] as const) {
    const r = await send(sc.outbound, [`POST /put HTTP/1.1\r\nHost: coded\r\nTransfer-Encoding: ${te}\r\n\r\n${body}`], undefined, `the answer to transfer-encoding ${te}`);
    assert.match(r.data, /^HTTP\/1\.1 501 /, `${te}: ${r.data.slice(0, 80)}`);
    assert.ok(r.closed, te);
  }
  assert.equal(up.seen.length, 0);
  const r = await send(sc.outbound, ['GET /raw/gzipped HTTP/1.1\r\nHost: coded\r\n\r\n'], complete, 'the answer to a gzip-coded response');
  assert.match(r.data, /^HTTP\/1\.1 502 /);
  assert.match(r.data, /reset reason: protocol error$/);
});

test('HTTP/1.1 without Host, or with an authority that is not one, gets 400; HTTP/1.0 gets 426 Upgrade Required (Envoy without accept_http_10)', { timeout: 30_000 }, async () => {
  const up = await rawUpstream();
  const sc = await outboundTo('hosted', up.port);
  const noHost = await send(sc.outbound, ['GET /a HTTP/1.1\r\n\r\n'], complete, 'the answer without Host');
  assert.match(noHost.data, /^HTTP\/1\.1 400 /, noHost.data.slice(0, 80));
  const evil = await send(sc.outbound, ['GET /b HTTP/1.1\r\nHost: evil/path?x y\r\n\r\n'], undefined, 'the answer to an invalid authority');
  assert.match(evil.data, /^HTTP\/1\.1 400 /, evil.data.slice(0, 80));
  assert.ok(evil.closed);
  const old = await send(sc.outbound, ['GET /c HTTP/1.0\r\nHost: hosted\r\nConnection: keep-alive\r\n\r\n'], undefined, 'the answer to HTTP/1.0');
  assert.match(old.data, /^HTTP\/1\.1 426 Upgrade Required\r\n/, old.data.slice(0, 80));
  assert.ok(old.closed);
  assert.equal(up.seen.length, 0, 'none of them went upstream');
  const ok = await send(sc.outbound, ['GET /d HTTP/1.1\r\nHost: hosted:7000\r\n\r\n'], complete, 'a valid request');
  assert.match(ok.data, /^HTTP\/1\.1 200 /);
});

test('http_protocol_options.accept_http_10: HTTP/1.0 is served, default_host_for_http_10 its Host when it has none', { timeout: 30_000 }, async () => {
  const own = await TestMesh.start({ translator: withFields({ http_protocol_options: { accept_http_10: true, default_host_for_http_10: 'legacy' } }) });
  try {
    const up = await rawUpstream();
    own.model.update({ services: [service('legacy-caller', 8000), service('legacy', 7000)], instances: [instance('legacy', up.port)] });
    const sc = await own.sidecar('legacy-caller', 8000);
    const r = await send(sc.outboundPort, ['GET /old HTTP/1.0\r\n\r\n'], undefined, 'the HTTP/1.0 answer');
    assert.match(r.data, /^HTTP\/1\.1 200 /, r.data.slice(0, 80));
    assert.match(up.seen[0]?.head ?? '', /\r\nhost: legacy\r\n/i);
  } finally {
    await own.close();
  }
});

test("the sidecar's own 400, 431, 403 and 501 carry server and date, as every response does", { timeout: 30_000 }, async () => {
  const up = await rawUpstream();
  const sc = await outboundTo('plain', up.port);
  const asks = [
    ['GET / HTTP/1.1\r\nHost x\r\n\r\n', 400],
    [`GET / HTTP/1.1\r\nHost: plain\r\n${Array.from({ length: 101 }, (_, i) => `X-H${i}: v\r\n`).join('')}\r\n`, 431],
    ['GET / HTTP/1.1\r\nHost: plain\r\nConnection: Upgrade\r\nUpgrade: TLS/1.2\r\n\r\n', 403],
    ['POST / HTTP/1.1\r\nHost: plain\r\nTransfer-Encoding: gzip\r\n\r\nhello', 501],
  ] as const;
  for (const [text, status] of asks) {
    const r = await send(sc.outbound, [text], undefined, `the ${status}`);
    const head = r.data.slice(0, r.data.indexOf('\r\n\r\n') + 2);
    assert.match(head, new RegExp(`^HTTP/1\\.1 ${status} `), head);
    assert.match(head, /\r\nserver: envoy\r\n/, `${status}: ${head}`);
    assert.match(head, /\r\ndate: \w{3}, \d{2} \w{3} \d{4} \d{2}:\d{2}:\d{2} GMT\r\n/, `${status}: ${head}`);
  }
});
