// A cluster whose TLS transport socket names SDS secrets the sidecar does not
// hold initializes only once they are there, as Envoy's: the transport socket
// factory registers its SdsApi as an init target of the cluster's own init
// manager (ClusterImplBase::init_manager_, initialized by onPreInitComplete,
// onInitDone once it is ready), so the cluster warms until the secrets come
// or their sds_config's initial_fetch_timeout passes. After start a new one
// is answered 503 NC meanwhile and a changed one's previous version serves;
// at start the sidecar is not ready and the cluster is under warming_clusters.

import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { loadOrCreateCa } from '../../control/ca/root.ts';
import { issueSvid, type Svid } from '../../control/ca/svid.ts';
import { DataPlane } from '../../sidecar/dataplane.ts';
import { SidecarStats } from '../../sidecar/stats.ts';
import { eventually, get } from './harness.ts';

type Json = Record<string, any>;
const closers: (() => Promise<void> | void)[] = [];
after(async () => {
  for (const c of closers.reverse()) await c();
});

const SECURE = 'outbound|9443||secure.default';

/** Certificates from a fresh mesh CA: `secure`'s for the TLS upstream, `web`'s for the sidecar. */
async function identities(): Promise<{ secure: Svid; web: Svid }> {
  const dir = mkdtempSync(join(tmpdir(), 'weft-sc-sds-'));
  closers.push(() => rmSync(dir, { recursive: true, force: true }));
  const ca = await loadOrCreateCa(dir, 'weft.local');
  const issue = (service: string) => issueSvid(ca, { trustDomain: 'weft.local', namespace: 'default', service, ttlMs: 600_000, now: new Date() });
  const [secure, web] = await Promise.all([issue('secure'), issue('web')]);
  return { secure, web };
}

/** An HTTPS app requiring a client certificate from the mesh CA, as a STRICT service's inbound side does. */
async function tlsApp(svid: Svid): Promise<{ port: number; hits: number }> {
  const state = { port: 0, hits: 0 };
  const server = https.createServer({ cert: svid.certificateChainPem, key: svid.privateKeyPem, ca: svid.trustBundlePem, requestCert: true, rejectUnauthorized: true }, (_req, res) => {
    state.hits++;
    res.end('secure');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  state.port = (server.address() as { port: number }).port;
  closers.push(() => new Promise<void>((r) => server.close(() => r())));
  closers.push(() => server.closeAllConnections());
  return state;
}

const golden = (file: string): { name: string; value: Json }[] => JSON.parse(readFileSync(new URL(`../golden/minimal-http/${file}`, import.meta.url), 'utf8'));
const resources = (file: string, version = 'v1', listener = false) =>
  golden(file).map((r) => ({ name: r.name, version, value: listener ? { ...r.value, address: { socket_address: { address: '127.0.0.1', port_value: 0 } } } : r.value }));

/** A STATIC cluster to the app at `port` over mutual TLS, its certificate and trust bundle from SDS. */
function secureCluster(version: string, port: number, secrets: { cert: string; root: string; timeout?: string }) {
  const sds = { ads: {}, initial_fetch_timeout: secrets.timeout ?? '0s', resource_api_version: 'V3' };
  return {
    name: SECURE,
    version,
    value: {
      name: SECURE,
      type: 'STATIC',
      connect_timeout: '1s',
      load_assignment: { cluster_name: SECURE, endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: port } } } }] }] },
      transport_socket: {
        name: 'envoy.transport_sockets.tls',
        typed_config: {
          '@type': 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext',
          common_tls_context: {
            tls_certificate_sds_secret_configs: [{ name: secrets.cert, sds_config: sds }],
            combined_validation_context: {
              default_validation_context: { match_typed_subject_alt_names: [{ san_type: 'URI', matcher: { exact: 'spiffe://weft.local/ns/default/sa/secure' } }] },
              validation_context_sds_secret_config: { name: secrets.root, sds_config: sds },
            },
          },
        },
      },
    },
  };
}

/** The golden outbound route configuration with a virtual host for `secure` first. */
function routesToSecure(version: string) {
  return resources('routes.json', version).map((r) => {
    if (r.name !== 'outbound') return r;
    const vhost = { name: 'secure', domains: ['secure'], routes: [{ match: { prefix: '/' }, route: { cluster: SECURE } }] };
    return { ...r, value: { ...r.value, virtual_hosts: [vhost, ...(r.value.virtual_hosts as Json[])] } };
  });
}

const certSecret = (name: string, svid: Svid, version = 'v1') => ({
  name,
  version,
  value: { name, tls_certificate: { certificate_chain: { inline_string: svid.certificateChainPem }, private_key: { inline_string: svid.privateKeyPem } } },
});
const rootSecret = (name: string, svid: Svid, version = 'v1') => ({ name, version, value: { name, validation_context: { trusted_ca: { inline_string: svid.trustBundlePem } } } });

const clustersDump = (dp: DataPlane) => dp.configDump({ id: 'web-1', cluster: 'web' }).configs.find((c) => String(c['@type']).endsWith('ClustersConfigDump')) as Json;
const names = (list: Json[]) => list.map((c) => c.cluster?.name as string);

async function readyDataPlane(): Promise<{ dp: DataPlane; stats: SidecarStats; port: number }> {
  const stats = new SidecarStats();
  const dp = new DataPlane(stats, { node: { id: 'web-1', cluster: 'web' } });
  closers.push(() => dp.close());
  assert.deepEqual(await dp.apply('cluster', resources('clusters.json'), [], true), { errors: [] });
  assert.deepEqual(await dp.apply('listener', resources('listeners.json', 'v1', true), [], true), { errors: [] });
  assert.deepEqual(await dp.apply('route', resources('routes.json'), [], false), { errors: [] });
  assert.deepEqual(await dp.apply('endpoint', resources('endpoints.json'), [], false), { errors: [] });
  assert.equal(dp.ready(), true);
  const port = dp.listenerPort('outbound');
  assert.ok(port);
  return { dp, stats, port };
}

test("a cluster added after start whose TLS secrets are not held warms until they come (503 NC meanwhile); a changed one's previous version serves until its new secret comes", { timeout: 30_000 }, async () => {
  const { secure, web } = await identities();
  const app = await tlsApp(secure);
  const { dp, stats, port } = await readyDataPlane();

  assert.deepEqual(await dp.apply('cluster', [...resources('clusters.json', 'v2'), secureCluster('v2', app.port, { cert: 'secure-cert', root: 'secure-root' })], [], true), { errors: [] });
  assert.equal(stats.warmingClusters.get(), 1);
  assert.equal(dp.clusters.get(SECURE), undefined, 'not routed to while it warms');
  assert.deepEqual(names(clustersDump(dp).dynamic_warming_clusters), [SECURE]);
  assert.ok(!names(clustersDump(dp).dynamic_active_clusters).includes(SECURE));
  assert.ok(dp.unready().includes('SDS secret secure-cert'), dp.unready().join('\n'));
  assert.deepEqual(await dp.apply('route', routesToSecure('v2'), [], false), { errors: [] });
  const warming = await get(port, 'secure');
  assert.equal(warming.status, 503);
  assert.equal(warming.body, '', "Envoy's cluster_not_found (NC): no connection attempted without a certificate");
  assert.equal(app.hits, 0);
  assert.equal(dp.ready(), true, 'warming after start leaves the sidecar ready');

  // One secret is not enough: the cluster's init manager waits for both targets.
  assert.deepEqual(await dp.apply('secret', [rootSecret('secure-root', web)], [], false), { errors: [] });
  assert.equal(stats.warmingClusters.get(), 1);
  assert.deepEqual(await dp.apply('secret', [certSecret('secure-cert', web)], [], false), { errors: [] });
  assert.equal(stats.warmingClusters.get(), 0);
  assert.deepEqual(clustersDump(dp).dynamic_warming_clusters, []);
  const served = await get(port, 'secure');
  assert.equal(served.status, 200, served.body);
  assert.equal(served.body, 'secure');

  // A change naming a certificate not held: the version before serves (over mTLS) until it comes.
  assert.deepEqual(await dp.apply('cluster', [...resources('clusters.json', 'v3'), secureCluster('v3', app.port, { cert: 'secure-cert-2', root: 'secure-root' })], [], true), { errors: [] });
  assert.equal(stats.warmingClusters.get(), 1);
  assert.deepEqual(clustersDump(dp).dynamic_warming_clusters.map((c: Json) => [c.cluster.name, c.version_info]), [[SECURE, 'v3']]);
  assert.equal(clustersDump(dp).dynamic_active_clusters.find((c: Json) => c.cluster.name === SECURE).version_info, 'v2');
  const before = dp.clusters.get(SECURE)!;
  const meanwhile = await get(port, 'secure');
  assert.equal(meanwhile.status, 200, 'the previous version serves');
  assert.equal(dp.clusters.get(SECURE), before);
  assert.deepEqual(await dp.apply('secret', [certSecret('secure-cert-2', web)], [], false), { errors: [] });
  assert.equal(stats.warmingClusters.get(), 0);
  assert.notEqual(dp.clusters.get(SECURE), before, 'the new version took its place');
  assert.equal(dp.clusters.get(SECURE)!.config.tls?.certificate, 'secure-cert-2');
  assert.equal(clustersDump(dp).dynamic_active_clusters.find((c: Json) => c.cluster.name === SECURE).version_info, 'v3');
  assert.equal((await get(port, 'secure')).status, 200);
});

test("a warming cluster whose secret does not come by its sds_config's initial_fetch_timeout becomes active without it: its connections fail (503, not NC)", { timeout: 30_000 }, async () => {
  const { secure } = await identities();
  const app = await tlsApp(secure);
  const { dp, stats, port } = await readyDataPlane();
  assert.deepEqual(await dp.apply('cluster', [...resources('clusters.json', 'v2'), secureCluster('v2', app.port, { cert: 'never', root: 'never-root', timeout: '0.2s' })], [], true), { errors: [] });
  assert.deepEqual(await dp.apply('route', routesToSecure('v2'), [], false), { errors: [] });
  assert.equal(stats.warmingClusters.get(), 1);
  assert.equal((await get(port, 'secure')).body, '');
  await eventually(() => stats.warmingClusters.get() === 0, 5000, 'warming ended by the secrets\' initial_fetch_timeout');
  assert.ok(dp.clusters.get(SECURE));
  const failed = await get(port, 'secure');
  assert.equal(failed.status, 503);
  assert.notEqual(failed.body, '', 'a connection failure (no certificate to present), not cluster_not_found');
  assert.equal(app.hits, 0);

  // Bad input names its field and changes nothing.
  const bad = secureCluster('v3', app.port, { cert: 'other', root: 'never-root', timeout: 'soon' });
  const result = await dp.apply('cluster', [...resources('clusters.json', 'v3'), bad], [], true);
  assert.match(result.errors.join('\n'), /tls_certificate_sds_secret_configs\[0\]\.sds_config\.initial_fetch_timeout/);
  assert.equal(stats.warmingClusters.get(), 0);
  assert.equal(dp.clusters.get(SECURE)!.config.tls?.certificate, 'never');
});

test('at start a TLS cluster is under warming_clusters, not active, until its secrets came; the sidecar is ready then', { timeout: 30_000 }, async () => {
  const { secure, web } = await identities();
  const app = await tlsApp(secure);
  const stats = new SidecarStats();
  const dp = new DataPlane(stats, { node: { id: 'web-1', cluster: 'web' } });
  closers.push(() => dp.close());
  // The bootstrap's xds_cluster is active from the start, as Envoy's static clusters.
  assert.equal(stats.activeClusters.get(), 1);
  assert.deepEqual(await dp.apply('cluster', [...resources('clusters.json'), secureCluster('v1', app.port, { cert: 'secure-cert', root: 'secure-root' })], [], true), { errors: [] });
  assert.deepEqual(await dp.apply('listener', resources('listeners.json', 'v1', true), [], true), { errors: [] });
  assert.deepEqual(await dp.apply('route', routesToSecure('v1'), [], false), { errors: [] });
  assert.deepEqual(await dp.apply('endpoint', resources('endpoints.json'), [], false), { errors: [] });
  assert.equal(dp.ready(), false);
  assert.equal(stats.warmingClusters.get(), 1);
  const cds = golden('clusters.json').length;
  assert.equal(stats.activeClusters.get(), 1 + cds);
  assert.deepEqual(names(clustersDump(dp).dynamic_warming_clusters), [SECURE]);
  assert.equal(names(clustersDump(dp).dynamic_active_clusters).length, cds);
  assert.deepEqual(dp.unready(), ['SDS secret secure-cert', 'SDS secret secure-root']);

  assert.deepEqual(await dp.apply('secret', [certSecret('secure-cert', web), rootSecret('secure-root', web)], [], false), { errors: [] });
  assert.equal(dp.ready(), true);
  assert.equal(stats.warmingClusters.get(), 0);
  assert.equal(stats.activeClusters.get(), 2 + cds);
  assert.deepEqual(clustersDump(dp).dynamic_warming_clusters, []);
  const port = dp.listenerPort('outbound')!;
  assert.equal((await get(port, 'secure')).status, 200);
});
