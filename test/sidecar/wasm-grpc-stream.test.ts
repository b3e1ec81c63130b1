// A wasm filter's gRPC stream (proxy_grpc_stream) through a real weft
// sidecar to a real gRPC server (@grpc/grpc-js) behind the mesh's cluster for
// it: a bidi stream on which the filter sends two messages and reads the
// server's initial metadata, its replies, its trailing metadata and its close
// status; and a stream the filter cancels, which the server sees cancelled.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { defaultTranslator } from '../../control/xds/index.ts';
import { TestMesh, eventually, freePort, get, instance, moduleServer, service, startApp } from './harness.ts';
import { grpcServiceBytes } from '../wasm/grpc-caller.ts';
import { grpcStreamer, type GrpcStreamerOptions } from '../wasm/grpc-streamer.ts';

const closers: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of closers.reverse()) await c();
});

const raw = (b: Buffer) => b;
const chatService: grpc.ServiceDefinition = {
  Talk: { path: '/weft.test.Chat/Talk', requestStream: true, responseStream: true, requestSerialize: raw, requestDeserialize: raw, responseSerialize: raw, responseDeserialize: raw },
};

interface Seen {
  token: string[];
  messages: string[];
  ended: boolean;
  cancelled: boolean;
}

/** A grpc-js server for weft.test.Chat/Talk; `talk` handles each call. */
async function chatServer(talk: (call: grpc.ServerDuplexStream<Buffer, Buffer>, seen: Seen) => void): Promise<{ port: number; seen: Seen[] }> {
  const seen: Seen[] = [];
  const server = new grpc.Server();
  server.addService(chatService, {
    Talk: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => {
      const s: Seen = { token: call.metadata.get('x-token').map(String), messages: [], ended: false, cancelled: false };
      seen.push(s);
      call.on('cancelled', () => (s.cancelled = true));
      call.on('end', () => (s.ended = true));
      talk(call, s);
    },
  });
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
  closers.push(() => new Promise<void>((r) => server.tryShutdown(() => r())));
  closers.push(async () => server.forceShutdown());
  return { port, seen };
}

/** A mesh where `shop`'s inbound wasm filter is the streamer, with `chat` (the gRPC server) as a grpc service. */
async function meshWithStreamer(chatPort: number, options: Omit<GrpcStreamerOptions, 'service'>): Promise<{ inbound: number; wasmLines: () => string[]; app: { hits: number } }> {
  // The GrpcService names the authority: the cluster's name (the default, as in Envoy) has a '|' node's HTTP/2 server refuses.
  const module = await grpcStreamer({ service: grpcServiceBytes('outbound|50091||chat.default', 'chat:50091'), ...options });
  const sha = createHash('sha256').update(module).digest('hex');
  const served = await moduleServer(new Map([[sha, module]]));
  closers.push(served.close);
  const mesh = await TestMesh.start({ translator: defaultTranslator({ wasmBaseUrl: served.url, wasmClusterName: 'weft-control' }) });
  closers.push(() => mesh.close());
  const app = await startApp('shop');
  mesh.track(() => app.close());
  const inbound = await freePort();
  mesh.model.update({
    services: [service('shop', 7995), { name: 'chat', namespace: 'default', ports: [{ port: 50091, protocol: 'grpc' }] }],
    instances: [instance('shop', inbound), instance('chat', chatPort)],
    filterModules: [{ name: 'grpc-streamer', sha256: sha, size: module.length, abiVersion: '0.2.1' }],
    filterBindings: [{ name: 'shop-grpc-streamer', namespace: 'default', service: 'shop', direction: 'inbound', filter: 'grpc-streamer', order: 0, config: {}, failurePolicy: 'fail_closed' }],
  });
  const lines: string[] = [];
  await mesh.sidecar('shop', app.port, { inboundPort: inbound, log: (l) => lines.push(l) });
  const wasmLines = () => lines.filter((l) => l.includes('"source":"wasm"')).map((l) => JSON.parse(l).msg as string);
  return { inbound, wasmLines, app };
}

const code = (n: number) => `#${String.fromCharCode(48 + n)}`;

test('a wasm filter talks to a gRPC server over a bidi stream (proxy_grpc_stream) through the sidecar: two messages out, metadata, replies, trailers and the close status in', { timeout: 60_000 }, async () => {
  const { port, seen } = await chatServer((call, s) => {
    const initial = new grpc.Metadata();
    initial.set('x-server', 'grpc-js');
    call.sendMetadata(initial);
    call.on('data', (m: Buffer) => {
      s.messages.push(m.toString());
      call.write(Buffer.from(`echo:${m.toString()}`));
    });
    call.on('end', () => {
      const trailing = new grpc.Metadata();
      trailing.set('x-trailer', 'bye');
      call.emit('error', { code: grpc.status.ABORTED, details: 'done talking', metadata: trailing });
    });
  });
  const { inbound, wasmLines, app } = await meshWithStreamer(port, {});

  // The filter holds the request until the stream closes, then lets it on.
  const res = await get(inbound, 'shop', '/orders');
  assert.equal(res.status, 200, JSON.stringify(wasmLines()));
  assert.equal(app.hits, 1);
  // (grpc-js's 'cancelled' fires on every stream close, a finished one too: not asserted here.)
  assert.deepEqual(
    seen.map(({ token, messages, ended }) => ({ token, messages, ended })),
    [{ token: ['abc'], messages: ['one', 'two'], ended: true }],
  );
  // As Envoy's async client hands it on: grpc-js's grpc-message as sent (it encodes the space) with the details.
  await eventually(() => wasmLines().includes('done%20talking{via_upstream}'), 5000, 'the close status message in the filter');
  const lines = wasmLines();
  // Both sends OK; then, in order, what the stream told the root context.
  assert.deepEqual(lines.slice(0, 2), [code(0), code(0)]);
  const rest = lines.slice(2);
  assert.match(rest[0]!, /^initial:/);
  assert.deepEqual(rest.slice(1), [code(0), 'grpc-js', 'echo:one', 'echo:two', rest[5]!, code(0), 'bye', code(grpc.status.ABORTED), 'done%20talking{via_upstream}']);
  assert.match(rest[5]!, /^trailing:/);
});

test('a wasm filter that cancels its gRPC stream (proxy_grpc_cancel): the server sees it cancelled, and the filter hears nothing more of it', { timeout: 60_000 }, async () => {
  let cancelledSeen = false;
  const { port, seen } = await chatServer((call, s) => {
    call.on('data', (m: Buffer) => {
      s.messages.push(m.toString());
      // Only the first is answered; the call stays open until the client goes.
      if (s.messages.length === 1) call.write(Buffer.from(`echo:${m.toString()}`));
    });
    // The server never ends the call: only the client going away (the filter's cancel) closes it.
    call.on('cancelled', () => (cancelledSeen = true));
  });
  const { inbound, wasmLines } = await meshWithStreamer(port, { cancel: true });

  const res = await get(inbound, 'shop', '/orders');
  assert.equal(res.status, 200, JSON.stringify(wasmLines()));
  await eventually(() => cancelledSeen, 10_000, 'the gRPC server to see the call cancelled');
  assert.equal(seen.length, 1);
  assert.equal(seen[0]!.cancelled, true);
  // Sent one, two (OK, OK); got echo:one; cancel OK; nothing after it (no trailing metadata, no close).
  await eventually(() => wasmLines().includes('echo:one'), 5000, 'the reply logged');
  const lines = wasmLines();
  assert.deepEqual(lines.slice(0, 2), [code(0), code(0)]);
  assert.deepEqual(lines.slice(-2), ['echo:one', code(0)]);
  assert.ok(!lines.some((l) => l.startsWith('trailing:')), JSON.stringify(lines));
});
