// WebSocket through the mesh: undici's WebSocket client (a client nobody here
// wrote) to an app that speaks RFC 6455, through the caller's and the
// callee's sidecars, which carry the upgrade as Envoy does with
// upgrade_configs: websocket (the translator sets it on every connection
// manager).

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { defaultTranslator } from '../../control/xds/index.ts';
import { wat } from '../wasm/wat.ts';
import { connect, nextMessage, startWsApp } from './ws-app.ts';
import { TestMesh, eventually, freePort, get, instance, metric, policy, service, withFields, withTimeout } from './harness.ts';

const closers: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of closers.reverse()) await c();
});

async function meshWith(translator?: ReturnType<typeof withFields>, circuitBreakers?: { maxConnections: number; maxPendingRequests: number; maxRequests: number }): Promise<{ port: number; adminPort: number; app: Awaited<ReturnType<typeof startWsApp>> }> {
  const mesh = await TestMesh.start(translator ? { translator } : {});
  closers.push(() => mesh.close());
  const app = await startWsApp();
  closers.push(() => app.close());
  // Two hops: the caller's outbound listener to chat's inbound sidecar, which forwards to the app.
  const inbound = await freePort();
  mesh.model.update({
    services: [service('caller', 8000), service('chat', 7000)],
    instances: [instance('chat', inbound)],
    routes: [],
    destinationPolicies: circuitBreakers ? [policy('chat', { circuitBreakers })] : [],
  });
  await mesh.sidecar('chat', app.port, { inboundPort: inbound });
  const caller = await mesh.sidecar('caller', 8000);
  return { port: caller.outboundPort, adminPort: caller.adminPort, app };
}

test('a WebSocket goes through two sidecars: the greeting the app sends at once, echoes both ways, a 40 KiB message, and a clean close; counted in downstream_cx_upgrades_total and _active', { timeout: 30_000 }, async () => {
  const { port, adminPort, app } = await meshWith();
  const upgrades = (stat: 'total' | 'active') => metric(adminPort, `envoy_http_downstream_cx_upgrades_${stat}`, { envoy_http_conn_manager_prefix: 'outbound' });
  const ws = connect(port, 'chat', '/chat', closers);
  const greeting = nextMessage(ws);
  await withTimeout(new Promise((r) => ws.addEventListener('open', r, { once: true })), 5_000, 'websocket open');
  assert.equal(await withTimeout(greeting, 5_000, 'greeting'), 'hello http chat');
  assert.deepEqual([await upgrades('total'), await upgrades('active')], [1, 1], 'one accepted upgrade, open');
  for (const text of ['one', 'two', 'x'.repeat(40 * 1024)]) {
    const reply = nextMessage(ws);
    ws.send(text);
    assert.equal(await withTimeout(reply, 5_000, 'echo'), text.toUpperCase());
  }
  const closed = new Promise<{ code: number; wasClean: boolean }>((r) => ws.addEventListener('close', (e) => r({ code: e.code, wasClean: e.wasClean }), { once: true }));
  ws.close(1000, 'done');
  const c = await withTimeout(closed, 5_000, 'close');
  assert.equal(c.code, 1000);
  assert.equal(c.wasClean, true);
  assert.equal(app.upgrades(), 1);
  await eventually(async () => (await upgrades('active')) === 0, 5_000, 'the ended upgrade is no longer active');
  assert.equal(await upgrades('total'), 1);
  // Plain requests still work on the same listener.
  assert.equal((await get(port, 'chat', '/')).body, 'plain http');
});

test('the app closing a WebSocket reaches the client as a clean close; a client that vanishes closes the app\'s side too', { timeout: 30_000 }, async () => {
  const { port, app } = await meshWith();
  const ws = connect(port, 'chat', '/chat', closers);
  await withTimeout(nextMessage(ws), 5_000, 'greeting');
  const closed = new Promise<{ code: number; wasClean: boolean }>((r) => ws.addEventListener('close', (e) => r({ code: e.code, wasClean: e.wasClean }), { once: true }));
  ws.send('bye');
  assert.deepEqual(await withTimeout(closed, 5_000, 'the app\'s close'), { code: 1000, wasClean: true });
  await eventually(() => app.open() === 0, 5_000, 'the app side closed');
  // A raw client that upgrades and then drops its connection without a close frame.
  const raw = net.connect(port, '127.0.0.1', () => raw.write('GET /chat HTTP/1.1\r\nhost: chat\r\nconnection: Upgrade\r\nupgrade: websocket\r\nsec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n'));
  raw.on('error', () => undefined);
  await new Promise<void>((r) => raw.once('data', () => r()));
  await eventually(() => app.open() === 1, 5_000, 'the app side open');
  raw.destroy();
  await eventually(() => app.open() === 0, 5_000, 'the app side closed after the client vanished');
});

test('an upgrade the app refuses comes back as its response (400 with its body), and the connection closes', { timeout: 30_000 }, async () => {
  const { port } = await meshWith();
  const answer = await rawUpgrade(port, 'chat', '/refuse');
  assert.match(answer, /^HTTP\/1\.1 400 /);
  assert.match(answer, /no websocket$/);
});

test('with upgrade_configs websocket disabled the sidecar answers 403 upgrade failed, as Envoy, and the app sees nothing', { timeout: 30_000 }, async () => {
  const { port, adminPort, app } = await meshWith(withFields({ upgrade_configs: [{ upgrade_type: 'websocket', enabled: false }] }));
  const answer = await rawUpgrade(port, 'chat', '/chat');
  assert.match(answer, /^HTTP\/1\.1 403 /);
  assert.match(answer, /upgrade failed$/);
  assert.equal(app.upgrades(), 0);
  assert.equal(await metric(adminPort, 'envoy_http_downstream_cx_upgrades_total', { envoy_http_conn_manager_prefix: 'outbound' }), 0, 'a refused upgrade is not counted');
});

test("a WebSocket idle past the route's idle_timeout is closed by the sidecar", { timeout: 30_000 }, async () => {
  const { port } = await meshWith(withFields({}, { idle_timeout: '0.4s' }));
  const ws = connect(port, 'chat', '/chat', closers);
  const greeting = nextMessage(ws);
  await withTimeout(greeting, 5_000, 'greeting');
  const closed = new Promise<number>((r) => ws.addEventListener('close', (e) => r(e.code), { once: true }));
  const started = Date.now();
  // 1006: the connection went away without a close frame.
  assert.equal(await withTimeout(closed, 5_000, 'idle close'), 1006);
  assert.ok(Date.now() - started >= 300, 'not before the idle timeout');
});

/** The chat app behind one sidecar whose inbound chain runs `bytes` as a wasm filter; its log lines land in `lines`. */
async function chatBehindFilter(name: string, bytes: Uint8Array): Promise<{ inbound: number; lines: string[] }> {
  const digest = createHash('sha256').update(bytes).digest('hex');
  const modules = http.createServer((_req, res) => res.end(bytes));
  await new Promise<void>((r) => modules.listen(0, '127.0.0.1', r));
  closers.push(() => new Promise((r) => modules.close(() => r())));
  const mesh = await TestMesh.start({ translator: defaultTranslator({ wasmBaseUrl: `http://127.0.0.1:${(modules.address() as net.AddressInfo).port}`, wasmClusterName: 'weft-control' }) });
  closers.push(() => mesh.close());
  const app = await startWsApp();
  closers.push(() => app.close());
  const inbound = await freePort();
  mesh.model.update({
    services: [service('chat', 7000)],
    instances: [instance('chat', inbound)],
    filterModules: [{ name, sha256: digest, size: bytes.length, abiVersion: '0.2.1' }],
    filterBindings: [{ name: `chat-${name}`, namespace: 'default', service: 'chat', direction: 'inbound', filter: name, order: 0, config: {}, failurePolicy: 'fail_closed' }],
  });
  const lines: string[] = [];
  await mesh.sidecar('chat', app.port, { inboundPort: inbound, log: (l) => lines.push(l) });
  return { inbound, lines };
}

test('through the telemetry wasm filter: the WebSocket works, the 101 carries the request id, and the access line (status 101) comes at the close', { timeout: 30_000 }, async () => {
  const { inbound, lines } = await chatBehindFilter('telemetry', new Uint8Array(readFileSync(fileURLToPath(new URL('../../filters/dist/telemetry.wasm', import.meta.url)))));
  const head = await rawUpgrade(inbound, 'chat', '/chat', true);
  assert.match(head, /^HTTP\/1\.1 101 /);
  assert.match(head, /\r\nx-request-id: [0-9a-f-]{36}\r\n/i, 'the filter set the request id on the 101');
  assert.match(head, /\r\nx-app: ws\r\n/);
  const ws = connect(inbound, 'chat', '/chat', closers);
  await withTimeout(nextMessage(ws), 5_000, 'greeting');
  const reply = nextMessage(ws);
  ws.send('through the filter');
  assert.equal(await withTimeout(reply, 5_000, 'echo'), 'THROUGH THE FILTER');
  ws.close(1000);
  await eventually(() => lines.filter((l) => l.includes('"source":"wasm"')).length >= 2, 5_000, 'two access lines');
  const access = lines.filter((l) => l.includes('"source":"wasm"')).map((l) => JSON.parse(JSON.parse(l).msg) as { path: string; status: number });
  assert.deepEqual(access.map((a) => [a.path, a.status]), [['/chat', 101], ['/chat', 101]]);
});

/**
 * Sees a WebSocket's bytes as Envoy hands them to filters: logs "client bytes"
 * for each chunk from the client, and replaces each chunk from the app with
 * one text frame, "FILTERED".
 */
async function frameRewriter(): Promise<Uint8Array> {
  const frame = [0x81, 8, ...Buffer.from('FILTERED')];
  return wat({
    imports: ['proxy_set_buffer_bytes'],
    strings: { seen: 'client bytes' },
    body: (s) => `
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_vm_start") (param i32 i32) (result i32) (i32.const 1))
  (func (export "proxy_on_configure") (param i32 i32) (result i32) (i32.const 1))
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32) (i32.const 0))
  (func (export "proxy_on_response_headers") (param i32 i32 i32) (result i32) (i32.const 0))
  (func (export "proxy_on_request_body") (param $id i32) (param $size i32) (param $eos i32) (result i32)
    (if (i32.gt_u (local.get $size) (i32.const 0)) (then (drop (call $proxy_log (i32.const 2) ${s.seen}))))
    (i32.const 0))
  (func (export "proxy_on_response_body") (param $id i32) (param $size i32) (param $eos i32) (result i32)
    (if (i32.eqz (local.get $size)) (then (return (i32.const 0))))
    ${frame.map((b, i) => `(i32.store8 (i32.const ${940 + i}) (i32.const ${b}))`).join(' ')}
    (drop (call $proxy_set_buffer_bytes (i32.const 1) (i32.const 0) (local.get $size) (i32.const 940) (i32.const ${frame.length})))
    (i32.const 0))
  (func (export "proxy_on_done") (param i32) (result i32) (i32.const 1))
  (func (export "proxy_on_log") (param i32))
  (func (export "proxy_on_delete") (param i32))`,
  });
}

test("a wasm filter sees a WebSocket's bytes through its body callbacks, both ways, and what it writes is what arrives", { timeout: 30_000 }, async () => {
  const { inbound, lines } = await chatBehindFilter('frames', await frameRewriter());
  const ws = connect(inbound, 'chat', '/chat', closers);
  assert.equal(await withTimeout(nextMessage(ws), 5_000, 'greeting'), 'FILTERED', "the app's greeting, as the filter rewrote it");
  const reply = nextMessage(ws);
  ws.send('hello');
  assert.equal(await withTimeout(reply, 5_000, 'echo'), 'FILTERED');
  assert.ok(lines.some((l) => l.includes('client bytes')), 'the filter saw the client\'s frame');
  ws.close(1000);
});

/** Answers 403 at the first bytes a client sends: after a 101 that can only end the WebSocket. */
async function frameGuard(): Promise<Uint8Array> {
  return wat({
    imports: ['proxy_send_local_response'],
    strings: { details: 'frame_denied', body: 'no frames' },
    body: (s) => `
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_vm_start") (param i32 i32) (result i32) (i32.const 1))
  (func (export "proxy_on_configure") (param i32 i32) (result i32) (i32.const 1))
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32) (i32.const 0))
  (func (export "proxy_on_request_body") (param $id i32) (param $size i32) (param $eos i32) (result i32)
    (if (i32.eqz (local.get $size)) (then (return (i32.const 0))))
    (drop (call $proxy_send_local_response (i32.const 403) ${s.details} ${s.body} (i32.const 0) (i32.const 0) (i32.const -1)))
    (i32.const 1))
  (func (export "proxy_on_done") (param i32) (result i32) (i32.const 1))
  (func (export "proxy_on_log") (param i32))
  (func (export "proxy_on_delete") (param i32))`,
  });
}

test('a wasm filter that answers from a WebSocket frame ends the WebSocket (it cannot answer after the 101); the frame never reaches the app', { timeout: 30_000 }, async () => {
  const { inbound } = await chatBehindFilter('guard', await frameGuard());
  const ws = connect(inbound, 'chat', '/chat', closers);
  assert.match(await withTimeout(nextMessage(ws), 5_000, 'greeting'), /^hello /, 'the greeting passes: the filter only guards client bytes');
  const closed = new Promise<number>((r) => ws.addEventListener('close', (e) => r(e.code), { once: true }));
  let echoed = false;
  ws.addEventListener('message', () => (echoed = true));
  ws.send('let me in');
  // 1006: the connection went away without a close frame.
  assert.equal(await withTimeout(closed, 5_000, 'the WebSocket ended'), 1006);
  assert.equal(echoed, false, 'the app never got the frame to echo');
});

test('an upgrade queued behind the circuit breaker whose client leaves gives its place up: nothing reaches the app for it, one past the pending limit overflows, and the next one gets through', { timeout: 30_000 }, async () => {
  const { port, adminPort, app } = await meshWith(undefined, { maxConnections: 1, maxPendingRequests: 1, maxRequests: 1 });
  const first = connect(port, 'chat', '/chat', closers);
  await withTimeout(nextMessage(first), 5_000, 'first greeting');
  // A second upgrade waits for the slot the first holds; its client gives up.
  const queued = net.connect(port, '127.0.0.1', () => queued.write('GET /chat HTTP/1.1\r\nhost: chat\r\nconnection: Upgrade\r\nupgrade: websocket\r\nsec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n'));
  queued.on('error', () => undefined);
  await eventually(async () => (await metric(adminPort, 'envoy_cluster_upstream_rq_pending_active', { envoy_cluster_name: 'outbound|7000||chat.default' })) === 1, 5_000, 'the second upgrade queued');
  // A third finds the one pending place taken: 503 overflow, counted once (until 2026-11-29 twice, by the breaker and again by the upgrade path).
  const overflowed = await rawUpgrade(port, 'chat', '/chat');
  assert.match(overflowed, /^HTTP\/1\.1 503 /);
  assert.equal(await metric(adminPort, 'envoy_cluster_upstream_rq_pending_overflow', { envoy_cluster_name: 'outbound|7000||chat.default' }), 1);
  queued.destroy();
  await eventually(async () => (await metric(adminPort, 'envoy_cluster_upstream_rq_pending_active', { envoy_cluster_name: 'outbound|7000||chat.default' })) === 0, 5_000, 'the queued upgrade gone');
  const closed = new Promise((r) => first.addEventListener('close', r, { once: true }));
  first.close(1000);
  await withTimeout(closed, 5_000, 'first close');
  const third = connect(port, 'chat', '/chat', closers);
  await withTimeout(nextMessage(third), 5_000, 'third greeting');
  third.close(1000);
  assert.equal(app.upgrades(), 2, 'the abandoned upgrade never reached the app');
});

/** An upgrade request over a raw socket; resolves with everything the proxy sent until it closed. */
function rawUpgrade(port: number, host: string, path: string, headOnly = false): Promise<string> {
  return withTimeout(
    new Promise<string>((resolve, reject) => {
      const s = net.connect(port, '127.0.0.1', () => {
        s.write(`GET ${path} HTTP/1.1\r\nhost: ${host}\r\nconnection: Upgrade\r\nupgrade: websocket\r\nsec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`);
      });
      let out = '';
      s.on('data', (d) => {
        out += d.toString();
        // An accepted upgrade stays open: its head is the answer.
        if (headOnly && out.includes('\r\n\r\n')) {
          s.destroy();
          resolve(out.slice(0, out.indexOf('\r\n\r\n') + 2));
        }
      });
      s.on('close', () => resolve(out));
      s.on('error', reject);
    }),
    5_000,
    'raw upgrade answer',
  );
}
