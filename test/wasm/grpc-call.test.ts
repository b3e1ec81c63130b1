// proxy_grpc_call, a unary gRPC callout, as Envoy's wasm host makes it (it
// returned UNIMPLEMENTED here until 2026-11-27): the request goes to the
// cluster as HTTP/2 POST /<service>/<method> with the message in one gRPC
// frame, and the answer reaches the module as proxy_on_grpc_receive (the
// response message in buffer 5) or proxy_on_grpc_close (the gRPC status,
// its message through proxy_get_status). Driven through the test kit, with
// its mocked clusters.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { grpcAnswer, loadFilter } from 'weft/testing';
import { WasmResult } from '../../sidecar/wasm/abi.ts';
import { grpcCaller, grpcServiceBytes } from './grpc-caller.ts';
import { codes, texts } from './wat.ts';

test('a grpc_call answered OK: the request as a gRPC server sees it, the response message in proxy_on_grpc_receive, the request goes on', async () => {
  const filter = await loadFilter(await grpcCaller({ service: 'authz' }), { httpCalls: { authz: () => grpcAnswer('allowed') } });
  const r = await filter.request({ path: '/orders' });
  assert.equal(r.forwarded?.header(':path'), '/orders', 'continued once the answer came');
  assert.ok(texts(filter.logs).includes('allowed'), JSON.stringify(texts(filter.logs)));
  const [call] = filter.httpCalls;
  assert.equal(call?.cluster, 'authz');
  assert.deepEqual(call?.grpc && { ...call.grpc, message: Buffer.from(call.grpc.message).toString() }, { service: 'weft.test.Authz', method: 'Check', message: 'hello' });
  assert.deepEqual(
    ['method', 'path', 'authority', 'content-type', 'te', 'grpc-timeout', 'x-token'].map((h) => call?.header(h === 'method' || h === 'path' || h === 'authority' ? `:${h}` : h)),
    ['POST', '/weft.test.Authz/Check', 'authz', 'application/grpc', 'trailers', '1000m', 'abc'],
  );
  assert.deepEqual([...call!.bodyBytes.subarray(0, 5)], [0, 0, 0, 0, 5], 'one uncompressed frame of 5 bytes');
});

test('a grpc_call that fails: proxy_on_grpc_close with the gRPC status and its message; a timeout is UNAVAILABLE', async () => {
  const denied = await loadFilter(await grpcCaller({ service: 'authz' }), { httpCalls: { authz: () => grpcAnswer('', 7, 'no token, no entry') } });
  const r = await denied.request();
  assert.equal(r.localReply?.status, 403);
  assert.deepEqual(codes(denied.logs), [7]);
  assert.ok(texts(denied.logs).includes('no token, no entry'));

  const slow = await loadFilter(await grpcCaller({ service: 'authz', timeoutMs: 250 }), { httpCalls: { authz: 'timeout' } });
  const t = await slow.request();
  assert.equal(t.localReply?.status, 403);
  assert.deepEqual(codes(slow.logs), [14]);
  assert.ok(texts(slow.logs).includes('upstream request timeout'));

  // OK without a message, an HTTP error without a gRPC status: INTERNAL and CANCELLED, as Envoy's async client reads them.
  const empty = await loadFilter(await grpcCaller({ service: 'authz' }), { httpCalls: { authz: { status: 200, headers: { 'content-type': 'application/grpc' }, trailers: { 'grpc-status': '0' } } } });
  await empty.request();
  assert.deepEqual(codes(empty.logs), [13]);
  const http = await loadFilter(await grpcCaller({ service: 'authz' }), { httpCalls: { authz: { status: 503, body: 'no' } } });
  await http.request();
  assert.deepEqual(codes(http.logs), [1]);
});

test('the grpc_service argument: a serialized GrpcService names the cluster and the authority; an unknown cluster is PARSE_FAILURE, a GrpcService without envoy_grpc BAD_ARGUMENT', async () => {
  const named = await loadFilter(await grpcCaller({ service: grpcServiceBytes('authz', 'authz.internal:9000') }), { httpCalls: { authz: () => grpcAnswer('ok') } });
  await named.request();
  assert.equal(named.httpCalls[0]?.cluster, 'authz');
  assert.equal(named.httpCalls[0]?.header(':authority'), 'authz.internal:9000');

  const unknown = await loadFilter(await grpcCaller({ service: 'nowhere' }), { httpCalls: { authz: () => grpcAnswer('ok') } });
  const r = await unknown.request();
  assert.deepEqual(codes(unknown.logs), [WasmResult.ParseFailure]);
  assert.ok(r.forwarded, 'the filter went on after the refusal');
  assert.equal(unknown.httpCalls.length, 0);

  // GrpcService{google_grpc{...}} (field 2): not a target this host (or Envoy without Google gRPC) can use.
  const google = await loadFilter(await grpcCaller({ service: Uint8Array.from([0x12, 0x02, 0x0a, 0x00]) }), { httpCalls: { authz: () => grpcAnswer('ok') } });
  await google.request();
  assert.deepEqual(codes(google.logs), [WasmResult.BadArgument]);
});

test('proxy_grpc_cancel abandons a call: OK, and the module hears nothing more of it', async () => {
  let answered = 0;
  const filter = await loadFilter(await grpcCaller({ service: 'authz', cancel: true }), {
    httpCalls: {
      authz: async () => {
        answered++;
        return grpcAnswer('late');
      },
    },
  });
  const r = await filter.request();
  assert.ok(r.forwarded);
  await new Promise((resolve) => setImmediate(resolve));
  assert.deepEqual(codes(filter.logs), [WasmResult.Ok], 'the cancel, and no proxy_on_grpc_close after it');
  assert.ok(!texts(filter.logs).includes('late'), 'no proxy_on_grpc_receive');
  assert.equal(filter.plugin.pendingHttpCalls, 0);
  assert.ok(answered <= 1);
});
