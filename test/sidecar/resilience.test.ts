// Cluster resilience: outlier ejection and active health checks taking a
// killed instance out of rotation, and circuit breakers shedding load.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { TestMesh, eventually, get, instance, load, metric, policy, route, service, startApp } from './harness.ts';

/** The value of the admin /clusters line that starts with `prefix` (Envoy's `cluster::host::key::value`). */
function clusterLine(text: string, prefix: string): string | undefined {
  return text.split('\n').find((l) => l.startsWith(prefix))?.slice(prefix.length);
}

let mesh: TestMesh;
before(async () => {
  mesh = await TestMesh.start();
});
after(async () => {
  await mesh.close();
});

test('an instance killed mid-traffic is ejected by outlier detection; no request fails after the ejection', { timeout: 60_000 }, async () => {
  const a = await startApp('a');
  const b = await startApp('b');
  mesh.track(() => a.close());
  mesh.model.update({
    services: [service('od-caller', 8000), service('od', 7300)],
    instances: [instance('od', a.port), instance('od', b.port)],
    destinationPolicies: [policy('od', { outlierDetection: { consecutive5xx: 3, intervalMs: 1000, baseEjectionTimeMs: 30_000, maxEjectionPercent: 50 } })],
    routes: [],
  });
  const caller = await mesh.sidecar('od-caller', 8000);
  const before = await load(20, 2, () => get(caller.outboundPort, 'od'));
  assert.ok(before.every((r) => r.status === 200));
  await b.close();
  const labels = { envoy_cluster_name: 'outbound|7300||od.default' };
  // Traffic continues while b is dead; its connect failures count as 5xx until it is ejected.
  await eventually(async () => {
    await get(caller.outboundPort, 'od');
    return (await metric(caller.adminPort, 'envoy_cluster_outlier_detection_ejections_active', labels)) === 1;
  }, 10_000, 'b ejected');
  const afterEjection = await load(60, 4, () => get(caller.outboundPort, 'od'));
  assert.deepEqual(afterEjection.map((r) => r.status), Array(60).fill(200));
  assert.ok(afterEjection.every((r) => r.headers['x-app'] === 'a'));
  // What an operator checks first: admin /clusters, in Envoy's format.
  const cluster = labels.envoy_cluster_name;
  const text = (await get(caller.adminPort, 'admin', '/clusters')).body;
  const host = (port: number, key: string) => clusterLine(text, `${cluster}::127.0.0.1:${port}::${key}::`);
  assert.equal(host(b.port, 'health_flags'), '/failed_outlier_check', text);
  assert.equal(host(a.port, 'health_flags'), 'healthy');
  assert.ok(Number(host(a.port, 'rq_total')) >= 60, `a's rq_total ${host(a.port, 'rq_total')}`);
  assert.ok(Number(host(b.port, 'cx_connect_fail')) > 0, "b's connect failures");
  const json = JSON.parse((await get(caller.adminPort, 'admin', '/clusters?format=json')).body) as { cluster_statuses: { name: string; host_statuses: { address: { socket_address: { port_value: number } }; health_status: Record<string, unknown> }[] }[] };
  const hosts = json.cluster_statuses.find((c) => c.name === cluster)!.host_statuses;
  assert.deepEqual(hosts.find((h) => h.address.socket_address.port_value === b.port)!.health_status, { eds_health_status: 'HEALTHY', failed_outlier_check: true });
  assert.deepEqual(hosts.find((h) => h.address.socket_address.port_value === a.port)!.health_status, { eds_health_status: 'HEALTHY' });
});

test("a flaky instance among five is ejected by success rate (Envoy's default) under the mesh's default 10% limit", { timeout: 60_000 }, async () => {
  // e fails every other request: never two 5xx in a row, so consecutive_5xx never sees it; its success rate does.
  const apps = await Promise.all(['a', 'b', 'c', 'd', 'e'].map((name) => startApp(name, (_req, res, hit) => {
    res.statusCode = name === 'e' && hit % 2 === 0 ? 503 : 200;
    res.end(name);
  })));
  for (const app of apps) mesh.track(() => app.close());
  mesh.model.update({
    services: [service('sr-caller', 8000), service('sr', 7350)],
    instances: apps.map((app) => instance('sr', app.port)),
    // The defaults but for a shorter interval: 10% of five hosts is less than one, yet one may go (always_eject_one_host).
    destinationPolicies: [policy('sr', { outlierDetection: { consecutive5xx: 5, intervalMs: 2000, baseEjectionTimeMs: 30_000, maxEjectionPercent: 10 } })],
    routes: [],
  });
  const caller = await mesh.sidecar('sr-caller', 8000);
  const labels = { envoy_cluster_name: 'outbound|7350||sr.default' };
  // 100 requests per host within one interval (success_rate_request_volume), for five hosts (success_rate_minimum_hosts).
  await eventually(async () => {
    await load(1200, 10, () => get(caller.outboundPort, 'sr'));
    return (await metric(caller.adminPort, 'envoy_cluster_outlier_detection_ejections_enforced_success_rate', labels)) === 1;
  }, 40_000, 'e ejected for its success rate');
  assert.equal(await metric(caller.adminPort, 'envoy_cluster_outlier_detection_ejections_enforced_consecutive_5xx', labels), 0);
  assert.equal(await metric(caller.adminPort, 'envoy_cluster_outlier_detection_ejections_active', labels), 1);
  const afterEjection = await load(100, 4, () => get(caller.outboundPort, 'sr'));
  assert.deepEqual(afterEjection.map((r) => r.status), Array(100).fill(200));
  assert.ok(afterEjection.every((r) => r.body !== 'e'));
});

test('active health checks take a dead instance out before traffic finds it, and bring it back', { timeout: 60_000 }, async () => {
  let healthy = true;
  const handler = (name: string) => (req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse) => {
    if (req.url === '/healthz') {
      res.statusCode = name === 'b' && !healthy ? 503 : 200;
      return res.end();
    }
    res.end(name);
  };
  const a = await startApp('a', handler('a'));
  const b = await startApp('b', handler('b'));
  mesh.track(() => a.close());
  mesh.track(() => b.close());
  mesh.model.update({
    services: [service('hc-caller', 8000), service('hc', 7400)],
    instances: [instance('hc', a.port), instance('hc', b.port)],
    destinationPolicies: [policy('hc', { healthCheck: { path: '/healthz', intervalMs: 100, timeoutMs: 500, healthyThreshold: 1, unhealthyThreshold: 2 } })],
    routes: [],
  });
  const caller = await mesh.sidecar('hc-caller', 8000);
  const labels = { envoy_cluster_name: 'outbound|7400||hc.default' };
  await eventually(async () => (await metric(caller.adminPort, 'envoy_cluster_membership_healthy', labels)) === 2, 5000, 'both healthy');
  healthy = false;
  await eventually(async () => (await metric(caller.adminPort, 'envoy_cluster_membership_healthy', labels)) === 1, 5000, 'b failed its checks');
  const during = await load(30, 3, () => get(caller.outboundPort, 'hc'));
  assert.ok(during.every((r) => r.status === 200 && r.body === 'a'), 'only a takes traffic');
  const flags = clusterLine((await get(caller.adminPort, 'admin', '/clusters')).body, `${labels.envoy_cluster_name}::127.0.0.1:${b.port}::health_flags::`);
  assert.equal(flags, '/failed_active_hc');
  healthy = true;
  await eventually(async () => (await metric(caller.adminPort, 'envoy_cluster_membership_healthy', labels)) === 2, 5000, 'b back');
  const back = await load(30, 3, () => get(caller.outboundPort, 'hc'));
  assert.ok(back.some((r) => r.body === 'b'));
});

test('over the circuit breaker limits requests get 503 with x-envoy-overloaded: true', { timeout: 30_000 }, async () => {
  const slow = await startApp('slow', (_req, res) => {
    setTimeout(() => res.end('ok'), 400);
  });
  mesh.track(() => slow.close());
  mesh.model.update({
    services: [service('cb-caller', 8000), service('cb', 7500)],
    instances: [instance('cb', slow.port)],
    destinationPolicies: [policy('cb', { circuitBreakers: { maxConnections: 1, maxPendingRequests: 1, maxRequests: 1 } })],
    routes: [],
  });
  const caller = await mesh.sidecar('cb-caller', 8000);
  const responses = await Promise.all(Array.from({ length: 6 }, () => get(caller.outboundPort, 'cb')));
  const ok = responses.filter((r) => r.status === 200);
  const shed = responses.filter((r) => r.status === 503);
  // One runs, one waits for the connection, the rest overflow.
  assert.equal(ok.length, 2);
  assert.equal(shed.length, 4);
  assert.ok(shed.every((r) => r.headers['x-envoy-overloaded'] === 'true'));
  assert.equal(await metric(caller.adminPort, 'envoy_cluster_upstream_rq_pending_overflow', { envoy_cluster_name: 'outbound|7500||cb.default' }), 4);
  // The one that waited found its connection circuit breaker full, as Envoy counts it.
  assert.equal(await metric(caller.adminPort, 'envoy_cluster_upstream_cx_overflow', { envoy_cluster_name: 'outbound|7500||cb.default' }), 1);
});

test('no healthy upstream: 503 with Envoy\'s body', { timeout: 30_000 }, async () => {
  mesh.model.update({ services: [service('nh-caller', 8000), service('empty', 7600)], instances: [], destinationPolicies: [], routes: [] });
  const caller = await mesh.sidecar('nh-caller', 8000);
  const res = await get(caller.outboundPort, 'empty');
  assert.equal(res.status, 503);
  assert.equal(res.body, 'no healthy upstream');
  void route;
});
