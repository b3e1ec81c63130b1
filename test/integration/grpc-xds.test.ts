// @grpc/grpc-js-xds resolves xds:///echo through weft's xDS server and load
// balances over two real gRPC servers; after one is deregistered it stops
// using it. Real sockets, a real child process, a client nobody here wrote.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import type { Service } from '../../control/model/types.ts';
import { createRegistry } from '../../control/registry/index.ts';
import type { Registry } from '../../control/registry/index.ts';
import { createMemoryStore } from '../../control/store/index.ts';
import type { Store } from '../../control/store/index.ts';
import type { XdsServer } from '../../control/xds/index.ts';
import { createXdsServer, storeModelSource } from '../../control/xds/index.ts';

const identity = (b: Buffer) => b;

async function echoServer(name: string): Promise<{ port: number; server: grpc.Server }> {
  const server = new grpc.Server();
  server.addService(
    { Echo: { path: '/weft.test.Echo/Echo', requestStream: false, responseStream: false, requestSerialize: identity, requestDeserialize: identity, responseSerialize: identity, responseDeserialize: identity } },
    { Echo: (_call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => cb(null, Buffer.from(name)) },
  );
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
  return { port, server };
}

class XdsClientProcess {
  readonly child: ChildProcessWithoutNullStreams;
  readonly #replies: ((line: string) => void)[] = [];
  stderr = '';

  constructor(xdsPort: number) {
    const bootstrap = {
      xds_servers: [{ server_uri: `127.0.0.1:${xdsPort}`, channel_creds: [{ type: 'insecure' }], server_features: ['xds_v3'] }],
      node: { id: `frontend-${process.pid}`, cluster: 'frontend', metadata: { WEFT_NAMESPACE: 'default' }, locality: {} },
    };
    const script = fileURLToPath(new URL('./grpc-xds-client.ts', import.meta.url));
    // NODE_TEST_CONTEXT would make the child report to the test runner instead of us
    const { NODE_TEST_CONTEXT: _, ...env } = process.env;
    this.child = spawn(process.execPath, ['--import', 'tsx', script, 'xds:///echo'], {
      env: { ...env, GRPC_XDS_BOOTSTRAP_CONFIG: JSON.stringify(bootstrap) },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    this.child.stderr.on('data', (d: Buffer) => (this.stderr += d.toString()));
    createInterface({ input: this.child.stdout }).on('line', (line) => this.#replies.shift()?.(line));
  }

  calls(n: number): Promise<{ answers: Record<string, number>; errors: string[] }> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`client did not answer; stderr: ${this.stderr.slice(-2000)}`)), 60_000);
      this.#replies.push((line) => {
        clearTimeout(timer);
        resolve(JSON.parse(line));
      });
      this.child.stdin.write(`${JSON.stringify({ calls: n })}\n`);
    });
  }

  stop(): void {
    this.child.stdin.end();
    this.child.kill();
  }
}

let store: Store;
let registry: Registry;
let xds: XdsServer;
let xdsPort: number;
const backends: { port: number; server: grpc.Server }[] = [];

function service(name: string, port: number, dependsOn?: string[]): Service {
  return { name, namespace: 'default', ports: [{ port, protocol: 'grpc' }], ...(dependsOn ? { dependsOn } : {}) };
}

before(async () => {
  store = createMemoryStore();
  registry = createRegistry(store);
  await store.commit(
    [service('echo', 50051), service('frontend', 50052, ['echo'])].map((s) => ({ op: 'put' as const, kind: 'Service', namespace: 'default', name: s.name, spec: s })),
    { actor: 'test', summary: 'services' },
  );
  xds = createXdsServer({ source: storeModelSource(store, registry), debounceMs: 10 });
  xdsPort = await xds.listen('127.0.0.1', 0);
  backends.push(await echoServer('A'), await echoServer('B'));
});

after(async () => {
  await xds.close();
  for (const b of backends) b.server.forceShutdown();
});

test('grpc-js-xds resolves xds:///echo through weft, uses both instances, and drops a deregistered one', { timeout: 120_000 }, async () => {
  const [a, b] = backends as [(typeof backends)[0], (typeof backends)[0]];
  await registry.register('echo', 'default', { address: '127.0.0.1', port: a.port });
  const regB = await registry.register('echo', 'default', { address: '127.0.0.1', port: b.port });
  assert.ok(regB.ok);
  const client = new XdsClientProcess(xdsPort);
  try {
    const first = await client.calls(20);
    assert.deepEqual(first.errors, [], `RPC errors: ${first.errors.join('; ')}\nproxy status: ${JSON.stringify(xds.status.list())}`);
    assert.ok((first.answers.A ?? 0) > 0 && (first.answers.B ?? 0) > 0, `both instances answer: ${JSON.stringify(first.answers)}`);
    const proxy = xds.status.list().find((p) => p.service === 'frontend');
    assert.equal(proxy?.kind, 'proxyless-grpc');
    assert.deepEqual(proxy?.lastNacks, {}, 'grpc-js-xds accepted every resource');

    assert.equal(await registry.deregister(regB.ok ? regB.value.id : ''), true);
    // the update is asynchronous: poll (bounded) until B is no longer used, then check it stays unused
    let lastAnswers: Record<string, number> = {};
    for (let round = 0; round < 50; round++) {
      const r = await client.calls(10);
      lastAnswers = r.answers;
      if (!r.answers.B) break;
    }
    assert.deepEqual(lastAnswers, { A: 10 }, 'B stopped receiving calls');
    const later = await client.calls(20);
    assert.deepEqual(later, { answers: { A: 20 }, errors: [] });

    // Past the cluster's first outlier-detection interval (10 s from the
    // client's start): grpc-js-xds 1.14 crashed there when
    // success_rate_minimum_hosts was left unset.
    const exited = new Promise<string>((resolve) => client.child.once('exit', (code, signal) => resolve(`exited (${code ?? signal}): ${client.stderr.slice(-1000)}`)));
    for (const end = Date.now() + 12_000; Date.now() < end; ) {
      const r = await Promise.race([client.calls(5), exited.then((why) => assert.fail(`the client ${why}`))]);
      assert.deepEqual(r.errors, []);
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
    assert.equal(client.child.exitCode, null, 'the client is still running');
  } finally {
    client.stop();
  }
});
