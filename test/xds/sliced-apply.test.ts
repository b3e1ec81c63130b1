// A config change retranslates every proxy group, in slices of about
// sliceMs with the event loop free between them (a thousand groups blocked
// /healthz, the API and heartbeats for seconds). One apply still translates
// every group against one model, publishes the endpoints first and the groups
// together at the end; what arrives during it is applied after it.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { performance } from 'node:perf_hooks';
import type { MeshModel } from '../../control/model/types.ts';
import type { CacheEvent } from '../../control/xds/cache.ts';
import { SnapshotCache } from '../../control/xds/cache.ts';
import type { ModelChange } from '../../control/xds/controller.ts';
import { XdsController } from '../../control/xds/controller.ts';
import { TypeUrl } from '../../control/xds/discovery.ts';
import { cla, cluster, testEncoder } from './fixtures.ts';

const GROUPS = 200;
/** Translation cost per group: GROUPS of them take far longer than one slice. */
const WORK_MS = 0.4;
const clusterOf = (revision: number) => `outbound|80||rev${revision}.default`;

function setup(options: { throwAt?: string } = {}) {
  let revision = 1;
  const modelAt = (r: number): MeshModel => ({ revision: r, services: [], instances: [], routes: [], destinationPolicies: [], filterBindings: [], filterModules: [] });
  let listener: ((c: ModelChange) => void) | undefined;
  const cache = new SnapshotCache(testEncoder);
  /** "proxy <rev> <group>" and "endpoints <rev>" per translator call, in order. */
  const log: string[] = [];
  const events: CacheEvent[] = [];
  cache.subscribe((e) => events.push(e));
  const controller = new XdsController({
    cache,
    debounceMs: 10,
    debounceMaxMs: 1000,
    sliceMs: 5,
    source: { model: () => modelAt(revision), subscribe: (l) => ((listener = l), () => (listener = undefined)) },
    translator: {
      translateProxy: (model, proxy) => {
        log.push(`proxy ${model.revision} ${proxy.id}`);
        if (`${model.revision} ${proxy.id}` === options.throwAt) throw new Error('translator bug');
        const end = performance.now() + WORK_MS;
        while (performance.now() < end);
        // each revision names its own cluster: endpoints must be in the cache before a group that uses it
        const name = clusterOf(model.revision);
        return { clusters: [cluster(name)], listeners: [], routes: [], extensionConfigs: [], endpointNames: [name], errors: [] };
      },
      translateEndpoints: (model, names) => {
        log.push(`endpoints ${model.revision}`);
        return { endpoints: [...names].map((n) => cla(n, [8080])), errors: [] };
      },
    },
  });
  controller.start();
  const proxyRef = (id: string) => ({ id, service: 's', namespace: 'default', kind: 'sidecar' as const, inboundPort: 15006, outboundPort: 15001, appPort: 80, appAddress: '127.0.0.1', bindAddress: '0.0.0.0' });
  for (let i = 0; i < GROUPS; i++) controller.ensureGroup(proxyRef(`p${i}`), `g${i}`);
  log.length = 0;
  events.length = 0;
  const translated = (r: number) => log.filter((l) => l.startsWith(`proxy ${r} `)).length;
  return {
    controller,
    cache,
    log,
    events,
    proxyRef,
    translated,
    /** Commits revision r (the source's model moves to it) and reports it. */
    commit(r: number, kind: 'config' | 'instances' = 'config') {
      revision = r;
      listener?.({ kind, revision: r, committedAt: Date.now(), ...(kind === 'instances' ? { services: ['default/rev2'] } : {}) });
    },
    /** Yields (setImmediate) until some but not all groups of revision r are translated; fails if it never sees that. */
    async midApply(r: number) {
      for (let turns = 0; turns < 10_000; turns++) {
        const n = translated(r);
        if (n > 0 && n < GROUPS) return n;
        if (n >= GROUPS) break;
        await new Promise((resolve) => setImmediate(resolve));
      }
      assert.fail(`the event loop never got a turn while revision ${r} was being applied (${translated(r)} of ${GROUPS} groups translated)`);
    },
    groupRevisions() {
      return new Set(cache.groups().map((g) => cache.group(g)!.stamp.revision));
    },
    clusterOfGroup(g: string) {
      return [...(cache.group(g)?.types.get(TypeUrl.cluster)?.resources.keys() ?? [])][0];
    },
  };
}

const until = async (cond: () => boolean, ms = 10_000) => {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) assert.fail('timed out');
    await new Promise((r) => setTimeout(r, 5));
  }
};

test('a config change to many groups gives the event loop turns; the groups are published together, after their endpoints', async () => {
  const s = setup();
  let timerRanMidApply = false;
  const ticker = setInterval(() => {
    const n = s.translated(2);
    if (n > 0 && n < GROUPS) timerRanMidApply = true;
  }, 1);
  try {
    s.commit(2);
    await s.midApply(2);
    assert.deepEqual(s.groupRevisions(), new Set([1]), 'no group is published before every group is translated');
    await until(() => s.groupRevisions().has(2));
  } finally {
    clearInterval(ticker);
    s.controller.stop();
  }
  assert.ok(timerRanMidApply, 'a timer callback ran while the apply was in progress');
  assert.deepEqual(s.groupRevisions(), new Set([2]), 'every group published');
  for (let i = 0; i < GROUPS; i++) assert.equal(s.clusterOfGroup(`g${i}`), clusterOf(2));
  // make before break: the new cluster's CLA is in the cache before the first group naming it
  const firstGroup = s.events.findIndex((e) => e.kind === 'group');
  const endpoints = s.events.findIndex((e) => e.kind === 'endpoints' && e.names.has(clusterOf(2)));
  assert.ok(endpoints >= 0 && endpoints < firstGroup, 'endpoints published before the groups');
  // and the old one goes after them
  const dropped = s.events.findIndex((e) => e.kind === 'endpoints' && e.names.has(clusterOf(1)));
  assert.ok(dropped > s.events.findLastIndex((e) => e.kind === 'group'), 'the unreferenced CLA is dropped after the groups publish');
  assert.equal(s.cache.endpoint(clusterOf(1)), undefined);
  s.controller.stop();
});

test('flush() in the middle of a sliced apply finishes it, and applies what is pending, before it returns', async () => {
  const s = setup();
  s.commit(2);
  await s.midApply(2);
  s.commit(3); // pending behind the apply
  s.controller.flush();
  assert.equal(s.translated(2), GROUPS, 'the apply in progress was finished');
  assert.deepEqual(s.groupRevisions(), new Set([3]), 'and the pending change applied, synchronously');
  for (let i = 0; i < GROUPS; i++) assert.equal(s.clusterOfGroup(`g${i}`), clusterOf(3));
  assert.ok(s.cache.endpoint(clusterOf(3)));
  const calls = s.log.length;
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(s.log.length, calls, 'nothing left running after flush');
  s.controller.stop();
});

test('a group dropped during a sliced apply is not brought back by it; one added during it gets the current config', async () => {
  const s = setup();
  s.commit(2);
  const done = await s.midApply(2);
  // one already translated (staged) and one not yet
  s.controller.dropGroup('g0');
  s.controller.dropGroup(`g${GROUPS - 1}`);
  assert.equal(s.cache.group('g0'), undefined);
  s.controller.ensureGroup(s.proxyRef('late'), 'late');
  assert.equal(s.clusterOfGroup('late'), clusterOf(2), 'a group added mid-apply is translated at once, from the model in use');
  assert.ok(s.cache.endpoint(clusterOf(2)), 'with its endpoints');
  await until(() => s.translated(2) >= GROUPS - 1 && s.groupRevisions().size === 1);
  assert.equal(s.cache.group('g0'), undefined, 'a staged group dropped mid-apply is not resurrected');
  assert.equal(s.cache.group(`g${GROUPS - 1}`), undefined, 'nor one dropped before its turn');
  assert.ok(!s.log.includes(`proxy 2 g${GROUPS - 1}`), 'which is not translated either');
  assert.equal(s.log.filter((l) => l === 'proxy 2 late').length, 1, 'the added group is not translated twice');
  assert.equal(s.cache.groups().length, GROUPS - 1, `${done} were translated when the groups changed`);
  assert.equal(s.clusterOfGroup('late'), clusterOf(2));
  s.controller.stop();
});

test('changes during a sliced apply are applied after it, against the newest model; every group converges to it', async () => {
  const s = setup();
  s.commit(2);
  await s.midApply(2);
  s.commit(3, 'instances'); // EDS only
  s.commit(4); // and a config change: the model in the source moves on mid-apply
  s.commit(5);
  await until(() => s.groupRevisions().size === 1 && s.groupRevisions().has(5));
  // revision 2 is applied against one model: every one of its groups saw revision 2, none a later one
  assert.equal(s.translated(2), GROUPS);
  const firstLater = s.log.findIndex((l) => !l.startsWith('proxy 2 '));
  assert.equal(firstLater, GROUPS, 'nothing of the later changes ran before the apply in progress had translated every group');
  assert.equal(s.translated(3) + s.translated(4), 0, 'the changes that waited were coalesced into one apply of the newest model');
  assert.equal(s.translated(5), GROUPS);
  // the apply of revision 2 published before the next began
  const published2 = s.events.findLastIndex((e) => e.kind === 'group' && e.stamp.revision === 2);
  const published5 = s.events.findIndex((e) => e.kind === 'group' && e.stamp.revision === 5);
  assert.ok(published2 < published5);
  for (let i = 0; i < GROUPS; i++) assert.equal(s.clusterOfGroup(`g${i}`), clusterOf(5));
  assert.ok(s.cache.endpoint(clusterOf(5)));
  assert.equal(s.cache.endpoint(clusterOf(2)), undefined);
  s.controller.stop();
});

test('an instance change during a sliced apply waits for it', async () => {
  const s = setup();
  s.commit(2);
  await s.midApply(2);
  s.commit(3, 'instances');
  await until(() => s.log.includes('endpoints 3'));
  const eds = s.log.indexOf('endpoints 3');
  assert.ok(s.log.slice(0, eds).filter((l) => l.startsWith('proxy 2 ')).length === GROUPS, 'the EDS push came after every group was translated');
  const lastGroup2 = s.events.findLastIndex((e) => e.kind === 'group' && e.stamp.revision === 2);
  assert.ok(lastGroup2 >= 0, 'and after the groups were published');
  s.controller.stop();
});

test('stop() in the middle of a sliced apply leaves nothing running', async () => {
  const s = setup();
  s.commit(2);
  await s.midApply(2);
  s.controller.stop();
  const calls = s.log.length;
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(s.log.length, calls, 'no slice ran after stop');
  assert.deepEqual(s.groupRevisions(), new Set([1]), 'and nothing half-applied was published');
});

test('a translator that throws mid-apply abandons that apply without holding back the next change', async () => {
  const s = setup({ throwAt: `2 g${GROUPS - 1}` });
  s.commit(2);
  await s.midApply(2);
  assert.throws(() => s.controller.flush(), /translator bug/);
  assert.deepEqual(s.groupRevisions(), new Set([1]), 'nothing of the failed apply was published');
  s.commit(3);
  await until(() => s.groupRevisions().has(3), 5000);
  assert.deepEqual(s.groupRevisions(), new Set([3]), 'the next change is applied, when its window ends');
  assert.equal(s.translated(3), GROUPS);
  s.controller.stop();
});
