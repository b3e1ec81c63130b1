// initial_fetch_timeout bounds every wait for a resource, as in Envoy, where
// each subscription (RDS, ECDS, SDS, EDS) starts its timer when it starts and
// on timeout marks its init target ready (RdsRouteConfigSubscription,
// FilterConfigSubscription, SdsApi, EdsClusterImpl onConfigUpdateFailed): at
// start the sidecar becomes ready without what did not come; after, a
// listener warming for a filter config or secret is bound without it. The
// timer is the subscription's, shared by everything that names the resource:
// once it passed, a listener that names the resource later does not wait anew.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { test } from 'node:test';
import { DataPlane } from '../../sidecar/dataplane.ts';
import { SidecarStats } from '../../sidecar/stats.ts';
import { eventually, get } from './harness.ts';

type Json = Record<string, any>;
const golden = (file: string): { name: string; value: Json }[] => JSON.parse(readFileSync(new URL(`../golden/minimal-http/${file}`, import.meta.url), 'utf8'));
const resources = (file: string, version = 'v1', listener = false) =>
  golden(file).map((r) => ({ name: r.name, version, value: listener ? { ...r.value, address: { socket_address: { address: '127.0.0.1', port_value: 0 } } } : r.value }));

const source = (timeout: string) => ({ ads: {}, initial_fetch_timeout: timeout, resource_api_version: 'V3' });
const WASM = 'type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm';

/** The golden outbound listener as `name`: routes from `rds`, plus an ECDS filter `ecds` and mutual TLS with secrets `secrets`, each with its own config source's timeout. */
function listener(name: string, version: string, o: { rds?: [string, string]; ecds?: [string, string]; secrets?: [string, string, string] } = {}) {
  const l = resources('listeners.json', version, true).find((r) => r.name === 'outbound')!;
  const chain = (l.value as Json).filter_chains[0];
  const hcm = chain.filters[0].typed_config;
  const rds = o.rds ? { route_config_name: o.rds[0], config_source: source(o.rds[1]) } : hcm.rds;
  const ecds = o.ecds ? [{ name: o.ecds[0], config_discovery: { config_source: source(o.ecds[1]), type_urls: [WASM] } }] : [];
  const tls = o.secrets
    ? {
        transport_socket: {
          name: 'envoy.transport_sockets.tls',
          typed_config: {
            '@type': 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext',
            require_client_certificate: true,
            common_tls_context: {
              tls_certificate_sds_secret_configs: [{ name: o.secrets[0], sds_config: source(o.secrets[2]) }],
              validation_context_sds_secret_config: { name: o.secrets[1], sds_config: source(o.secrets[2]) },
            },
          },
        },
      }
    : {};
  const filters = [{ ...chain.filters[0], typed_config: { ...hcm, rds, http_filters: [...ecds, ...hcm.http_filters] } }];
  return { name, version, value: { ...(l.value as Json), name, filter_chains: [{ ...chain, filters, ...tls }] } };
}

test("at start, an ECDS filter config, SDS secrets or an EDS assignment that has not come by its config source's initial_fetch_timeout no longer holds the sidecar unready", { timeout: 30_000 }, async () => {
  const stats = new SidecarStats();
  const dp = new DataPlane(stats, { node: { id: 'web-1', cluster: 'web' } });
  try {
    // The web cluster's assignment never comes (its eds_config waits 50 ms); the others' do.
    const clusters = resources('clusters.json').map((r) =>
      r.name === 'outbound|8080||web.default' ? { ...r, value: { ...r.value, eds_cluster_config: { ...(r.value as Json).eds_cluster_config, eds_config: source('0.05s') } } } : r,
    );
    assert.deepEqual(await dp.apply('cluster', clusters, [], true), { errors: [] });
    const inbound = resources('listeners.json', 'v1', true).find((r) => r.name === 'inbound')!;
    const outbound = listener('outbound', 'v1', { ecds: ['weft.wasm.never', '0.05s'], secrets: ['cert-never', 'ca-never', '0.05s'] });
    assert.deepEqual(await dp.apply('listener', [inbound, outbound], [], true), { errors: [] });
    assert.deepEqual(await dp.apply('route', resources('routes.json'), [], false), { errors: [] });
    assert.deepEqual(await dp.apply('endpoint', resources('endpoints.json').filter((e) => e.name !== 'outbound|8080||web.default'), [], false), { errors: [] });
    // Whether or not the timers have passed by now: once they have, nothing is awaited and the sidecar is ready.
    await eventually(() => dp.ready(), 10_000, 'ready once the timeouts passed');
    assert.deepEqual(dp.unready(), []);
    assert.equal(dp.state(), 'LIVE');
    assert.deepEqual(dp.clusters.get('outbound|8080||web.default')!.hosts, []);
    assert.equal(stats.serverLive.get(), 1);
  } finally {
    await dp.close();
  }
});

async function started(): Promise<{ dp: DataPlane; stats: SidecarStats }> {
  const stats = new SidecarStats();
  const dp = new DataPlane(stats, { node: { id: 'web-1', cluster: 'web' } });
  assert.deepEqual(await dp.apply('cluster', resources('clusters.json'), [], true), { errors: [] });
  assert.deepEqual(await dp.apply('listener', resources('listeners.json', 'v1', true), [], true), { errors: [] });
  assert.deepEqual(await dp.apply('route', resources('routes.json'), [], false), { errors: [] });
  assert.deepEqual(await dp.apply('endpoint', resources('endpoints.json'), [], false), { errors: [] });
  assert.equal(dp.ready(), true);
  return { dp, stats };
}

test('after start, a listener warming for an ECDS filter config or SDS secrets is bound once their initial_fetch_timeout passed', { timeout: 30_000 }, async () => {
  const { dp, stats } = await started();
  try {
    const all = resources('listeners.json', 'v2', true);
    const filtered = listener('filtered', 'v2', { ecds: ['weft.wasm.later', '0.05s'] });
    const secure = listener('secure', 'v2', { secrets: ['cert-later', 'ca-later', '0.05s'] });
    assert.deepEqual(await dp.apply('listener', [...all, filtered, secure], [], true), { errors: [] });
    await eventually(() => stats.listenersWarming.get() === 0, 10_000, 'warming ended by initial_fetch_timeout');
    const port = dp.listenerPort('filtered');
    assert.ok(port, 'bound without its filter config');
    const securePort = dp.listenerPort('secure');
    assert.ok(securePort, 'bound without its secrets');
    // Bound without a certificate: a connection is closed at once and counted, as Envoy's NotReadySslSocket.
    const closed = await new Promise<boolean>((resolve) => {
      const socket = connect(securePort, '127.0.0.1');
      socket.on('error', () => resolve(true));
      socket.on('close', () => resolve(true));
      socket.setTimeout(5_000, () => {
        socket.destroy();
        resolve(false);
      });
    });
    assert.equal(closed, true, 'the connection was closed');
    const secureAddress = [...stats.registry.metrics().matchAll(/envoy_listener_server_ssl_socket_factory_downstream_context_secrets_not_ready\{envoy_listener_address="([^"]+)"\} 1/g)];
    assert.equal(secureAddress.length, 1, 'downstream_context_secrets_not_ready counted once');
    // Without its config (and no default), the filter answers as Envoy's missing filter config.
    const r = await get(port, 'web');
    assert.equal(r.status, 500);
    assert.equal(r.body, 'filter config not found: weft.wasm.later');
    assert.deepEqual(dp.unready(), []);
  } finally {
    await dp.close();
  }
});

test("the timeout is the subscription's: once it passed, a listener naming the same resource later is not held up again", { timeout: 30_000 }, async () => {
  const { dp, stats } = await started();
  try {
    const all = resources('listeners.json', 'v2', true);
    const first = listener('first', 'v2', { rds: ['never', '0.05s'] });
    assert.deepEqual(await dp.apply('listener', [...all, first], [], true), { errors: [] });
    await eventually(() => stats.listenersWarming.get() === 0, 10_000, 'the first listener bound once the timeout passed');
    // The same route configuration from the same config source: the same subscription, whose timer has passed.
    const second = listener('second', 'v3', { rds: ['never', '0.05s'] });
    assert.deepEqual(await dp.apply('listener', [...all, first, second], [], true), { errors: [] });
    assert.ok(dp.listenerPort('second'), 'bound at once');
    assert.equal(stats.listenersWarming.get(), 0);
    assert.equal((await get(dp.listenerPort('second')!, 'web')).status, 404, 'serving, without its routes: 404 NR');

    // Nothing names them any more: a later listener naming them subscribes afresh, and waits for its own timeout.
    assert.deepEqual(await dp.apply('listener', all, [], true), { errors: [] });
    const third = listener('third', 'v4', { rds: ['never', '60s'] });
    assert.deepEqual(await dp.apply('listener', [...all, third], [], true), { errors: [] });
    assert.equal(dp.listenerPort('third'), undefined);
    assert.deepEqual(dp.unready(), ['RDS route_configuration never']);
  } finally {
    await dp.close();
  }
});
