// Make before break for extension configs (ECDS): a filter config the proxy
// holds is removed only once the listener that named it has been replaced and
// ACKed; before that, Envoy would answer through the old listener with 500
// (MissingConfigFilter, "Missing config for filter").
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { ResourceInput } from '../../control/xds/cache.ts';
import { TypeUrl } from '../../control/xds/discovery.ts';
import { DeltaClient, testNode } from './ads-client.ts';
import { cla, listener, meshResources } from './fixtures.ts';
import type { Harness } from './harness.ts';
import { deltaBarrier, groupOf, stamp, startServer } from './harness.ts';

let h: Harness;
before(async () => {
  h = await startServer();
});
after(() => h.close());

const FILTER = 'weft.test.filter';
const ECDS: ResourceInput = { name: FILTER, value: { name: FILTER, typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router' } } };

/** The outbound listener with its HCM's filters: the ECDS filter (when `withFilter`), then the router. */
function resources(withFilter: boolean): Record<string, ResourceInput[]> {
  const mesh = meshResources(['x-a']);
  const l = listener('outbound', 'outbound');
  const hcm = (l.value as { filter_chains: { filters: { typed_config: Record<string, unknown> }[] }[] }).filter_chains[0]!.filters[0]!.typed_config;
  hcm.http_filters = [
    ...(withFilter ? [{ name: FILTER, config_discovery: { config_source: { ads: {} }, type_urls: ['type.googleapis.com/envoy.extensions.filters.http.router.v3.Router'] } }] : []),
    { name: 'envoy.filters.http.router', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router' } },
  ];
  mesh[TypeUrl.listener] = [l];
  if (withFilter) mesh[TypeUrl.extensionConfig] = [ECDS];
  return mesh;
}

test('Delta: a removed extension config stays until the listener that dropped it is ACKed', async () => {
  const node = testNode('ecds-mbb', 'svc-ecds-mbb');
  const group = groupOf(node);
  h.cache.setEndpoints(stamp(), [cla('x-a', [1])]);
  h.cache.setGroup(group, { stamp: stamp(), resources: resources(true), endpointNames: ['x-a'] });
  const client = new DeltaClient(h.port, node);
  try {
    client.subscribe(TypeUrl.listener);
    client.ack(await client.next());
    client.subscribe(TypeUrl.extensionConfig, [FILTER]);
    const ecds = await client.next();
    assert.deepEqual(ecds.resources.map((r) => r.name), [FILTER]);
    client.ack(ecds);

    h.cache.setGroup(group, { stamp: stamp(), resources: resources(false), endpointNames: ['x-a'] });
    const lds = await client.next();
    assert.equal(lds.typeUrl, TypeUrl.listener, 'the listener change comes first; the filter config it dropped is still served');
    assert.deepEqual(await deltaBarrier(client), [], 'no ECDS removal before the listener change is ACKed');
    client.ack(lds);
    const removal = await client.next();
    assert.equal(removal.typeUrl, TypeUrl.extensionConfig);
    assert.deepEqual(removal.removed, [FILTER]);
  } finally {
    client.close();
  }
});
