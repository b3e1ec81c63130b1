// Tracing through real sidecars, as Envoy's connection manager traces with
// the OpenTelemetry tracer: a span per request per proxy, the proxy's own
// span in the traceparent that goes upstream, the parent's sampled flag
// followed, and sampled spans exported over OTLP/gRPC to the collector the
// sidecar was started with (otlp-collector.ts: @grpc/grpc-js and
// OpenTelemetry's own protobuf decoder, neither written here).

import assert from 'node:assert/strict';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { after, test } from 'node:test';
import { SidecarStats } from '../../sidecar/stats.ts';
import { Span, Tracer } from '../../sidecar/tracing.ts';
import { defaultTranslator } from '../../control/xds/index.ts';
import { TestMesh, eventually, freePort, get, instance, metric, policy, service, startApp } from './harness.ts';
import { startCollector } from './otlp-collector.ts';

const closers: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of closers.reverse()) await c();
});

/** An app that answers with the trace headers it got; /fail answers 503. */
async function traceApp() {
  const app = await startApp('api', (req, res) => {
    res.statusCode = req.url === '/fail' ? 503 : 200;
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ traceparent: req.headers.traceparent ?? null, tracestate: req.headers.tracestate ?? null }));
  });
  closers.push(() => app.close());
  return app;
}

/** caller -> api through two sidecars that trace at `sampling` percent to `collector`. */
async function tracedMesh(collectorPort: number, sampling: number, app: { port: number }, healthCheckMs?: number) {
  const mesh = await TestMesh.start({
    translator: defaultTranslator({ wasmBaseUrl: 'http://127.0.0.1:1', wasmClusterName: 'weft-control', tracing: { collectorCluster: 'weft_otel', samplingPercent: sampling } }),
  });
  closers.push(() => mesh.close());
  const inbound = await freePort();
  mesh.model.update({
    services: [service('caller', 8000), service('api', 7000)],
    instances: [instance('api', inbound)],
    routes: [],
    ...(healthCheckMs ? { destinationPolicies: [policy('api', { healthCheck: { path: '/healthz', intervalMs: healthCheckMs, timeoutMs: 1000, healthyThreshold: 1, unhealthyThreshold: 2 } })] } : {}),
  });
  const server = await mesh.sidecar('api', app.port, { inboundPort: inbound, otelCollector: `127.0.0.1:${collectorPort}` });
  const client = await mesh.sidecar('caller', 8000, { otelCollector: `127.0.0.1:${collectorPort}` });
  return { mesh, client, server };
}

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const PARENT = '00f067aa0ba902b7';

test('each sidecar exports one span per request; the app gets the server span as parent; a trace continues from an incoming traceparent', { timeout: 40_000 }, async () => {
  const collector = await startCollector();
  closers.push(() => collector.close());
  const app = await traceApp();
  const { client, server } = await tracedMesh(collector.port, 100, app);

  // Five requests: five spans per sidecar, which Envoy exports at once (min_flush_spans).
  const seen: { traceparent: string }[] = [];
  const r0 = await get(client.outboundPort, 'api', '/items?x=1', { headers: { traceparent: `00-${TRACE}-${PARENT}-01`, tracestate: 'vendor=1', 'user-agent': 'trace-test' } });
  assert.equal(r0.status, 200);
  seen.push(JSON.parse(r0.body));
  for (let i = 0; i < 4; i++) seen.push(JSON.parse((await get(client.outboundPort, 'api', `/n${i}`)).body));
  await eventually(() => collector.spans.length >= 10, 3_000, 'ten spans without waiting for the 5 s flush timer');

  const byService = (s: string) => collector.spans.filter((x) => x.service === s);
  assert.equal(byService('caller.default').length, 5);
  assert.equal(byService('api.default').length, 5);

  // The continued trace: client span (egress, CLIENT) under the incoming parent, server span (ingress, SERVER) under it.
  const egress = collector.spans.find((s) => s.traceId === TRACE && s.service === 'caller.default')!;
  const ingress = collector.spans.find((s) => s.traceId === TRACE && s.service === 'api.default')!;
  assert.ok(egress && ingress, 'both hops exported the continued trace');
  assert.equal(egress.name, 'egress api');
  assert.equal(egress.kind, 3);
  assert.equal(egress.parentSpanId, PARENT);
  assert.equal(ingress.name, 'ingress');
  assert.equal(ingress.kind, 2);
  assert.equal(ingress.parentSpanId, egress.spanId);
  // The app's parent is the server sidecar's span, with the incoming tracestate carried along.
  assert.deepEqual(seen[0], { traceparent: `00-${TRACE}-${ingress.spanId}-01`, tracestate: 'vendor=1' });
  assert.ok(egress.startNs <= ingress.startNs && ingress.endNs <= egress.endNs, 'the server span lies within the client span');

  // Envoy's tags.
  for (const s of [egress, ingress]) {
    assert.equal(s.attributes['http.method'], 'GET');
    assert.equal(s.attributes['http.status_code'], '200');
    assert.equal(s.attributes['http.url'], 'http://api/items?x=1');
    assert.equal(s.attributes['user_agent'], 'trace-test');
    assert.equal(s.attributes['component'], 'proxy');
    assert.equal(s.attributes['response_flags'], '-');
    assert.equal(s.attributes['error'], undefined);
    assert.equal(s.statusCode, 0);
  }
  assert.equal(egress.attributes['node_id'], client.nodeId);
  assert.equal(ingress.attributes['node_id'], server.nodeId);
  assert.equal(egress.attributes['guid:x-request-id'], ingress.attributes['guid:x-request-id'], 'one request id across the hops');
  assert.equal(egress.attributes['upstream_cluster'], 'outbound|7000||api.default');
  assert.equal(ingress.attributes['upstream_address'], `127.0.0.1:${app.port}`);

  // New traces for the requests without context: one trace id per request across both hops, sampled.
  for (const { traceparent } of seen.slice(1)) {
    const [, traceId, spanId, flags] = traceparent.split('-');
    assert.equal(flags, '01');
    const hops = collector.spans.filter((s) => s.traceId === traceId);
    assert.equal(hops.length, 2);
    const root = hops.find((s) => s.kind === 3)!;
    assert.equal(root.parentSpanId, '', 'the client sidecar started the trace');
    assert.equal(hops.find((s) => s.kind === 2)!.spanId, spanId);
  }
  assert.equal(await metric(client.adminPort, 'envoy_tracing_opentelemetry_spans_sent'), 5);
  assert.equal(await metric(client.adminPort, 'envoy_http_tracing_random_sampling', { envoy_http_conn_manager_prefix: 'outbound' }), 5);

  // A sixth request waits for the flush timer (5 s), and a 503 is an error span.
  const exportsBefore = collector.exports();
  assert.equal((await get(client.outboundPort, 'api', '/fail')).status, 503);
  await eventually(() => collector.spans.length >= 12, 8_000, 'the timer flush');
  assert.ok(collector.exports() >= exportsBefore + 2);
  const failed = collector.spans.filter((s) => s.attributes['http.status_code'] === '503');
  assert.equal(failed.length, 2);
  for (const s of failed) {
    assert.equal(s.attributes['error'], 'true');
    assert.equal(s.statusCode, 2, 'STATUS_CODE_ERROR');
  }
  assert.ok((await metric(client.adminPort, 'envoy_tracing_opentelemetry_timer_flushed')) >= 1);
});

test("an unsampled parent's flag is followed; at 0% sampling a trace context still goes upstream, unsampled, and nothing is exported; a malformed traceparent passes unchanged", { timeout: 40_000 }, async () => {
  const collector = await startCollector();
  closers.push(() => collector.close());
  const app = await traceApp();
  const { mesh, client } = await tracedMesh(collector.port, 0, app);

  const unsampled = JSON.parse((await get(client.outboundPort, 'api', '/', { headers: { traceparent: `00-${TRACE}-${PARENT}-00` } })).body);
  const [, traceId, spanId, flags] = unsampled.traceparent.split('-');
  assert.equal(traceId, TRACE);
  assert.notEqual(spanId, PARENT, "the server sidecar's span is the app's parent");
  assert.equal(flags, '00');

  // A sampled parent overrides 0% random sampling (Envoy's tracer follows the parent).
  const sampled = JSON.parse((await get(client.outboundPort, 'api', '/', { headers: { traceparent: `00-${TRACE.replace('4b', '5c')}-${PARENT}-01` } })).body);
  assert.match(sampled.traceparent, /-01$/);

  const fresh = JSON.parse((await get(client.outboundPort, 'api', '/')).body);
  assert.match(fresh.traceparent, /^00-[0-9a-f]{32}-[0-9a-f]{16}-00$/);

  const malformed = 'not-a-trace-context';
  assert.equal(JSON.parse((await get(client.outboundPort, 'api', '/', { headers: { traceparent: malformed } })).body).traceparent, malformed);

  assert.equal(await metric(client.adminPort, 'envoy_http_tracing_not_traceable', { envoy_http_conn_manager_prefix: 'outbound' }), 4);
  // Closing flushes what is buffered: only the sampled trace's two spans ever leave.
  await mesh.close();
  await eventually(() => collector.spans.length >= 2, 3_000, 'the flush at close');
  assert.deepEqual(new Set(collector.spans.map((s) => s.traceId)), new Set([TRACE.replace('4b', '5c')]));
  assert.equal(collector.spans.length, 2);
});

test('without the collector cluster the listener is NACKed naming the field; an unreachable collector drops spans with one warning and traffic flows', { timeout: 40_000 }, async () => {
  const app = await traceApp();
  const mesh = await TestMesh.start({
    translator: defaultTranslator({ wasmBaseUrl: 'http://127.0.0.1:1', wasmClusterName: 'weft-control', tracing: { collectorCluster: 'weft_otel', samplingPercent: 100 } }),
  });
  closers.push(() => mesh.close());
  mesh.model.update({ services: [service('caller', 8000), service('api', 7000)], instances: [instance('api', app.port)], routes: [] });

  const lines: string[] = [];
  await mesh.sidecar('caller', 8000, { wait: false, log: (l) => lines.push(l) });
  await eventually(() => lines.some((l) => l.includes('xds NACK')), 10_000, 'the NACK');
  const nack = JSON.parse(lines.find((l) => l.includes('xds NACK'))!) as { type: string; error: string };
  assert.equal(nack.type, 'listener');
  assert.match(nack.error, /tracing\.provider\.typed_config\.grpc_service\.envoy_grpc\.cluster_name: unknown gRPC cluster "weft_otel".*--otel-collector/);

  // A collector port nobody listens on: requests still succeed, one warning says spans are dropped.
  const dead = await startCollector();
  await dead.close();
  const warnings: string[] = [];
  const client = await mesh.sidecar('caller', 8000, { otelCollector: `127.0.0.1:${dead.port}`, log: (l) => warnings.push(l) });
  for (let i = 0; i < 10; i++) assert.equal((await get(client.outboundPort, 'api', '/')).status, 200);
  await eventually(() => warnings.some((l) => l.includes('OTLP export failed')), 5_000, 'the export warning');
  assert.equal(warnings.filter((l) => l.includes('OTLP export failed')).length, 1, 'one warning while exports keep failing');
});

test("a collector's error with a malformed grpc-message (`100%`) is logged, not thrown: the sidecar stays up, as gRPC's spec says to read such a value; a well-formed one is decoded", { timeout: 20_000 }, async () => {
  const messages = ['100% full, try %ZZ later', 'caf%C3%A9 ferm%C3%A9'];
  const collector = http2.createServer();
  collector.on('stream', (s) => {
    s.on('data', () => undefined);
    s.on('end', () => s.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': '8', 'grpc-message': messages.shift() ?? 'later' }, { endStream: true }));
  });
  await new Promise<void>((r) => collector.listen(0, '127.0.0.1', () => r()));
  const lines: string[] = [];
  const tracer = new Tracer('svc', { host: '127.0.0.1', port: (collector.address() as AddressInfo).port }, 0, new SidecarStats(), (l) => lines.push(l));
  const span = () => new Span(TRACE, '00f067aa0ba902b8', '', true, '', 'ingress', 2, performance.now());
  // Until 2026-11-28 decodeURIComponent threw on the first answer in the stream's 'close' listener: an uncaught
  // exception that ended the sidecar's process (here, this test's).
  for (let i = 0; i < 5; i++) tracer.send(span());
  await eventually(() => lines.some((l) => l.includes('OTLP export failed')), 5_000, 'the export warning');
  assert.equal(JSON.parse(lines.find((l) => l.includes('OTLP export failed'))!).error, 'grpc-status 8: 100% full, try %ZZ later');
  // The next export fails too (no second warning while failing); its error is decoded, seen through a fresh tracer.
  const second: string[] = [];
  const again = new Tracer('svc', { host: '127.0.0.1', port: (collector.address() as AddressInfo).port }, 0, new SidecarStats(), (l) => second.push(l));
  for (let i = 0; i < 5; i++) again.send(span());
  await eventually(() => second.some((l) => l.includes('OTLP export failed')), 5_000, 'the second warning');
  assert.equal(JSON.parse(second.find((l) => l.includes('OTLP export failed'))!).error, 'grpc-status 8: café fermé');
  await tracer.close();
  await again.close();
  collector.close();
});

test('a collector that never answers (no export timeout) gets at most 16 exports in flight; later spans are dropped with a warning', { timeout: 20_000 }, async () => {
  const calls: http2.ServerHttp2Stream[] = [];
  const silent = http2.createServer();
  silent.on('stream', (s) => calls.push(s));
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', () => r()));
  const lines: string[] = [];
  const stats = new SidecarStats();
  const tracer = new Tracer('svc', { host: '127.0.0.1', port: (silent.address() as AddressInfo).port }, 0, stats, (l) => lines.push(l));
  const span = () => new Span(TRACE, '00f067aa0ba902b8', '', true, '', 'ingress', 2, performance.now());
  for (let i = 0; i < 5 * 20; i++) tracer.send(span());
  await eventually(() => calls.length === 16, 5_000, 'sixteen exports reach the collector');
  assert.equal(stats.tracingSpansSent.get(), 80, 'sixteen batches of five handed to the exporter');
  assert.equal(lines.filter((l) => l.includes('16 exports unanswered')).length, 1);
  // Shutdown gives up on the silent collector's answers (before, it waited for them forever: this test timed out).
  await tracer.close();
  for (const s of calls) s.close();
  silent.close();
});

test("callers' active health checks are not traced: the inbound health_check filter unsamples their span (and the app's parent), and their answer names the checked cluster; other requests are traced", { timeout: 40_000 }, async () => {
  const collector = await startCollector();
  closers.push(() => collector.close());
  const app = await traceApp();
  // The caller's sidecar checks api every 100 ms through api's inbound listener, as Envoy's health checker does.
  const { mesh, client, server } = await tracedMesh(collector.port, 100, app, 100);
  await eventually(async () => (await metric(client.adminPort, 'envoy_cluster_health_check_success', { envoy_cluster_name: 'outbound|7000||api.default' })) >= 5, 10_000, 'five health checks of api');

  // One as the checker sends it: the app gets an unsampled parent; the answer says which cluster was checked.
  const check = await get(server.inboundPort, 'api', '/healthz', { headers: { 'user-agent': 'Envoy/HC' } });
  assert.equal(check.status, 200);
  assert.match(JSON.parse(check.body).traceparent, /^00-[0-9a-f]{32}-[0-9a-f]{16}-00$/);
  assert.equal(check.headers['x-envoy-upstream-healthchecked-cluster'], 'api');
  // Another user-agent on the same path is an ordinary request: traced, sampled, no such header.
  const plain = await get(server.inboundPort, 'api', '/healthz', { headers: { 'user-agent': 'curl/8.5.0' } });
  assert.match(JSON.parse(plain.body).traceparent, /-01$/);
  assert.equal(plain.headers['x-envoy-upstream-healthchecked-cluster'], undefined);
  assert.equal((await get(client.outboundPort, 'api', '/items')).status, 200);

  await mesh.close();
  await eventually(() => collector.spans.some((s) => s.attributes['http.url']?.endsWith('/items')), 3_000, 'the flush at close');
  const urls = collector.spans.map((s) => `${s.service} ${s.attributes['http.url'] ?? ''} ${s.attributes['user_agent'] ?? ''}`);
  // Exported: the curl request (api) and /items (caller and api); none of the many health checks.
  assert.equal(collector.spans.length, 3, urls.join('\n'));
  assert.equal(collector.spans.filter((s) => s.attributes['user_agent'] === 'Envoy/HC').length, 0);
});
