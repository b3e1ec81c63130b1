// The admin endpoints an Envoy operator debugs with while traffic flows:
// POST /reset_counters (counters to zero, gauges untouched, counting goes on)
// and POST /cpuprofiler and /heapprofiler (?enable=y, then ?enable=n writes
// a profile DevTools opens, of the sidecar's own request path).

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { defaultTranslator } from '../../control/xds/index.ts';
import { TestMesh, eventually, freePort, get, instance, load, metric, service, startApp } from './harness.ts';

const telemetryWasm = fileURLToPath(new URL('../../filters/dist/telemetry.wasm', import.meta.url));

let mesh: TestMesh;
const profiles = mkdtempSync(join(tmpdir(), 'weft-profiles-'));
before(async () => {
  mesh = await TestMesh.start();
});
after(async () => {
  await mesh.close();
  rmSync(profiles, { recursive: true, force: true });
});

async function post(port: number, path: string): Promise<{ status: number; body: string }> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`, { method: 'POST' });
  return { status: res.status, body: await res.text() };
}

test('POST /reset_counters: every counter back to 0, gauges keep their values, and counting goes on from there', { timeout: 30_000 }, async () => {
  const app = await startApp('tally');
  mesh.track(() => app.close());
  mesh.model.update({ services: [service('tally', 9000), service('teller', 8000)], instances: [instance('tally', app.port)] });
  const sc = await mesh.sidecar('teller', 8000);
  await load(5, 2, () => get(sc.outboundPort, 'tally'));
  const cluster = { envoy_cluster_name: 'outbound|9000||tally.default' };
  assert.equal(await metric(sc.adminPort, 'envoy_cluster_upstream_rq_total', cluster), 5);
  assert.equal(await metric(sc.adminPort, 'envoy_cluster_membership_healthy', cluster), 1);

  assert.equal((await fetch(`http://127.0.0.1:${sc.adminPort}/reset_counters`)).status, 405, 'a GET resets nothing');
  assert.equal(await metric(sc.adminPort, 'envoy_cluster_upstream_rq_total', cluster), 5);
  assert.deepEqual(await post(sc.adminPort, '/reset_counters'), { status: 200, body: 'OK\n' });
  assert.equal(await metric(sc.adminPort, 'envoy_cluster_upstream_rq_total', cluster), 0);
  assert.equal(await metric(sc.adminPort, 'envoy_http_downstream_rq_total', { envoy_http_conn_manager_prefix: 'outbound' }), 0);
  assert.equal(await metric(sc.adminPort, 'envoy_cluster_membership_healthy', cluster), 1, 'a gauge is not a counter');
  assert.equal(await metric(sc.adminPort, 'envoy_listener_manager_total_listeners_active'), 2);
  // The request path kept its series: the next requests count from zero.
  await load(3, 1, () => get(sc.outboundPort, 'tally'));
  assert.equal(await metric(sc.adminPort, 'envoy_cluster_upstream_rq_total', cluster), 3);
  assert.match(await (await fetch(`http://127.0.0.1:${sc.adminPort}/stats?filter=upstream_rq_total`)).text(), /^cluster\.outbound\|9000\|\|tally\.default\.upstream_rq_total: 3$/m);
});

test('POST /cpuprofiler and /heapprofiler: ?enable=y starts, ?enable=n writes a profile of the sidecar\'s request path to --profile-path; out-of-order and bad requests are 400s naming why', { timeout: 60_000 }, async () => {
  const app = await startApp('profiled');
  mesh.track(() => app.close());
  mesh.model.update({ services: [service('profiled', 9000), service('profiler', 8000)], instances: [instance('profiled', app.port)] });
  const sc = await mesh.sidecar('profiler', 8000, { profilePath: profiles });
  await assert.rejects(mesh.sidecar('profiler', 8000, { profilePath: join(profiles, 'missing') }), /^Error: profile-path: ".*missing" is not a directory$/);

  assert.deepEqual(await post(sc.adminPort, '/cpuprofiler?enable=n'), { status: 400, body: 'the cpu profiler is not running (POST ?enable=y starts it)\n' });
  assert.deepEqual(await post(sc.adminPort, '/cpuprofiler?enable=yes'), { status: 400, body: 'enable: must be y or n, got "yes"\n' });
  assert.deepEqual(await post(sc.adminPort, '/heapprofiler?enabled=y'), { status: 400, body: 'enabled: unknown parameter (heapprofiler takes enable=y or enable=n)\n' });
  assert.equal((await fetch(`http://127.0.0.1:${sc.adminPort}/cpuprofiler?enable=y`)).status, 405);

  assert.deepEqual(await post(sc.adminPort, '/cpuprofiler?enable=y'), { status: 200, body: 'OK: the cpu profiler is running\n' });
  assert.deepEqual(await post(sc.adminPort, '/cpuprofiler?enable=y'), { status: 400, body: 'the cpu profiler is already running (POST ?enable=n stops it and writes the profile)\n' });
  assert.deepEqual(await post(sc.adminPort, '/heapprofiler?enable=y'), { status: 200, body: 'OK: the heap profiler is running\n' });
  const answers = await load(600, 8, () => get(sc.outboundPort, 'profiled'));
  assert.ok(answers.every((r) => r.status === 200));

  const cpu = await post(sc.adminPort, '/cpuprofiler?enable=n');
  assert.equal(cpu.status, 200);
  const cpuFile = /^OK: wrote (.+\.cpuprofile)\n$/.exec(cpu.body)?.[1];
  assert.ok(cpuFile?.startsWith(join(profiles, `weft-sidecar-profiler-${process.pid}-`)), cpu.body);
  const profile = JSON.parse(readFileSync(cpuFile!, 'utf8')) as { nodes: { callFrame: { url: string; functionName: string } }[]; samples: number[] };
  assert.ok(profile.samples.length > 0);
  assert.ok(profile.nodes.some((n) => /sidecar\/(proxy|forward|http1|h1-client)\.ts$/.test(n.callFrame.url)), 'the request path is in the profile');

  const heap = await post(sc.adminPort, '/heapprofiler?enable=n');
  assert.equal(heap.status, 200);
  const heapFile = /^OK: wrote (.+\.heapprofile)\n$/.exec(heap.body)?.[1];
  const sampled = JSON.parse(readFileSync(heapFile!, 'utf8')) as { head: { callFrame: { functionName: string } }; samples: unknown[] };
  assert.equal(sampled.head.callFrame.functionName, '(root)');
  // What the requests allocated, collected or not (a proxy's request path makes 13-17 KB of garbage each):
  // only what was still alive at the end came to under 2 MB here.
  const bytes = (sampled.samples as { size: number }[]).reduce((n, x) => n + x.size, 0);
  assert.ok(bytes > 600 * 8 * 1024, `${bytes} bytes sampled for 600 requests`);
  // Stopped: a new profile can start.
  assert.equal((await post(sc.adminPort, '/cpuprofiler?enable=y')).status, 200);
  assert.equal((await post(sc.adminPort, '/cpuprofiler?enable=n')).status, 200);
});

test('POST /reset_counters resets the counters a wasm filter defined too; the filter counts on from 0', { timeout: 60_000, skip: !existsSync(telemetryWasm) && 'filters/dist/telemetry.wasm not built' }, async () => {
  const bytes = new Uint8Array(readFileSync(telemetryWasm));
  const modules = http.createServer((_req, res) => res.end(bytes));
  await new Promise<void>((r) => modules.listen(0, '127.0.0.1', () => r()));
  const withFilters = await TestMesh.start({ translator: defaultTranslator({ wasmBaseUrl: `http://127.0.0.1:${(modules.address() as AddressInfo).port}`, wasmClusterName: 'weft-control' }) });
  try {
    const app = await startApp('counted');
    withFilters.track(() => app.close());
    const inbound = await freePort();
    withFilters.model.update({
      services: [service('counted', 7800)],
      instances: [instance('counted', inbound)],
      filterModules: [{ name: 'telemetry', sha256: createHash('sha256').update(bytes).digest('hex'), size: bytes.length, abiVersion: '0.2.1' }],
      filterBindings: [{ name: 'counted-telemetry', namespace: 'default', service: 'counted', direction: 'inbound', filter: 'telemetry', order: 0, config: {}, failurePolicy: 'fail_closed' }],
    });
    const sc = await withFilters.sidecar('counted', app.port, { inboundPort: inbound });
    await load(4, 2, () => get(inbound, 'counted'));
    const ok = { status_class: '2xx' };
    await eventually(async () => (await metric(sc.adminPort, 'weft_requests_total', ok)) === 4, 5000, 'the filter counted four');
    assert.equal((await post(sc.adminPort, '/reset_counters')).status, 200);
    assert.equal(await metric(sc.adminPort, 'weft_requests_total', ok), 0);
    await load(2, 1, () => get(inbound, 'counted'));
    await eventually(async () => (await metric(sc.adminPort, 'weft_requests_total', ok)) === 2, 5000, 'the filter counting on from 0');
  } finally {
    await withFilters.close();
    await new Promise((r) => modules.close(r));
  }
});
