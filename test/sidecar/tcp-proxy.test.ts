// A tcp-only service (a database, say) is served by its sidecar's inbound
// tcp_proxy: bytes both ways, a client's half-close passed through so it
// still gets its answer, idle_timeout, a dead app closing the client's
// connection, and Envoy's tcp.<stat_prefix>.* and cluster stats.

import assert from 'node:assert/strict';
import net from 'node:net';
import { after, test } from 'node:test';
import { defaultTranslator } from '../../control/xds/index.ts';
import type { Translator } from '../../control/xds/index.ts';
import { TestMesh, admin, eventually, freePort, instance, metric, service, withTimeout } from './harness.ts';

const closers: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of closers.reverse()) await c();
});

/** The translator's output with each tcp_proxy's config extended by `extra`. */
function tcpProxyWith(extra: Record<string, unknown>): Translator {
  const base = defaultTranslator({ wasmBaseUrl: 'http://127.0.0.1:1', wasmClusterName: 'weft-control' });
  const patch = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(patch);
    if (v === null || typeof v !== 'object') return v;
    const o = Object.fromEntries(Object.entries(v).map(([k, x]) => [k, patch(x)]));
    return String(o['@type']).endsWith('tcp_proxy.v3.TcpProxy') ? { ...o, ...extra } : o;
  };
  return {
    translateEndpoints: (m, n) => base.translateEndpoints(m, n),
    translateProxy: (m, p) => {
      const out = base.translateProxy(m, p);
      return { ...out, listeners: out.listeners.map((l) => ({ ...l, value: patch(l.value) })) };
    },
  };
}

/** A line-protocol app: answers each chunk uppercased, and `bye` once the client has shut its write side. */
async function shoutingApp(): Promise<{ port: number; close: () => Promise<void> }> {
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    s.on('data', (d) => s.write(d.toString().toUpperCase()));
    s.on('end', () => s.end('bye'));
    s.on('error', () => undefined);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return { port: (server.address() as net.AddressInfo).port, close: () => new Promise((r) => server.close(() => r())) };
}

/** A tcp-only service "db" behind its sidecar; returns the sidecar and what to connect to. */
async function dbBehindSidecar(translator?: Translator, appPort?: number) {
  const mesh = await TestMesh.start({ translator });
  closers.push(() => mesh.close());
  const inboundPort = await freePort();
  const app = appPort === undefined ? await shoutingApp() : undefined;
  if (app) closers.push(app.close);
  const port = appPort ?? app!.port;
  mesh.model.update({ services: [service('db', 5432, { ports: [{ port: 5432, protocol: 'tcp' }] })], instances: [instance('db', inboundPort)], routes: [] });
  const sc = await mesh.sidecar('db', port, { inboundPort });
  // The inbound cluster is named for the app's port (inbound|<app port>||db.default).
  return { sc, inboundPort, cluster: { envoy_cluster_name: `inbound|${port}||db.default` } };
}

/** Everything the peer sends until it closes, and whether it closed (within `ms`). */
function readAll(socket: net.Socket, ms: number): Promise<{ data: string; closed: boolean }> {
  return new Promise((resolve) => {
    let data = '';
    const t = setTimeout(() => resolve({ data, closed: false }), ms);
    socket.on('data', (d) => (data += d.toString()));
    socket.on('error', () => undefined);
    socket.on('close', () => {
      clearTimeout(t);
      resolve({ data, closed: true });
    });
  });
}

test('bytes both ways through the inbound tcp_proxy; the client\'s half-close reaches the app, whose answer still comes back; counted as Envoy counts it', { timeout: 30_000 }, async () => {
  const { sc, inboundPort, cluster } = await dbBehindSidecar();
  const client = net.connect({ port: inboundPort, host: '127.0.0.1', allowHalfOpen: true });
  await new Promise((r) => client.once('connect', r));
  const got = readAll(client, 5000);
  client.write('select 1;');
  await eventually(() => client.bytesRead >= 9, 5000, 'the first answer');
  client.end();
  const r = await got;
  assert.equal(r.data, 'SELECT 1;bye', 'the answer after the half-close arrived');
  assert.ok(r.closed, 'and then the connection closed');
  const tcp = { envoy_tcp_prefix: 'inbound' };
  assert.equal(await metric(sc.adminPort, 'envoy_tcp_downstream_cx_total', tcp), 1);
  assert.equal(await metric(sc.adminPort, 'envoy_tcp_downstream_cx_tx_bytes_total', tcp), 'SELECT 1;bye'.length);
  assert.deepEqual([await metric(sc.adminPort, 'envoy_cluster_upstream_cx_total', cluster), await metric(sc.adminPort, 'envoy_cluster_upstream_cx_http1_total', cluster), await metric(sc.adminPort, 'envoy_cluster_upstream_cx_connect_ms_count', cluster)], [1, 0, 1]);
  await eventually(async () => (await metric(sc.adminPort, 'envoy_cluster_upstream_cx_destroy', cluster)) === 1, 5000, 'the upstream connection closed');
  assert.equal(await metric(sc.adminPort, 'envoy_cluster_upstream_cx_active', cluster), 0);
  assert.match((await admin(sc.adminPort, '/stats?filter=^tcp\\.')).body, /^tcp\.inbound\.downstream_cx_total: 1$/m);
});

test('idle_timeout: both connections close after it with no byte either way, counted as tcp.<prefix>.idle_timeout', { timeout: 30_000 }, async () => {
  const { sc, inboundPort } = await dbBehindSidecar(tcpProxyWith({ idle_timeout: '0.4s' }));
  const client = net.connect(inboundPort, '127.0.0.1');
  const got = readAll(client, 10_000);
  client.write('ping');
  const started = Date.now();
  const r = await got;
  assert.equal(r.data, 'PING');
  assert.ok(r.closed, 'closed, not held');
  assert.ok(Date.now() - started >= 300, `not before the idle timeout (${Date.now() - started} ms)`);
  assert.equal(await metric(sc.adminPort, 'envoy_tcp_idle_timeout', { envoy_tcp_prefix: 'inbound' }), 1);
});

test('an app that is not listening: the client\'s connection is closed, and the upstream connect failure counted', { timeout: 30_000 }, async () => {
  const deadPort = await freePort();
  const { sc, inboundPort, cluster } = await dbBehindSidecar(undefined, deadPort);
  const client = net.connect(inboundPort, '127.0.0.1');
  const r = await withTimeout(readAll(client, 10_000), 10_000, 'closed');
  assert.deepEqual(r, { data: '', closed: true });
  await eventually(async () => (await metric(sc.adminPort, 'envoy_cluster_upstream_cx_connect_fail', cluster)) === 1, 5000, 'the connect failure counted');
});
