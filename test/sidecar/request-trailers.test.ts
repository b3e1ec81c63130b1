// HTTP/2 request trailers through the sidecar, as through Envoy: forwarded to
// an HTTP/2 upstream (a whole body's and a streamed gRPC call's, also on a
// retry and to a mirror); to an HTTP/1.1 upstream as chunked trailers only
// with the cluster's http_protocol_options.enable_trailers (else dropped:
// Envoy's http1 codec_impl.cc encodeTrailersBase); through wasm filters'
// proxy_on_request_trailers, which read and change them (the body call before
// them is not end_of_stream), and which may hold the request at its trailers.
// A whole body with trailers carries its content-length to an HTTP/2 upstream.
// Trailers a wasm filter adds in its last body call (Envoy's
// addDecodedTrailers / addEncodedTrailers) end the request or the response.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import http from 'node:http';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { after, test } from 'node:test';
import { defaultTranslator } from '../../control/xds/index.ts';
import type { FilterBinding, FilterModule } from '../../control/model/types.ts';
import type { Translator } from '../../control/xds/index.ts';
import { wat } from '../wasm/wat.ts';
import { TestMesh, instance, moduleServer, route, service, withFields, withTimeout } from './harness.ts';

const closers: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of closers.reverse()) await c();
});

interface Echo {
  path: string;
  body: string;
  trailers: Record<string, string>;
  contentLength?: string;
  reset?: true;
}

/** An h2c upstream that answers each request with what it got: body, trailers (as JSON); `first` may answer instead (a 503 to retry). */
async function h2Echo(seen: Echo[], first?: (n: number, stream: http2.ServerHttp2Stream) => boolean): Promise<number> {
  const server = http2.createServer();
  server.on('stream', (stream, headers) => {
    const chunks: Buffer[] = [];
    let trailers: Record<string, string> = {};
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('trailers', (t) => (trailers = Object.fromEntries(Object.entries(t).filter(([k]) => !k.startsWith(':')).map(([k, v]) => [k, String(v)]))));
    stream.on('error', () => undefined);
    stream.on('end', () => {
      const e: Echo = { path: String(headers[':path']), body: Buffer.concat(chunks).toString(), trailers };
      if (headers['content-length'] !== undefined) e.contentLength = String(headers['content-length']);
      // Reset by the sidecar (node ends the readable side then too): not a request that arrived.
      if (stream.aborted || (stream.rstCode ?? 0) !== 0) e.reset = true;
      seen.push(e);
      if (e.reset || first?.(seen.length, stream)) return;
      stream.respond({ ':status': 200, 'content-type': 'application/json' });
      stream.end(JSON.stringify(e));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  closers.push(() => new Promise((r) => server.close(() => r())));
  return (server.address() as AddressInfo).port;
}

/** One h2 request with `body` (chunks; none for a request of trailers alone) and `trailers`; the response body and status. */
function h2Request(client: http2.ClientHttp2Session, authority: string, path: string, body: string[], trailers: Record<string, string> | undefined, extra: http2.OutgoingHttpHeaders = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = client.request({ ':method': 'POST', ':path': path, ':authority': authority, ...extra }, { waitForTrailers: trailers !== undefined });
    if (trailers) req.on('wantTrailers', () => req.sendTrailers(trailers));
    let status = 0;
    const chunks: Buffer[] = [];
    req.on('response', (h) => (status = Number(h[':status'])));
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve({ status, body: Buffer.concat(chunks).toString() }));
    req.on('error', reject);
    const parts = [...body];
    const next = (): void => {
      const part = parts.shift();
      if (part === undefined) return void req.end();
      req.write(part);
      setTimeout(next, 10);
    };
    next();
  });
}

async function connect(port: number): Promise<http2.ClientHttp2Session> {
  const client = http2.connect(`http://127.0.0.1:${port}`);
  closers.push(async () => client.close());
  return client;
}

const GRPC = { 'content-type': 'application/grpc', te: 'trailers' };

test('HTTP/2 request trailers reach an HTTP/2 upstream: after a whole body, alone (no data), after a streamed gRPC body and after a body past the buffer limit; none are made up for a request without', { timeout: 30_000 }, async () => {
  const seen: Echo[] = [];
  const port = await h2Echo(seen);
  const mesh = await TestMesh.start();
  closers.push(() => mesh.close());
  mesh.model.update({ services: [service('caller', 8000), { name: 'echo', namespace: 'default', ports: [{ port: 7100, protocol: 'http2' }] }], instances: [instance('echo', port)] });
  const caller = await mesh.sidecar('caller', 8000);
  const client = await connect(caller.outboundPort);
  const at = 'echo:7100';

  const whole = await h2Request(client, at, '/whole', ['hello ', 'world'], { 'x-checksum': 'abc123', 'x-count': '2' });
  assert.equal(whole.status, 200, whole.body);
  assert.deepEqual(JSON.parse(whole.body), { path: '/whole', body: 'hello world', trailers: { 'x-checksum': 'abc123', 'x-count': '2' }, contentLength: '11' }, 'the body and its trailers, with the content-length of a whole body (as Envoy\'s buffer filter sets it)');

  const alone = await h2Request(client, at, '/alone', [], { 'x-only': 'trailers' });
  assert.deepEqual(JSON.parse(alone.body), { path: '/alone', body: '', trailers: { 'x-only': 'trailers' }, contentLength: '0' });

  const call = await h2Request(client, at, '/pkg.Svc/Stream', ['\0\0\0\0\x01a', '\0\0\0\0\x01b'], { 'x-call-sum': '2' }, GRPC);
  assert.deepEqual(JSON.parse(call.body), { path: '/pkg.Svc/Stream', body: '\0\0\0\0\x01a\0\0\0\0\x01b', trailers: { 'x-call-sum': '2' } }, 'a streamed gRPC body ends with its trailers upstream');

  // Past the buffer limit (1 MiB) the body streams upstream; its trailers follow it.
  const big = 'b'.repeat(768 * 1024);
  const streamedBody = await h2Request(client, at, '/big', [big, big], { 'x-checksum': 'big' });
  const echoedBig = JSON.parse(streamedBody.body) as Echo;
  assert.deepEqual([echoedBig.body.length, echoedBig.trailers, echoedBig.contentLength], [2 * big.length, { 'x-checksum': 'big' }, undefined], 'a streamed body has no length to give');

  const plain = await h2Request(client, at, '/plain', ['x'], undefined, { 'content-length': '1' });
  assert.deepEqual(JSON.parse(plain.body), { path: '/plain', body: 'x', trailers: {}, contentLength: '1' });
  const plainCall = await h2Request(client, at, '/pkg.Svc/Plain', ['\0\0\0\0\x01c'], undefined, GRPC);
  assert.deepEqual(JSON.parse(plainCall.body).trailers, {}, 'a gRPC call without trailers ends without any');
});

test('request trailers are resent on a retry (a whole body and a streamed gRPC call) and go to the mirror', { timeout: 30_000 }, async () => {
  const seen: Echo[] = [];
  // The first attempt of each path gets a 503, which retry_on 5xx retries.
  const failed = new Set<string>();
  const port = await h2Echo(seen, (_n, stream) => {
    const path = seen.at(-1)!.path;
    if (failed.has(path)) return false;
    failed.add(path);
    stream.respond({ ':status': 503 });
    stream.end();
    return true;
  });
  const mirrored: Echo[] = [];
  const mirrorPort = await h2Echo(mirrored);
  const mesh = await TestMesh.start();
  closers.push(() => mesh.close());
  const h2svc = (name: string) => ({ name, namespace: 'default', ports: [{ port: 7101, protocol: 'http2' as const }] });
  mesh.model.update({
    services: [service('caller', 8000), h2svc('flaky'), h2svc('copy')],
    instances: [instance('flaky', port), instance('copy', mirrorPort)],
    routes: [route('flaky', [{ destinations: [{ service: 'flaky', weight: 1 }], retries: { attempts: 2, retryOn: ['5xx'] }, mirror: { service: 'copy', percentage: 100 } }])],
  });
  const caller = await mesh.sidecar('caller', 8000);
  const client = await connect(caller.outboundPort);

  const r = await h2Request(client, 'flaky:7101', '/retried', ['payload'], { 'x-checksum': 'r1' });
  assert.equal(r.status, 200, r.body);
  const c = await h2Request(client, 'flaky:7101', '/pkg.Svc/Retried', ['\0\0\0\0\x01z'], { 'x-call-sum': '1' }, GRPC);
  assert.equal(c.status, 200, c.body);
  assert.deepEqual(
    seen.map((e) => [e.path, e.body, e.trailers]),
    [
      ['/retried', 'payload', { 'x-checksum': 'r1' }],
      ['/retried', 'payload', { 'x-checksum': 'r1' }],
      ['/pkg.Svc/Retried', '\0\0\0\0\x01z', { 'x-call-sum': '1' }],
      ['/pkg.Svc/Retried', '\0\0\0\0\x01z', { 'x-call-sum': '1' }],
    ],
    'both attempts of each got the body and its trailers',
  );
  await withTimeout(
    (async () => {
      while (mirrored.length < 2) await new Promise((x) => setTimeout(x, 20));
    })(),
    5000,
    'the mirrored requests',
  );
  assert.deepEqual(mirrored.map((e) => [e.path, e.trailers]).sort(), [['/pkg.Svc/Retried', { 'x-call-sum': '1' }], ['/retried', { 'x-checksum': 'r1' }]].sort(), 'the shadows carry the trailers');
});

const HTTP_PROTOCOL_OPTIONS = 'envoy.extensions.upstreams.http.v3.HttpProtocolOptions';

/** The cluster's HttpProtocolOptions with http_protocol_options.enable_trailers. */
function enableTrailers(c: Record<string, any>): Record<string, unknown> {
  const tepo = c.typed_extension_protocol_options ?? {};
  const existing = tepo[HTTP_PROTOCOL_OPTIONS] ?? { '@type': `type.googleapis.com/${HTTP_PROTOCOL_OPTIONS}` };
  return { ...c, typed_extension_protocol_options: { ...tepo, [HTTP_PROTOCOL_OPTIONS]: { ...existing, explicit_http_config: { http_protocol_options: { enable_trailers: true } } } } };
}

/** An HTTP/1.1 app that answers what it got: body, trailers, and how the body was framed. */
async function h1Echo(): Promise<number> {
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => res.end(JSON.stringify({ body: Buffer.concat(chunks).toString(), trailers: req.trailers, te: req.headers['transfer-encoding'] ?? null, length: req.headers['content-length'] ?? null })));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  closers.push(() => new Promise((r) => server.close(() => r())));
  return (server.address() as AddressInfo).port;
}

for (const enabled of [false, true]) {
  test(`HTTP/1.1 upstream ${enabled ? 'with' : 'without'} enable_trailers: HTTP/2 request trailers ${enabled ? 'go as chunked trailers (dropped when the client sent a content-length: no chunked body to carry them)' : 'are dropped, as Envoy drops them'}`, { timeout: 30_000 }, async () => {
    const appPort = await h1Echo();
    const mesh = await TestMesh.start({ translator: enabled ? withFields({}, {}, enableTrailers) : undefined });
    closers.push(() => mesh.close());
    mesh.model.update({ services: [service('caller', 8000), service('legacy', 7102)], instances: [instance('legacy', appPort)] });
    const caller = await mesh.sidecar('caller', 8000);
    const client = await connect(caller.outboundPort);
    const whole = JSON.parse((await h2Request(client, 'legacy:7102', '/w', ['abc', 'def'], { 'x-checksum': 'w1' })).body);
    assert.equal(whole.body, 'abcdef');
    assert.deepEqual(whole.trailers, enabled ? { 'x-checksum': 'w1' } : {});
    if (enabled) assert.equal(whole.te, 'chunked');
    const call = JSON.parse((await h2Request(client, 'legacy:7102', '/pkg.Svc/S', ['\0\0\0\0\x01a'], { 'x-call-sum': '1' }, GRPC)).body);
    assert.equal(call.body, '\0\0\0\0\x01a');
    assert.deepEqual(call.trailers, enabled ? { 'x-call-sum': '1' } : {});
    const sized = JSON.parse((await h2Request(client, 'legacy:7102', '/sized', ['12345'], { 'x-checksum': 's1' }, { 'content-length': '5' })).body);
    assert.deepEqual([sized.body, sized.length, sized.trailers], ['12345', '5', {}]);
  });
}

test('HTTP/1.1 chunked request trailers from a client are dropped, as by Envoy without the listener\'s enable_trailers', { timeout: 30_000 }, async () => {
  const seen: Echo[] = [];
  const port = await h2Echo(seen);
  const mesh = await TestMesh.start();
  closers.push(() => mesh.close());
  mesh.model.update({ services: [service('caller', 8000), { name: 'echo2', namespace: 'default', ports: [{ port: 7103, protocol: 'http2' }] }], instances: [instance('echo2', port)] });
  const caller = await mesh.sidecar('caller', 8000);
  const body = await new Promise<string>((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: caller.outboundPort, method: 'POST', path: '/h1', headers: { host: 'echo2:7103', 'transfer-encoding': 'chunked', trailer: 'x-checksum' } }, (res) => {
      let text = '';
      res.on('data', (c: Buffer) => (text += c));
      res.on('end', () => resolve(text));
    });
    req.on('error', reject);
    req.write('chunk');
    req.addTrailers({ 'x-checksum': 'h1' });
    req.end();
  });
  const echoed = JSON.parse(body);
  assert.deepEqual([echoed.path, echoed.body, echoed.trailers], ['/h1', 'chunk', {}]);
});

test('a grpc-js client-streaming call through the sidecar still works (no trailers of its own)', { timeout: 30_000 }, async () => {
  const raw = (b: Buffer): Buffer => b;
  const definition = { sum: { path: '/calc.Calc/Sum', requestStream: true, responseStream: false, requestSerialize: raw, requestDeserialize: raw, responseSerialize: raw, responseDeserialize: raw } };
  const server = new grpc.Server();
  server.addService(definition as unknown as grpc.ServiceDefinition, {
    sum: (call: grpc.ServerReadableStream<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
      let total = 0;
      call.on('data', (b: Buffer) => (total += b.length));
      call.on('end', () => cb(null, Buffer.from(String(total))));
    },
  });
  const appPort = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
  closers.push(async () => void server.forceShutdown());
  const mesh = await TestMesh.start();
  closers.push(() => mesh.close());
  mesh.model.update({ services: [service('caller', 8000), { name: 'calc', namespace: 'default', ports: [{ port: 50070, protocol: 'grpc' }] }], instances: [instance('calc', appPort)] });
  const caller = await mesh.sidecar('caller', 8000);
  const Client = grpc.makeGenericClientConstructor(definition as unknown as grpc.ServiceDefinition, 'Calc');
  const client = new Client(`127.0.0.1:${caller.outboundPort}`, grpc.credentials.createInsecure(), { 'grpc.default_authority': 'calc:50070' });
  closers.push(async () => client.close());
  const answer = await withTimeout(
    new Promise<string>((resolve, reject) => {
      const call = (client as unknown as { sum: (cb: (e: grpc.ServiceError | null, r?: Buffer) => void) => grpc.ClientWritableStream<Buffer> }).sum((e, r) => (e ? reject(e) : resolve(r!.toString())));
      call.write(Buffer.from('abc'));
      call.write(Buffer.from('defgh'));
      call.end();
    }),
    10_000,
    'the client-streaming call',
  );
  assert.equal(answer, '8');
});

// --- wasm filters -------------------------------------------------------------

const binding = (svc: string, filter: string): FilterBinding => ({ name: `${svc}-${filter}`, namespace: 'default', service: svc, direction: 'outbound', filter, order: 0, config: {}, failurePolicy: 'fail_closed' });

async function meshWithModule(name: string, bytes: Uint8Array, translatorOf?: (base: Translator) => Translator): Promise<{ mesh: TestMesh; module: FilterModule }> {
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  const served = await moduleServer(new Map([[sha256, bytes]]));
  closers.push(served.close);
  const base = defaultTranslator({ wasmBaseUrl: served.url, wasmClusterName: 'weft-control' });
  const mesh = await TestMesh.start({ translator: translatorOf ? translatorOf(base) : base });
  closers.push(() => mesh.close());
  return { mesh, module: { name, sha256, size: bytes.length, abiVersion: '0.2.1' } };
}

const LIFECYCLE = `
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_vm_start") (param i32 i32) (result i32) (i32.const 1))
  (func (export "proxy_on_done") (param i32) (result i32) (i32.const 1))
  (func (export "proxy_on_log") (param i32))
  (func (export "proxy_on_delete") (param i32))
  (func (export "proxy_on_response_headers") (param i32 i32 i32) (result i32) (i32.const 0))`;

/**
 * In proxy_on_request_trailers: copies x-checksum into x-filter-saw, removes
 * x-secret, and adds x-body-eos: the end_of_stream its body callback last got
 * (`none` without one). With `hold: 'headers'` it stops the request headers
 * (of a request with a body) and a tick continues them; with 'trailers' it
 * stops at the trailers and a
 * tick (10 ms) continues the stream after adding x-held: ticked to them.
 */
async function trailerFilter(hold: 'none' | 'headers' | 'trailers'): Promise<Uint8Array> {
  return wat({
    imports: ['proxy_get_header_map_value', 'proxy_add_header_map_value', 'proxy_remove_header_map_value', 'proxy_set_tick_period_milliseconds', 'proxy_set_effective_context', 'proxy_continue_stream'],
    strings: { sum: 'x-checksum', saw: 'x-filter-saw', secret: 'x-secret', eosName: 'x-body-eos', zero: '0', one: '1', none: 'none', heldName: 'x-held', heldValue: 'ticked' },
    body: (s) => `${LIFECYCLE}
  (global $eos (mut i32) (i32.const 9))
  (global $held (mut i32) (i32.const 0))
  (func (export "proxy_on_configure") (param i32 i32) (result i32)
    (drop (call $proxy_set_tick_period_milliseconds (i32.const 10)))
    (i32.const 1))
  (func (export "proxy_on_tick") (param i32)
    (if (i32.eqz (global.get $held)) (then (return)))
    (drop (call $proxy_set_effective_context (global.get $held)))
    (drop (call $proxy_add_header_map_value (i32.const 1) ${s.heldName} ${s.heldValue}))
    (drop (call $proxy_continue_stream (i32.const 0)))
    (global.set $held (i32.const 0)))
  (func (export "proxy_on_request_headers") (param $id i32) (param i32) (param $end i32) (result i32)
    (global.set $eos (i32.const 9))
    ${hold === 'headers' ? '(if (i32.eqz (local.get $end)) (then (global.set $held (local.get $id)) (return (i32.const 1))))' : ''}
    (i32.const 0))
  (func (export "proxy_on_request_body") (param i32 i32 i32) (result i32)
    (global.set $eos (local.get 2))
    (i32.const 0))
  (func (export "proxy_on_request_trailers") (param $id i32) (param i32) (result i32)
    (if (i32.eqz (call $proxy_get_header_map_value (i32.const 1) ${s.sum} (i32.const 0) (i32.const 4)))
      (then (drop (call $proxy_add_header_map_value (i32.const 1) ${s.saw} (i32.load (i32.const 0)) (i32.load (i32.const 4))))))
    (drop (call $proxy_remove_header_map_value (i32.const 1) ${s.secret}))
    (if (i32.eq (global.get $eos) (i32.const 0))
      (then (drop (call $proxy_add_header_map_value (i32.const 1) ${s.eosName} ${s.zero})))
      (else (if (i32.eq (global.get $eos) (i32.const 1))
        (then (drop (call $proxy_add_header_map_value (i32.const 1) ${s.eosName} ${s.one})))
        (else (drop (call $proxy_add_header_map_value (i32.const 1) ${s.eosName} ${s.none}))))))
    ${hold === 'trailers' ? '(global.set $held (local.get $id)) (i32.const 1)' : '(i32.const 0)'})`,
  });
}

for (const hold of ['none', 'trailers', 'headers'] as const) {
  const holdTrailers = hold === 'trailers';
  const what = { none: '', trailers: ', and holds the request at them until its tick continues it', headers: ' after holding the request headers until a tick (the body and trailers read meanwhile)' }[hold];
  test(`a wasm filter's proxy_on_request_trailers reads, changes and adds request trailers (body call not end_of_stream)${what}`, { timeout: 60_000 }, async () => {
    const name = `trailer-${hold}`;
    // The upstream first: closed after the mesh, whose sessions to it would keep it open.
    const seen: Echo[] = [];
    const port = await h2Echo(seen);
    const { mesh, module } = await meshWithModule(name, await trailerFilter(hold));
    const svc = `${hold}-echo`;
    const caller = `${hold}-caller`;
    mesh.model.update({
      services: [service(caller, 8000), { name: svc, namespace: 'default', ports: [{ port: 7104, protocol: 'http2' }] }],
      instances: [instance(svc, port)],
      filterModules: [module],
      filterBindings: [binding(caller, name)],
    });
    const sc = await mesh.sidecar(caller, 8000, { log: () => undefined });
    const client = await connect(sc.outboundPort);
    const at = `${svc}:7104`;
    const held = holdTrailers ? { 'x-held': 'ticked' } : {};

    const whole = await withTimeout(h2Request(client, at, '/whole', ['data'], { 'x-checksum': 'c1', 'x-secret': 'hidden' }), 10_000, 'the whole body');
    assert.equal(whole.status, 200, whole.body);
    assert.deepEqual(JSON.parse(whole.body).trailers, { 'x-checksum': 'c1', 'x-filter-saw': 'c1', 'x-body-eos': '0', ...held }, 'x-secret removed; the body call before the trailers was not end_of_stream');

    const alone = await withTimeout(h2Request(client, at, '/alone', [], { 'x-checksum': 'c2' }), 10_000, 'trailers alone');
    assert.deepEqual(JSON.parse(alone.body).trailers, { 'x-checksum': 'c2', 'x-filter-saw': 'c2', 'x-body-eos': 'none', ...held }, 'no data: no body call, as Envoy');

    const call = await withTimeout(h2Request(client, at, '/pkg.Svc/Stream', ['\0\0\0\0\x01a', '\0\0\0\0\x01b'], { 'x-checksum': 'c3', 'x-secret': 's' }, GRPC), 10_000, 'the streamed call');
    const echoed = JSON.parse(call.body);
    assert.equal(echoed.body, '\0\0\0\0\x01a\0\0\0\0\x01b');
    assert.deepEqual(echoed.trailers, { 'x-checksum': 'c3', 'x-filter-saw': 'c3', 'x-body-eos': '0', ...held });

    const none = await withTimeout(h2Request(client, at, '/none', ['x'], undefined), 10_000, 'no trailers');
    assert.deepEqual(JSON.parse(none.body).trailers, {}, 'a request without trailers gets no trailers callback and none upstream');
  });
}

/**
 * Holds every body chunk (StopIterationAndBuffer, 1) and decides at the
 * trailers: without x-checksum it answers 403 (a local reply), else it lets
 * the request go on with the body it held.
 */
async function trailerGate(): Promise<Uint8Array> {
  return wat({
    imports: ['proxy_get_header_map_value', 'proxy_send_local_response'],
    strings: { sum: 'x-checksum', details: 'no_checksum', body: 'checksum required' },
    body: (s) => `${LIFECYCLE}
  (func (export "proxy_on_configure") (param i32 i32) (result i32) (i32.const 1))
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32) (i32.const 0))
  (func (export "proxy_on_request_body") (param i32 i32 i32) (result i32) (i32.const 1))
  (func (export "proxy_on_request_trailers") (param i32 i32) (result i32)
    (if (call $proxy_get_header_map_value (i32.const 1) ${s.sum} (i32.const 0) (i32.const 4))
      (then
        (drop (call $proxy_send_local_response (i32.const 403) ${s.details} ${s.body} (i32.const 0) (i32.const 0) (i32.const -1)))
        (return (i32.const 1))))
    (i32.const 0))`,
  });
}

test('a wasm filter that holds the body until the trailers hands it over there (it reaches the upstream ahead of them), or answers from the trailers with a local reply and nothing goes upstream', { timeout: 60_000 }, async () => {
  const seen: Echo[] = [];
  const port = await h2Echo(seen);
  const { mesh, module } = await meshWithModule('trailer-gate', await trailerGate());
  mesh.model.update({
    services: [service('gate-caller', 8000), { name: 'gated', namespace: 'default', ports: [{ port: 7105, protocol: 'http2' }] }],
    instances: [instance('gated', port)],
    filterModules: [module],
    filterBindings: [binding('gate-caller', 'trailer-gate')],
  });
  const sc = await mesh.sidecar('gate-caller', 8000, { log: () => undefined });
  const client = await connect(sc.outboundPort);
  const at = 'gated:7105';

  const ok = await withTimeout(h2Request(client, at, '/whole', ['part one, ', 'part two'], { 'x-checksum': 'ok' }), 10_000, 'the whole body');
  assert.equal(ok.status, 200, ok.body);
  assert.deepEqual(JSON.parse(ok.body), { path: '/whole', body: 'part one, part two', trailers: { 'x-checksum': 'ok' }, contentLength: '18' });
  const call = await withTimeout(h2Request(client, at, '/pkg.Svc/Up', ['\0\0\0\0\x01a', '\0\0\0\0\x01b'], { 'x-checksum': 'ok' }, GRPC), 10_000, 'the streamed call');
  assert.deepEqual(JSON.parse(call.body), { path: '/pkg.Svc/Up', body: '\0\0\0\0\x01a\0\0\0\0\x01b', trailers: { 'x-checksum': 'ok' } }, 'the chunks the filter held went upstream as it continued the trailers');

  const before = seen.length;
  const denied = await withTimeout(h2Request(client, at, '/whole', ['data'], { 'x-other': '1' }), 10_000, 'the denied request');
  assert.equal(denied.status, 403);
  assert.equal(denied.body, 'checksum required');
  const deniedCall = await withTimeout(
    new Promise<{ status: string; grpcStatus: string | undefined }>((resolve, reject) => {
      const req = client.request({ ':method': 'POST', ':path': '/pkg.Svc/Up', ':authority': at, ...GRPC }, { waitForTrailers: true });
      req.on('wantTrailers', () => req.sendTrailers({ 'x-other': '1' }));
      let status = '';
      let grpcStatus: string | undefined;
      req.on('response', (h) => {
        status = String(h[':status']);
        grpcStatus = h['grpc-status'] as string | undefined;
      });
      req.on('trailers', (t) => (grpcStatus ??= t['grpc-status'] as string | undefined));
      req.on('data', () => undefined);
      req.on('close', () => resolve({ status, grpcStatus }));
      req.on('error', reject);
      req.end(Buffer.from('\0\0\0\0\x01c'));
    }),
    10_000,
    'the denied call',
  );
  assert.equal(deniedCall.status, '200', 'a gRPC caller gets the reply as a gRPC status');
  assert.equal(deniedCall.grpcStatus, '7', "403's gRPC status: PERMISSION_DENIED");
  // The call's headers were upstream before its body (it streams, as through Envoy): its stream is reset, with
  // nothing of the body the filter held, nor the trailers.
  assert.deepEqual(seen.slice(before), [{ path: '/pkg.Svc/Up', body: '', trailers: {}, reset: true }], 'nothing of either denied request reached the upstream');
});

// --- trailers a wasm filter adds in its last body call --------------------------

/**
 * Adds trailers in the last body call of either direction, as Envoy's wasm
 * host lets it (context.cc getMap: addDecodedTrailers / addEncodedTrailers
 * when the stream has none): x-added, and x-early-status, what its add in the
 * headers callback got (`bad_argument`: there is no trailer map there). An add
 * in a body call that is not the last (x-mid) fails the same way.
 */
async function trailerAdder(): Promise<Uint8Array> {
  return wat({
    imports: ['proxy_add_header_map_value'],
    strings: { added: 'x-added', req: 'request-last-body', resp: 'response-last-body', early: 'x-early', headers: 'headers', status: 'x-early-status', bad: 'bad_argument', other: 'other', mid: 'x-mid', no: 'no' },
    body: (s) => `
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_vm_start") (param i32 i32) (result i32) (i32.const 1))
  (func (export "proxy_on_configure") (param i32 i32) (result i32) (i32.const 1))
  (func (export "proxy_on_done") (param i32) (result i32) (i32.const 1))
  (func (export "proxy_on_log") (param i32))
  (func (export "proxy_on_delete") (param i32))
  (global $early0 (mut i32) (i32.const 9))
  (global $early2 (mut i32) (i32.const 9))
  (func $last (param $map i32) (param $early i32)
    (if (i32.eq (local.get $map) (i32.const 1))
      (then (drop (call $proxy_add_header_map_value (i32.const 1) ${s.added} ${s.req})))
      (else (drop (call $proxy_add_header_map_value (i32.const 3) ${s.added} ${s.resp}))))
    (if (i32.eq (local.get $early) (i32.const 2))
      (then (drop (call $proxy_add_header_map_value (local.get $map) ${s.status} ${s.bad})))
      (else (drop (call $proxy_add_header_map_value (local.get $map) ${s.status} ${s.other})))))
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (global.set $early0 (call $proxy_add_header_map_value (i32.const 1) ${s.early} ${s.headers}))
    (i32.const 0))
  (func (export "proxy_on_request_body") (param i32 i32 i32) (result i32)
    (if (local.get 2)
      (then (call $last (i32.const 1) (global.get $early0)))
      (else (drop (call $proxy_add_header_map_value (i32.const 1) ${s.mid} ${s.no}))))
    (i32.const 0))
  (func (export "proxy_on_response_headers") (param i32 i32 i32) (result i32)
    (global.set $early2 (call $proxy_add_header_map_value (i32.const 3) ${s.early} ${s.headers}))
    (i32.const 0))
  (func (export "proxy_on_response_body") (param i32 i32 i32) (result i32)
    (if (local.get 2)
      (then (call $last (i32.const 3) (global.get $early2)))
      (else (drop (call $proxy_add_header_map_value (i32.const 3) ${s.mid} ${s.no}))))
    (i32.const 0))`,
  });
}

/** A mesh serving several modules (name, bytes). */
async function meshWithModules(mods: [string, Uint8Array][], cluster?: (c: Record<string, any>) => Record<string, unknown>): Promise<{ mesh: TestMesh; modules: FilterModule[] }> {
  const byHash = new Map<string, Uint8Array>();
  const modules = mods.map(([name, bytes]) => {
    const sha256 = createHash('sha256').update(bytes).digest('hex');
    byHash.set(sha256, bytes);
    return { name, sha256, size: bytes.length, abiVersion: '0.2.1' } as FilterModule;
  });
  const served = await moduleServer(byHash);
  closers.push(served.close);
  const base = defaultTranslator({ wasmBaseUrl: served.url, wasmClusterName: 'weft-control' });
  const translator: Translator = cluster
    ? {
        translateEndpoints: (m, n) => base.translateEndpoints(m, n),
        translateProxy: (m, p) => {
          const out = base.translateProxy(m, p);
          return { ...out, clusters: out.clusters.map((c) => ({ ...c, value: cluster(c.value as Record<string, any>) })) };
        },
      }
    : base;
  const mesh = await TestMesh.start({ translator });
  closers.push(() => mesh.close());
  return { mesh, modules };
}

/** One h2 request without trailers of its own: status, body, and the response trailers the client got. */
function h2Call(client: http2.ClientHttp2Session, authority: string, path: string, body: string[], extra: http2.OutgoingHttpHeaders = {}): Promise<{ status: number; body: string; trailers: Record<string, string> }> {
  return new Promise((resolve, reject) => {
    const req = client.request({ ':method': 'POST', ':path': path, ':authority': authority, ...extra });
    let status = 0;
    let trailers: Record<string, string> = {};
    const chunks: Buffer[] = [];
    req.on('response', (h) => (status = Number(h[':status'])));
    req.on('trailers', (t) => (trailers = Object.fromEntries(Object.entries(t).map(([k, v]) => [k, String(v)]))));
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve({ status, body: Buffer.concat(chunks).toString(), trailers }));
    req.on('error', reject);
    const parts = [...body];
    const next = (): void => {
      const part = parts.shift();
      if (part === undefined) return void req.end();
      req.write(part);
      setTimeout(next, 10);
    };
    next();
  });
}

const ADDED_REQUEST = { 'x-added': 'request-last-body', 'x-early-status': 'bad_argument' };
const ADDED_RESPONSE = { 'x-added': 'response-last-body', 'x-early-status': 'bad_argument' };

test('trailers a wasm filter adds in its last body call end the stream, as Envoy makes them (addDecodedTrailers / addEncodedTrailers): an h2 upstream gets the request\'s (whole body with its content-length, a streamed gRPC body), an h2 client the response\'s; adds in the headers callback or a body call that is not the last fail', { timeout: 60_000 }, async () => {
  const seen: Echo[] = [];
  const port = await h2Echo(seen);
  const { mesh, modules } = await meshWithModules([['trailer-adder', await trailerAdder()]]);
  mesh.model.update({
    services: [service('add-caller', 8000), { name: 'added', namespace: 'default', ports: [{ port: 7106, protocol: 'http2' }] }],
    instances: [instance('added', port)],
    filterModules: modules,
    filterBindings: [binding('add-caller', 'trailer-adder')],
  });
  const sc = await mesh.sidecar('add-caller', 8000, { log: () => undefined });
  const client = await connect(sc.outboundPort);
  const at = 'added:7106';

  const whole = await withTimeout(h2Call(client, at, '/whole', ['hello ', 'there']), 10_000, 'the whole body');
  assert.equal(whole.status, 200, whole.body);
  assert.deepEqual(JSON.parse(whole.body), { path: '/whole', body: 'hello there', trailers: ADDED_REQUEST, contentLength: '11' }, 'the upstream got the added trailers after the body, and no x-early');
  assert.deepEqual(whole.trailers, ADDED_RESPONSE, 'the client got the trailers added in the last response body call');

  const call = await withTimeout(h2Call(client, at, '/pkg.Svc/Stream', ['\0\0\0\0\x01a', '\0\0\0\0\x01b'], GRPC), 10_000, 'the streamed call');
  assert.equal(call.status, 200, call.body);
  assert.deepEqual(JSON.parse(call.body), { path: '/pkg.Svc/Stream', body: '\0\0\0\0\x01a\0\0\0\0\x01b', trailers: ADDED_REQUEST }, 'a streamed body: added in its (empty) last call, not x-mid from the calls before');
  assert.deepEqual(call.trailers, ADDED_RESPONSE);

  // A client with trailers of its own: the last body call is not end_of_stream, so nothing is added.
  const own = await withTimeout(h2Request(client, at, '/own', ['data'], { 'x-checksum': 'c1' }), 10_000, 'a body with trailers');
  assert.deepEqual(JSON.parse(own.body).trailers, { 'x-checksum': 'c1' });
});

test('trailers added in the last request body call: an HTTP/1.1 client\'s request carries them to an h2 upstream; an HTTP/1.1 client gets none of the response\'s (dropped, as Envoy\'s HTTP/1 codec drops trailers without enable_trailers)', { timeout: 60_000 }, async () => {
  const seen: Echo[] = [];
  const port = await h2Echo(seen);
  const { mesh, modules } = await meshWithModules([['trailer-adder', await trailerAdder()]]);
  mesh.model.update({
    services: [service('add1-caller', 8000), { name: 'added1', namespace: 'default', ports: [{ port: 7107, protocol: 'http2' }] }],
    instances: [instance('added1', port)],
    filterModules: modules,
    filterBindings: [binding('add1-caller', 'trailer-adder')],
  });
  const sc = await mesh.sidecar('add1-caller', 8000, { log: () => undefined });
  const got = await withTimeout(
    new Promise<{ status: number; body: string; trailers: NodeJS.Dict<string>; te: string | undefined }>((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port: sc.outboundPort, method: 'POST', path: '/h1', headers: { host: 'added1:7107', 'content-type': 'text/plain' } }, (res) => {
        let text = '';
        res.on('data', (c: Buffer) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text, trailers: res.trailers, te: res.headers['transfer-encoding'] }));
      });
      req.on('error', reject);
      req.end('from h1');
    }),
    10_000,
    'the HTTP/1.1 request',
  );
  assert.equal(got.status, 200, got.body);
  assert.deepEqual(JSON.parse(got.body), { path: '/h1', body: 'from h1', trailers: ADDED_REQUEST, contentLength: '7' });
  assert.deepEqual(got.trailers, {}, 'no trailers to an HTTP/1.1 client');
});

test('filters after the one that added trailers in its last body call get that body call without end_of_stream, then the trailers (as Envoy\'s filter manager runs decodeTrailers after trailers_added_entry)', { timeout: 60_000 }, async () => {
  const seen: Echo[] = [];
  const port = await h2Echo(seen);
  const { mesh, modules } = await meshWithModules([['trailer-adder', await trailerAdder()], ['trailer-reader', await trailerFilter('none')]]);
  mesh.model.update({
    services: [service('chain-caller', 8000), { name: 'chained', namespace: 'default', ports: [{ port: 7108, protocol: 'http2' }] }],
    instances: [instance('chained', port)],
    filterModules: modules,
    filterBindings: [binding('chain-caller', 'trailer-adder'), { ...binding('chain-caller', 'trailer-reader'), order: 1 }],
  });
  const sc = await mesh.sidecar('chain-caller', 8000, { log: () => undefined });
  const client = await connect(sc.outboundPort);
  const at = 'chained:7108';
  const whole = await withTimeout(h2Call(client, at, '/whole', ['abc']), 10_000, 'the whole body');
  assert.equal(whole.status, 200, whole.body);
  assert.deepEqual(JSON.parse(whole.body).trailers, { ...ADDED_REQUEST, 'x-body-eos': '0' }, 'the second filter saw the added trailers in proxy_on_request_trailers, after a body call without end_of_stream');
  const call = await withTimeout(h2Call(client, at, '/pkg.Svc/Chain', ['\0\0\0\0\x01a'], GRPC), 10_000, 'the streamed call');
  assert.deepEqual(JSON.parse(call.body).trailers, { ...ADDED_REQUEST, 'x-body-eos': '0' });
});

test('trailers added in the last request body call reach an HTTP/1.1 upstream with enable_trailers on a chunked body (an HTTP/1.1 client\'s chunked request); a body that came with a content-length keeps it and they are dropped, as Envoy\'s HTTP/1 codec', { timeout: 60_000 }, async () => {
  const appPort = await h1Echo();
  const { mesh, modules } = await meshWithModules([['trailer-adder', await trailerAdder()]], enableTrailers);
  mesh.model.update({
    services: [service('addh1-caller', 8000), service('legacy-added', 7109)],
    instances: [instance('legacy-added', appPort)],
    filterModules: modules,
    filterBindings: [binding('addh1-caller', 'trailer-adder')],
  });
  const sc = await mesh.sidecar('addh1-caller', 8000, { log: () => undefined });
  const post = (headers: Record<string, string>, parts: string[]) =>
    withTimeout(
      new Promise<string>((resolve, reject) => {
        const req = http.request({ host: '127.0.0.1', port: sc.outboundPort, method: 'POST', path: '/up', headers: { host: 'legacy-added:7109', ...headers } }, (res) => {
          let text = '';
          res.on('data', (c: Buffer) => (text += c));
          res.on('end', () => resolve(text));
        });
        req.on('error', reject);
        for (const p of parts) req.write(p);
        req.end();
      }),
      10_000,
      'the HTTP/1.1 request',
    );
  const chunked = JSON.parse(await post({ 'transfer-encoding': 'chunked' }, ['one ', 'two']));
  assert.deepEqual(chunked, { body: 'one two', trailers: ADDED_REQUEST, te: 'chunked', length: null });
  const sized = JSON.parse(await post({ 'content-length': '7' }, ['one two']));
  assert.deepEqual(sized, { body: 'one two', trailers: {}, te: null, length: '7' });
});

test('a local reply with a body (no healthy upstream) goes through the last response body call too: trailers a filter adds there reach an HTTP/2 client', { timeout: 60_000 }, async () => {
  const { mesh, modules } = await meshWithModules([['trailer-adder', await trailerAdder()]]);
  mesh.model.update({
    services: [service('lr-caller', 8000), { name: 'nobody', namespace: 'default', ports: [{ port: 7110, protocol: 'http2' }] }],
    instances: [],
    filterModules: modules,
    filterBindings: [binding('lr-caller', 'trailer-adder')],
  });
  const sc = await mesh.sidecar('lr-caller', 8000, { log: () => undefined });
  const client = await connect(sc.outboundPort);
  const r = await withTimeout(h2Call(client, 'nobody:7110', '/x', ['abc']), 10_000, 'the local reply');
  assert.equal(r.status, 503);
  assert.equal(r.body, 'no healthy upstream');
  assert.deepEqual(r.trailers, ADDED_RESPONSE);
});
