// A Delta removed_resources naming an EDS assignment the sidecar subscribed to
// and never got ends that cluster's warming, as Envoy's EDS cluster does on an
// empty update: the sidecar becomes ready (/ready, /init_dump) instead of
// waiting for good. An RDS removal does not (Envoy ignores it and keeps waiting).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { DataPlane } from '../../sidecar/dataplane.ts';
import { SidecarStats } from '../../sidecar/stats.ts';

type Json = Record<string, any>;
const golden = (file: string): { name: string; value: Json }[] => JSON.parse(readFileSync(new URL(`../golden/minimal-http/${file}`, import.meta.url), 'utf8'));
const resources = (file: string, listener = false) =>
  golden(file).map((r) => ({ name: r.name, version: 'v1', value: listener ? { ...r.value, address: { socket_address: { address: '127.0.0.1', port_value: 0 } } } : r.value }));

async function warming(): Promise<DataPlane> {
  const dp = new DataPlane(new SidecarStats(), { node: { id: 'web-1', cluster: 'web' } });
  assert.deepEqual(await dp.apply('cluster', resources('clusters.json'), [], true), { errors: [] });
  assert.deepEqual(await dp.apply('listener', resources('listeners.json', true), [], true), { errors: [] });
  assert.ok(dp.wanted('endpoint').length > 0, 'the golden case has EDS clusters');
  assert.equal(dp.ready(), false);
  return dp;
}

test('an EDS name the server says does not exist no longer holds the sidecar unready; one that arrives later is applied', async () => {
  const dp = await warming();
  try {
    assert.deepEqual(await dp.apply('route', resources('routes.json'), [], false), { errors: [] });
    const eds = dp.wanted('endpoint');
    const [missing, ...present] = eds;
    const endpoints = resources('endpoints.json');
    assert.deepEqual(await dp.apply('endpoint', endpoints.filter((e) => present.includes(e.name)), [], false), { errors: [] });
    assert.equal(dp.ready(), false);
    assert.deepEqual(dp.unready(), [`EDS cluster_load_assignment ${missing}`]);

    assert.deepEqual(await dp.apply('endpoint', [], [missing], false), { errors: [] });
    assert.deepEqual(dp.unready(), []);
    assert.equal(dp.ready(), true);

    const late = endpoints.find((e) => e.name === missing);
    if (late) {
      assert.deepEqual(await dp.apply('endpoint', [late], [], false), { errors: [] });
      assert.ok(dp.versions('endpoint').has(missing));
    }
  } finally {
    dp.close();
  }
});

test('a route configuration the server says does not exist keeps the sidecar waiting, as Envoy ignores a Delta RDS removal', async () => {
  const dp = await warming();
  try {
    assert.deepEqual(await dp.apply('endpoint', resources('endpoints.json'), [], false), { errors: [] });
    const [rds] = dp.wanted('route');
    assert.ok(rds);
    assert.deepEqual(await dp.apply('route', [], [rds], false), { errors: [] });
    assert.equal(dp.ready(), false);
    assert.deepEqual(dp.unready(), [`RDS route_configuration ${rds}`]);
  } finally {
    dp.close();
  }
});
