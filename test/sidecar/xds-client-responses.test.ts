// The weft sidecar's xDS client against an ADS server that is not weft's,
// in process: responses Envoy's xDS mux refuses whole are NACKed for their
// nonce with Envoy's message and nothing of them is applied (a name twice, a
// name both updated and removed, a resource of another type); in SotW a
// cluster named twice is taken once and the response NACKed, as Envoy's CDS does.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { encodeResource } from '../../control/envoy/index.ts';
import { DataPlane } from '../../sidecar/dataplane.ts';
import { SidecarStats } from '../../sidecar/stats.ts';
import { XdsClient } from '../../sidecar/xds-client.ts';
import { cla, cluster } from '../xds/fixtures.ts';
import { fakeAds, type SeenRequest as Seen } from './fake-ads.ts';

const CDS = 'type.googleapis.com/envoy.config.cluster.v3.Cluster';
const LDS = 'type.googleapis.com/envoy.config.listener.v3.Listener';
const EDS = 'type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment';

function clusterBytes(name: string): Uint8Array {
  const r = encodeResource(CDS, cluster(name).value);
  if ('errors' in r) throw new Error(JSON.stringify(r.errors));
  return r.bytes;
}

function claBytes(name: string): Uint8Array {
  const r = encodeResource(EDS, cla(name, [1]).value);
  if ('errors' in r) throw new Error(JSON.stringify(r.errors));
  return r.bytes;
}

async function answerTo(sotw: boolean, response: { nonce: string; [field: string]: unknown }) {
  // Answered at the first CDS request.
  const ads = await fakeAds(sotw, (m) => (m.type_url === CDS ? response : undefined));
  const dataPlane = new DataPlane(new SidecarStats());
  const client = new XdsClient({ server: `127.0.0.1:${ads.port}`, node: { id: 'odd-1', cluster: 'odd', metadata: {} }, dataPlane, sotw });
  try {
    client.start();
    const deadline = Date.now() + 15_000;
    let answer: Seen | undefined;
    while (!(answer = ads.seen.find((m) => m.response_nonce === response.nonce))) {
      if (Date.now() > deadline) throw new Error(`no answer to ${response.nonce}: ${JSON.stringify(ads.seen)}`);
      await new Promise((r) => setTimeout(r, 10));
    }
    return { answer, clusters: [...dataPlane.versions('cluster').keys()].sort(), endpoints: [...dataPlane.versions('endpoint').keys()].sort() };
  } finally {
    client.close();
    ads.close();
    await dataPlane.close();
  }
}

test('Delta: a response naming a cluster twice is NACKed whole, as Envoy does, and neither is applied', async () => {
  const { answer, clusters } = await answerTo(false, {
    system_version_info: '1',
    type_url: CDS,
    nonce: 'n-dup',
    resources: [
      { name: 'a', version: '1', resource: { type_url: CDS, value: clusterBytes('a') } },
      { name: 'b', version: '1', resource: { type_url: CDS, value: clusterBytes('b') } },
      { name: 'a', version: '2', resource: { type_url: CDS, value: clusterBytes('a') } },
    ],
  });
  assert.equal(answer.type_url, CDS);
  assert.equal(answer.error_detail?.message, 'duplicate name a found among added/updated resources');
  assert.deepEqual(clusters, []);
});

test('Delta: a name both updated and removed in one response is NACKed whole', async () => {
  const { answer, clusters } = await answerTo(false, {
    system_version_info: '1',
    type_url: CDS,
    nonce: 'n-both',
    resources: [{ name: 'a', version: '1', resource: { type_url: CDS, value: clusterBytes('a') } }],
    removed_resources: ['a'],
  });
  assert.equal(answer.error_detail?.message, 'duplicate name a found in the union of added+removed resources');
  assert.deepEqual(clusters, []);
});

test('Delta: a resource of another type than the response is NACKed whole, naming both types', async () => {
  const { answer, clusters } = await answerTo(false, {
    system_version_info: '1',
    type_url: CDS,
    nonce: 'n-type',
    resources: [
      { name: 'a', version: '1', resource: { type_url: CDS, value: clusterBytes('a') } },
      { name: 'b', version: '1', resource: { type_url: LDS, value: clusterBytes('b') } },
    ],
  });
  assert.equal(answer.error_detail?.message, `type URL ${LDS} embedded in an individual Any does not match the message-wide type URL ${CDS} in DeltaDiscoveryResponse`);
  assert.deepEqual(clusters, []);
});

test('SotW: a cluster named twice is taken once and the response NACKed with "duplicate cluster", keeping the last accepted version', async () => {
  const { answer, clusters } = await answerTo(true, {
    version_info: 'v1',
    type_url: CDS,
    nonce: 'n-dup',
    resources: [
      { type_url: CDS, value: clusterBytes('a') },
      { type_url: CDS, value: clusterBytes('a') },
    ],
  });
  assert.equal(answer.error_detail?.message, 'cluster a: duplicate cluster a found');
  assert.equal(answer.version_info ?? '', '');
  assert.deepEqual(clusters, ['a']);
});

test('SotW: a resource of another type than the response is NACKed whole', async () => {
  const { answer, clusters } = await answerTo(true, {
    version_info: 'v1',
    type_url: CDS,
    nonce: 'n-type',
    resources: [
      { type_url: CDS, value: clusterBytes('a') },
      { type_url: LDS, value: clusterBytes('b') },
    ],
  });
  assert.equal(answer.error_detail?.message, `${LDS} does not match the message-wide type URL ${CDS} in DiscoveryResponse`);
  assert.deepEqual(clusters, []);
});

for (const sotw of [false, true]) {
  test(`${sotw ? 'SotW' : 'Delta'}: endpoints the sidecar did not ask for are ignored, not applied, and the response ACKed`, async () => {
    const resources = sotw ? [{ type_url: EDS, value: claBytes('ghost') }] : [{ name: 'ghost', version: '1', resource: { type_url: EDS, value: claBytes('ghost') } }];
    const { answer, endpoints } = await answerTo(sotw, sotw ? { version_info: 'v1', type_url: EDS, nonce: 'n-ghost', resources } : { system_version_info: '1', type_url: EDS, nonce: 'n-ghost', resources });
    assert.equal(answer.type_url, EDS);
    assert.equal(answer.error_detail, undefined);
    assert.deepEqual(endpoints, []);
  });
}
