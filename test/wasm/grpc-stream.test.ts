// proxy_grpc_stream, a gRPC stream callout, as Envoy's wasm host makes it (it
// returned UNIMPLEMENTED here until 2026-11-27), driven through the test kit
// and its mocked gRPC stream servers (`grpcStreams`): the filter's messages
// reach the server as frames on one HTTP/2 request, and the server's initial
// metadata, messages, trailing metadata and status reach the root context.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadFilter, type MockGrpcStream } from 'weft/testing';
import { WasmResult as R } from '../../sidecar/wasm/abi.ts';
import { grpcStreamer } from './grpc-streamer.ts';

const code = (n: number) => `#${String.fromCharCode(48 + n)}`;

/** Echoes each message as `echo:<m>`, with initial metadata x-server; once the filter half-closes, closes with `status`. */
function echo(status = 0, statusMessage = '') {
  return (s: MockGrpcStream) => {
    s.sendInitialMetadata({ 'x-server': 'mock' });
    s.onMessage = (m) => s.send(`echo:${Buffer.from(m).toString()}`);
    s.onHalfClose = () => s.close(status, statusMessage, { 'x-trailer': 'bye' });
  };
}

test('a bidi gRPC stream: the server sees the stream and both messages, the filter gets metadata, replies, trailers and the status in order, on its root context', async () => {
  const filter = await loadFilter(await grpcStreamer({ service: 'chat' }), { grpcStreams: { chat: echo(10, 'done talking') } });
  const r = await filter.request({ path: '/orders' });
  assert.equal(r.forwarded?.header(':path'), '/orders', 'held until the close, then continued');
  const [stream] = filter.grpcStreams;
  assert.equal(filter.grpcStreams.length, 1);
  assert.deepEqual([stream!.cluster, stream!.service, stream!.method, stream!.header(':method'), stream!.header('content-type'), stream!.header('te'), stream!.header('x-token'), stream!.header('grpc-timeout')], ['chat', 'weft.test.Chat', 'Talk', 'POST', 'application/grpc', 'trailers', 'abc', undefined]);
  assert.deepEqual(stream!.texts, ['one', 'two']);
  assert.equal(stream!.halfClosed, true, 'end_stream on the second send half-closed the request');
  assert.equal(stream!.cancelled, false);
  // :status, content-type, x-server: 3 headers; trailing grpc-status, grpc-message, x-trailer: 3.
  assert.deepEqual(filter.logMessages(), [code(R.Ok), code(R.Ok), 'initial:3', code(R.Ok), 'mock', 'echo:one', 'echo:two', 'trailing:3', code(R.Ok), 'bye', code(10), 'done talking{via_upstream}']);
  const root = filter.logs.find((l) => l.message === 'echo:one')!.contextId;
  assert.notEqual(root, filter.logs[0]!.contextId, 'the sends were made from the request context');
  assert.ok(filter.logs.slice(2).every((l) => l.contextId === root), 'every stream callback on the root context');
});

test('proxy_grpc_close half-closes: the server sees the end of the request and its answer still reaches the filter', async () => {
  let sawEnd = false;
  const filter = await loadFilter(await grpcStreamer({ service: 'chat', halfClose: 'close' }), {
    grpcStreams: {
      chat: (s) => {
        // Answers only once the request side is over.
        s.onHalfClose = () => {
          sawEnd = true;
          s.send(`got ${s.received.length}`);
          s.close(0);
        };
      },
    },
  });
  const r = await filter.request();
  assert.ok(r.forwarded);
  assert.equal(sawEnd, true);
  assert.deepEqual(filter.grpcStreams[0]!.texts, ['one', 'two']);
  // send, send, close: OK; then the answer, the status OK with no message.
  assert.deepEqual(filter.logMessages(), [code(R.Ok), code(R.Ok), code(R.Ok), 'initial:2', code(R.NotFound), '', 'got 2', 'trailing:1', code(R.NotFound), '', code(0), 'via_upstream']);
});

test('proxy_grpc_cancel: the server sees the stream cancelled, and nothing more of it reaches the filter', async () => {
  let cancelled = 0;
  const filter = await loadFilter(await grpcStreamer({ service: 'chat', cancel: true }), {
    grpcStreams: {
      chat: (s) => {
        let seen = 0;
        s.onMessage = (m) => {
          // Answers the first; closes (too late) when cancelled.
          if (++seen === 1) s.send(`echo:${Buffer.from(m).toString()}`);
        };
        s.onCancel = () => {
          cancelled++;
          s.close(0);
        };
      },
    },
  });
  const r = await filter.request();
  assert.ok(r.forwarded, 'the filter continued the request when it cancelled');
  await filter.flush();
  assert.equal(cancelled, 1);
  assert.equal(filter.grpcStreams[0]!.cancelled, true);
  assert.deepEqual(filter.logMessages(), [code(R.Ok), code(R.Ok), 'initial:2', code(R.NotFound), '', 'echo:one', code(R.Ok)]);
});

test("how a stream ends: a trailers-only answer (empty initial metadata), a server's reset (INTERNAL, empty trailers; before any answer the router's UNAVAILABLE), a cluster without a stream server; every close message carries the response code details, as Envoy's enhancedGrpcMessage", async () => {
  const only = await loadFilter(await grpcStreamer({ service: 'chat' }), { grpcStreams: { chat: (s) => s.close(7, 'not you') } });
  assert.ok((await only.request()).forwarded);
  assert.deepEqual(only.logMessages(), [code(R.Ok), code(R.Ok), 'initial:0', code(R.NotFound), '', 'trailing:4', code(R.NotFound), '', code(7), 'not you{via_upstream}']);

  const reset = await loadFilter(await grpcStreamer({ service: 'chat' }), {
    grpcStreams: {
      chat: (s) => {
        s.send('partial');
        s.onHalfClose = () => s.reset();
      },
    },
  });
  assert.ok((await reset.request()).forwarded);
  assert.deepEqual(reset.logMessages(), [code(R.Ok), code(R.Ok), 'initial:2', code(R.NotFound), '', 'partial', 'trailing:0', code(R.NotFound), '', code(13), 'via_upstream']);

  // A reset before any answer is answered by the router, as in the sidecar and Envoy: UNAVAILABLE with its details.
  const early = await loadFilter(await grpcStreamer({ service: 'chat' }), {
    grpcStreams: {
      chat: (s) => {
        s.onHalfClose = () => s.reset();
      },
    },
  });
  const er = await early.request();
  assert.ok(er.forwarded, JSON.stringify([er.localReply, early.logMessages()]));
  assert.deepEqual(early.logMessages().slice(-2), [code(14), 'upstream connect error or disconnect/reset before headers. reset reason: remote reset{upstream_reset_before_response_started{remote_reset}}']);

  // A cluster the kit knows only for http_calls: UNIMPLEMENTED from the kit, named in the message.
  const none = await loadFilter(await grpcStreamer({ service: 'authz' }), { httpCalls: { authz: { status: 200 } } });
  assert.ok((await none.request()).forwarded);
  assert.ok(none.logMessages().includes('no grpcStreams mock for cluster authz (only an httpCalls one)'), JSON.stringify(none.logMessages()));
  // An unknown cluster: PARSE_FAILURE, as a grpc_call's, and the request goes on.
  const unknown = await loadFilter(await grpcStreamer({ service: 'nowhere' }), { grpcStreams: { chat: echo() } });
  assert.ok((await unknown.request()).forwarded);
  assert.deepEqual(unknown.logMessages(), [code(R.ParseFailure)]);
  assert.equal(unknown.grpcStreams.length, 0);
});

test('a stream opened from the root context (on a tick) is answered with no request waiting: flush() lets the answers in', async () => {
  const filter = await loadFilter(await grpcStreamer({ service: 'chat', fromTick: true }), { grpcStreams: { chat: echo() } });
  filter.tick();
  await filter.flush();
  assert.deepEqual(filter.grpcStreams[0]?.texts, ['one', 'two']);
  assert.deepEqual(filter.logMessages(), [code(R.Ok), code(R.Ok), 'initial:3', code(R.Ok), 'mock', 'echo:one', 'echo:two', 'trailing:2', code(R.Ok), 'bye', code(0), 'via_upstream']);
});
