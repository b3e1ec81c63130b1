// `weft control --access-log --otel-cluster weft_otel`, end to end: a proxy
// that identifies itself with a generated bootstrap's node gets, over Delta
// ADS from the real control plane, listeners whose HTTP connection managers
// log JSON to stdout and trace to the bootstrap's collector cluster.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeResource, TypeUrl } from '../../control/envoy/index.ts';
import { startControl } from '../../control/main.ts';
import { generateBootstrap } from '../../proxy-config/bootstrap.ts';
import { OTEL_CLUSTER_NAME } from '../../proxy-config/options.ts';
import { DeltaClient, testNode } from '../xds/ads-client.ts';

const HCM = 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';

test('a bootstrapped proxy receives access logs and OpenTelemetry tracing from weft control', { timeout: 60_000 }, async (t) => {
  const dataDir = await mkdtemp(join(tmpdir(), 'weft-obs-'));
  const control = await startControl({
    dataDir, apiPort: 0, xdsPort: 0, host: '127.0.0.1',
    observability: { accessLog: {}, tracing: { collectorCluster: OTEL_CLUSTER_NAME, samplingPercent: 5 } },
  });
  t.after(async () => {
    await control.close();
    await rm(dataDir, { recursive: true, force: true });
  });
  const token = (await readFile(join(dataDir, 'admin.token'), 'utf8')).trim();
  const created = await fetch(`${control.apiUrl}/api/v1/services`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ name: 'orders', ports: [{ port: 8081, protocol: 'http' }] }),
  });
  assert.equal(created.status, 201, await created.text());

  const bootstrap = generateBootstrap({ service: 'orders', xds: { host: '127.0.0.1', port: control.xdsPort }, otelCollector: { host: '127.0.0.1', port: 4317 } });
  assert.ok(bootstrap.ok);
  const node = bootstrap.bootstrap.node as { id: string; cluster: string; metadata: Record<string, string> };
  const client = new DeltaClient(control.xdsPort, testNode(node.id, node.cluster, node.metadata));
  t.after(() => client.close());
  client.subscribe(TypeUrl.Listener);
  const reply = await client.next();
  assert.equal(reply.typeUrl, TypeUrl.Listener);
  const listeners = reply.resources.map((r) => decodeResource(TypeUrl.Listener, r.bytes) as any);
  assert.deepEqual(listeners.map((l) => l.name).sort(), ['inbound', 'outbound']);
  const otelClusters = (bootstrap.bootstrap.static_resources as { clusters: { name: string }[] }).clusters.map((c) => c.name);
  for (const listener of listeners) {
    const hcm = listener.filter_chains[0].filters[0].typed_config;
    assert.equal(hcm['@type'], HCM);
    assert.equal(hcm.access_log[0].typed_config['@type'], 'type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog');
    assert.equal(hcm.access_log[0].typed_config.log_format.json_format.weft_service, 'orders.default');
    assert.equal(hcm.tracing.random_sampling.value, 5);
    const collector = hcm.tracing.provider.typed_config.grpc_service.envoy_grpc.cluster_name;
    assert.ok(otelClusters.includes(collector), `tracer exports to ${collector}, which the bootstrap does not declare`);
  }
});
