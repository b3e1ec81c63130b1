// /config_dump's BootstrapConfigDump and /server_info's node as Envoy's:
// the node the sidecar sends (with the metadata the control plane reads, its
// join token redacted), where its config comes from (ADS to the --xds
// address), its static clusters and admin address, a bootstrap Envoy's own
// proto accepts. What an operator reads to see which control plane a proxy
// talks to and what it registered as.

import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { validateMessage } from '../../control/envoy/index.ts';
import { BOOTSTRAP_TYPE } from '../../proxy-config/bootstrap.ts';
import { TestMesh, startApp } from './harness.ts';

type Json = Record<string, any>;

const closers: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of closers.reverse()) await c();
});

test("through a running sidecar: the bootstrap dump names the node's metadata (token redacted), the xDS server it talks to and the admin address; /server_info's node is the same", { timeout: 30_000 }, async () => {
  const app = await startApp('web');
  closers.push(() => app.close());
  const mesh = await TestMesh.start();
  closers.push(() => mesh.close());
  mesh.model.update({ services: [], instances: [], routes: [] });
  const sc = await mesh.sidecar('web', app.port, { namespace: 'shop', token: 'very-secret-join-token', otelCollector: '127.0.0.1:4317', wait: false });
  const text = await (await fetch(`http://127.0.0.1:${sc.adminPort}/config_dump`)).text();
  assert.ok(!text.includes('very-secret-join-token'), 'the join token is not in the dump');
  const first = (JSON.parse(text) as { configs: Json[] }).configs[0]!;
  assert.equal(first['@type'], 'type.googleapis.com/envoy.admin.v3.BootstrapConfigDump');
  assert.match(first.last_updated, /^\d{4}-\d\d-\d\dT/);
  const b = first.bootstrap as Json;
  assert.deepEqual(validateMessage(BOOTSTRAP_TYPE, b), [], "a bootstrap Envoy's proto accepts");
  assert.equal(b.node.id, sc.nodeId);
  assert.equal(b.node.cluster, 'web');
  assert.equal(b.node.user_agent_name, 'weft-sidecar');
  assert.deepEqual(
    { ns: b.node.metadata.WEFT_NAMESPACE, admin: b.node.metadata.WEFT_ADMIN_PORT, inbound: b.node.metadata.WEFT_INBOUND_PORT, app: b.node.metadata.WEFT_APP_PORT, token: b.node.metadata.WEFT_TOKEN },
    { ns: 'shop', admin: String(sc.adminPort), inbound: String(sc.inboundPort), app: String(app.port), token: '[redacted]' },
  );
  assert.equal(b.dynamic_resources.ads_config.api_type, 'DELTA_GRPC');
  assert.deepEqual(b.dynamic_resources.ads_config.grpc_services, [{ envoy_grpc: { cluster_name: 'xds_cluster' } }]);
  const clusters = new Map((b.static_resources.clusters as Json[]).map((c) => [c.name, c.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address]));
  assert.deepEqual(clusters.get('xds_cluster'), { address: '127.0.0.1', port_value: mesh.xdsPort });
  assert.deepEqual(clusters.get('weft_otel'), { address: '127.0.0.1', port_value: 4317 });
  assert.deepEqual(b.admin, { address: { socket_address: { address: '127.0.0.1', port_value: sc.adminPort } } });
  // Envoy's mask reaches into it
  const masked = JSON.parse(await (await fetch(`http://127.0.0.1:${sc.adminPort}/config_dump?mask=bootstrap.node.id`)).text()) as { configs: Json[] };
  assert.deepEqual(masked.configs, [{ '@type': 'type.googleapis.com/envoy.admin.v3.BootstrapConfigDump', bootstrap: { node: { id: sc.nodeId } } }]);

  const info = (await (await fetch(`http://127.0.0.1:${sc.adminPort}/server_info`)).json()) as Json;
  assert.deepEqual(info.node, b.node);
});
