// WebSocket over HTTP/2 hops (RFC 8441 extended CONNECT), as Envoy carries it
// (docs: "Websocket over HTTP/2 hops"): a connection manager with
// http2_protocol_options.allow_connect advertises SETTINGS_ENABLE_CONNECT_PROTOCOL
// and turns a client's CONNECT with :protocol websocket into the HTTP/1.1 upgrade
// it stands for; an upgrade to an HTTP/2 cluster goes as an extended CONNECT
// stream, its 200 read as the 101. The clients are undici's WebSocket (a client
// nobody here wrote) and node's own HTTP/2 client; the app speaks RFC 6455 over
// HTTP/1.1.

import assert from 'node:assert/strict';
import http2 from 'node:http2';
import net from 'node:net';
import { after, test } from 'node:test';
import { connect, frame, nextMessage, startWsApp } from './ws-app.ts';
import { TestMesh, eventually, freePort, get, instance, metric, service, withFields, withTimeout } from './harness.ts';

const closers: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of closers.reverse()) await c().catch(() => undefined);
});

const H2_OPTIONS = 'envoy.extensions.upstreams.http.v3.HttpProtocolOptions';

/**
 * caller's sidecar -> chat's sidecar -> the app (HTTP/1.1). `allowConnect`: every connection manager sets
 * http2_protocol_options.allow_connect; `h2Hop`: the caller's cluster for chat speaks HTTP/2 to chat's sidecar.
 */
async function mesh(allowConnect: boolean, h2Hop: boolean) {
  const translator = withFields(
    (hcm) => (allowConnect ? { ...hcm, http2_protocol_options: { allow_connect: true, max_concurrent_streams: 50 } } : hcm),
    {},
    (c) => {
      if (!h2Hop || !String(c.name).startsWith('outbound|7000|')) return c;
      return {
        ...c,
        typed_extension_protocol_options: {
          [H2_OPTIONS]: {
            '@type': 'type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions',
            explicit_http_config: { http2_protocol_options: { allow_connect: true } },
          },
        },
      };
    },
  );
  const m = await TestMesh.start({ translator });
  closers.push(() => m.close());
  const app = await startWsApp();
  closers.push(() => app.close());
  const inbound = await freePort();
  m.model.update({ services: [service('caller', 8000), service('chat', 7000)], instances: [instance('chat', inbound)], routes: [], destinationPolicies: [] });
  const chat = await m.sidecar('chat', app.port, { inboundPort: inbound });
  const caller = await m.sidecar('caller', 8000);
  return { caller, chat, app };
}

/** An HTTP/1.1 WebSocket handshake by hand: everything the sidecar sends back until it closes. */
function rawUpgrade(port: number, path: string): Promise<string> {
  return withTimeout(
    new Promise<string>((resolve, reject) => {
      const s = net.connect(port, '127.0.0.1', () => {
        s.write(`GET ${path} HTTP/1.1\r\nhost: chat\r\nconnection: Upgrade\r\nupgrade: websocket\r\nsec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`);
      });
      let out = '';
      s.on('data', (d) => (out += d.toString()));
      s.on('close', () => resolve(out));
      s.on('error', reject);
    }),
    5_000,
    'raw upgrade answer',
  );
}

/** A client's masked text frame (RFC 6455 5.3). */
function clientText(text: string): Buffer {
  const payload = Buffer.from(text);
  const mask = Buffer.from([1, 2, 3, 4]);
  const masked = Buffer.from(payload.map((b, i) => b ^ mask[i % 4]!));
  const f = frame(1, masked);
  // frame() writes an unmasked header: set the MASK bit and put the key before the payload.
  f[1] = f[1]! | 0x80;
  const at = f.length - masked.length;
  return Buffer.concat([f.subarray(0, at), mask, f.subarray(at)]);
}

/** The text of each complete server frame in `buf`. */
function texts(buf: Buffer): string[] {
  const out: string[] = [];
  let at = 0;
  while (at + 2 <= buf.length) {
    let len = buf[at + 1]! & 0x7f;
    let off = at + 2;
    if (len === 126) {
      len = buf.readUInt16BE(at + 2);
      off += 2;
    }
    if (off + len > buf.length) break;
    out.push(buf.subarray(off, off + len).toString());
    at = off + len;
  }
  return out;
}

test('a WebSocket from an HTTP/1.1 client crosses an HTTP/2 hop between two sidecars as an extended CONNECT stream and reaches the HTTP/1.1 app intact', { timeout: 30_000 }, async () => {
  const { caller, chat, app } = await mesh(true, true);
  const ws = connect(caller.outboundPort, 'chat', '/chat', closers);
  const greeting = nextMessage(ws);
  // undici checks the app's Sec-WebSocket-Accept against its own key: both rode the CONNECT stream as plain headers.
  await withTimeout(new Promise((r) => ws.addEventListener('open', r, { once: true })), 5_000, 'websocket open');
  assert.equal(await withTimeout(greeting, 5_000, 'greeting'), 'hello http chat');
  const active = () => metric(caller.adminPort, 'envoy_cluster_upstream_rq_active', { envoy_cluster_name: 'outbound|7000||chat.default' });
  assert.equal(await active(), 1, 'the open tunnel holds one request place, as any request');
  for (const text of ['one', 'x'.repeat(40 * 1024)]) {
    const reply = nextMessage(ws);
    ws.send(text);
    assert.equal(await withTimeout(reply, 5_000, 'echo'), text.toUpperCase());
  }
  const closed = new Promise<{ code: number; wasClean: boolean }>((r) => ws.addEventListener('close', (e) => r({ code: e.code, wasClean: e.wasClean }), { once: true }));
  ws.close(1000, 'done');
  const c = await withTimeout(closed, 5_000, 'close');
  assert.deepEqual(c, { code: 1000, wasClean: true });
  assert.equal(app.upgrades(), 1);
  // The tunnel's stream closed with the WebSocket: its max_requests place is back.
  await eventually(async () => (await active()) === 0, 5_000, 'the CONNECT stream gave its request place back');
  // The hop really was HTTP/2: the caller opened an HTTP/2 connection to chat's sidecar, which served the upgrade.
  assert.equal(await metric(caller.adminPort, 'envoy_cluster_upstream_cx_http2_total', { envoy_cluster_name: 'outbound|7000||chat.default' }), 1);
  assert.equal(await metric(caller.adminPort, 'envoy_cluster_upstream_rq', { envoy_cluster_name: 'outbound|7000||chat.default', envoy_response_code: '101' }), 1);
  assert.equal(await metric(chat.adminPort, 'envoy_http_downstream_rq_xx', { envoy_http_conn_manager_prefix: 'inbound', envoy_response_code_class: '1' }), 1);
  // By protocol: the client's connection and upgrade to the caller were HTTP/1.1, the hop to chat HTTP/2.
  const inbound = { envoy_http_conn_manager_prefix: 'inbound' };
  const outbound = { envoy_http_conn_manager_prefix: 'outbound' };
  assert.deepEqual([await metric(chat.adminPort, 'envoy_http_downstream_cx_http2_total', inbound), await metric(chat.adminPort, 'envoy_http_downstream_cx_http1_total', inbound)], [1, 0]);
  assert.deepEqual([await metric(chat.adminPort, 'envoy_http_downstream_rq_http2_total', inbound), await metric(chat.adminPort, 'envoy_http_downstream_rq_http1_total', inbound)], [1, 0]);
  assert.equal(await metric(chat.adminPort, 'envoy_http_downstream_cx_http2_active', inbound), 1, 'the pooled hop is still open');
  assert.deepEqual([await metric(caller.adminPort, 'envoy_http_downstream_rq_http1_total', outbound), await metric(caller.adminPort, 'envoy_http_downstream_rq_http2_total', outbound)], [1, 0]);
  // Plain requests share the same HTTP/2 hop.
  assert.equal((await get(caller.outboundPort, 'chat', '/')).body, 'plain http');
  // An upgrade the app refuses: its 400 crosses the hop as the CONNECT stream's answer and reaches the client as it came.
  const refused = await rawUpgrade(caller.outboundPort, '/refuse');
  assert.match(refused, /^HTTP\/1\.1 400 /);
  assert.ok(refused.endsWith('no websocket'), refused);
  assert.equal(app.upgrades(), 1);
});

test("an HTTP/2 client's extended CONNECT (:protocol websocket) is answered 200 and carried to the app as an HTTP/1.1 upgrade", { timeout: 30_000 }, async () => {
  const { caller, app } = await mesh(true, false);
  const session = http2.connect(`http://127.0.0.1:${caller.outboundPort}`);
  closers.push(async () => void session.destroy());
  const settings = await new Promise<http2.Settings>((r) => session.once('remoteSettings', r));
  assert.equal(settings.enableConnectProtocol, true, 'allow_connect is advertised');
  assert.equal(settings.maxConcurrentStreams, 50, 'and max_concurrent_streams');
  const s = session.request({ ':method': 'CONNECT', ':protocol': 'websocket', ':path': '/chat', ':scheme': 'http', ':authority': 'chat', 'sec-websocket-version': '13', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==' }, { endStream: false });
  const head = await withTimeout(new Promise<http2.IncomingHttpHeaders>((r) => s.once('response', r)), 5_000, 'CONNECT answer');
  assert.equal(head[':status'], 200);
  assert.equal(head.upgrade, undefined, 'no HTTP/1.1 hop-by-hop header on the HTTP/2 answer');
  assert.equal(head['x-app'], 'ws', "the app's own headers come through");
  let got = Buffer.alloc(0);
  const seen = (n: number) =>
    withTimeout(
      new Promise<void>((resolve) => {
        const check = () => (texts(got).length >= n ? resolve() : s.once('data', (d: Buffer) => ((got = Buffer.concat([got, d])), check())));
        check();
      }),
      5_000,
      `${n} frames`,
    );
  await seen(1);
  assert.deepEqual(texts(got), ['hello http chat']);
  s.write(clientText('over h2'));
  await seen(2);
  assert.deepEqual(texts(got), ['hello http chat', 'OVER H2']);
  // The client's END_STREAM reaches the app as its connection's end; the app ends its side, which ends the stream.
  const ended = new Promise<void>((r) => s.once('end', r));
  s.resume();
  s.end();
  await withTimeout(ended, 5_000, 'the tunnel ends both ways');
  assert.equal(app.upgrades(), 1);
  // An extended CONNECT is an upgrade to the connection manager, counted as one.
  assert.equal(await metric(caller.adminPort, 'envoy_http_downstream_cx_upgrades_total', { envoy_http_conn_manager_prefix: 'outbound' }), 1);
  await eventually(async () => (await metric(caller.adminPort, 'envoy_http_downstream_cx_upgrades_active', { envoy_http_conn_manager_prefix: 'outbound' })) === 0, 5_000, 'no longer active');
  assert.equal(await metric(caller.adminPort, 'envoy_cluster_upstream_rq', { envoy_cluster_name: 'outbound|7000||chat.default', envoy_response_code: '101' }), 1);
});

test('without allow_connect nothing is advertised and an extended CONNECT is refused; a CONNECT without :protocol gets 403 upgrade failed', { timeout: 30_000 }, async () => {
  const { caller, app } = await mesh(false, false);
  const session = http2.connect(`http://127.0.0.1:${caller.outboundPort}`);
  closers.push(async () => void session.destroy());
  const settings = await new Promise<http2.Settings>((r) => session.once('remoteSettings', r));
  assert.notEqual(settings.enableConnectProtocol, true);
  const refused = session.request({ ':method': 'CONNECT', ':protocol': 'websocket', ':path': '/chat', ':scheme': 'http', ':authority': 'chat' }, { endStream: false });
  refused.on('error', () => undefined);
  const code = await withTimeout(new Promise<number>((r) => refused.once('close', () => r(refused.rstCode ?? -1))), 5_000, 'refused stream');
  assert.equal(code, http2.constants.NGHTTP2_PROTOCOL_ERROR);

  const plain = session.request({ ':method': 'CONNECT', ':authority': 'chat:7000' }, { endStream: false });
  const answer = await withTimeout(new Promise<{ status: string; body: string }>((resolve) => {
    let status = '';
    let body = '';
    plain.once('response', (h) => (status = String(h[':status'])));
    plain.on('data', (d: Buffer) => (body += d));
    plain.once('close', () => resolve({ status, body }));
  }), 5_000, 'CONNECT answer');
  assert.deepEqual(answer, { status: '403', body: 'upgrade failed' });
  assert.equal(app.upgrades(), 0);
});

test('an upgrade to an HTTP/2 host that does not allow extended CONNECT is reset there: the client gets 503 remote reset, as from Envoy, and the stream gives its place back', { timeout: 30_000 }, async () => {
  const { caller, app } = await mesh(false, true);
  const answer = await rawUpgrade(caller.outboundPort, '/chat');
  // The host's RST_STREAM (PROTOCOL_ERROR) before any answer: Envoy's router says 503, reset reason remote reset (flag UR).
  assert.match(answer, /^HTTP\/1\.1 503 /);
  assert.match(answer, /reset reason: remote reset$/);
  assert.equal(app.upgrades(), 0);
  await eventually(async () => (await metric(caller.adminPort, 'envoy_cluster_upstream_rq_active', { envoy_cluster_name: 'outbound|7000||chat.default' })) === 0, 5_000, 'no request place held');
  // The connection it tried on still carries plain requests.
  assert.equal((await get(caller.outboundPort, 'chat', '/')).body, 'plain http');
});
