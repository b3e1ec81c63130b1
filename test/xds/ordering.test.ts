// Make before break and per-cluster endpoints over a real socket: CDS before
// EDS before LDS before RDS; removed clusters outlive the routes that used
// them; one instance change pushes one cluster's EDS to the proxies that
// subscribed to it and nothing else; proxies see only their group's scope.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { TypeUrl } from '../../control/xds/discovery.ts';
import { DeltaClient, SotwClient, testNode } from './ads-client.ts';
import type { SotwReply } from './ads-client.ts';
import { cla, meshResources } from './fixtures.ts';
import type { Harness } from './harness.ts';
import { deltaBarrier, groupOf, sotwBarrier, stamp, startServer, waitFor } from './harness.ts';

let h: Harness;
before(async () => {
  h = await startServer();
});
after(() => h.close());

const ORDER = [TypeUrl.cluster, TypeUrl.endpoint, TypeUrl.extensionConfig, TypeUrl.listener, TypeUrl.route];
const ECDS = { name: 'weft.test.router', value: { name: 'weft.test.router', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router' } } };

test('initial sync and a change are pushed CDS, EDS, ECDS, LDS, RDS whatever the request order', async () => {
  const node = testNode('order', 'svc-order');
  const group = groupOf(node);
  const client = new SotwClient(h.port, node);
  try {
    // subscribe in reverse order before any snapshot exists
    client.request(TypeUrl.route, ['outbound']);
    client.request(TypeUrl.listener);
    client.request(TypeUrl.extensionConfig, [ECDS.name]);
    client.request(TypeUrl.endpoint, ['o-a']);
    client.request(TypeUrl.cluster);
    await waitFor(() => h.server.stream('order')?.isSubscribed(TypeUrl.cluster) === true);
    h.cache.setEndpoints(stamp(), [cla('o-a', [1]), cla('o-b', [2])]);
    h.cache.setGroup(group, { stamp: stamp(), resources: { ...meshResources(['o-a']), [TypeUrl.extensionConfig]: [ECDS] }, endpointNames: ['o-a', 'o-b'] });
    const initial = [];
    const ackOf = (r: SotwReply) => client.ack(r, r.typeUrl === TypeUrl.endpoint ? ['o-a'] : r.typeUrl === TypeUrl.route ? ['outbound'] : r.typeUrl === TypeUrl.extensionConfig ? [ECDS.name] : []);
    // LDS and RDS wait for the answer to the CDS response that added the clusters (warmed by then)
    initial.push(await client.next());
    ackOf(initial[0]!);
    for (let i = 1; i < ORDER.length; i++) initial.push(await client.next());
    assert.deepEqual(initial.map((r) => r.typeUrl), ORDER);
    for (const r of initial.slice(1)) ackOf(r);

    // a change touching every type: new cluster o-b, listener and routes
    const resources = { ...meshResources(['o-a', 'o-b'], 'outbound-v2'), [TypeUrl.extensionConfig]: [ECDS] };
    h.cache.setGroup(group, { stamp: stamp(), resources, endpointNames: ['o-a', 'o-b'] });
    const cds = await client.next();
    assert.equal(cds.typeUrl, TypeUrl.cluster);
    client.ack(cds);
    // warming: the proxy asks for the new cluster's endpoints
    client.request(TypeUrl.endpoint, ['o-a', 'o-b'], initial[1]);
    const rest = await client.collectUntil((r) => r.typeUrl === TypeUrl.route);
    const types = rest.map((r) => r.typeUrl);
    assert.ok(types.indexOf(TypeUrl.listener) >= 0 && types.indexOf(TypeUrl.listener) < types.indexOf(TypeUrl.route), `LDS before RDS: ${types.join(' ')}`);
  } finally {
    client.close();
  }
});

test('a removed cluster stays in CDS until the route configuration that dropped it is ACKed', async () => {
  const node = testNode('mbb', 'svc-mbb');
  const group = groupOf(node);
  h.cache.setEndpoints(stamp(), [cla('m-a', [1]), cla('m-b', [2])]);
  h.cache.setGroup(group, { stamp: stamp(), resources: meshResources(['m-a', 'm-b']), endpointNames: ['m-a', 'm-b'] });
  const client = new DeltaClient(h.port, node);
  try {
    client.subscribe(TypeUrl.cluster);
    client.subscribe(TypeUrl.listener);
    client.subscribe(TypeUrl.route, ['outbound']);
    for (let i = 0; i < 3; i++) client.ack(await client.next());

    h.cache.setGroup(group, { stamp: stamp(), resources: meshResources(['m-a']), endpointNames: ['m-a'] });
    const rds = await client.next();
    assert.equal(rds.typeUrl, TypeUrl.route, 'the route change comes first; the cluster it dropped is still served');
    const meanwhile = await deltaBarrier(client);
    assert.deepEqual(meanwhile.map((r) => r.typeUrl), [], 'no CDS removal before the route change is ACKed');
    client.ack(rds);
    const cds = await client.next();
    assert.equal(cds.typeUrl, TypeUrl.cluster);
    assert.deepEqual(cds.removed, ['m-b']);
  } finally {
    client.close();
  }
});

test('one endpoint change pushes exactly that cluster\'s EDS, only to proxies subscribed to it', async () => {
  const clusters = ['e-a', 'e-b', 'e-c'];
  h.cache.setEndpoints(stamp(), clusters.map((c, i) => cla(c, [3000 + i])));
  const sotwNode = testNode('eds-sotw', 'svc-eds');
  const deltaNode = testNode('eds-delta', 'svc-eds');
  const otherNode = testNode('eds-other', 'svc-eds-other');
  for (const n of [sotwNode, otherNode]) h.cache.setGroup(groupOf(n), { stamp: stamp(), resources: meshResources(n === otherNode ? ['e-c'] : clusters), endpointNames: n === otherNode ? ['e-c'] : clusters });
  const sotw = new SotwClient(h.port, sotwNode);
  const delta = new DeltaClient(h.port, deltaNode);
  const other = new DeltaClient(h.port, otherNode);
  try {
    for (const c of [sotw]) {
      c.request(TypeUrl.cluster);
      c.ack(await c.next());
      c.request(TypeUrl.endpoint, clusters);
      c.ack(await c.next(), clusters);
    }
    for (const c of [delta, other]) {
      c.subscribe(TypeUrl.cluster);
      c.ack(await c.next());
      c.subscribe(TypeUrl.endpoint, c === other ? ['e-c'] : clusters);
      c.ack(await c.next());
    }

    // the controller re-sends every CLA; only e-b differs
    h.cache.setEndpoints(stamp(), [cla('e-a', [3000]), cla('e-b', [3001, 3999]), cla('e-c', [3002])]);
    const sotwPush = await sotw.next();
    assert.equal(sotwPush.typeUrl, TypeUrl.endpoint);
    assert.deepEqual(sotwPush.names.sort(), clusters, 'SotW EDS carries what the proxy subscribed to');
    sotw.ack(sotwPush, clusters);
    const deltaPush = await delta.next();
    assert.equal(deltaPush.typeUrl, TypeUrl.endpoint);
    assert.deepEqual(deltaPush.resources.map((r) => r.name), ['e-b'], 'Delta sends the changed CLA only');
    delta.ack(deltaPush);

    assert.deepEqual(await sotwBarrier(sotw), [], 'nothing else is pushed (SotW)');
    assert.deepEqual(await deltaBarrier(delta), [], 'nothing else is pushed (Delta)');
    assert.deepEqual(await deltaBarrier(other), [], 'a proxy not subscribed to e-b gets nothing');
  } finally {
    sotw.close();
    delta.close();
    other.close();
  }
});

test('per-proxy scoping: a proxy gets only its group\'s clusters and endpoints, even when it asks for more', async () => {
  h.cache.setEndpoints(stamp(), [cla('p-mine', [1]), cla('p-theirs', [2])]);
  const node = testNode('scoped', 'svc-scoped');
  h.cache.setGroup(groupOf(node), { stamp: stamp(), resources: meshResources(['p-mine']), endpointNames: ['p-mine'] });
  const client = new DeltaClient(h.port, node);
  try {
    client.subscribe(TypeUrl.cluster);
    const cds = await client.next();
    assert.deepEqual(cds.resources.map((r) => r.name), ['p-mine']);
    client.ack(cds);
    client.subscribe(TypeUrl.endpoint, ['p-mine', 'p-theirs']);
    const eds = await client.next();
    assert.deepEqual(eds.resources.map((r) => r.name), ['p-mine']);
  } finally {
    client.close();
  }
});

// Make before break on the way in: a change that adds cluster c and a route to it. The route waits until the
// proxy has answered the CDS response that added c, which Envoy (and the weft sidecar) does only once c has
// warmed (its endpoints arrived); pushed earlier, requests the route sends to c fail 503 NC meanwhile.
test('SotW: a route naming a newly added cluster waits until the CDS response that added it is answered', async () => {
  const node = testNode('mbb-add-s', 'svc-mbb-add-s');
  const group = groupOf(node);
  h.cache.setEndpoints(stamp(), [cla('ma', [1]), cla('mc', [2])]);
  h.cache.setGroup(group, { stamp: stamp(), resources: meshResources(['ma']), endpointNames: ['ma'] });
  const client = new SotwClient(h.port, node);
  try {
    client.request(TypeUrl.cluster);
    const cds1 = await client.next();
    client.ack(cds1);
    client.request(TypeUrl.endpoint, ['ma']);
    const eds1 = await client.next();
    client.ack(eds1, ['ma']);
    client.request(TypeUrl.listener);
    client.ack(await client.next());
    client.request(TypeUrl.route, ['outbound']);
    const rds1 = await client.next();
    client.ack(rds1, ['outbound']);

    h.cache.setGroup(group, { stamp: stamp(), resources: meshResources(['ma', 'mc']), endpointNames: ['ma', 'mc'] });
    const cds2 = await client.next();
    assert.equal(cds2.typeUrl, TypeUrl.cluster);
    assert.deepEqual(cds2.names, ['ma', 'mc']);
    // warming, the proxy asks for mc's endpoints and gets them
    client.request(TypeUrl.endpoint, ['ma', 'mc'], eds1);
    const eds2 = await client.next();
    assert.equal(eds2.typeUrl, TypeUrl.endpoint);
    client.ack(eds2, ['ma', 'mc']);
    const meanwhile = await sotwBarrier(client);
    assert.deepEqual(meanwhile.map((r) => r.typeUrl), [], 'no route (or listener) while the CDS response adding mc is unanswered');
    client.ack(cds2);
    const rds2 = await client.next();
    assert.equal(rds2.typeUrl, TypeUrl.route, 'the route follows the answer');
    assert.deepEqual(rds2.names, ['outbound']);
  } finally {
    client.close();
  }
});

test('Delta: a route naming a newly added cluster waits until the CDS response that added it is answered; a NACK releases it too', async () => {
  const node = testNode('mbb-add-d', 'svc-mbb-add-d');
  const group = groupOf(node);
  h.cache.setEndpoints(stamp(), [cla('da', [1]), cla('dc', [2]), cla('dd', [3])]);
  h.cache.setGroup(group, { stamp: stamp(), resources: meshResources(['da']), endpointNames: ['da'] });
  const client = new DeltaClient(h.port, node);
  try {
    client.subscribe(TypeUrl.cluster);
    client.ack(await client.next());
    client.subscribe(TypeUrl.endpoint, ['da']);
    client.ack(await client.next());
    client.subscribe(TypeUrl.listener);
    client.ack(await client.next());
    client.subscribe(TypeUrl.route, ['outbound']);
    client.ack(await client.next());

    h.cache.setGroup(group, { stamp: stamp(), resources: meshResources(['da', 'dc']), endpointNames: ['da', 'dc'] });
    const cds = await client.next();
    assert.equal(cds.typeUrl, TypeUrl.cluster);
    assert.deepEqual(cds.resources.map((r) => r.name), ['dc']);
    client.subscribe(TypeUrl.endpoint, ['dc']);
    const eds = await client.next();
    assert.equal(eds.typeUrl, TypeUrl.endpoint);
    assert.deepEqual(eds.resources.map((r) => r.name), ['dc']);
    client.ack(eds);
    // a barrier that is not a route: ECDS answers a name it does not have with removed_resources
    client.subscribe(TypeUrl.extensionConfig, ['barrier-1']);
    const meanwhile = await client.collectUntil((r) => r.typeUrl === TypeUrl.extensionConfig);
    assert.deepEqual(meanwhile.slice(0, -1).map((r) => r.typeUrl), [], 'no route (or listener) while the CDS response adding dc is unanswered');
    client.ack(cds);
    const rds = await client.next();
    assert.equal(rds.typeUrl, TypeUrl.route);
    assert.deepEqual(rds.resources.map((r) => r.name), ['outbound']);
    client.ack(rds);

    // a NACK answers too: the proxy refused the new cluster, and the route (which the proxy will refuse or
    // send to 503 NC, as it would have anyway) is not held back
    h.cache.setGroup(group, { stamp: stamp(), resources: meshResources(['da', 'dc', 'dd']), endpointNames: ['da', 'dc', 'dd'] });
    const cds2 = await client.next();
    assert.deepEqual(cds2.resources.map((r) => r.name), ['dd']);
    client.nack(cds2, 'cluster dd: refused');
    const rds2 = await client.next();
    assert.equal(rds2.typeUrl, TypeUrl.route);
  } finally {
    client.close();
  }
});

test('a route waits for an unanswered CDS response that added clusters at most routesWaitMs (Envoy\'s initial_fetch_timeout, 15 s, by default)', async () => {
  const hh = await startServer({ routesWaitMs: 300 });
  const node = testNode('mbb-add-t', 'svc-mbb-add-t');
  const group = groupOf(node);
  hh.cache.setEndpoints(stamp(), [cla('ta', [1]), cla('tc', [2])]);
  hh.cache.setGroup(group, { stamp: stamp(), resources: meshResources(['ta']), endpointNames: ['ta'] });
  const client = new DeltaClient(hh.port, node);
  try {
    client.subscribe(TypeUrl.cluster);
    client.ack(await client.next());
    client.subscribe(TypeUrl.route, ['outbound']);
    client.ack(await client.next());
    hh.cache.setGroup(group, { stamp: stamp(), resources: meshResources(['ta', 'tc']), endpointNames: ['ta', 'tc'] });
    const cds = await client.next();
    assert.deepEqual(cds.resources.map((r) => r.name), ['tc']);
    // never answered: the route goes once the wait is over
    const started = Date.now();
    const rds = await client.next();
    assert.equal(rds.typeUrl, TypeUrl.route);
    assert.ok(Date.now() - started >= 250, `the route waited (${Date.now() - started} ms)`);
  } finally {
    client.close();
    await hh.close();
  }
});
