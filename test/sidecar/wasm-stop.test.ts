// Envoy's stop semantics for wasm filters, through a real sidecar: what a
// client and an app see when a filter stops its headers with
// StopAllIterationAndBuffer (3) or StopAllIterationAndWatermark (1, 4), when
// it stops the body mid-stream and continues it later, and when nothing could
// ever continue a stop (Envoy holds the stream until its idle timeout).

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import http from 'node:http';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { after, test } from 'node:test';
import { defaultTranslator } from '../../control/xds/index.ts';
import type { FilterBinding, FilterModule } from '../../control/model/types.ts';
import { wat } from '../wasm/wat.ts';
import { MiB, TestMesh, freePort, get, instance, metric, service, startApp, upload, withTimeout } from './harness.ts';
import { startWsApp } from './ws-app.ts';

const closers: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of closers.reverse()) await c();
});

/** A mesh whose control plane serves `bytes` as filter module `name`; `hcmFields` are set on every HTTP connection manager it sends. */
async function meshWithModule(name: string, bytes: Uint8Array, hcmFields: Record<string, unknown> = {}): Promise<{ mesh: TestMesh; module: FilterModule }> {
  const digest = createHash('sha256').update(bytes).digest('hex');
  const server = http.createServer((req, res) => {
    if (req.url?.endsWith(`${digest}.wasm`)) return res.end(bytes);
    res.statusCode = 404;
    res.end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  closers.push(() => new Promise((r) => server.close(() => r())));
  const translator = defaultTranslator({ wasmBaseUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, wasmClusterName: 'weft-control' });
  const patch = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(patch);
    if (v === null || typeof v !== 'object') return v;
    const o = Object.fromEntries(Object.entries(v).map(([k, x]) => [k, patch(x)]));
    return String(o['@type']).endsWith('HttpConnectionManager') ? { ...o, ...hcmFields } : o;
  };
  const mesh = await TestMesh.start({
    translator: {
      translateProxy: (model, proxy) => {
        const t = translator.translateProxy(model, proxy);
        return { ...t, listeners: t.listeners.map((l) => ({ name: l.name, value: patch(l.value) })) };
      },
      translateEndpoints: (model, names) => translator.translateEndpoints(model, names),
    },
  });
  closers.push(() => mesh.close());
  return { mesh, module: { name, sha256: digest, size: bytes.length, abiVersion: '0.2.1' } };
}

const binding = (svc: string, filter: string): FilterBinding => ({
  name: `${svc}-${filter}`,
  namespace: 'default',
  service: svc,
  direction: 'inbound',
  filter,
  order: 0,
  config: {},
  failurePolicy: 'fail_closed',
});

/** Service `svc` (port `port`) whose app `handler` answers, behind a sidecar running `module` inbound: its inbound and admin ports, and what it logged. */
async function serve(mesh: TestMesh, module: FilterModule, svc: string, port: number, handler: Parameters<typeof startApp>[1]): Promise<{ inbound: number; adminPort: number; hits: () => number; logged: string[] }> {
  const app = await startApp(svc, handler);
  mesh.track(() => app.close());
  const inbound = await freePort();
  mesh.model.update({ services: [service(svc, port)], instances: [instance(svc, inbound)], filterModules: [module], filterBindings: [binding(svc, module.name)] });
  const logged: string[] = [];
  const sc = await mesh.sidecar(svc, app.port, { inboundPort: inbound, log: (line: string) => logged.push(line) });
  return { inbound, adminPort: sc.adminPort, hits: () => app.hits, logged };
}

const START = `
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_vm_start") (param i32 i32) (result i32) (i32.const 1))`;
const AFTER = `(func (export "proxy_on_done") (param i32) (result i32) (i32.const 1))
  (func (export "proxy_on_log") (param i32))
  (func (export "proxy_on_delete") (param i32))`;

/**
 * A filter with a tick every 10 ms: `(call $hold (local.get $id) (i32.const
 * 0|1) (i32.const status))` stops the request (response) and returns
 * `status`; the tick continues it (proxy_continue_stream) after `afterTicks`
 * ticks, first running `beforeContinue`. One stream held at a time.
 */
function ticking(afterTicks: number, beforeContinue = ''): string {
  return `${START}
  (global $held (mut i32) (i32.const 0))
  (global $heldDirection (mut i32) (i32.const 0))
  (global $ticks (mut i32) (i32.const 0))
  (func (export "proxy_on_configure") (param i32 i32) (result i32)
    (drop (call $proxy_set_tick_period_milliseconds (i32.const 10)))
    (i32.const 1))
  (func $hold (param $id i32) (param $direction i32) (param $status i32) (result i32)
    (global.set $held (local.get $id))
    (global.set $heldDirection (local.get $direction))
    (global.set $ticks (i32.const 0))
    (local.get $status))
  (func (export "proxy_on_tick") (param i32)
    (if (i32.eqz (global.get $held)) (then (return)))
    (global.set $ticks (i32.add (global.get $ticks) (i32.const 1)))
    (if (i32.lt_u (global.get $ticks) (i32.const ${afterTicks})) (then (return)))
    (drop (call $proxy_set_effective_context (global.get $held)))
    ${beforeContinue}
    (drop (call $proxy_continue_stream (global.get $heldDirection)))
    (global.set $held (i32.const 0)))`;
}
const TICKING_IMPORTS = ['proxy_set_tick_period_milliseconds', 'proxy_set_effective_context', 'proxy_continue_stream'];

/**
 * Stops the request or the response headers with `status` for 500 ticks
 * (5 s), then continues them; every body callback lets its bytes through.
 */
async function headersHolder(direction: 'request' | 'response', status: number): Promise<Uint8Array> {
  const hold = (d: number) => `(if (local.get $eos) (then (return (i32.const 0)))) (call $hold (local.get $id) (i32.const ${d}) (i32.const ${status}))`;
  return wat({
    imports: TICKING_IMPORTS,
    body: () => `${ticking(500)}
  (func (export "proxy_on_request_headers") (param $id i32) (param i32) (param $eos i32) (result i32) ${direction === 'request' ? hold(0) : '(i32.const 0)'})
  (func (export "proxy_on_request_body") (param i32 i32 i32) (result i32) (i32.const 0))
  (func (export "proxy_on_response_headers") (param $id i32) (param i32) (param $eos i32) (result i32) ${direction === 'response' ? hold(1) : '(i32.const 0)'})
  (func (export "proxy_on_response_body") (param i32 i32 i32) (result i32) (i32.const 0))
  ${AFTER}`,
  });
}

test('a filter that holds the request headers with StopAllIterationAndBuffer (3): the body is buffered meanwhile and past the buffer limit the client gets 413 before the filter continues; within it the request goes on whole', { timeout: 60_000 }, async () => {
  const { mesh, module } = await meshWithModule('buffer-holder', await headersHolder('request', 3));
  const received: number[] = [];
  const { inbound, adminPort, hits } = await serve(mesh, module, 'stash', 8100, (req, res) => {
    let bytes = 0;
    req.on('data', (c: Buffer) => (bytes += c.length));
    req.on('end', () => {
      received.push(bytes);
      res.end('ok');
    });
  });
  // 4 MiB against the 1 MiB limit: Envoy's filter manager answers 413 as the buffer overflows (the filter would continue only after 5 s).
  const big = await withTimeout(upload(inbound, 'stash', 4), 30_000, 'the upload');
  assert.equal(big.status, 413);
  assert.equal(big.body, 'Payload Too Large');
  assert.equal(hits(), 0, 'nothing went upstream');
  assert.equal(await metric(adminPort, 'envoy_http_downstream_rq_too_large'), 1);
  // Within the limit the filter continues after its ticks and the request goes on with its body.
  const small = await withTimeout(get(inbound, 'stash', '/', { method: 'POST', body: 'x'.repeat(64 * 1024) }), 30_000, 'the small request');
  assert.equal(small.status, 200, small.body);
  assert.deepEqual(received, [64 * 1024]);
});

/**
 * A gRPC upstream `upstream` (it counts the calls and the bytes each brought,
 * and answers OK once the call's body ended) and a caller whose outbound
 * chain runs `module`: an h2 client to the caller's sidecar and its admin port.
 */
async function grpcBehind(mesh: TestMesh, module: FilterModule, caller: string, upstream: string, port: number): Promise<{ client: http2.ClientHttp2Session; adminPort: number; calls: number[] }> {
  const calls: number[] = [];
  const server = http2.createServer();
  server.on('stream', (stream) => {
    let bytes = 0;
    stream.on('data', (c: Buffer) => (bytes += c.length));
    stream.on('error', () => undefined);
    stream.on('end', () => {
      calls.push(bytes);
      stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': '0' }, { endStream: true });
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  mesh.track(() => new Promise((r) => server.close(() => r())));
  mesh.model.update({
    services: [service(caller, 8000), { name: upstream, namespace: 'default', ports: [{ port, protocol: 'grpc' }] }],
    instances: [instance(upstream, (server.address() as AddressInfo).port)],
    filterModules: [module],
    filterBindings: [{ ...binding(caller, module.name), direction: 'outbound' }],
  });
  const sc = await mesh.sidecar(caller, 8000, { log: () => undefined });
  const client = http2.connect(`http://127.0.0.1:${sc.outboundPort}`);
  client.on('error', () => undefined);
  mesh.track(async () => client.close());
  return { client, adminPort: sc.adminPort, calls };
}

/** A gRPC call of `bytes` body bytes (one frame; `end`: the client ends its side after it): the headers and trailers it gets. */
function grpcCallOf(client: http2.ClientHttp2Session, authority: string, bytes: number, end = true): Promise<{ headers: http2.IncomingHttpHeaders; trailers: http2.IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const req = client.request({ ':method': 'POST', ':path': '/held.Held/Put', ':authority': authority, 'content-type': 'application/grpc', te: 'trailers' });
    let headers: http2.IncomingHttpHeaders = {};
    let trailers: http2.IncomingHttpHeaders = {};
    req.on('response', (h) => (headers = h));
    req.on('trailers', (t) => (trailers = t));
    req.on('data', () => undefined);
    req.on('close', () => resolve({ headers, trailers }));
    req.on('error', reject);
    const frame = Buffer.alloc(5 + bytes, 0x61);
    frame[0] = 0;
    frame.writeUInt32BE(bytes, 1);
    if (end) req.end(frame);
    else req.write(frame);
  });
}

test('a gRPC call whose headers a filter holds with StopAllIterationAndBuffer (3): its body is buffered meanwhile, past the buffer limit the call gets trailers-only UNKNOWN "Payload Too Large" (413 mapped as Envoy maps it); within it the call goes on whole', { timeout: 60_000 }, async () => {
  const { mesh, module } = await meshWithModule('grpc-buffer-holder', await headersHolder('request', 3));
  const { client, adminPort, calls } = await grpcBehind(mesh, module, 'held-caller', 'vault', 50110);
  // 4 MiB, never ended, against the 1 MiB limit: until 2026-11-28 the body was not read while the filter held the
  // headers, and the call went upstream when the filter continued (5 s later).
  const big = await withTimeout(grpcCallOf(client, 'vault:50110', 4 * MiB, false), 30_000, 'the large call');
  assert.equal(big.headers[':status'], 200);
  assert.equal(big.headers['grpc-status'], '2', 'trailers-only: httpToGrpcStatus(413) is UNKNOWN');
  assert.equal(big.headers['grpc-message'], 'Payload Too Large');
  assert.deepEqual(calls, [], 'nothing went upstream');
  assert.equal(await metric(adminPort, 'envoy_http_downstream_rq_too_large'), 1);
  // Within the limit the filter continues after its ticks and the call goes upstream with the body it held.
  const small = await withTimeout(grpcCallOf(client, 'vault:50110', 64 * 1024), 30_000, 'the small call');
  assert.equal(small.headers['grpc-status'], '0');
  assert.deepEqual(calls, [5 + 64 * 1024]);
});

test('a gRPC call whose headers a filter holds with StopAllIterationAndWatermark (4): the body waits past the buffer limit (backpressure, no 413) and arrives whole once the filter continues', { timeout: 60_000 }, async () => {
  const { mesh, module } = await meshWithModule('grpc-watermark-holder', await headersHolder('request', 4));
  const { client, calls } = await grpcBehind(mesh, module, 'waiting-caller', 'vault', 50111);
  const big = await withTimeout(grpcCallOf(client, 'vault:50111', 3 * MiB), 30_000, 'the large call');
  assert.equal(big.headers['grpc-status'], '0');
  assert.deepEqual(calls, [5 + 3 * MiB]);
});

test('a filter that holds the response headers with StopAllIterationAndBuffer (3): past the buffer limit the client gets 500 before the filter continues; within it the response comes whole', { timeout: 60_000 }, async () => {
  const { mesh, module } = await meshWithModule('response-buffer-holder', await headersHolder('response', 3));
  const chunk = Buffer.alloc(MiB, 'r');
  const { inbound, adminPort } = await serve(mesh, module, 'bulk', 8101, (req, res) => {
    if (req.url === '/small') return res.end('small answer');
    res.setHeader('content-length', String(3 * MiB));
    for (let i = 0; i < 3; i++) res.write(chunk);
    res.end();
  });
  const big = await withTimeout(get(inbound, 'bulk', '/big'), 30_000, 'the big response');
  assert.equal(big.status, 500);
  assert.equal(big.body, 'Internal Server Error');
  assert.equal(await metric(adminPort, 'envoy_http_rs_too_large'), 1);
  const small = await withTimeout(get(inbound, 'bulk', '/small'), 30_000, 'the small response');
  assert.equal(small.status, 200);
  assert.equal(small.body, 'small answer');
});

/** Holds the response headers (status 1) for 5 ticks; each response body callback prepends `|` to what it is handed, so the client reads how the body was cut. */
async function markingHolder(): Promise<Uint8Array> {
  return wat({
    imports: [...TICKING_IMPORTS, 'proxy_set_buffer_bytes'],
    strings: { mark: '|' },
    body: (s) => `${ticking(5)}
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32) (i32.const 0))
  (func (export "proxy_on_response_headers") (param $id i32) (param i32 i32) (result i32) (call $hold (local.get $id) (i32.const 1) (i32.const 1)))
  (func (export "proxy_on_response_body") (param i32 i32 i32) (result i32)
    (drop (call $proxy_set_buffer_bytes (i32.const 1) (i32.const 0) (i32.const 0) ${s.mark}))
    (i32.const 0))
  ${AFTER}`,
  });
}

test('once a filter continues the response headers it held, it gets the body that arrived meanwhile in one call (with end_of_stream when that is all of it), as Envoy hands over its buffer', { timeout: 60_000 }, async () => {
  const { mesh, module } = await meshWithModule('marking-holder', await markingHolder());
  const { inbound } = await serve(mesh, module, 'pieces', 8102, (_req, res) => {
    // Three chunks of a chunked body and its end, in one write: all of it is at the sidecar while the filter holds the headers.
    res.cork();
    res.write('a');
    res.write('b');
    res.write('c');
    res.end();
  });
  const r = await withTimeout(get(inbound, 'pieces', '/'), 30_000, 'the response');
  assert.equal(r.status, 200);
  assert.equal(r.body, '|abc', 'one body call with everything and end_of_stream (chunk by chunk it would read |a|b|c|)');
});

/**
 * Passes the response headers; stops the first response body chunk with
 * StopIterationAndBuffer (1) and continues from its next tick; lets the
 * rest through.
 */
async function firstChunkHolder(): Promise<Uint8Array> {
  return wat({
    imports: TICKING_IMPORTS,
    body: () => `${ticking(1)}
  (global $bodies (mut i32) (i32.const 0))
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32) (i32.const 0))
  (func (export "proxy_on_response_headers") (param i32 i32 i32) (result i32) (i32.const 0))
  (func (export "proxy_on_response_body") (param $id i32) (param i32) (param $eos i32) (result i32)
    (if (local.get $eos) (then (return (i32.const 0))))
    (global.set $bodies (i32.add (global.get $bodies) (i32.const 1)))
    (if (i32.eq (global.get $bodies) (i32.const 1)) (then (return (call $hold (local.get $id) (i32.const 1) (i32.const 1)))))
    (i32.const 0))
  ${AFTER}`,
  });
}

test('a body chunk a filter stopped mid-stream goes on when the filter continues (proxy_continue_stream from a tick), not with the next chunk', { timeout: 60_000 }, async () => {
  const { mesh, module } = await meshWithModule('first-chunk-holder', await firstChunkHolder());
  let clientSawFirst: () => void = () => undefined;
  const sawFirst = new Promise<void>((r) => (clientSawFirst = r));
  const events: string[] = [];
  const { inbound } = await serve(mesh, module, 'ticker', 8103, (_req, res) => {
    res.write('first;');
    // The second chunk waits for the client to have the first (or gives up after 5 s, when the sidecar held it back).
    void Promise.race([sawFirst, new Promise((r) => setTimeout(r, 5000))]).then(() => {
      events.push('app sends second');
      res.end('second');
    });
  });
  const body = await withTimeout(
    new Promise<string>((resolve, reject) => {
      http
        .get({ host: '127.0.0.1', port: inbound, path: '/', headers: { host: 'ticker' }, agent: false }, (res) => {
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
    }),
    30_000,
    'the response',
  );
  assert.equal(body, 'first;second');
  assert.deepEqual(events, ['client got "first;"', 'app sends second']);
});

/**
 * Stops the request headers (1) with no tick period and no http_call, and
 * waits for a body callback Envoy would never make: nothing can continue it.
 */
async function stopsHeadersForBody(): Promise<Uint8Array> {
  return wat({
    body: () => `${START}
  (func (export "proxy_on_configure") (param i32 i32) (result i32) (i32.const 1))
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32) (i32.const 1))
  (func (export "proxy_on_request_body") (param i32 i32 i32) (result i32) (i32.const 0))
  ${AFTER}`,
  });
}

/** A request on a connection of its own whose body (`partialBody`) never ends: status and body of the answer. */
function unfinishedRequest(port: number, host: string, partialBody: string): Promise<{ status: number; body: string; connection: string | undefined }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: '/', method: 'POST', headers: { host, 'content-length': '1000' }, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, connection: res.headers.connection }));
    });
    req.on('error', reject);
    req.write(partialBody);
  });
}

test('a filter that stops the request headers with nothing to continue them is held, as Envoy holds it, until the stream idle timeout: 504 for a whole request, 408 for one still arriving; a warning in the log, nothing upstream', { timeout: 60_000 }, async () => {
  const { mesh, module } = await meshWithModule('waits-for-body', await stopsHeadersForBody(), { stream_idle_timeout: '0.5s' });
  const { inbound, adminPort, hits, logged } = await serve(mesh, module, 'stuck', 8104, (_req, res) => res.end('ok'));
  // The body arrived whole (read into the buffer while the filter holds the headers): Envoy's 504.
  const whole = await withTimeout(get(inbound, 'stuck', '/', { method: 'POST', body: 'hello' }), 20_000, 'the request');
  assert.equal(whole.status, 504, whole.body);
  assert.equal(whole.body, 'stream timeout');
  const bodiless = await withTimeout(get(inbound, 'stuck', '/'), 20_000, 'the bodiless request');
  assert.equal(bodiless.status, 504);
  // Part of the body, and the rest never comes: 408, and the connection closes.
  const partial = await withTimeout(unfinishedRequest(inbound, 'stuck', 'only part'), 20_000, 'the unfinished request');
  assert.equal(partial.status, 408);
  assert.equal(partial.body, 'stream timeout');
  assert.equal(partial.connection, 'close');
  assert.equal(hits(), 0);
  assert.equal(await metric(adminPort, 'envoy_wasm_filter_failures'), 0, 'no failure: the filter holds the stream');
  assert.match(logged.join('\n'), /proxy_on_request_headers stopped the request with no http_call in flight, no gRPC stream open and no tick period, so nothing can continue it/);
});

/**
 * Passes the headers; answers each response body chunk (before the end)
 * with `status`: 3 (StopIterationNoBuffer) for the first only, or 2
 * (StopIterationAndWatermark) for every one, continuing from a tick 30
 * ticks (300 ms) after the last.
 */
async function bodyStopper(status: 2 | 3): Promise<Uint8Array> {
  return wat({
    imports: TICKING_IMPORTS,
    body: () => `${ticking(30)}
  (global $bodies (mut i32) (i32.const 0))
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32) (i32.const 0))
  (func (export "proxy_on_response_headers") (param i32 i32 i32) (result i32) (i32.const 0))
  (func (export "proxy_on_response_body") (param $id i32) (param i32) (param $eos i32) (result i32)
    (if (local.get $eos) (then (return (i32.const 0))))
    (global.set $bodies (i32.add (global.get $bodies) (i32.const 1)))
    ${status === 3 ? '(if (i32.gt_u (global.get $bodies) (i32.const 1)) (then (return (i32.const 0))))' : ''}
    (call $hold (local.get $id) (i32.const 1) (i32.const ${status})))
  ${AFTER}`,
  });
}

test('a response body chunk a filter answers with StopIterationNoBuffer (3) goes no further: Envoy keeps no copy of it', { timeout: 60_000 }, async () => {
  const { mesh, module } = await meshWithModule('no-buffer', await bodyStopper(3));
  const { inbound } = await serve(mesh, module, 'dropper', 8105, (_req, res) => {
    res.write('first;');
    setTimeout(() => res.end('second'), 200);
  });
  const r = await withTimeout(get(inbound, 'dropper', '/'), 30_000, 'the response');
  assert.equal(r.status, 200);
  assert.equal(r.body, 'second', 'the first chunk was dropped (as StopIterationAndBuffer it would come with the second)');
});

test('a filter holding a response body past the buffer limit with StopIterationAndWatermark (2) gets backpressure, not a reset: the whole body arrives once it lets go', { timeout: 60_000 }, async () => {
  const { mesh, module } = await meshWithModule('watermark', await bodyStopper(2));
  const chunk = Buffer.alloc(MiB, 'w');
  const { inbound, adminPort } = await serve(mesh, module, 'flood', 8106, (_req, res) => {
    res.setHeader('content-length', String(3 * MiB));
    for (let i = 0; i < 3; i++) res.write(chunk);
    res.end();
  });
  const outcome = await withTimeout(
    new Promise<{ status: number; bytes: number; complete: boolean }>((resolve) => {
      http.get({ host: '127.0.0.1', port: inbound, path: '/', headers: { host: 'flood' }, agent: false }, (res) => {
        let bytes = 0;
        res.on('data', (c: Buffer) => (bytes += c.length));
        res.on('error', () => undefined);
        res.on('close', () => resolve({ status: res.statusCode ?? 0, bytes, complete: res.complete }));
      });
    }),
    30_000,
    'the response',
  );
  assert.deepEqual(outcome, { status: 200, bytes: 3 * MiB, complete: true });
  assert.equal(await metric(adminPort, 'envoy_http_rs_too_large'), 0);
});

/** Holds the response headers (1) until its fifth tick, which adds `x-held: ticked` to them and continues. */
async function upgradeHolder(): Promise<Uint8Array> {
  return wat({
    imports: [...TICKING_IMPORTS, 'proxy_add_header_map_value'],
    strings: { name: 'x-held', value: 'ticked' },
    body: (s) => `${ticking(5, `(drop (call $proxy_add_header_map_value (i32.const 2) ${s.name} ${s.value}))`)}
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32) (i32.const 0))
  (func (export "proxy_on_response_headers") (param $id i32) (param i32 i32) (result i32) (call $hold (local.get $id) (i32.const 1) (i32.const 1)))
  ${AFTER}`,
  });
}

test("a filter that holds a WebSocket upgrade's 101 until a tick: the client gets it only then, with the header the filter added", { timeout: 60_000 }, async () => {
  const { mesh, module } = await meshWithModule('upgrade-holder', await upgradeHolder());
  const app = await startWsApp();
  mesh.track(() => app.close());
  const inbound = await freePort();
  mesh.model.update({ services: [service('chat', 8107)], instances: [instance('chat', inbound)], filterModules: [module], filterBindings: [binding('chat', module.name)] });
  await mesh.sidecar('chat', app.port, { inboundPort: inbound, log: () => undefined });
  const answer = await withTimeout(
    new Promise<{ status: number; held: unknown }>((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port: inbound, path: '/chat', agent: false, headers: { host: 'chat', connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-version': '13', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==' } });
      req.on('upgrade', (res, socket) => {
        socket.destroy();
        resolve({ status: res.statusCode ?? 0, held: res.headers['x-held'] });
      });
      req.on('response', (res) => resolve({ status: res.statusCode ?? 0, held: res.headers['x-held'] }));
      req.on('error', reject);
      req.end();
    }),
    30_000,
    'the upgrade',
  );
  assert.deepEqual(answer, { status: 101, held: 'ticked' });
});
