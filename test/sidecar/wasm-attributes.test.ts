// The Envoy attributes of the downstream connection and of the response's end
// that a wasm filter reads with proxy_get_property, through a real sidecar:
// request.protocol, destination.address/port, connection.id,
// connection.requested_server_name (expr/context.cc's Request, PeerWrapper
// and Connection lookups), response.flags (StreamInfo's response flag
// bitmask) and response.code_details (ResponseCodeDetailValues), with
// Envoy's encodings: strings raw, integers int64 little-endian.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import http2 from 'node:http2';
import { after, test } from 'node:test';
import { defaultTranslator } from '../../control/xds/index.ts';
import { TestMesh, connect, eventually, exchange, freePort, get, instance, route, service, startApp, moduleServer as serveModules } from './harness.ts';
import { wat } from '../wasm/wat.ts';
import { addressString, connectionAttributes, responseCodeDetails, responseFlagBits } from '../../sidecar/stream-attributes.ts';
import { localReplies } from '../../sidecar/local-reply.ts';

const closers: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of closers.reverse()) await c();
});

const sha = (b: Uint8Array | string) => createHash('sha256').update(b).digest('hex');

const PATHS = ['request.path', 'request.protocol', 'source.address', 'destination.address', 'destination.port', 'connection.id', 'connection.requested_server_name', 'response.code', 'response.flags', 'response.code_details'];

/** Where recorder() records, and the tag its record starts with. */
const TAGS = { proxy_on_log: 'attrs:', proxy_on_request_headers: 'attrs@request_headers:', proxy_on_response_headers: 'attrs@response_headers:' };
type Phase = keyof typeof TAGS;

/**
 * In each of `phases` (default on_log): logs its tag (TAGS), then for each of
 * PATHS its value in hex (the bytes as the host gave them), or "#1" when
 * NOT_FOUND. Its headers callbacks continue.
 */
const recorder = (phases: Phase[] = ['proxy_on_log']) =>
  wat({
    imports: ['proxy_get_property'],
    strings: { ...Object.fromEntries(phases.map((p) => [p, TAGS[p]])), ...Object.fromEntries(PATHS.map((p, i) => [`p${i}`, p.replace('.', '\0')])) },
    body: (s) => `
  (func $digit (param $n i32) (result i32)
    (i32.add (local.get $n) (select (i32.const 48) (i32.const 87) (i32.lt_u (local.get $n) (i32.const 10)))))
  (func $hex (param $ptr i32) (param $len i32)
    (local $i i32) (local $b i32)
    (block $done (loop $next
      (br_if $done (i32.ge_u (local.get $i) (local.get $len)))
      (local.set $b (i32.load8_u (i32.add (local.get $ptr) (local.get $i))))
      (i32.store8 (i32.add (i32.const 32768) (i32.shl (local.get $i) (i32.const 1))) (call $digit (i32.shr_u (local.get $b) (i32.const 4))))
      (i32.store8 (i32.add (i32.const 32769) (i32.shl (local.get $i) (i32.const 1))) (call $digit (i32.and (local.get $b) (i32.const 15))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $next)))
    ;; an empty value logs as "=", not as an empty line
    (if (i32.eqz (local.get $len)) (then
      (i32.store8 (i32.const 32768) (i32.const 61))
      (drop (call $proxy_log (i32.const 2) (i32.const 32768) (i32.const 1)))
      (return)))
    (drop (call $proxy_log (i32.const 2) (i32.const 32768) (i32.shl (local.get $len) (i32.const 1)))))
  (func $show (param $ptr i32) (param $len i32)
    (local $code i32)
    (local.set $code (call $proxy_get_property (local.get $ptr) (local.get $len) (i32.const 0) (i32.const 4)))
    (if (i32.eqz (local.get $code))
      (then (call $hex (i32.load (i32.const 0)) (i32.load (i32.const 4))))
      (else (call $report (local.get $code)))))
  ${phases
    .map(
      (phase) => `(func (export "${phase}") ${phase === 'proxy_on_log' ? '(param i32)' : '(param i32 i32 i32) (result i32)'}
    (drop (call $proxy_log (i32.const 2) ${s[phase]}))
    ${PATHS.map((_, i) => `(call $show ${s[`p${i}`]})`).join('\n    ')}${phase === 'proxy_on_log' ? '' : '\n    (i32.const 0)'})`,
    )
    .join('\n  ')}`,
  });

/** Replies 429 from its request headers, with the details `quota_exceeded`, when the request has x-deny. */
const denier = () =>
  wat({
    imports: ['proxy_send_local_response', 'proxy_get_header_map_value'],
    strings: { details: 'quota exceeded', body: 'slow down', deny: 'x-deny' },
    body: (s) => `
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (if (i32.eqz (call $proxy_get_header_map_value (i32.const 0) ${s.deny} (i32.const 0) (i32.const 4)))
      (then (drop (call $proxy_send_local_response (i32.const 429) ${s.details} ${s.body} (i32.const 0) (i32.const 0) (i32.const -1)))))
    (i32.const 0))`,
  });

type Seen = Record<string, string | bigint | undefined>;

/** The logged records, each path's value decoded as Envoy encodes it (integers int64 LE, the rest text); undefined: NOT_FOUND. */
function records(msgs: string[], tag = TAGS.proxy_on_log): Seen[] {
  const out: Seen[] = [];
  for (let at = msgs.indexOf(tag); at >= 0 && at + PATHS.length < msgs.length; at = msgs.indexOf(tag, at + 1)) {
    const seen: Seen = {};
    PATHS.forEach((p, i) => {
      const m = msgs[at + 1 + i]!;
      if (m === '#1') return void (seen[p] = undefined);
      const bytes = m === '=' ? Buffer.alloc(0) : Buffer.from(m, 'hex');
      const integer = ['destination.port', 'connection.id', 'response.code', 'response.flags'].includes(p);
      if (integer) assert.equal(bytes.length, 8, `${p} is an int64`);
      seen[p] = integer ? bytes.readBigInt64LE(0) : bytes.toString();
    });
    out.push(seen);
  }
  return out;
}

test('a wasm filter reads the protocol, the local address, the connection id and how the response ended, as in Envoy', { timeout: 60_000 }, async () => {
  const module = await recorder();
  const deny = await denier();
  const served = await serveModules(new Map([[sha(module), module], [sha(deny), deny]]));
  closers.push(served.close);
  const mesh = await TestMesh.start({ translator: defaultTranslator({ wasmBaseUrl: served.url, wasmClusterName: 'weft-control' }) });
  closers.push(() => mesh.close());
  const app = await startApp('meter');
  let appOpen = true;
  mesh.track(async () => {
    if (appOpen) await app.close();
  });
  const inbound = await freePort();
  mesh.model.update({
    services: [service('meter', 7990)],
    instances: [instance('meter', inbound)],
    filterModules: [
      { name: 'recorder', sha256: sha(module), size: module.length, abiVersion: '0.2.1' },
      { name: 'denier', sha256: sha(deny), size: deny.length, abiVersion: '0.2.1' },
    ],
    filterBindings: [
      { name: 'meter-denier', namespace: 'default', service: 'meter', direction: 'inbound', filter: 'denier', order: 0, config: {}, failurePolicy: 'fail_closed' },
      { name: 'meter-recorder', namespace: 'default', service: 'meter', direction: 'inbound', filter: 'recorder', order: 1, config: {}, failurePolicy: 'fail_closed' },
    ],
  });
  const lines: string[] = [];
  await mesh.sidecar('meter', app.port, { inboundPort: inbound, log: (l) => lines.push(l) });
  const seen = () => records(lines.filter((l) => l.includes('"source":"wasm"')).map((l) => JSON.parse(l).msg as string));
  const byPath = (path: string) => seen().filter((r) => r['request.path'] === path);

  // Two requests on one HTTP/1.1 connection, one on another.
  const first = await connect(inbound);
  const second = await connect(inbound);
  closers.push(async () => {
    first.destroy();
    second.destroy();
  });
  await eventually(async () => (await exchange(first, 'meter', '/a')).status === 200, 10_000, 'the filter in place');
  assert.equal((await exchange(first, 'meter', '/b')).status, 200);
  assert.equal((await exchange(second, 'meter', '/c')).status, 200);
  await eventually(() => byPath('/b').length === 1 && byPath('/c').length === 1, 5000, 'on_log of /b and /c');
  const [b] = byPath('/b');
  const [c] = byPath('/c');
  const a = byPath('/a').at(-1)!;
  assert.equal(b!['request.protocol'], 'HTTP/1.1');
  assert.equal(b!['destination.address'], `127.0.0.1:${inbound}`);
  assert.equal(b!['destination.port'], BigInt(inbound));
  assert.equal(b!['source.address'], `127.0.0.1:${first.localPort}`);
  assert.equal(c!['source.address'], `127.0.0.1:${second.localPort}`);
  assert.equal(b!['connection.requested_server_name'], '', 'plaintext: no SNI, an empty string as in Envoy');
  assert.equal(typeof b!['connection.id'], 'bigint');
  assert.equal(a['connection.id'], b!['connection.id'], 'one connection, one id');
  assert.notEqual(c!['connection.id'], b!['connection.id'], 'another connection, another id');
  // Proxied from the app: no flag, via_upstream.
  assert.equal(b!['response.code'], 200n);
  assert.equal(b!['response.flags'], 0n);
  assert.equal(b!['response.code_details'], 'via_upstream');

  // A filter's local reply: the details it gave (whitespace as '_', as Envoy's host turns it), no response flag.
  assert.equal((await get(inbound, 'meter', '/denied', { headers: { 'x-deny': '1' } })).status, 429);
  await eventually(() => byPath('/denied').length === 1, 5000, 'on_log of /denied');
  assert.equal(byPath('/denied')[0]!['response.code'], 429n);
  assert.equal(byPath('/denied')[0]!['response.code_details'], 'quota_exceeded');
  assert.equal(byPath('/denied')[0]!['response.flags'], 0n, "Envoy's wasm host flags a filter's local reply with nothing (it was UAEX here)");

  // HTTP/2: the protocol as Envoy spells it, one id for the session's streams.
  const session = http2.connect(`http://127.0.0.1:${inbound}`);
  closers.push(async () => void session.destroy());
  const h2get = (path: string) =>
    new Promise<number>((resolve, reject) => {
      const s = session.request({ ':path': path, ':authority': 'meter' });
      s.on('response', (h) => resolve(Number(h[':status'])));
      s.on('error', reject);
      s.resume();
      s.end();
    });
  assert.equal(await h2get('/h2-a'), 200);
  assert.equal(await h2get('/h2-b'), 200);
  await eventually(() => byPath('/h2-a').length === 1 && byPath('/h2-b').length === 1, 5000, 'on_log of the h2 requests');
  const [h2a] = byPath('/h2-a');
  const [h2b] = byPath('/h2-b');
  assert.equal(h2a!['request.protocol'], 'HTTP/2');
  assert.equal(h2a!['connection.id'], h2b!['connection.id']);
  assert.notEqual(h2a!['connection.id'], b!['connection.id']);
  assert.notEqual(h2a!['connection.id'], c!['connection.id']);

  // The app is gone: the sidecar's 503 with Envoy's UF bit (UpstreamConnectionFailure, bit 5) and the router's
  // details for it (NOT_FOUND until 2026-11-28).
  await app.close();
  appOpen = false;
  assert.equal((await exchange(second, 'meter', '/gone')).status, 503);
  await eventually(() => byPath('/gone').length === 1, 5000, 'on_log of /gone');
  const [gone] = byPath('/gone');
  assert.equal(gone!['response.code'], 503n);
  assert.equal(gone!['response.flags'], 1n << 5n);
  assert.equal(gone!['response.code_details'], 'upstream_reset_before_response_started{connection_failure}');
});

test("on an outbound listener: the catch-all's direct response, a fault abort (FI) and a fault delay (DI) as Envoy's flags and details, at the end and while the stream runs", { timeout: 60_000 }, async () => {
  const module = await recorder(['proxy_on_request_headers', 'proxy_on_response_headers', 'proxy_on_log']);
  const served = await serveModules(new Map([[sha(module), module]]));
  closers.push(served.close);
  const mesh = await TestMesh.start({ translator: defaultTranslator({ wasmBaseUrl: served.url, wasmClusterName: 'weft-control' }) });
  closers.push(() => mesh.close());
  const shop = await startApp('shop');
  mesh.track(() => shop.close());
  mesh.model.update({
    services: [service('till', 7991), service('shop', 7992)],
    instances: [instance('shop', shop.port)],
    routes: [
      route('shop', [
        { name: 'broken', match: [{ path: { prefix: '/broken' } }], destinations: [{ service: 'shop', weight: 1 }], fault: { abort: { httpStatus: 418, percentage: 100 } } },
        { name: 'slow', match: [{ path: { prefix: '/slow' } }], destinations: [{ service: 'shop', weight: 1 }], fault: { delay: { fixedDelayMs: 50, percentage: 100 } } },
        { name: 'rest', destinations: [{ service: 'shop', weight: 1 }] },
      ]),
    ],
    filterModules: [{ name: 'recorder', sha256: sha(module), size: module.length, abiVersion: '0.2.1' }],
    filterBindings: [{ name: 'till-recorder', namespace: 'default', service: 'till', direction: 'outbound', filter: 'recorder', order: 0, config: {}, failurePolicy: 'fail_closed' }],
  });
  const lines: string[] = [];
  const sc = await mesh.sidecar('till', 8000, { log: (l) => lines.push(l) });
  const byPath = (path: string | undefined, phase: Phase = 'proxy_on_log') => records(lines.filter((l) => l.includes('"source":"wasm"')).map((l) => JSON.parse(l).msg as string), TAGS[phase]).filter((r) => r['request.path'] === path);

  await eventually(async () => (await get(sc.outboundPort, 'shop', '/ready')).status === 200 && byPath('/ready').length > 0, 10_000, 'the route and the filter in place');
  assert.equal((await get(sc.outboundPort, 'nowhere', '/lost')).status, 404);
  assert.equal((await get(sc.outboundPort, 'shop', '/broken')).status, 418);
  assert.equal((await get(sc.outboundPort, 'shop', '/slow')).status, 200);
  await eventually(() => byPath('/lost').length === 1 && byPath('/broken').length === 1 && byPath('/slow').length === 1, 5000, 'on_log of the three');
  const summary = (path: string) => {
    const r = byPath(path)[0]!;
    return [r['response.code'], r['response.flags'], r['response.code_details']];
  };
  // The translator's catch-all virtual host answers an unknown authority with a direct_response route: no flag.
  assert.deepEqual(summary('/lost'), [404n, 0n, 'direct_response']);
  assert.deepEqual(summary('/broken'), [418n, 1n << 10n, 'fault_filter_abort']);
  assert.deepEqual(summary('/slow'), [200n, 1n << 9n, 'via_upstream']);

  // While the stream runs, as Envoy's stream info has them then (they were NOT_FOUND before on_log until 2026-11-27):
  // in the request headers (this filter runs before the fault filter) no flag and no details yet; in the response
  // headers the fault filter's delay, the router's via_upstream, or the local reply's flag and details.
  const summarize = (r: Seen) => [r['response.code'], r['response.flags'], r['response.code_details']];
  assert.deepEqual(summarize(byPath('/slow', 'proxy_on_request_headers')[0]!), [undefined, 0n, undefined]);
  assert.deepEqual(summarize(byPath('/lost', 'proxy_on_request_headers')[0]!), [undefined, 0n, undefined]);
  // The request's path is not the filter's to read once it continued the request headers: the last three in order.
  const responses = byPath(undefined, 'proxy_on_response_headers').slice(-3).map(summarize);
  assert.deepEqual(responses, [
    [404n, 0n, 'direct_response'], // /lost
    [418n, 1n << 10n, 'fault_filter_abort'], // /broken
    [200n, 1n << 9n, 'via_upstream'], // /slow
  ]);
});

test("response.flags is Envoy's bitmask of the access log's flags; the address formats and details as Envoy's", () => {
  // Bits by CoreResponseFlag order: UH 1, UF 5, NR 8, DI 9, FI 10, URX 15, OM 25.
  assert.equal(responseFlagBits('-'), 0);
  assert.equal(responseFlagBits('UH'), 2);
  assert.equal(responseFlagBits('NR'), 256);
  assert.equal(responseFlagBits('UF,URX'), 32 + 32768);
  assert.equal(responseFlagBits('DI,FI'), 512 + 1024);
  assert.equal(responseFlagBits('OM'), 2 ** 25);
  assert.equal(responseFlagBits('RBAC'), 0, "the sidecar's own flag is none of Envoy's");
  assert.equal(addressString('127.0.0.1', 8080), '127.0.0.1:8080');
  assert.equal(addressString('::1', 8080), '[::1]:8080');
  assert.equal(addressString('::ffff:10.0.0.7', 8080), '10.0.0.7:8080', 'an IPv4 client of a dual-stack listener');
  // A TLS connection's SNI; the same attributes (and id) for every request of one connection.
  const tlsConnection = {};
  const socket = { remoteAddress: '::1', remotePort: 40000, localAddress: '::1', localPort: 15006, servername: 'outbound_.9080_._.catalog.default.svc.cluster.local' };
  const made = connectionAttributes(tlsConnection, socket);
  assert.equal(made['connection.requested_server_name'], socket.servername);
  assert.equal(made['destination.address'], '[::1]:15006');
  assert.equal(made['source.address'], '[::1]:40000');
  assert.equal(connectionAttributes(tlsConnection, socket)['connection.id'], made['connection.id']);
  assert.notEqual(connectionAttributes({}, socket)['connection.id'], made['connection.id']);
  assert.equal(connectionAttributes({}, { ...socket, servername: false })['connection.requested_server_name'], '', 'TLS without SNI');
  const noRoute = { status: 404, body: '', headers: [], flag: 'NR' };
  assert.equal(responseCodeDetails(404, 'NR', noRoute), 'route_not_found');
  assert.equal(responseCodeDetails(503, 'UH', { ...noRoute, status: 503, flag: 'UH' }), 'no_healthy_upstream');
  assert.equal(responseCodeDetails(200, '-', { ...noRoute, status: 200, flag: '-', details: 'direct_response' }), 'direct_response');
  assert.equal(responseCodeDetails(200, '-', undefined), 'via_upstream');
  assert.equal(responseCodeDetails(200, 'UR', undefined), undefined, 'reset mid-body, its detail not given: not said');
  assert.equal(responseCodeDetails(200, 'UR', undefined, 'upstream_reset_after_response_started{remote_reset}'), 'upstream_reset_after_response_started{remote_reset}', 'the detail the stream ended with');
  assert.equal(responseCodeDetails(504, 'UT', localReplies.timeout(true)), 'upstream_per_try_timeout');
  assert.equal(responseCodeDetails(504, 'UT', localReplies.timeout()), 'response_timeout');
  assert.equal(responseCodeDetails(503, 'UF', localReplies.reset('connection_failure', 'TLS handshake failed')), 'upstream_reset_before_response_started{connection_failure|TLS_handshake_failed}', "Envoy's '|' and whitespace as '_'");
  assert.equal(responseCodeDetails(403, 'RBAC', localReplies.rbacDenied('ops deny')), 'rbac_access_denied_matched_policy[ops_deny]');
  assert.equal(responseCodeDetails(0, 'DC', { ...noRoute, status: 503, flag: 'UH' }), undefined, 'answered, then the client left: the answer no longer says it');
});
