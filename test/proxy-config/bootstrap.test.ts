// The Envoy bootstrap: every variant passes Envoy's Bootstrap proto with its
// PGV rules, the node it declares is read by the xDS server as the intended
// proxy, and the clusters it declares are the ones the translator references.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { validateMessage } from '../../control/envoy/index.ts';
import { nodeMetadata as structOf, proxyFromNode } from '../../control/xds/node.ts';
import { WASM_CLUSTER } from '../../control/main.ts';
import { BOOTSTRAP_TYPE, RE2_MAX_PROGRAM_SIZE, generateBootstrap, type Json } from '../../proxy-config/bootstrap.ts';
import { OTEL_CLUSTER_NAME, WASM_CLUSTER_NAME, XDS_CLUSTER_NAME, type BootstrapOptions } from '../../proxy-config/options.ts';

const root = fileURLToPath(new URL('../../', import.meta.url));
const run = promisify(execFile);

function ok(opts: BootstrapOptions): Json {
  const result = generateBootstrap(opts);
  assert.ok(result.ok, result.ok ? '' : JSON.stringify(result.errors));
  return result.bootstrap;
}

const clusters = (b: Json) => (b.static_resources as { clusters: Json[] }).clusters;
const cluster = (b: Json, name: string) => clusters(b).find((c) => c.name === name);

const VARIANTS: [string, BootstrapOptions][] = [
  ['compose (DNS names, token, tracing)', { service: 'orders', xds: { host: 'control', port: 18000 }, token: 'join-123', appPort: 8081, otelCollector: { host: 'jaeger', port: 4317 } }],
  ['loopback IPs, no Prometheus listener', { service: 'web', namespace: 'shop', nodeId: 'web-1', xds: { host: '127.0.0.1', port: 18000 }, api: { host: '127.0.0.1', port: 9090 }, prometheusPort: 0, adminPort: 19000 }],
  ['IPv6 control plane', { service: 'inventory', xds: { host: '::1', port: 18000 }, inboundPort: 16006, outboundPort: 16001 }],
  ['overload manager (heap and connections)', { service: 'edge', xds: { host: 'control', port: 18000 }, maxHeapMb: 512, maxDownstreamConnections: 1000 }],
];

for (const [name, opts] of VARIANTS) {
  test(`bootstrap passes Envoy's Bootstrap proto and PGV rules: ${name}`, () => {
    const bootstrap = ok(opts);
    assert.deepEqual(validateMessage(BOOTSTRAP_TYPE, bootstrap), []);
    // YAML is what `weft bootstrap` prints by default; it must carry the same message.
    assert.deepEqual(validateMessage(BOOTSTRAP_TYPE, parse(JSON.stringify(bootstrap))), []);
  });
}

test('the codec refuses a broken bootstrap, so the check above can fail', () => {
  const bootstrap = ok(VARIANTS[0]![1]);
  const broken = structuredClone(bootstrap) as any;
  broken.dynamic_resources.ads_config.api_type = 'DELTA';
  broken.static_resources.clusters[0].load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.port_value = 70000;
  const paths = validateMessage(BOOTSTRAP_TYPE, broken).map((e) => e.path);
  assert.ok(paths.some((p) => p.includes('api_type')), JSON.stringify(paths));
  assert.ok(paths.some((p) => p.includes('port_value')), JSON.stringify(paths));
});

test('ADS over Delta gRPC to an HTTP/2 xDS cluster; CDS and LDS over ADS, waited for without a deadline; admin on loopback', () => {
  const b = ok(VARIANTS[0]![1]) as any;
  assert.deepEqual(b.dynamic_resources, {
    ads_config: { api_type: 'DELTA_GRPC', transport_api_version: 'V3', grpc_services: [{ envoy_grpc: { cluster_name: XDS_CLUSTER_NAME } }], set_node_on_first_message_only: true },
    // Envoy's default initial_fetch_timeout (15 s) would make /ready 200 without weft's config
    cds_config: { ads: {}, initial_fetch_timeout: '0s', resource_api_version: 'V3' },
    lds_config: { ads: {}, initial_fetch_timeout: '0s', resource_api_version: 'V3' },
  });
  const xds = cluster(b, XDS_CLUSTER_NAME) as any;
  assert.equal(xds.type, 'LOGICAL_DNS', 'a host name is re-resolved');
  assert.deepEqual(xds.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address, { address: 'control', port_value: 18000 });
  // HTTP/2 PINGs, so a control plane gone without a FIN is noticed and the stream reopened
  assert.deepEqual(Object.values(xds.typed_extension_protocol_options as object)[0].explicit_http_config, { http2_protocol_options: { connection_keepalive: { interval: '30s', timeout: '5s' } } });
  const noTimeout = structuredClone(b);
  delete Object.values(noTimeout.static_resources.clusters[0].typed_extension_protocol_options as object)[0].explicit_http_config.http2_protocol_options.connection_keepalive.timeout;
  assert.ok(validateMessage(BOOTSTRAP_TYPE, noTimeout).some((e) => e.path.includes('connection_keepalive.timeout')), 'Envoy requires a keepalive timeout');
  assert.deepEqual(b.admin.address.socket_address, { address: '127.0.0.1', port_value: 15000 });
  const otel = cluster(b, OTEL_CLUSTER_NAME) as any;
  assert.ok(otel.typed_extension_protocol_options, 'OTLP/gRPC needs HTTP/2 too');
  assert.equal((cluster(ok(VARIANTS[1]![1]), XDS_CLUSTER_NAME) as any).type, 'STATIC', 'an IP needs no DNS');
});

test("Envoy's RE2 program-size limit is raised: at its default of 100 a modest route regex NACKs the whole route configuration", () => {
  // The API accepts any RE2 regex up to 4096 characters; "[a-z0-9._-]{1,64}"
  // alone compiles to more than 100 RE2 instructions, which Envoy refuses
  // unless the runtime says otherwise (Istio's bootstrap sets 32768).
  for (const [, opts] of VARIANTS) {
    const layers = (ok(opts).layered_runtime as { layers: Json[] }).layers;
    const level = layers.map((l) => (l.static_layer as Json | undefined)?.['re2.max_program_size.error_level']).find((v) => v !== undefined);
    assert.equal(level, RE2_MAX_PROGRAM_SIZE);
    assert.ok(RE2_MAX_PROGRAM_SIZE >= 4096, 'room for any regex the API accepts that is not pathological');
    assert.ok(layers.some((l) => l.admin_layer !== undefined), 'an admin layer, so /runtime_modify works (without one Envoy answers it 503)');
  }
});

test('the Prometheus listener exposes only /stats/prometheus and /ready, through a loopback admin cluster', () => {
  const b = ok(VARIANTS[0]![1]) as any;
  const listener = b.static_resources.listeners[0];
  assert.deepEqual(listener.address.socket_address, { address: '0.0.0.0', port_value: 15090 });
  const routes = listener.filter_chains[0].filters[0].typed_config.route_config.virtual_hosts[0].routes;
  assert.deepEqual(routes.map((r: any) => r.match.path), ['/stats/prometheus', '/ready']);
  assert.deepEqual((cluster(b, 'weft_admin') as any).load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address, { address: '127.0.0.1', port_value: 15000 });
  assert.deepEqual(ok(VARIANTS[1]![1]).static_resources, { listeners: [], clusters: clusters(ok(VARIANTS[1]![1])) });
});

test('the xDS server reads the node as the intended proxy, token and (same host only) admin port included', () => {
  const b = ok({ ...VARIANTS[1]![1], token: 'join-abc', appPort: 7000, inboundPort: 16006 }) as any;
  assert.equal(b.node.metadata.WEFT_TOKEN, 'join-abc');
  const read = proxyFromNode({ id: b.node.id, cluster: b.node.cluster, metadata: structOf(b.node.metadata) });
  assert.ok('proxy' in read, JSON.stringify(read));
  // xDS on loopback: Envoy shares the control plane's network namespace, so the control
  // plane can read its admin (weft proxy-status PROXY, the UI's traffic figures)
  assert.deepEqual(read.proxy, {
    id: 'web-1', service: 'web', namespace: 'shop', kind: 'sidecar',
    inboundPort: 16006, outboundPort: 15001, appPort: 7000, appAddress: '127.0.0.1', bindAddress: '0.0.0.0', adminPort: 19000,
  });
  for (const host of ['::1', 'localhost', '127.0.0.2']) assert.equal((ok({ service: 'web', xds: { host, port: 18000 } }) as any).node.metadata.WEFT_ADMIN_PORT, '15000', host);
  // elsewhere (a container, another machine) its admin loopback is not the control plane's
  for (const host of ['control', '10.0.0.7', 'fd00::7']) assert.equal((ok({ service: 'web', xds: { host, port: 18000 } }) as any).node.metadata.WEFT_ADMIN_PORT, undefined, host);
  const noToken = ok({ ...VARIANTS[0]![1], token: undefined }) as any;
  assert.equal(noToken.node.metadata.WEFT_TOKEN, undefined);
  assert.equal(noToken.node.id, 'orders.default', 'default node id: <service>.<namespace>');
});

test("the wasm fetch cluster is the control plane's wasmClusterName", () => {
  assert.equal(WASM_CLUSTER_NAME, WASM_CLUSTER);
  const b = ok(VARIANTS[0]![1]) as any;
  assert.deepEqual(cluster(b, WASM_CLUSTER)!.load_assignment, {
    cluster_name: WASM_CLUSTER,
    endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: 'control', port_value: 8080 } } } }] }],
  });
});

test('bad options: every error, each naming its option', () => {
  const result = generateBootstrap({ service: 'Orders', namespace: 'a_b', xds: { host: 'bad host', port: 0 }, inboundPort: 15000, token: '', otelCollector: { host: 'x', port: 99999 }, maxHeapMb: 0, maxDownstreamConnections: 2.5 });
  assert.ok(!result.ok);
  assert.deepEqual(result.errors.map((e) => e.path).sort(), ['adminPort', 'maxDownstreamConnections', 'maxHeapMb', 'namespace', 'otelCollector.port', 'service', 'token', 'xds.host', 'xds.port']);
});

test("--max-heap-mb and --max-downstream-connections: Envoy's overload manager with the weft sidecar's thresholds; scrapes and the admin stay outside the cap", () => {
  const none = ok(VARIANTS[0]![1]);
  assert.equal(none.overload_manager, undefined, 'off unless asked for, as in Envoy');
  const b = ok({ service: 'edge', xds: { host: 'control', port: 18000 }, maxHeapMb: 512, maxDownstreamConnections: 1000 }) as any;
  const om = b.overload_manager;
  assert.deepEqual(om.resource_monitors.map((m: any) => [m.name, m.typed_config.max_heap_size_bytes ?? m.typed_config.max_active_downstream_connections]), [
    ['envoy.resource_monitors.fixed_heap', String(512 * 1024 * 1024)],
    ['envoy.resource_monitors.global_downstream_max_connections', '1000'],
  ]);
  assert.deepEqual(om.actions.map((a: any) => [a.name, a.triggers[0].name, a.triggers[0].threshold.value]), [
    ['envoy.overload_actions.disable_http_keepalive', 'envoy.resource_monitors.fixed_heap', 0.95],
    ['envoy.overload_actions.stop_accepting_requests', 'envoy.resource_monitors.fixed_heap', 0.98],
  ]);
  assert.equal(b.static_resources.listeners[0].ignore_global_conn_limit, true, 'the Prometheus listener opts out of the connection cap');
  // Envoy's admin listener counts against the cap unless it opts out: /ready probes and the
  // Prometheus listener's upstream (the admin) would be refused exactly when the cap is full
  assert.equal(b.admin.ignore_global_conn_limit, true, 'the admin interface opts out of the connection cap');
  const heapOnly = ok({ service: 'edge', xds: { host: 'control', port: 18000 }, maxHeapMb: 64 }) as any;
  assert.equal(heapOnly.static_resources.listeners[0].ignore_global_conn_limit, undefined);
  assert.equal(heapOnly.admin.ignore_global_conn_limit, undefined);
  // Envoy's PGV rules are what refuse a zero limit if it ever got this far
  const zero = structuredClone(b);
  zero.overload_manager.resource_monitors[0].typed_config.max_heap_size_bytes = '0';
  assert.ok(validateMessage(BOOTSTRAP_TYPE, zero).some((e) => e.path.includes('max_heap_size_bytes')), JSON.stringify(validateMessage(BOOTSTRAP_TYPE, zero)));
});

test('weft bootstrap prints it (yaml and json); bad flags exit 2 naming the option', async () => {
  const bin = `${root}bin/weft.mjs`;
  const yaml = await run(process.execPath, [bin, 'bootstrap', '--service', 'orders', '--xds-host', 'control', '--app-port', '8081', '--token', 't-1'], { cwd: root, timeout: 60_000 });
  const fromYaml = parse(yaml.stdout) as any;
  assert.deepEqual(validateMessage(BOOTSTRAP_TYPE, fromYaml), []);
  assert.equal(fromYaml.node.metadata.WEFT_APP_PORT, '8081');
  assert.equal(fromYaml.node.metadata.WEFT_TOKEN, 't-1');
  const json = await run(process.execPath, [bin, 'bootstrap', '--service', 'orders', '--xds-host', 'control', '--app-port', '8081', '--token', 't-1', '-o', 'json'], { cwd: root, timeout: 60_000 });
  assert.deepEqual(JSON.parse(json.stdout), fromYaml);
  await assert.rejects(
    run(process.execPath, [bin, 'bootstrap', '--service', 'Bad_Name', '--admin-port', '15006'], { cwd: root, timeout: 60_000 }),
    (err: { code: number; stderr: string }) => err.code === 2 && /service: must be a DNS-1123 label/.test(err.stderr) && /adminPort: port 15006 is already inboundPort/.test(err.stderr),
  );
});

test('--xds-ca: the xDS cluster speaks TLS to the control plane (trusted_ca, its SPIFFE ID, SNI), keeps HTTP/2, and passes Envoy\'s protos and PGV rules', async () => {
  const byName = ok({ service: 'orders', xds: { host: 'control', port: 18000 }, xdsCa: '/etc/weft/ca-root.pem' }) as any;
  assert.deepEqual(validateMessage(BOOTSTRAP_TYPE, byName), []);
  assert.deepEqual(validateMessage(BOOTSTRAP_TYPE, parse(JSON.stringify(byName))), []);
  const xds = cluster(byName, XDS_CLUSTER_NAME) as any;
  assert.deepEqual(xds.transport_socket, {
    name: 'envoy.transport_sockets.tls',
    typed_config: {
      '@type': 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext',
      common_tls_context: {
        alpn_protocols: ['h2'],
        validation_context: {
          trusted_ca: { filename: '/etc/weft/ca-root.pem' },
          match_typed_subject_alt_names: [{ san_type: 'URI', matcher: { safe_regex: { regex: '^spiffe://[^/]+/ns/weft-system/sa/weft-control$' } } }],
        },
      },
      sni: 'control',
    },
  });
  assert.ok(xds.typed_extension_protocol_options['envoy.extensions.upstreams.http.v3.HttpProtocolOptions'].explicit_http_config.http2_protocol_options, 'HTTP/2 kept');
  // The regex is the one the weft sidecar applies to the same certificate, and it matches what the control plane is issued.
  const { controlPlaneSpiffeId } = await import('../../control/ca/serving-cert.ts');
  assert.match(controlPlaneSpiffeId('example.org'), new RegExp(xds.transport_socket.typed_config.common_tls_context.validation_context.match_typed_subject_alt_names[0].matcher.safe_regex.regex));
  // Other clusters stay as they were; an IP control plane gets no SNI unless told one.
  assert.equal(cluster(byName, WASM_CLUSTER_NAME)!.transport_socket, undefined);
  const byIp = ok({ service: 'orders', xds: { host: '10.0.0.5', port: 18000 }, xdsCa: '/ca.pem' }) as any;
  assert.equal((cluster(byIp, XDS_CLUSTER_NAME) as any).transport_socket.typed_config.sni, undefined);
  const named = ok({ service: 'orders', xds: { host: '10.0.0.5', port: 18000 }, xdsCa: '/ca.pem', xdsServerName: 'weft-control.example' }) as any;
  assert.equal((cluster(named, XDS_CLUSTER_NAME) as any).transport_socket.typed_config.sni, 'weft-control.example');
  // Without --xds-ca nothing changes.
  assert.equal(cluster(ok(VARIANTS[0]![1]), XDS_CLUSTER_NAME)!.transport_socket, undefined);
  // The validation reaches into the TLS context: a broken one is refused.
  const broken = structuredClone(byName);
  (cluster(broken, XDS_CLUSTER_NAME) as any).transport_socket.typed_config.common_tls_context.validation_context.match_typed_subject_alt_names[0].san_type = 'NOT_A_SAN_TYPE';
  assert.ok(validateMessage(BOOTSTRAP_TYPE, broken).some((e) => e.path.includes('san_type')), JSON.stringify(validateMessage(BOOTSTRAP_TYPE, broken)));
  const bad = generateBootstrap({ service: 'orders', xds: { host: 'control', port: 18000 }, xdsServerName: 'x' });
  assert.ok(!bad.ok && bad.errors.some((e) => e.path === 'xdsServerName'));

  const bin = `${root}bin/weft.mjs`;
  const out = await run(process.execPath, [bin, 'bootstrap', '--service', 'orders', '--xds-host', 'control', '--xds-ca', '/etc/weft/ca-root.pem', '-o', 'json'], { cwd: root, timeout: 60_000 });
  assert.deepEqual(cluster(JSON.parse(out.stdout), XDS_CLUSTER_NAME)!.transport_socket, xds.transport_socket);
});
