// The controller coalesces bursts (push-storm protection: a quiet period
// with a maximum, as Istio's debounce) and retranslates only the CLAs of the
// services whose instances changed.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decodeResource } from '../../control/envoy/index.ts';
import type { MeshModel } from '../../control/model/types.ts';
import { createRegistry } from '../../control/registry/index.ts';
import { createMemoryStore } from '../../control/store/index.ts';
import { SnapshotCache } from '../../control/xds/cache.ts';
import type { ModelChange } from '../../control/xds/controller.ts';
import { XdsController } from '../../control/xds/controller.ts';
import { createXdsServer, storeModelSource, TypeUrl } from '../../control/xds/index.ts';
import type { DeltaReply } from './ads-client.ts';
import { DeltaClient, testNode } from './ads-client.ts';
import { cla, cluster } from './fixtures.ts';
import { testEncoder } from './fixtures.ts';

const model: MeshModel = { revision: 1, services: [], instances: [], routes: [], destinationPolicies: [], filterBindings: [], filterModules: [] };
const A = 'outbound|80||a.default';
const B = 'outbound|80||b.default';

function setup(debounceMs = 10) {
  let listener: ((c: ModelChange) => void) | undefined;
  const endpointCalls: string[][] = [];
  let proxyCalls = 0;
  let port = 1000;
  const cache = new SnapshotCache(testEncoder);
  const controller = new XdsController({
    cache,
    debounceMs,
    debounceMaxMs: Math.max(1000, debounceMs * 2),
    source: { model: () => model, subscribe: (l) => ((listener = l), () => (listener = undefined)) },
    translator: {
      translateProxy: () => {
        proxyCalls++;
        return { clusters: [cluster(A), cluster(B)], listeners: [], routes: [], extensionConfigs: [], endpointNames: [A, B], errors: [] };
      },
      translateEndpoints: (_m, names) => {
        const list = [...names];
        endpointCalls.push(list);
        return { endpoints: list.map((n) => cla(n, [++port])), errors: [] };
      },
    },
  });
  controller.start();
  const proxy = { id: 'p', service: 's', namespace: 'default', kind: 'sidecar' as const, inboundPort: 15006, outboundPort: 15001, appPort: 80, appAddress: '127.0.0.1', bindAddress: '0.0.0.0' };
  controller.ensureGroup(proxy, 'g');
  return { controller, cache, endpointCalls, proxyCalls: () => proxyCalls, emit: (c: ModelChange) => listener?.(c) };
}

test('a burst of instance changes within the window is applied once, for the affected service only', async () => {
  const s = setup();
  s.endpointCalls.length = 0;
  for (let i = 0; i < 50; i++) s.emit({ kind: 'instances', revision: 2 + i, committedAt: Date.now(), services: ['default/a'] });
  await new Promise((r) => setTimeout(r, 50));
  assert.deepEqual(s.endpointCalls, [[A]], 'one translateEndpoints call, for a\'s cluster only');
  assert.equal(s.proxyCalls(), 1, 'instance changes never retranslate listeners, routes or clusters');
  s.controller.stop();
});

test('a change after a quiet spell is pushed at once; the ones that follow it within the quiet period wait and are coalesced', async () => {
  const s = setup(10_000); // a quiet period far longer than the test
  s.endpointCalls.length = 0;
  s.emit({ kind: 'instances', revision: 2, committedAt: Date.now(), services: ['default/a'] });
  for (let i = 0; i < 100 && s.endpointCalls.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
  assert.deepEqual(s.endpointCalls, [[A]], 'the lone change did not wait for the 10 s quiet period');
  s.emit({ kind: 'instances', revision: 3, committedAt: Date.now(), services: ['default/a'] });
  s.emit({ kind: 'instances', revision: 4, committedAt: Date.now(), services: ['default/b'] });
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(s.endpointCalls.length, 1, 'changes right after a push wait for the quiet period');
  s.controller.flush();
  assert.deepEqual(s.endpointCalls.map((c) => c.sort()), [[A], [A, B]], 'and go out together');
  s.controller.stop();
});

test('a config change retranslates every active group', () => {
  const s = setup();
  s.emit({ kind: 'config', revision: 9, committedAt: Date.now() });
  s.controller.flush();
  assert.equal(s.proxyCalls(), 2);
  s.controller.stop();
});

test('a storm of changes at the default debounce (quiet 100 ms, at most 1 s) reaches a proxy as a few pushes, the last with the final state', { timeout: 60_000 }, async () => {
  const store = createMemoryStore();
  const registry = createRegistry(store);
  await store.commit(
    [
      { name: 'web', namespace: 'default', ports: [{ port: 8080, protocol: 'http' as const }], dependsOn: ['orders'] },
      { name: 'orders', namespace: 'default', ports: [{ port: 9090, protocol: 'http' as const }] },
    ].map((s) => ({ op: 'put' as const, kind: 'Service', namespace: 'default', name: s.name, spec: s })),
    { actor: 'test', summary: 'services' },
  );
  const xds = createXdsServer({ source: storeModelSource(store, registry) });
  const port = await xds.listen('127.0.0.1', 0);
  const ORDERS = 'outbound|9090||orders.default';
  const client = new DeltaClient(port, testNode('storm-1', 'web'));
  const endpoints = (reply: DeltaReply) => (decodeResource(TypeUrl.endpoint, reply.resources[0]!.bytes) as { endpoints?: { lb_endpoints?: unknown[] }[] }).endpoints?.[0]?.lb_endpoints?.length ?? 0;
  try {
    client.subscribe(TypeUrl.endpoint, [ORDERS]);
    client.ack(await client.next());
    // 60 registrations 25 ms apart (as `weft apply` in a loop): never 100 ms quiet, for 1.5 s or more.
    const pushes: { reply: DeltaReply; during: boolean }[] = [];
    let storming = true;
    const reading = (async () => {
      for (;;) {
        const reply = await client.next(30_000);
        pushes.push({ reply, during: storming });
        client.ack(reply);
        if (endpoints(reply) === 60) return;
      }
    })();
    for (let i = 0; i < 60; i++) {
      await registry.register('orders', 'default', { address: '127.0.0.1', port: 7000 + i });
      await new Promise((r) => setTimeout(r, 25));
    }
    storming = false;
    await reading;
    assert.ok(pushes.length <= 8, `${pushes.length} pushes for 60 changes`);
    assert.ok(pushes.some((p) => p.during), 'the 1 s maximum pushes while changes keep coming');
    assert.equal(endpoints(pushes.at(-1)!.reply), 60, 'the final state is delivered');
  } finally {
    client.close();
    await xds.close();
  }
});

test('a proxy that connects while a config change waits out the window gets a first snapshot that already has it', async () => {
  let current: MeshModel = { ...model, revision: 1 };
  let listener: ((c: ModelChange) => void) | undefined;
  const seen: number[] = [];
  let builds = 0;
  const cache = new SnapshotCache(testEncoder);
  const controller = new XdsController({
    cache,
    debounceMs: 10_000, // the window outlasts the test: only ensureGroup can see the change
    debounceMaxMs: 20_000,
    source: { model: () => (builds++, current), subscribe: (l) => ((listener = l), () => (listener = undefined)) },
    translator: {
      translateProxy: (m) => {
        seen.push(m.revision);
        return { clusters: [cluster(A)], listeners: [], routes: [], extensionConfigs: [], endpointNames: [A], errors: [] };
      },
      translateEndpoints: (_m, names) => ({ endpoints: [...names].map((n) => cla(n, [1000])), errors: [] }),
    },
  });
  controller.start();
  const proxy = (id: string) => ({ id, service: id, namespace: 'default', kind: 'sidecar' as const, inboundPort: 15006, outboundPort: 15001, appPort: 80, appAddress: '127.0.0.1', bindAddress: '0.0.0.0' });
  controller.ensureGroup(proxy('first'), 'first');
  // Two commits: the first is pushed at once (after a quiet spell), the second waits for the window.
  current = { ...current, revision: 2 };
  listener?.({ kind: 'config', revision: 2, committedAt: Date.now() });
  await new Promise((r) => setTimeout(r, 50));
  current = { ...current, revision: 3 };
  listener?.({ kind: 'config', revision: 3, committedAt: Date.now() });
  seen.length = 0;
  controller.ensureGroup(proxy('late'), 'late');
  assert.deepEqual(seen, [3], 'the connecting proxy was translated from revision 3, not the pushed revision 2');
  // More proxies in the same window, with no change since: the model is not rebuilt for each.
  const before = builds;
  controller.ensureGroup(proxy('later'), 'later');
  assert.equal(builds, before, 'no rebuild without a new change');
  assert.deepEqual(seen, [3, 3]);
  controller.stop();
});
