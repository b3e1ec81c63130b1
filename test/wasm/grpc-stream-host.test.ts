// The host's reading of a gRPC stream's HTTP/2 response, as Envoy's async
// stream reads it (source/common/grpc/async_client_impl.cc), and its token
// rules (source/extensions/common/wasm/context.cc grpcSend / grpcClose /
// grpcCancel), seen by a module: driven with a hand-made stream dispatcher
// that plays the upstream's HTTP/2 events, so answers no gRPC server would
// give (a 503 without grpc-status, a compressed frame, a body that ends
// without trailers) can be played too.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WasmPlugin, type GrpcStreamEvents, type GrpcStreamRequest, type HeaderPairs } from '../../sidecar/wasm/index.ts';
import { loadFilter } from '../../sidecar/wasm/testing.ts';
import { WasmResult as R } from '../../sidecar/wasm/abi.ts';
import { grpcStreamer } from './grpc-streamer.ts';
import { codes, wat } from './wat.ts';
import { serializePairs } from '../../sidecar/wasm/headers.ts';

const code = (n: number) => `#${String.fromCharCode(48 + n)}`;
const frame = (text: string, flags = 0) => {
  const bytes = Buffer.from(text);
  return Uint8Array.from([flags, 0, 0, 0, bytes.length, ...bytes]);
};
const ok: HeaderPairs = [[':status', '200'], ['content-type', 'application/grpc']];

interface Played {
  request: GrpcStreamRequest;
  events: GrpcStreamEvents;
  written: Uint8Array[];
  ended: boolean;
  resets: number;
}

/** The streamer opened from a tick, on a dispatcher whose upstream the test plays by hand. */
async function played(): Promise<{ plugin: WasmPlugin; streams: Played[]; messages: () => string[] }> {
  const streams: Played[] = [];
  const plugin = await WasmPlugin.load(
    await grpcStreamer({ service: 'chat', fromTick: true }),
    { name: 'streamer' },
    {
      logLevel: 'trace',
      hasCluster: (name) => name === 'chat',
      grpcStream: (request, events) => {
        const s: Played = { request, events, written: [], ended: false, resets: 0 };
        streams.push(s);
        return {
          write: (data, endStream) => {
            s.written.push(data);
            if (endStream) s.ended = true;
          },
          reset: () => s.resets++,
        };
      },
    },
  );
  return { plugin, streams, messages: () => plugin.logs.map((l) => l.message) };
}

const settle = () => new Promise<void>((r) => setImmediate(r));

test('what the module is told for answers a gRPC server would not give: a 503 without grpc-status (UNAVAILABLE by httpToGrpcStatus, its headers as initial metadata), a compressed frame (INTERNAL), a body that ends without trailers (UNKNOWN); each resets the stream, and each close message is the response code details alone (via_upstream)', async () => {
  const { plugin, streams, messages } = await played();
  plugin.tick();
  const [s] = streams;
  // The request: the stream's headers as Envoy's async client sends them, two frames, the second with END_STREAM.
  assert.deepEqual(s!.request.headers.slice(0, 6), [[':method', 'POST'], [':path', '/weft.test.Chat/Talk'], [':authority', 'chat'], [':scheme', 'http'], ['content-type', 'application/grpc'], ['te', 'trailers']]);
  assert.deepEqual(s!.written.map((w) => Buffer.from(w).toString('hex')), [Buffer.from(frame('one')).toString('hex'), Buffer.from(frame('two')).toString('hex')]);
  assert.equal(s!.ended, true);
  s!.events.headers([[':status', '503'], ['content-type', 'text/plain']], false);
  s!.events.data(Buffer.from('unavailable')); // after the close: nothing more
  await settle();
  // Envoy's async client maps a non-200 answer without a grpc-status with httpToGrpcStatus (until 2026-11-28: CANCELLED).
  assert.deepEqual(messages().slice(2), ['initial:2', code(R.NotFound), '', 'trailing:0', code(R.NotFound), '', code(14), 'via_upstream']);
  assert.equal(s!.resets, 1);

  plugin.logs.length = 0;
  plugin.tick(); // the period was cleared: tick by hand opens another
  const compressed = streams[1]!;
  compressed.events.headers(ok, false);
  compressed.events.data(frame('fine'));
  compressed.events.data(frame('zipped', 1));
  compressed.events.end([['grpc-status', '0']]);
  await settle();
  assert.deepEqual(messages().slice(2), ['initial:2', code(R.NotFound), '', 'fine', 'trailing:0', code(R.NotFound), '', code(13), 'via_upstream']);
  assert.equal(compressed.resets, 1);

  plugin.logs.length = 0;
  plugin.tick();
  const cut = streams[2]!;
  cut.events.headers(ok, false);
  // One frame cut across chunks is one message.
  const whole = frame('split');
  cut.events.data(whole.subarray(0, 3));
  cut.events.data(whole.subarray(3));
  cut.events.end([]);
  await settle();
  assert.deepEqual(messages().slice(2), ['initial:2', code(R.NotFound), '', 'split', 'trailing:0', code(R.NotFound), '', code(2), 'via_upstream']);
  assert.equal(cut.resets, 1);
  await plugin.close();
});

test('a non-200 answer with a grpc-status that ends the stream is trailers-only: its status and its message as it came (not percent-decoded, as Envoy) with the details; a reset by the upstream is INTERNAL without a reset of ours; a router answer carries its own details', async () => {
  const { plugin, streams, messages } = await played();
  plugin.tick();
  streams[0]!.events.headers([[':status', '429'], ['content-type', 'application/grpc'], ['grpc-status', '8'], ['grpc-message', 'slow%20down']], true);
  await settle();
  assert.deepEqual(messages().slice(2), ['initial:0', code(R.NotFound), '', 'trailing:4', code(R.NotFound), '', code(8), 'slow%20down{via_upstream}']);
  assert.equal(streams[0]!.resets, 0);

  plugin.logs.length = 0;
  plugin.tick();
  streams[1]!.events.headers([...ok, ['x-server', 'h2']], false);
  streams[1]!.events.reset();
  await settle();
  assert.deepEqual(messages().slice(2), ['initial:3', code(R.Ok), 'h2', 'trailing:0', code(R.NotFound), '', code(13), 'via_upstream']);
  assert.equal(streams[1]!.resets, 0);

  // The router's own trailers-only reply (no host could take the stream): its details, not via_upstream.
  plugin.logs.length = 0;
  plugin.tick();
  streams[2]!.events.headers([...ok, ['grpc-status', '14'], ['grpc-message', 'no healthy upstream']], true, 'no_healthy_upstream');
  await settle();
  assert.deepEqual(messages().slice(2), ['initial:0', code(R.NotFound), '', 'trailing:4', code(R.NotFound), '', code(14), 'no healthy upstream{no_healthy_upstream}']);
  await plugin.close();
});

test('events a dispatcher delivers while the module is still in proxy_grpc_stream wait until it returns', async () => {
  const plugin = await WasmPlugin.load(
    await grpcStreamer({ service: 'chat', fromTick: true }),
    { name: 'eager' },
    {
      logLevel: 'trace',
      grpcStream: (_request, events) => {
        // A trailers-only answer at once, inside the host call.
        events.headers([...ok, ['grpc-status', '5'], ['grpc-message', 'no chat']], true);
        return { write: () => {}, reset: () => {} };
      },
    },
  );
  plugin.tick();
  // The sends came after proxy_grpc_stream returned and before the answer: OK (the token was still open).
  assert.deepEqual(plugin.logs.map((l) => l.message), [code(R.Ok), code(R.Ok)]);
  await settle();
  assert.deepEqual(plugin.logs.map((l) => l.message).slice(2), ['initial:0', code(R.NotFound), '', 'trailing:4', code(R.NotFound), '', code(5), 'no chat{via_upstream}']);
  await plugin.close();
});

test("token rules as Envoy's: each callout kind numbered apart; grpc_cancel / _close on an http_call's token and grpc_send on a unary call's are BAD_ARGUMENT; a send after the half-close is OK and sends nothing; once grpc_close and the server's close have both happened the token is gone (NOT_FOUND)", async () => {
  const writes: { data: Uint8Array; endStream: boolean }[] = [];
  let events: GrpcStreamEvents | undefined;
  const bytes = await wat({
    imports: ['proxy_grpc_stream', 'proxy_grpc_send', 'proxy_grpc_close', 'proxy_grpc_cancel', 'proxy_grpc_call', 'proxy_http_call'],
    strings: { chat: 'chat', svc: 'weft.test.Chat', method: 'Talk', msg: 'm', headers: String.fromCharCode(...serializePairs([[':method', 'GET'], [':path', '/'], [':authority', 'chat']])) },
    body: (s) => `
  (global $token (mut i32) (i32.const 0))
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_configure") (param i32 i32) (result i32)
    ;; an http_call: its token is of kind 0, and no gRPC token (BAD_ARGUMENT)
    (call $report (call $proxy_http_call ${s.chat} ${s.headers} (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 24)))
    (call $report (i32.and (i32.load (i32.const 24)) (i32.const 3)))
    (call $report (call $proxy_grpc_cancel (i32.load (i32.const 24))))
    (call $report (call $proxy_grpc_close (i32.load (i32.const 24))))
    ;; a unary call: kind 1; sending on its token is BAD_ARGUMENT
    (call $report (call $proxy_grpc_call ${s.chat} ${s.svc} ${s.method} (i32.const 0) (i32.const 0) ${s.msg} (i32.const 0) (i32.const 16)))
    (call $report (i32.and (i32.load (i32.const 16)) (i32.const 3)))
    (call $report (call $proxy_grpc_send (i32.load (i32.const 16)) ${s.msg} (i32.const 0)))
    (call $report (call $proxy_grpc_cancel (i32.load (i32.const 16))))
    ;; a stream: close half-closes, a later send is OK (nothing sent)
    (call $report (call $proxy_grpc_stream ${s.chat} ${s.svc} ${s.method} (i32.const 0) (i32.const 0) (i32.const 20)))
    (global.set $token (i32.load (i32.const 20)))
    (call $report (i32.and (global.get $token) (i32.const 3)))
    (call $report (call $proxy_grpc_send (global.get $token) ${s.msg} (i32.const 0)))
    (call $report (call $proxy_grpc_close (global.get $token)))
    (call $report (call $proxy_grpc_send (global.get $token) ${s.msg} (i32.const 0)))
    (i32.const 1))
  (func (export "proxy_on_grpc_close") (param i32 i32 i32)
    ;; in the close callback the token is still there (Envoy forgets it after the callback)
    (call $report (call $proxy_grpc_send (global.get $token) ${s.msg} (i32.const 0))))
  (func (export "proxy_on_tick") (param i32)
    ;; closed on both sides: the token is gone
    (call $report (call $proxy_grpc_send (global.get $token) ${s.msg} (i32.const 0)))
    (call $report (call $proxy_grpc_close (global.get $token)))
    (call $report (call $proxy_grpc_cancel (global.get $token))))`,
  });
  const plugin = await WasmPlugin.load(bytes, { name: 'tokens' }, {
    httpCall: () => new Promise(() => {}),
    grpcStream: (_request, e) => {
      events = e;
      return { write: (data, endStream) => writes.push({ data, endStream }), reset: () => {} };
    },
  });
  // Tokens of each kind as Envoy's CalloutType: http_call 4n, grpc_call 4n+1, grpc_stream 4n+2.
  assert.deepEqual(codes(plugin.logs), [R.Ok, 0, R.BadArgument, R.BadArgument, R.Ok, 1, R.BadArgument, R.Ok, R.Ok, 2, R.Ok, R.Ok, R.Ok]);
  // One message, then the half-close (an empty DATA frame with END_STREAM); the send after it wrote nothing.
  assert.deepEqual(writes.map((w) => [w.data.length, w.endStream]), [[6, false], [0, true]]);
  events!.headers([...ok, ['grpc-status', '0']], true);
  await settle();
  assert.deepEqual(codes(plugin.logs).slice(13), [R.Ok]);
  plugin.tick();
  assert.deepEqual(codes(plugin.logs).slice(14), [R.NotFound, R.NotFound, R.NotFound]);
  await plugin.close();
});

test('the VM closing (a new configuration, a trap) resets its open streams: the server sees them cancelled', async () => {
  const filter = await loadFilter(await grpcStreamer({ service: 'chat', fromTick: true }), { grpcStreams: { chat: () => {} } });
  filter.tick();
  await filter.flush();
  const [stream] = filter.grpcStreams;
  assert.equal(stream!.cancelled, false);
  await filter.plugin.close();
  assert.equal(stream!.cancelled, true);
});
