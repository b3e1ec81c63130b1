// Response bodies through wasm filters as Envoy moves them: chunk by chunk
// while every filter continues (a slow or endless response is not held back,
// gRPC trailers pass), and whole, with a new length, when a filter holds the
// headers until it continues them itself (a tick) and rewrites the body then.
// A filter that stops its headers gets no body callback until it continues
// (Envoy's StopAllIterationAndWatermark).

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { defaultTranslator } from '../../control/xds/index.ts';
import type { FilterBinding, FilterModule } from '../../control/model/types.ts';
import { wat } from '../wasm/wat.ts';
import type { Received } from './harness.ts';
import { MiB, TestMesh, eventually, freePort, get, instance, metric, service, startApp, startEndlessApp, startSinkApp, upload, withTimeout } from './harness.ts';

const telemetryWasm = fileURLToPath(new URL('../../filters/dist/telemetry.wasm', import.meta.url));
const closers: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of closers.reverse()) await c();
});

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

/** A mesh whose control plane serves `bytes` as filter module `name`; `listenerFields` are set on every listener it sends. */
async function meshWithModule(name: string, bytes: Uint8Array, listenerFields?: Record<string, unknown>): Promise<{ mesh: TestMesh; module: FilterModule }> {
  const module = moduleOf(name, bytes);
  const server = http.createServer((req, res) => {
    const found = [...served].find(([digest]) => req.url?.endsWith(`${digest}.wasm`));
    if (found) return res.end(found[1]);
    res.statusCode = 404;
    res.end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  closers.push(() => new Promise((r) => server.close(() => r())));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const translator = defaultTranslator({ wasmBaseUrl: base, wasmClusterName: 'weft-control' });
  const mesh = await TestMesh.start({
    translator: listenerFields
      ? {
          translateProxy(model, proxy) {
            const t = translator.translateProxy(model, proxy);
            return { ...t, listeners: t.listeners.map((l) => ({ name: l.name, value: { ...(l.value as object), ...listenerFields } })) };
          },
          translateEndpoints: (model, names) => translator.translateEndpoints(model, names),
        }
      : translator,
  });
  closers.push(() => mesh.close());
  return { mesh, module };
}

/** Modules the module servers of meshWithModule serve, by digest. */
const served = new Map<string, Uint8Array>();
function moduleOf(name: string, bytes: Uint8Array): FilterModule {
  const digest = sha(bytes);
  served.set(digest, bytes);
  return { name, sha256: digest, size: bytes.length, abiVersion: '0.2.1' };
}

const binding = (svc: string, filter: string, direction: 'inbound' | 'outbound'): FilterBinding => ({
  name: `${svc}-${filter}`,
  namespace: 'default',
  service: svc,
  direction,
  filter,
  order: 0,
  config: {},
  failurePolicy: 'fail_closed',
});

/**
 * A gRPC upstream (`onStream` answers each call) behind service `upstream`,
 * and a caller service whose outbound chain runs `module`: returns an h2
 * client connected to the caller's sidecar.
 */
async function grpcThroughFilter(mesh: TestMesh, module: FilterModule, caller: string, upstream: string, port: number, onStream: (stream: http2.ServerHttp2Stream) => void): Promise<{ client: http2.ClientHttp2Session; adminPort: number; outboundPort: number }> {
  const server = http2.createServer();
  server.on('stream', onStream);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  mesh.track(() => new Promise((r) => server.close(() => r())));
  mesh.model.update({
    services: [{ name: caller, namespace: 'default', ports: [{ port: 8000, protocol: 'http' }] }, { name: upstream, namespace: 'default', ports: [{ port, protocol: 'grpc' }] }],
    instances: [instance(upstream, (server.address() as AddressInfo).port)],
    filterModules: [module],
    filterBindings: [binding(caller, module.name, 'outbound')],
  });
  const sidecar = await mesh.sidecar(caller, 8000, { log: () => undefined });
  const client = http2.connect(`http://127.0.0.1:${sidecar.outboundPort}`);
  mesh.track(async () => client.close());
  return { client, adminPort: sidecar.adminPort, outboundPort: sidecar.outboundPort };
}

test('a response streams through the telemetry filter: the first chunk arrives before the app sends the second', { timeout: 60_000, skip: !existsSync(telemetryWasm) && 'filters/dist/telemetry.wasm not built' }, async () => {
  const { mesh, module } = await meshWithModule('telemetry', new Uint8Array(readFileSync(telemetryWasm)));
  let clientSawFirst: () => void = () => undefined;
  const sawFirst = new Promise<void>((r) => (clientSawFirst = r));
  const events: string[] = [];
  const app = await startApp('feed', (_req, res) => {
    res.setHeader('content-type', 'text/event-stream');
    res.write('first\n');
    events.push('app sent first');
    // The second chunk waits for the client to have the first (or gives up after 3 s, when the sidecar held it back).
    void Promise.race([sawFirst, new Promise((r) => setTimeout(r, 3000))]).then(() => {
      events.push('app sends second');
      res.end('second\n');
    });
  });
  mesh.track(() => app.close());
  const inbound = await freePort();
  mesh.model.update({ services: [service('feed', 7900)], instances: [instance('feed', inbound)], filterModules: [module], filterBindings: [binding('feed', 'telemetry', 'inbound')] });
  await mesh.sidecar('feed', app.port, { inboundPort: inbound, log: () => undefined });

  const body = await new Promise<string>((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port: inbound, path: '/events', headers: { host: 'feed' } }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => {
          if (!text) {
            events.push(`client got ${JSON.stringify(c)}`);
            clientSawFirst();
          }
          text += c;
        });
        res.on('end', () => resolve(text));
      })
      .on('error', reject);
  });
  assert.equal(body, 'first\nsecond\n');
  assert.deepEqual(events, ['app sent first', 'client got "first\\n"', 'app sends second']);
});

test('gRPC through a wasm filter keeps its trailers and streams its messages', { timeout: 60_000, skip: !existsSync(telemetryWasm) && 'filters/dist/telemetry.wasm not built' }, async () => {
  const { mesh, module } = await meshWithModule('telemetry', new Uint8Array(readFileSync(telemetryWasm)));
  const { client } = await grpcThroughFilter(mesh, module, 'g-caller', 'greeter', 50051, (stream) => {
    stream.on('data', () => undefined);
    stream.on('end', () => {
      stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
      stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0', 'grpc-message': 'ok' }));
      stream.write(Buffer.from('\0\0\0\0\x03one'));
      setTimeout(() => stream.end(Buffer.from('\0\0\0\0\x03two')), 200);
    });
  });
  const result = await new Promise<{ chunks: number; body: string; trailers: http2.IncomingHttpHeaders }>((resolve, reject) => {
    const req = client.request({ ':method': 'POST', ':path': '/stream.Feed/Watch', ':authority': 'greeter:50051', 'content-type': 'application/grpc', te: 'trailers' });
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('trailers', (trailers) => req.on('end', () => resolve({ chunks: chunks.length, body: Buffer.concat(chunks).toString('latin1'), trailers })));
    req.on('error', reject);
    req.end(Buffer.from('\0\0\0\0\x02hi'));
  });
  assert.equal(result.body, '\0\0\0\0\x03one\0\0\0\0\x03two');
  assert.ok(result.chunks >= 2, `the messages came as they were sent (${result.chunks} chunk(s))`);
  assert.equal(result.trailers['grpc-status'], '0');
  assert.equal(result.trailers['grpc-message'], 'ok');
});

/** The callbacks the WAT filters below share: start, then (LIFECYCLE) pass the request headers; AFTER: end. */
const START = `
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_vm_start") (param i32 i32) (result i32) (i32.const 1))
  (func (export "proxy_on_configure") (param i32 i32) (result i32) (i32.const 1))`;
const LIFECYCLE = `${START}
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32) (i32.const 0))`;
/**
 * The lifecycle of a filter that holds a stream and continues it from
 * proxy_on_tick (every 10 ms), as an SDK filter does after
 * set_effective_context: `(call $hold (local.get $id) (i32.const 0|1))` in a
 * headers callback stops the request (response) and returns 1. The tick
 * continues it after `afterTicks` ticks, first adding `x-held: ticked` to
 * the held headers when `addHeader`. One stream held at a time.
 */
function ticking(s: Record<string, string>, { addHeader = false, afterTicks = 1 } = {}): string {
  return `
  (global $held (mut i32) (i32.const 0))
  (global $heldDirection (mut i32) (i32.const 0))
  (global $ticks (mut i32) (i32.const 0))
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_vm_start") (param i32 i32) (result i32) (i32.const 1))
  (func (export "proxy_on_configure") (param i32 i32) (result i32)
    (drop (call $proxy_set_tick_period_milliseconds (i32.const 10)))
    (i32.const 1))
  (func $hold (param $id i32) (param $direction i32) (result i32)
    (global.set $held (local.get $id))
    (global.set $heldDirection (local.get $direction))
    (global.set $ticks (i32.const 0))
    (i32.const 1))
  (func (export "proxy_on_tick") (param i32)
    (if (i32.eqz (global.get $held)) (then (return)))
    (global.set $ticks (i32.add (global.get $ticks) (i32.const 1)))
    (if (i32.lt_u (global.get $ticks) (i32.const ${afterTicks})) (then (return)))
    (drop (call $proxy_set_effective_context (global.get $held)))
    ${addHeader ? `(drop (call $proxy_add_header_map_value (i32.mul (global.get $heldDirection) (i32.const 2)) ${s.heldName} ${s.heldValue}))` : ''}
    (drop (call $proxy_continue_stream (global.get $heldDirection)))
    (global.set $held (i32.const 0)))`;
}
const TICKING_IMPORTS = ['proxy_set_tick_period_milliseconds', 'proxy_set_effective_context', 'proxy_continue_stream', 'proxy_add_header_map_value'];
const TICKING_STRINGS = { heldName: 'x-held', heldValue: 'ticked' };

const AFTER = `(func (export "proxy_on_done") (param i32) (result i32) (i32.const 1))
  (func (export "proxy_on_log") (param i32))
  (func (export "proxy_on_delete") (param i32))`;

/**
 * Stops the response headers until its next tick, then gets the body whole,
 * replaces it and tries to add a header (too late: the headers went on when
 * the tick continued them, as in Envoy).
 */
async function rewriter(): Promise<Uint8Array> {
  return wat({
    imports: [...TICKING_IMPORTS, 'proxy_set_buffer_bytes'],
    strings: { ...TICKING_STRINGS, body: 'REWRITTEN BODY', name: 'x-rewritten', value: 'yes' },
    body: (s) => `${ticking(s, { addHeader: true })}
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32) (i32.const 0))
  (func (export "proxy_on_response_headers") (param $id i32) (param i32 i32) (result i32) (call $hold (local.get $id) (i32.const 1)))
  (func (export "proxy_on_response_body") (param $id i32) (param $size i32) (param $eos i32) (result i32)
    (if (i32.eqz (local.get $eos)) (then (return (i32.const 1))))
    (drop (call $proxy_set_buffer_bytes (i32.const 1) (i32.const 0) (local.get $size) ${s.body}))
    (drop (call $proxy_add_header_map_value (i32.const 2) ${s.name} ${s.value}))
    (i32.const 0))
  ${AFTER}`,
  });
}

test('a filter that stops the response headers and continues them from a tick gets the body after that and may rewrite it', { timeout: 60_000 }, async () => {
  const { mesh, module } = await meshWithModule('rewriter', await rewriter());
  const app = await startApp('pages', (_req, res) => {
    res.write('original ');
    setTimeout(() => res.end('content that is longer than the rewrite'), 50);
  });
  mesh.track(() => app.close());
  const inbound = await freePort();
  mesh.model.update({ services: [service('pages', 7950)], instances: [instance('pages', inbound)], filterModules: [module], filterBindings: [binding('pages', 'rewriter', 'inbound')] });
  await mesh.sidecar('pages', app.port, { inboundPort: inbound, log: () => undefined });
  const r = await get(inbound, 'pages', '/');
  assert.equal(r.status, 200);
  assert.equal(r.body, 'REWRITTEN BODY');
  assert.equal(r.headers['content-length'], undefined, 'the headers went on before the body: chunked, as the app sent it');
  assert.equal(r.headers['x-held'], 'ticked', 'the header the filter added before it continued');
  assert.equal(r.headers['x-rewritten'], undefined, 'a header added in the body phase came too late: the headers went on with the tick');
});

test('a gRPC bidirectional stream flows through a wasm filter both ways before the client ends', { timeout: 60_000, skip: !existsSync(telemetryWasm) && 'filters/dist/telemetry.wasm not built' }, async () => {
  const { mesh, module } = await meshWithModule('telemetry', new Uint8Array(readFileSync(telemetryWasm)));
  const { client } = await grpcThroughFilter(mesh, module, 'chat-client', 'chat', 50052, (stream) => {
    // Echo each message as it comes: the answer to the first must reach the client while it still holds its stream open.
    stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
    stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
    stream.on('data', (c: Buffer) => stream.write(c));
    stream.on('end', () => stream.end());
  });
  const req = client.request({ ':method': 'POST', ':path': '/chat.Chat/Talk', ':authority': 'chat:50052', 'content-type': 'application/grpc', te: 'trailers' }, { endStream: false });
  const received: string[] = [];
  let wake: () => void = () => undefined;
  req.on('data', (c: Buffer) => {
    received.push(c.toString('latin1'));
    wake();
  });
  const next = (ms: number) => new Promise<void>((resolve, reject) => {
    wake = resolve;
    setTimeout(() => reject(new Error(`no echo within ${ms} ms (got ${JSON.stringify(received)})`)), ms).unref();
  });
  const trailers = new Promise<http2.IncomingHttpHeaders>((resolve) => req.on('trailers', resolve));
  const ended = new Promise((resolve) => req.on('end', resolve));
  const first = next(5000);
  req.write(Buffer.from('\0\0\0\0\x05hello'));
  await first;
  assert.equal(received.join(''), '\0\0\0\0\x05hello', 'the echo of the first message arrived while the client stream was open');
  req.end(Buffer.from('\0\0\0\0\x03bye'));
  assert.equal((await trailers)['grpc-status'], '0');
  await ended;
  assert.equal(received.join(''), '\0\0\0\0\x05hello\0\0\0\0\x03bye');
});

/** Answers 403 (gRPC PERMISSION_DENIED) as soon as a request body chunk arrives. */
async function bodyGuard(): Promise<Uint8Array> {
  return wat({
    imports: ['proxy_send_local_response'],
    strings: { details: 'body_denied', body: 'no bodies here' },
    body: (s) => `${LIFECYCLE}
  (func (export "proxy_on_request_body") (param i32 i32 i32) (result i32)
    (drop (call $proxy_send_local_response (i32.const 403) ${s.details} ${s.body} (i32.const 0) (i32.const 0) (i32.const 7)))
    (i32.const 1))
  ${AFTER}`,
  });
}

test('a wasm filter answering from a streamed gRPC request body stops the call with its own reply', { timeout: 60_000 }, async () => {
  const { mesh, module } = await meshWithModule('body-guard', await bodyGuard());
  let upstreamBytes = 0;
  const { client } = await grpcThroughFilter(mesh, module, 'guarded-client', 'vault', 50053, (stream) => {
    stream.on('data', (c: Buffer) => (upstreamBytes += c.length));
    stream.on('error', () => undefined);
  });
  const answer = await new Promise<{ headers: http2.IncomingHttpHeaders; trailers: http2.IncomingHttpHeaders }>((resolve, reject) => {
    const req = client.request({ ':method': 'POST', ':path': '/vault.Vault/Put', ':authority': 'vault:50053', 'content-type': 'application/grpc', te: 'trailers' });
    let headers: http2.IncomingHttpHeaders = {};
    let trailers: http2.IncomingHttpHeaders = {};
    req.on('response', (h) => (headers = h));
    req.on('trailers', (t) => (trailers = t));
    req.on('data', () => undefined);
    req.on('close', () => resolve({ headers, trailers }));
    req.on('error', reject);
    req.end(Buffer.from('\0\0\0\0\x06secret'));
  });
  assert.equal(answer.headers['grpc-status'] ?? answer.trailers['grpc-status'], '7');
  assert.equal(upstreamBytes, 0, 'the body the filter refused never reached the upstream');
});

test('an upload past the buffer limit streams through the telemetry filter to the app, intact and chunked', { timeout: 60_000, skip: !existsSync(telemetryWasm) && 'filters/dist/telemetry.wasm not built' }, async () => {
  const { mesh, module } = await meshWithModule('telemetry', new Uint8Array(readFileSync(telemetryWasm)));
  let sawTwo: () => void = () => undefined;
  const twoMiB = new Promise<void>((r) => (sawTwo = r));
  const app = await startSinkApp(undefined, (bytes) => {
    if (bytes >= 2 * MiB) sawTwo();
  });
  mesh.track(() => app.close());
  mesh.model.update({ services: [service('camera', 8000), service('archive', 7960)], instances: [instance('archive', app.port)], filterModules: [module], filterBindings: [binding('camera', 'telemetry', 'outbound')] });
  const caller = await mesh.sidecar('camera', 8000, { log: () => undefined });
  // Nothing past 3 MiB is sent until the app has 2 MiB: the filter's body phase must pass chunks on as they come.
  const res = await withTimeout(upload(caller.outboundPort, 'archive', 12, { pauseAfter: 3, resumeWhen: twoMiB }), 30_000, 'the upload');
  assert.equal(res.status, 200, res.body);
  const got = JSON.parse(res.body) as Received;
  assert.deepEqual([got.bytes, got.sha256], [res.sent.bytes, res.sent.sha256]);
  // A filter may change a streamed body, so its length is not promised upstream.
  assert.deepEqual([got.transferEncoding, got.contentLength], ['chunked', undefined]);
});

test('a wasm filter answering from the body of a large upload: the client gets its reply, the app none of the body', { timeout: 60_000 }, async () => {
  const { mesh, module } = await meshWithModule('body-guard', await bodyGuard());
  let appBytes = 0;
  const app = await startSinkApp(undefined, (bytes) => (appBytes = bytes));
  mesh.track(() => app.close());
  mesh.model.update({ services: [service('sender', 8000), service('guarded', 7970)], instances: [instance('guarded', app.port)], filterModules: [module], filterBindings: [binding('sender', 'body-guard', 'outbound')] });
  const caller = await mesh.sidecar('sender', 8000, { log: () => undefined });
  const res = await upload(caller.outboundPort, 'guarded', 4);
  assert.equal(res.status, 403);
  assert.equal(res.body, 'no bodies here');
  assert.equal(appBytes, 0);
});

/**
 * On the first response body chunk, calls cluster `authz` (proxy_http_call)
 * and holds the body until the answer arrives; then lets everything through.
 */
async function calloutOnBody(cluster: string): Promise<Uint8Array> {
  return calloutFilter(cluster, (call) => `
  (global $called (mut i32) (i32.const 0))
  (func (export "proxy_on_response_headers") (param i32 i32 i32) (result i32) (i32.const 0))
  (func (export "proxy_on_response_body") (param $id i32) (param $size i32) (param $eos i32) (result i32)
    (if (global.get $called) (then (return (i32.const 0))))
    (global.set $called (i32.const 1))
    (global.set $stream (local.get $id))
    ${call}
    (i32.const 1))`);
}

/** A filter that calls cluster `authz` (GET /check) where `phases` says, and continues its stream ($stream) on the answer. */
async function calloutFilter(cluster: string, phases: (call: string) => string): Promise<Uint8Array> {
  const { serializePairs } = await import('../../sidecar/wasm/headers.ts');
  const headers = serializePairs([
    [':method', 'GET'],
    [':path', '/check'],
    [':authority', 'authz'],
  ]);
  return wat({
    imports: ['proxy_http_call', 'proxy_set_effective_context', 'proxy_continue_stream'],
    strings: { cluster, headers: String.fromCharCode(...headers) },
    body: (s) => `${LIFECYCLE}
  (global $stream (mut i32) (i32.const 0))
  ${phases(`(drop (call $proxy_http_call ${s.cluster} ${s.headers} (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 5000) (i32.const 16)))`)}
  (func (export "proxy_on_http_call_response") (param i32 i32 i32 i32 i32)
    (drop (call $proxy_set_effective_context (global.get $stream)))
    (drop (call $proxy_continue_stream (i32.const 1))))
  ${AFTER}`,
  });
}

test('a filter can call another cluster (proxy_http_call) mid-body; the held chunks and the rest follow in order', { timeout: 60_000 }, async () => {
  const checks: string[] = [];
  const authz = await startApp('authz', (req, res) => {
    checks.push(`${req.method} ${req.url} ${req.headers.host}`);
    setTimeout(() => res.end('ok'), 100);
  });
  const { mesh, module } = await meshWithModule('callout', await calloutOnBody('outbound|7961||authz.default'));
  mesh.track(() => authz.close());
  const app = await startApp('pages2', (_req, res) => {
    res.write('one,');
    setTimeout(() => res.write('two,'), 20);
    setTimeout(() => res.end('three'), 40);
  });
  mesh.track(() => app.close());
  const inbound = await freePort();
  mesh.model.update({
    services: [service('pages2', 7960), service('authz', 7961)],
    instances: [instance('pages2', inbound), instance('authz', authz.port)],
    filterModules: [module],
    filterBindings: [binding('pages2', 'callout', 'inbound')],
  });
  await mesh.sidecar('pages2', app.port, { inboundPort: inbound, log: () => undefined });
  const r = await get(inbound, 'pages2', '/');
  assert.equal(r.status, 200);
  assert.equal(r.body, 'one,two,three');
  assert.deepEqual(checks, ['GET /check authz']);
});

/** Stops the response headers to call cluster `authz` (proxy_http_call); continues when the answer arrives. */
async function calloutOnResponseHeaders(cluster: string): Promise<Uint8Array> {
  return calloutFilter(cluster, (call) => `
  (func (export "proxy_on_response_headers") (param $id i32) (param i32 i32) (result i32)
    (global.set $stream (local.get $id))
    ${call}
    (i32.const 1))
  (func (export "proxy_on_response_body") (param i32 i32 i32) (result i32) (i32.const 0))`);
}

test('a client that leaves while a filter holds the response headers on a callout: once the filter lets go, the endless upstream response is abandoned and the stream ends', { timeout: 60_000 }, async () => {
  const authz = await startApp('authz2', (_req, res) => {
    setTimeout(() => res.end('ok'), 600);
  });
  const { mesh, module } = await meshWithModule('hcallout', await calloutOnResponseHeaders('outbound|7971||authz2.default'));
  mesh.track(() => authz.close());
  const app = await startEndlessApp('endless', 'more\n');
  mesh.track(() => app.close());
  const inbound = await freePort();
  mesh.model.update({
    services: [service('endless', 7970), service('authz2', 7971)],
    instances: [instance('endless', inbound), instance('authz2', authz.port)],
    filterModules: [module],
    filterBindings: [binding('endless', 'hcallout', 'inbound')],
  });
  const sc = await mesh.sidecar('endless', app.port, { inboundPort: inbound, log: () => undefined });
  const inb = { envoy_http_conn_manager_prefix: 'inbound' };
  const client = http.request({ host: '127.0.0.1', port: inbound, path: '/', headers: { host: 'endless' } });
  client.on('error', () => undefined);
  client.end();
  await eventually(() => app.hits === 1, 10_000, 'the request at the app');
  client.destroy();
  await eventually(() => app.abandoned === 1, 10_000, 'the app to see its response abandoned once the filter let go');
  await eventually(async () => (await metric(sc.adminPort, 'envoy_http_downstream_rq_active', inb)) === 0, 10_000, 'the stream over');
});

/**
 * Holds bodies until their end: StopIterationAndBuffer on every request and
 * response body chunk before end_of_stream; with `stopResponseHeaders` it
 * also stops the response headers, for 20 ticks (200 ms).
 */
async function holder(stopResponseHeaders: boolean): Promise<Uint8Array> {
  return wat({
    imports: TICKING_IMPORTS,
    strings: TICKING_STRINGS,
    body: (s) => `${ticking(s, { afterTicks: 20 })}
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32) (i32.const 0))
  (func (export "proxy_on_request_body") (param i32 i32 i32) (result i32) (select (i32.const 0) (i32.const 1) (local.get 2)))
  (func (export "proxy_on_response_headers") (param $id i32) (param i32 i32) (result i32) ${stopResponseHeaders ? '(call $hold (local.get $id) (i32.const 1))' : '(i32.const 0)'})
  (func (export "proxy_on_response_body") (param i32 i32 i32) (result i32) (select (i32.const 0) (i32.const 1) (local.get 2)))
  ${AFTER}`,
  });
}

/**
 * Service `svc`, whose app answers every request with 3 MiB, behind a sidecar
 * whose inbound chain runs holder(stopResponseHeaders): its inbound and admin ports.
 */
async function bigResponsesThroughHolder(svc: string, port: number, stopResponseHeaders: boolean): Promise<{ inbound: number; adminPort: number }> {
  const { mesh, module } = await meshWithModule('holder', await holder(stopResponseHeaders));
  const chunk = Buffer.alloc(MiB, 'r');
  const app = await startApp('big', (_req, res) => {
    res.setHeader('content-length', String(3 * MiB));
    for (let i = 0; i < 3; i++) res.write(chunk);
    res.end();
  });
  mesh.track(() => app.close());
  const inbound = await freePort();
  mesh.model.update({ services: [service(svc, port)], instances: [instance(svc, inbound)], filterModules: [module], filterBindings: [binding(svc, 'holder', 'inbound')] });
  const sc = await mesh.sidecar(svc, app.port, { inboundPort: inbound, log: () => undefined });
  return { inbound, adminPort: sc.adminPort };
}

test('a filter that holds a request body past the buffer limit gets 413 Payload Too Large; the app none of it; a body within the limit passes', { timeout: 60_000 }, async () => {
  const { mesh, module } = await meshWithModule('holder', await holder(false));
  let appBytes = 0;
  const app = await startSinkApp(undefined, (bytes) => (appBytes = bytes));
  mesh.track(() => app.close());
  mesh.model.update({ services: [service('hoarder', 8000), service('depot', 7980)], instances: [instance('depot', app.port)], filterModules: [module], filterBindings: [binding('hoarder', 'holder', 'outbound')] });
  const caller = await mesh.sidecar('hoarder', 8000, { log: () => undefined });
  // 4 MiB streams past the 1 MiB limit in chunks the filter keeps: Envoy's connection manager answers 413.
  const res = await withTimeout(upload(caller.outboundPort, 'depot', 4), 30_000, 'the upload');
  assert.equal(res.status, 413);
  assert.equal(res.body, 'Payload Too Large');
  assert.equal(appBytes, 0, 'nothing the filter held reached the app');
  assert.equal(await metric(caller.adminPort, 'envoy_http_downstream_rq_too_large'), 1);
  // Within the limit the body is buffered and the filter sees it whole (one body call with end_of_stream).
  const small = await get(caller.outboundPort, 'depot', '/upload', { method: 'POST', body: 'x'.repeat(512 * 1024) });
  assert.equal(small.status, 200, small.body);
  assert.equal((JSON.parse(small.body) as Received).bytes, 512 * 1024);
});

test("the listener's per_connection_buffer_limit_bytes is the limit: 64 KiB held is too much, 32 KiB is not", { timeout: 60_000 }, async () => {
  const { mesh, module } = await meshWithModule('holder', await holder(false), { per_connection_buffer_limit_bytes: 64 * 1024 });
  const app = await startSinkApp();
  mesh.track(() => app.close());
  mesh.model.update({ services: [service('tight', 8000), service('depot2', 7981)], instances: [instance('depot2', app.port)], filterModules: [module], filterBindings: [binding('tight', 'holder', 'outbound')] });
  const caller = await mesh.sidecar('tight', 8000, { log: () => undefined });
  const over = await upload(caller.outboundPort, 'depot2', 1);
  assert.equal(over.status, 413);
  const under = await get(caller.outboundPort, 'depot2', '/upload', { method: 'POST', body: 'y'.repeat(32 * 1024) });
  assert.equal(under.status, 200, under.body);
  assert.equal(app.hits, 1, 'only the body within the limit reached the app');
});

for (const heldHeaders of [false, true]) {
  test(`a filter that holds a streamed response past the buffer limit ${heldHeaders ? 'after holding its headers until a tick (no 500: they went on as the tick continued them, and the body was read only up to the buffer limit meanwhile, as Envoy\'s flow control)' : 'after the headers went out'}: the stream is reset`, { timeout: 60_000 }, async () => {
  const svc = heldHeaders ? 'big' : 'big2';
  const sc = await bigResponsesThroughHolder(svc, heldHeaders ? 7982 : 7983, heldHeaders);
  const { inbound } = sc;
  const outcome = await new Promise<{ status: number; bytes: number; complete: boolean }>((resolve) => {
    http.get({ host: '127.0.0.1', port: inbound, path: '/', headers: { host: svc }, agent: false }, (res) => {
      let bytes = 0;
      res.on('data', (c: Buffer) => (bytes += c.length));
      res.on('error', () => undefined);
      res.on('close', () => resolve({ status: res.statusCode ?? 0, bytes, complete: res.complete }));
    });
  });
  assert.equal(outcome.status, 200, 'the headers were out before the filter held too much');
  assert.equal(outcome.complete, false, 'the response was cut off, not ended');
  assert.equal(outcome.bytes, 0, 'the filter held every byte');
  assert.equal(await metric(sc.adminPort, 'envoy_http_rs_too_large'), 1);
  });
}

/**
 * Holds the response body until the trailers, then copies the trailers'
 * grpc-status into a trailer of its own (x-filter-saw), as a gRPC-aware
 * filter records a call's outcome; with `stopResponseHeaders` it also holds
 * the headers until its next tick.
 */
async function trailerWatcher(stopResponseHeaders: boolean): Promise<Uint8Array> {
  return wat({
    imports: [...TICKING_IMPORTS, 'proxy_get_header_map_value'],
    strings: { ...TICKING_STRINGS, status: 'grpc-status', saw: 'x-filter-saw' },
    body: (s) => `${ticking(s)}
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32) (i32.const 0))
  (func (export "proxy_on_response_headers") (param $id i32) (param i32 i32) (result i32) ${stopResponseHeaders ? '(call $hold (local.get $id) (i32.const 1))' : '(i32.const 0)'})
  (func (export "proxy_on_response_body") (param i32 i32 i32) (result i32) (select (i32.const 0) (i32.const 1) (local.get 2)))
  (func (export "proxy_on_response_trailers") (param i32 i32) (result i32)
    (if (i32.eqz (call $proxy_get_header_map_value (i32.const 3) ${s.status} (i32.const 0) (i32.const 4)))
      (then (drop (call $proxy_add_header_map_value (i32.const 3) ${s.saw} (i32.load (i32.const 0)) (i32.load (i32.const 4))))))
    (i32.const 0))
  ${AFTER}`,
  });
}

/** One gRPC call through `client`: the upstream answers two messages and trailers grpc-status 5. */
function grpcCall(client: http2.ClientHttp2Session, authority: string): Promise<{ body: string; trailers: http2.IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const req = client.request({ ':method': 'POST', ':path': '/watch.Watch/Get', ':authority': authority, 'content-type': 'application/grpc', te: 'trailers' });
    const chunks: Buffer[] = [];
    let trailers: http2.IncomingHttpHeaders = {};
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('trailers', (t) => (trailers = t));
    req.on('end', () => resolve({ body: Buffer.concat(chunks).toString('latin1'), trailers }));
    req.on('error', reject);
    req.end(Buffer.from('\0\0\0\0\x02hi'));
  });
}

function answerTwoThenNotFound(stream: http2.ServerHttp2Stream): void {
  stream.on('data', () => undefined);
  stream.on('end', () => {
    stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
    stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '5', 'grpc-message': 'not found' }));
    stream.write(Buffer.from('\0\0\0\0\x03one'));
    setTimeout(() => stream.end(Buffer.from('\0\0\0\0\x03two')), 20);
  });
}

for (const stopResponseHeaders of [false, true]) {
  test(`response trailers go through a wasm filter (${stopResponseHeaders ? 'headers held until a tick, body whole' : 'streamed'}): it reads and adds trailers, and the body it held comes out before them`, { timeout: 60_000 }, async () => {
    const { mesh, module } = await meshWithModule('watcher', await trailerWatcher(stopResponseHeaders));
    const port = stopResponseHeaders ? 50061 : 50060;
    const { client } = await grpcThroughFilter(mesh, module, `watch-client-${port}`, 'watched', port, answerTwoThenNotFound);
    const r = await withTimeout(grpcCall(client, `watched:${port}`), 10_000, 'the call');
    assert.equal(r.body, '\0\0\0\0\x03one\0\0\0\0\x03two', 'the messages the filter held until the trailers');
    assert.equal(r.trailers['grpc-status'], '5');
    assert.equal(r.trailers['grpc-message'], 'not found');
    assert.equal(r.trailers['x-filter-saw'], '5', "the filter's proxy_on_response_trailers saw grpc-status and added its trailer");
  });
}

/**
 * Stops the request headers until its next tick, which adds x-held: ticked
 * to them and continues; its body callback then sees the body (whole, or
 * chunk by chunk when it streams) and lets it through.
 */
async function tickHolder(): Promise<Uint8Array> {
  return wat({
    imports: TICKING_IMPORTS,
    strings: TICKING_STRINGS,
    body: (s) => `${ticking(s, { addHeader: true })}
  (func (export "proxy_on_request_headers") (param $id i32) (param i32) (param $eos i32) (result i32)
    (if (local.get $eos) (then (return (i32.const 0))))
    (call $hold (local.get $id) (i32.const 0)))
  (func (export "proxy_on_request_body") (param i32 i32 i32) (result i32) (i32.const 0))
  ${AFTER}`,
  });
}

test('a filter that stops the request headers until a tick continues them: nothing goes upstream before, then the request with the header it added, and the body (buffered and streamed)', { timeout: 60_000 }, async () => {
  const { mesh, module } = await meshWithModule('tick-holder', await tickHolder());
  const seen: [string | undefined, number][] = [];
  const app = await startApp('inspected', (req, res) => {
    let bytes = 0;
    req.on('data', (c: Buffer) => (bytes += c.length));
    req.on('end', () => {
      seen.push([req.headers['x-held'] as string | undefined, bytes]);
      res.end('ok');
    });
  });
  mesh.track(() => app.close());
  const inbound = await freePort();
  mesh.model.update({ services: [service('inspected', 7990)], instances: [instance('inspected', inbound)], filterModules: [module], filterBindings: [binding('inspected', 'tick-holder', 'inbound')] });
  await mesh.sidecar('inspected', app.port, { inboundPort: inbound, log: () => undefined });
  const small = await get(inbound, 'inspected', '/', { method: 'POST', body: 'hello' });
  assert.equal(small.status, 200, small.body);
  // 6 MiB streams: it is read only up to the buffer limit while the filter holds the headers (backpressure), then flows through.
  const large = await withTimeout(upload(inbound, 'inspected', 6), 30_000, 'the upload');
  assert.equal(large.status, 200, large.body);
  assert.deepEqual(seen, [['ticked', 5], ['ticked', 6 * MiB]]);
});

/** Holds the request headers for `ticks` ticks of 10 ms, then the body until it ends. */
async function requestHolder(ticks = 1): Promise<Uint8Array> {
  return wat({
    imports: TICKING_IMPORTS,
    strings: TICKING_STRINGS,
    body: (s) => `${ticking(s, { afterTicks: ticks })}
  (func (export "proxy_on_request_headers") (param $id i32) (param i32) (param $eos i32) (result i32)
    (if (local.get $eos) (then (return (i32.const 0))))
    (call $hold (local.get $id) (i32.const 0)))
  (func (export "proxy_on_request_body") (param i32 i32 i32) (result i32) (select (i32.const 0) (i32.const 1) (local.get 2)))
  ${AFTER}`,
  });
}

test('a filter that holds the request headers and the whole streamed body past the limit: 413, nothing upstream', { timeout: 60_000 }, async () => {
  const { mesh, module } = await meshWithModule('inspector-all', await requestHolder());
  let appHits = 0;
  const app = await startApp('withheld', (_req, res) => {
    appHits++;
    res.end('ok');
  });
  mesh.track(() => app.close());
  const inbound = await freePort();
  mesh.model.update({ services: [service('withheld', 7991)], instances: [instance('withheld', inbound)], filterModules: [module], filterBindings: [binding('withheld', 'inspector-all', 'inbound')] });
  const sc = await mesh.sidecar('withheld', app.port, { inboundPort: inbound, log: () => undefined });
  const r = await withTimeout(upload(inbound, 'withheld', 4), 30_000, 'the upload');
  assert.equal(r.status, 413);
  assert.equal(r.body, 'Payload Too Large');
  assert.equal(appHits, 0);
  assert.equal(await metric(sc.adminPort, 'envoy_http_downstream_rq_too_large'), 1);
  // Within the limit the same filter gets the body whole and the request goes on.
  const small = await get(inbound, 'withheld', '/', { method: 'POST', body: 'x'.repeat(1000) });
  assert.equal(small.status, 200, small.body);
  assert.equal(appHits, 1);
});

test('a gRPC call whose headers a filter holds: its connection dropped before the filter lets go, it ends there and nothing goes upstream', { timeout: 60_000 }, async () => {
  // Held for 100 ticks (a second or more): the client leaves long before.
  const { mesh, module } = await meshWithModule('grpc-holder', await requestHolder(100));
  let upstreamCalls = 0;
  const { client, adminPort: admin, outboundPort } = await grpcThroughFilter(mesh, module, 'held-client', 'held', 50070, (stream) => {
    upstreamCalls++;
    stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': '0' }, { endStream: true });
  });
  const before = await metric(admin, 'envoy_http_downstream_rq_time_count');
  // Its own connection, dropped mid-call (no END_STREAM; node's stream.close() would send one before its RST_STREAM).
  const quitter = http2.connect(`http://127.0.0.1:${outboundPort}`);
  quitter.on('error', () => undefined);
  const req = quitter.request({ ':method': 'POST', ':path': '/held.Held/Put', ':authority': 'held:50070', 'content-type': 'application/grpc', te: 'trailers' });
  req.on('error', () => undefined);
  req.write(Buffer.from('\0\0\0\0\x05hello'));
  await new Promise((r) => setTimeout(r, 200));
  quitter.destroy();
  await eventually(async () => (await metric(admin, 'envoy_http_downstream_rq_time_count')) === before + 1, 5000, 'the cancelled call to end');
  assert.equal(upstreamCalls, 0, 'the held call never went upstream');
  // The filter lets a whole call through once it ends.
  const done = await new Promise<http2.IncomingHttpHeaders>((resolve, reject) => {
    const r = client.request({ ':method': 'POST', ':path': '/held.Held/Put', ':authority': 'held:50070', 'content-type': 'application/grpc', te: 'trailers' });
    r.on('response', resolve);
    r.on('error', reject);
    r.on('data', () => undefined);
    r.end(Buffer.from('\0\0\0\0\x02ok'));
  });
  assert.equal(done['grpc-status'], '0');
  assert.equal(upstreamCalls, 1);
});

/** Answers `status` from proxy_on_request_`phase` (headers, or the body's last call). */
async function answersFrom(phase: 'headers' | 'body', status: number): Promise<Uint8Array> {
  return wat({
    imports: ['proxy_send_local_response'],
    strings: { details: `from_${phase}`, body: `answered from the request ${phase}` },
    body: (s) => `(func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_vm_start") (param i32 i32) (result i32) (i32.const 1))
  (func (export "proxy_on_configure") (param i32 i32) (result i32) (i32.const 1))
  (func $answer (result i32)
    (drop (call $proxy_send_local_response (i32.const ${status}) ${s.details} ${s.body} (i32.const 0) (i32.const 0) (i32.const -1)))
    (i32.const 1))
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32) ${phase === 'headers' ? '(call $answer)' : '(i32.const 0)'})
  (func (export "proxy_on_request_body") (param i32 i32) (param $eos i32) (result i32) ${phase === 'body' ? '(if (result i32) (local.get $eos) (then (call $answer)) (else (i32.const 0)))' : '(i32.const 0)'})
  ${AFTER}`,
  });
}

/** An app counting its requests, behind `svc`'s sidecar with `modules` bound inbound in that order; returns its inbound port. */
async function gatedApp(mesh: TestMesh, svc: string, port: number, modules: FilterModule[]): Promise<{ inbound: number; hits: () => number }> {
  let hits = 0;
  const app = await startApp(svc, (req, res) => {
    hits++;
    req.resume();
    res.end('ok');
  });
  mesh.track(() => app.close());
  const inbound = await freePort();
  mesh.model.update({
    services: [service(svc, port)],
    instances: [instance(svc, inbound)],
    filterModules: modules,
    filterBindings: modules.map((m, order) => ({ ...binding(svc, m.name, 'inbound'), order })),
  });
  await mesh.sidecar(svc, app.port, { inboundPort: inbound, log: () => undefined });
  return { inbound, hits: () => hits };
}

/** The response head that comes on `socket` (within 20 s). */
function responseHead(socket: net.Socket): Promise<string> {
  return withTimeout(
    new Promise<string>((resolve, reject) => {
      let got = '';
      socket.on('data', (c: Buffer) => {
        got += c.toString('latin1');
        if (got.includes('\r\n\r\n')) resolve(got);
      });
      socket.on('error', reject);
    }),
    20_000,
    'the answer',
  );
}

test("the request headers go through every filter before any body callback, as they arrive: a later filter's reply from the headers comes before the client sends its body, and an earlier filter's body callback never runs", { timeout: 60_000 }, async () => {
  const bodyFirst = await answersFrom('body', 418);
  const headersFirst = await answersFrom('headers', 403);
  const { mesh, module: m1 } = await meshWithModule('on-body', bodyFirst);
  const { inbound, hits } = await gatedApp(mesh, 'gate', 7993, [m1, moduleOf('on-headers', headersFirst)]);
  // The client sends its headers and holds the body back until an answer comes, or for 3 s.
  const socket = net.connect(inbound, '127.0.0.1');
  mesh.track(async () => void socket.destroy());
  await new Promise<void>((r) => socket.once('connect', () => r()));
  let bodySent = false;
  const holdBack = setTimeout(() => {
    bodySent = true;
    socket.write('hello');
  }, 3000);
  socket.write('POST /upload HTTP/1.1\r\nHost: gate\r\nContent-Length: 5\r\n\r\n');
  const head = await responseHead(socket);
  const answeredBeforeBody = !bodySent;
  clearTimeout(holdBack);
  assert.match(head, /^HTTP\/1\.1 403 /, 'the second filter answers from the headers, before the first one sees a body');
  assert.equal(answeredBeforeBody, true, 'answered while the client still held its body back');
  assert.equal(hits(), 0);
});

test('an empty chunked request body still gets its body callback with end_of_stream (Envoy decodes an empty last chunk); a request without a body ends at its headers', { timeout: 60_000 }, async () => {
  const { mesh, module } = await meshWithModule('on-body-end', await answersFrom('body', 418));
  const { inbound, hits } = await gatedApp(mesh, 'ender', 7994, [module]);
  const ask = (head: string) => {
    const socket = net.connect(inbound, '127.0.0.1', () => socket.write(head));
    return responseHead(socket).finally(() => socket.destroy());
  };
  assert.match(await ask('POST / HTTP/1.1\r\nHost: ender\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n'), /^HTTP\/1\.1 418 /);
  assert.equal(hits(), 0);
  assert.match(await ask('POST / HTTP/1.1\r\nHost: ender\r\nContent-Length: 0\r\n\r\n'), /^HTTP\/1\.1 200 /);
  assert.equal(hits(), 1);
});
