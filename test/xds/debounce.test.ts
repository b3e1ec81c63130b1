// The controller coalesces bursts (push-storm protection) and retranslates
// only the CLAs of the services whose instances changed.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { MeshModel } from '../../control/model/types.ts';
import { SnapshotCache } from '../../control/xds/cache.ts';
import type { ModelChange } from '../../control/xds/controller.ts';
import { XdsController } from '../../control/xds/controller.ts';
import { cla, cluster } from './fixtures.ts';
import { testEncoder } from './fixtures.ts';

const model: MeshModel = { revision: 1, services: [], instances: [], routes: [], destinationPolicies: [], filterBindings: [], filterModules: [] };
const A = 'outbound|80||a.default';
const B = 'outbound|80||b.default';

function setup() {
  let listener: ((c: ModelChange) => void) | undefined;
  const endpointCalls: string[][] = [];
  let proxyCalls = 0;
  let port = 1000;
  const cache = new SnapshotCache(testEncoder);
  const controller = new XdsController({
    cache,
    debounceMs: 10,
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

test('a config change retranslates every active group', () => {
  const s = setup();
  s.emit({ kind: 'config', revision: 9, committedAt: Date.now() });
  s.controller.flush();
  assert.equal(s.proxyCalls(), 2);
  s.controller.stop();
});
