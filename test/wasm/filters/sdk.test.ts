// The SDK's behaviour as a filter author sees it, through a probe filter run
// in weft's proxy-wasm host.
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { SharedState, WasmPlugin } from '../../../sidecar/wasm/index.ts';
import type { HostEnv, HttpCallRequest } from '../../../sidecar/wasm/index.ts';
import { loadFilter } from '../../../sidecar/wasm/testing.ts';
import { exchange, header, headerValues, probeBytes } from './kit.ts';

let bytes: Uint8Array;
const load = (env: HostEnv = {}, configuration = '{}'): Promise<WasmPlugin> => WasmPlugin.load(bytes, { name: 'probe', configuration }, env);

describe('AssemblyScript SDK', () => {
  before(async () => {
    bytes = await probeBytes();
  });

  it('tells missing headers from empty ones, reads every value, adds, replaces and removes', async () => {
    const plugin = await load();
    const { stream } = await exchange(plugin, [
      ['x-empty', ''], ['x-multi', 'a'], ['x-multi', 'b'], ['x-replace', 'old1'], ['x-replace', 'old2'], ['x-remove-me', '1'],
    ], { method: 'PUT' });
    const h = stream.requestHeaders;
    assert.equal(header(h, 'x-report'), 'missing|""|a,b');
    assert.deepEqual(headerValues(h, 'x-added'), ['1', '2']);
    assert.deepEqual(headerValues(h, 'x-replace'), ['new']);
    assert.deepEqual(headerValues(h, 'x-remove-me'), []);
    assert.equal(header(h, 'x-peer'), 'none');
    assert.equal(header(h, 'x-method-property'), 'PUT');
    const withPeer = await exchange(plugin, {}, { properties: { 'connection.uri_san_peer_certificate': 'spiffe://t/ns/a/sa/b' } });
    assert.equal(header(withPeer.stream.requestHeaders, 'x-peer'), 'spiffe://t/ns/a/sa/b');
    await plugin.close();
  });

  it('reads and writes through pre-encoded HeaderName, Property and Metric, and logs Utf8Writer bytes', async () => {
    const plugin = await load();
    const { stream } = await exchange(plugin, [['x-multi', 'a'], ['x-multi', 'b'], ['x-remove-me', '1']], {
      path: '/encoded',
      properties: { 'connection.uri_san_peer_certificate': 'spiffe://t/ns/a/sa/b', 'response.code': 503 },
    });
    const h = stream.requestHeaders;
    assert.equal(header(h, 'x-encoded'), '"a"|missing|"spiffe://t/ns/a/sa/b"|20|503|-1|null');
    assert.deepEqual(headerValues(h, 'x-remove-me'), []);
    assert.equal(plugin.metrics.find('probe_encoded_k=.=v_w;.;', 'counter')?.value, 3n);
    assert.equal(plugin.metrics.find('probe_encoded_ms', 'histogram')?.sum, 7);
    const lines = plugin.logs.filter((l) => l.level === 'info' && l.message.startsWith('{')).map((l) => l.message);
    assert.equal(lines.length, 3);
    assert.equal(lines[0], lines[2], 'Utf8Writer.json matches jsonString');
    assert.equal(lines[1], lines[2]);
    assert.deepEqual(JSON.parse(lines[0]!), { s: 'q"\\\n\t\u0001é日😀', n: -42, z: 0, u: 18446744073709551615, t: 'é' });
    await plugin.close();
  });

  it('sends a local response that stops the request', async () => {
    const plugin = await load();
    const { stream, request } = await exchange(plugin, {}, { path: '/reply' });
    assert.equal(request.action, 'local_reply');
    assert.equal(stream.localReply?.status, 418);
    assert.equal(Buffer.from(stream.localReply!.body).toString(), '{"teapot":true}');
    assert.equal(header(stream.localReply?.headers, 'x-probe'), 'yes');
    await plugin.close();
  });

  it('delivers an http call response to the stream that made the call, which then resumes', async () => {
    const calls: HttpCallRequest[] = [];
    const plugin = await load({
      httpCall: async (call) => {
        calls.push(call);
        await new Promise((r) => setTimeout(r, 5));
        const who = Buffer.from(call.body).toString();
        return who.includes('evil') ? { headers: [[':status', '403']] } : { headers: [[':status', '200']], body: `ok ${who}` };
      },
    });
    // Two streams in flight at once: each gets its own answer.
    const [a, b] = await Promise.all([
      exchange(plugin, {}, { path: '/call', properties: { 'connection.uri_san_peer_certificate': 'spiffe://t/ns/a/sa/good' } }),
      exchange(plugin, {}, { path: '/call', properties: { 'connection.uri_san_peer_certificate': 'spiffe://t/ns/a/sa/evil' } }),
    ]);
    assert.equal(a.request.action, 'continue');
    assert.equal(header(a.stream.requestHeaders, 'x-authz'), 'ok who=spiffe://t/ns/a/sa/good');
    assert.equal(b.request.action, 'local_reply');
    assert.equal(b.stream.localReply?.status, 403);
    assert.equal(calls.length, 2);
    assert.equal(calls[0]!.cluster, 'authz');
    assert.equal(header(calls[0]!.headers, ':path'), '/check');
    await plugin.close();
  });

  it('tells a filter why an http call got no response (getStatus: BrokenConnection, reset), as Envoy does', async () => {
    const plugin = await load({
      httpCall: async () => {
        throw new Error('connection refused');
      },
    });
    const { stream } = await exchange(plugin, {}, { path: '/call' });
    assert.equal(stream.localReply?.status, 503);
    assert.equal(Buffer.from(stream.localReply!.body).toString(), 'authz call failed: 11 reset');
    await plugin.close();
  });

  it('returns the host refusal of an http call as a status code, not a trap', async () => {
    const plugin = await load({ hasCluster: (name) => name === 'authz', httpCall: async () => ({ headers: [[':status', '200']] }) });
    const { stream } = await exchange(plugin, {}, { path: '/call-missing-cluster' });
    assert.equal(stream.localReply?.status, 500);
    assert.equal(Buffer.from(stream.localReply!.body).toString(), 'http_call refused: 2');
    assert.equal(plugin.vmFailures, 0);
    await plugin.close();
  });

  it('makes a gRPC call from a stream (GrpcHttpContext.grpcCall): the answer comes back to that stream, OK or its failure status', async () => {
    const calls: HttpCallRequest[] = [];
    let deny = false;
    const plugin = await load({
      hasCluster: (name) => name === 'authz',
      httpCall: async (call) => {
        calls.push(call);
        if (deny) return { headers: [[':status', '200'], ['content-type', 'application/grpc'], ['grpc-status', '16'], ['grpc-message', 'who%20are%20you']] };
        const message = Buffer.from('granted');
        const framed = Buffer.concat([Buffer.from([0, 0, 0, 0, message.length]), message]);
        return { headers: [[':status', '200'], ['content-type', 'application/grpc']], body: framed, trailers: [['grpc-status', '0']] };
      },
    });
    const ok = await exchange(plugin, {}, { path: '/grpc' });
    assert.equal(ok.request.action, 'continue');
    assert.equal(header(ok.stream.requestHeaders, 'x-grpc'), 'granted');
    assert.equal(header(calls[0]!.headers, ':path'), '/weft.test.Authz/Check');
    assert.equal(header(calls[0]!.headers, 'x-probe'), '1');
    assert.equal(Buffer.from(calls[0]!.body.subarray(5)).toString(), 'probe');
    deny = true;
    const denied = await exchange(plugin, {}, { path: '/grpc' });
    assert.equal(denied.stream.localReply?.status, 403);
    assert.equal(Buffer.from(denied.stream.localReply!.body).toString(), 'grpc 16: who%20are%20you{via_upstream}', 'the message as it came, with the details (Envoy enhancedGrpcMessage)');
    const refused = await exchange(plugin, {}, { path: '/grpc-missing-cluster' });
    assert.equal(Buffer.from(refused.stream.localReply!.body).toString(), 'grpc_call refused: 4', 'PARSE_FAILURE');
    await plugin.close();
  });

  it('opens a gRPC stream (openGrpcStream, GrpcStream): sends, half-closes, and hears metadata, messages, trailers and the close on the request that opened it; cancel stops it', async () => {
    const filter = await loadFilter(bytes, {
      configuration: '{}',
      grpcStreams: {
        chat: (s) => {
          s.sendInitialMetadata({ 'x-server': 'mock' });
          s.onMessage = (m) => s.send(`echo:${Buffer.from(m).toString()}`);
          s.onHalfClose = () => s.close(10, 'done talking', { 'x-trailer': 'bye' });
        },
      },
    });
    const talked = await filter.request({ path: '/stream' });
    assert.equal(
      talked.forwarded?.header('x-stream'),
      'initial 3 "mock"; message echo:one; message echo:two; trailing 3 "bye"; close 10 done talking{via_upstream}',
    );
    const [stream] = filter.grpcStreams;
    assert.deepEqual([stream!.service, stream!.method, stream!.header('x-probe'), stream!.texts, stream!.halfClosed], ['weft.test.Chat', 'Talk', '1', ['one', 'two'], true]);

    const cancelling = await filter.request({ path: '/stream-cancel' });
    assert.equal(cancelling.forwarded?.header('x-stream'), 'initial 3 "mock"; message echo:one; cancel 0');
    assert.equal(filter.grpcStreams[1]!.cancelled, true);

    const refused = await filter.request({ path: '/stream-missing-cluster' });
    assert.equal(refused.localReply?.bodyText, 'grpc_stream refused: 4', 'PARSE_FAILURE');
  });

  it('reads and rewrites the request body', async () => {
    const plugin = await load();
    const stream = plugin.newHttpStream();
    await stream.onRequestHeaders([[':method', 'POST'], [':path', '/body']], false);
    const first = await stream.onRequestBody('hello ', false);
    assert.equal(first.action, 'pause');
    const last = await stream.onRequestBody('world', true);
    assert.equal(last.action, 'continue');
    assert.ok(last.action === 'continue');
    assert.equal(Buffer.from(last.body).toString(), '[hello world]');
    stream.complete();
    await plugin.close();
  });

  it('keeps shared data across plugins of one VM id with compare-and-swap', async () => {
    const shared = new SharedState();
    const p1 = await load({ shared });
    const p2 = await load({ shared });
    const counts: string[] = [];
    for (const p of [p1, p2, p1]) counts.push(header((await exchange(p, {}, { path: '/count' })).stream.requestHeaders, 'x-count') ?? '');
    assert.deepEqual(counts, ['1', '2', '3']);
    await p1.close();
    await p2.close();
  });

  it('runs ticks at the period set in configure and records gauges', async () => {
    const plugin = await load({}, JSON.stringify({ tickMs: 250 }));
    assert.equal(plugin.tickPeriodMs, 250);
    plugin.tick();
    plugin.tick();
    assert.equal(plugin.metrics.find('probe_ticks_root=.=main;.;', 'gauge')?.value, 2n);
    await plugin.close();
  });

  it('skips debug logging when the host level is info, and logs it at debug', async () => {
    const info = await load({ logLevel: 'info' });
    await exchange(info, {});
    assert.deepEqual(info.logs.map((l) => l.message), ['request /']);
    await info.close();
    const debug = await load({ logLevel: 'debug' });
    await exchange(debug, {});
    assert.deepEqual(debug.logs.map((l) => `${l.level} ${l.message}`), ['info request /', 'debug debug detail']);
    await debug.close();
  });

  it('sees a level changed while it runs from the next stream on (the sidecar\'s POST /logging?wasm=)', async () => {
    const plugin = await load({ logLevel: 'info' });
    await exchange(plugin, {});
    plugin.setLogLevel(1);
    await exchange(plugin, {});
    plugin.setLogLevel(3);
    await exchange(plugin, {});
    // At info the filter skips its debug line; at debug it builds and logs it; at warn it logs neither.
    assert.deepEqual(plugin.logs.map((l) => `${l.level} ${l.message}`), ['info request /', 'info request /', 'debug debug detail']);
    await plugin.close();
  });

  it('turns an AssemblyScript abort into a critical log line and a trap the host contains', async () => {
    const plugin = await load({}, '{}');
    const { stream } = await exchange(plugin, {}, { path: '/abort' });
    assert.equal(stream.localReply?.status, 503, 'fail_closed');
    assert.equal(plugin.vmFailures, 1);
    const critical = plugin.logs.filter((l) => l.level === 'critical').map((l) => l.message);
    assert.ok(critical.some((m) => /^wasm abort: Index out of range at ~lib\/array\.ts:\d+:\d+$/.test(m)), critical.join('\n'));
    const next = await exchange(plugin, {});
    assert.equal(next.request.action, 'local_reply', 'fail_closed: the failed VM answers every later stream with a 503, as in Envoy');
    await plugin.close();
    const reloading = await WasmPlugin.load(bytes, { name: 'probe', configuration: '{}', failurePolicy: 'fail_reload' });
    assert.equal((await exchange(reloading, {}, { path: '/abort' })).stream.localReply?.status, 503);
    assert.equal((await exchange(reloading, {})).request.action, 'continue', 'fail_reload: a new VM serves the next stream');
    await reloading.close();
  });

  it('keeps memory flat over many requests (the SDK collects garbage between callbacks)', async () => {
    const plugin = await load();
    for (let i = 0; i < 500; i++) await exchange(plugin, { 'x-multi': 'v'.repeat(200) });
    const warm = plugin.memoryPages();
    for (let i = 0; i < 5000; i++) await exchange(plugin, { 'x-multi': 'v'.repeat(200) });
    assert.equal(plugin.memoryPages(), warm);
    await plugin.close();
  });
});
