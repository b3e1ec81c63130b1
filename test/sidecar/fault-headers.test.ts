// The fault filter as Envoy's fault_filter.cc and filters/common/fault/fault_config.cc run it, on a live sidecar:
// faults the caller asks for in request headers (header_abort, header_delay: x-envoy-fault-abort-request,
// x-envoy-fault-abort-grpc-request, x-envoy-fault-delay-request and their -percentage headers), a gRPC abort
// (grpc_status: an HTTP 200 trailers-only answer a gRPC client reads as that status), the filter's `headers`
// matchers, and the per-downstream-cluster counters http.<prefix>.fault.<cluster>.{delays,aborts}_injected.

import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import http from 'node:http';
import http2 from 'node:http2';
import { after, test } from 'node:test';
import { TestMesh, admin, eventually, get, instance, meshEditingFaults, metric, route, runtimeModify as modify, service, startApp, tap, type TestApp } from './harness.ts';

const closers: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of closers.reverse()) await c().catch(() => undefined);
});

async function app(name: string): Promise<TestApp> {
  const a = await startApp(name);
  closers.push(() => a.close());
  return a;
}

/**
 * A mesh whose translator's fault configs (typed_per_filter_config) go through `edit` with their route's name:
 * weft's translator writes only fixed delays and HTTP aborts, an operator's Envoy config may write the rest.
 */
async function mesh(edit: (fault: Record<string, any>, routeName: string) => void): Promise<TestMesh> {
  const m = await meshEditingFaults(edit);
  closers.push(() => m.close());
  return m;
}

const byHeader = (name: string) => ({ match: [{ headers: [{ name: 'x-test', match: { exact: name } }] }] });

test('header_abort and header_delay: x-envoy-fault-abort-request, -delay-request and their -percentage headers decide the fault, as Envoy parses them; invalid values are no fault', { timeout: 60_000 }, async () => {
  const shop = await app('shop');
  const m = await mesh((f, name) => {
    if (name === 'default/shop/capped') {
      // header_abort at 0%: a percentage header cannot raise it (HeaderPercentageProvider caps it by the numerator).
      f.abort = { header_abort: {}, percentage: { numerator: 0 } };
      delete f.delay;
    } else {
      f.abort = { header_abort: {}, percentage: f.abort.percentage };
      f.delay = { header_delay: {}, percentage: f.delay.percentage };
    }
  });
  m.model.update({
    services: [service('caller', 8000), service('shop', 7000)],
    instances: [instance('shop', shop.port)],
    routes: [route('shop', [
      { name: 'capped', ...byHeader('capped'), destinations: [{ service: 'shop', weight: 1 }], fault: { abort: { httpStatus: 503, percentage: 100 } } },
      { name: 'asked', destinations: [{ service: 'shop', weight: 1 }], fault: { delay: { fixedDelayMs: 1, percentage: 100 }, abort: { httpStatus: 503, percentage: 100 } } },
    ])],
  });
  const sc = await m.sidecar('caller', 8000);
  /** One request with these headers: its status, body, response flags and how long it took. */
  const call = async (headers: Record<string, string>) => {
    const watching = await tap(sc.adminPort, '?authority=shop&max=1');
    const t0 = Date.now();
    const r = await get(sc.outboundPort, 'shop', '/', { headers });
    const ms = Date.now() - t0;
    await watching.ended;
    return { status: r.status, body: r.body, flags: watching.lines[0]!.response_flags as string, ms };
  };

  // No fault header: the filter is set to abort and delay 100% of requests, but has no status or duration to use.
  const plain = await call({});
  assert.deepEqual([plain.status, plain.flags], [200, '-']);
  const before = shop.hits;

  const aborted = await call({ 'x-envoy-fault-abort-request': '429' });
  assert.deepEqual([aborted.status, aborted.body, aborted.flags], [429, 'fault filter abort', 'FI']);
  // As absl::SimpleAtoi: whitespace around and a '+' are taken.
  assert.equal((await call({ 'x-envoy-fault-abort-request': ' +503 ' })).status, 503);
  // Not a number, or outside [200, 600): no abort.
  for (const bad of ['abc', '600', '199', '-500', '5O3']) assert.equal((await call({ 'x-envoy-fault-abort-request': bad })).status, 200, `x-envoy-fault-abort-request: ${bad}`);
  // The percentage header lowers the configured 100%: 0 is none; not a number leaves the configured one.
  assert.equal((await call({ 'x-envoy-fault-abort-request': '429', 'x-envoy-fault-abort-request-percentage': '0' })).status, 200);
  assert.equal((await call({ 'x-envoy-fault-abort-request': '429', 'x-envoy-fault-abort-request-percentage': '100' })).status, 429);
  assert.equal((await call({ 'x-envoy-fault-abort-request': '429', 'x-envoy-fault-abort-request-percentage': 'all' })).status, 429);
  // ... but cannot raise it: the configured 0% stays 0% whatever the header says.
  assert.equal((await call({ 'x-test': 'capped', 'x-envoy-fault-abort-request': '429', 'x-envoy-fault-abort-request-percentage': '100' })).status, 200);
  // The runtime's http_status key is read over the header's status, as over a configured one.
  await modify(sc.adminPort, 'fault.http.abort.http_status=418');
  assert.equal((await call({ 'x-envoy-fault-abort-request': '429' })).status, 418);
  await modify(sc.adminPort, 'fault.http.abort.http_status=');

  // A gRPC status asked of a request that is not gRPC: Envoy's local reply is HTTP 200 with the abort's body.
  const grpcOnHttp = await call({ 'x-envoy-fault-abort-grpc-request': '14' });
  assert.deepEqual([grpcOnHttp.status, grpcOnHttp.body, grpcOnHttp.flags], [200, 'fault filter abort', 'FI']);
  // Both asked: the HTTP status wins (Envoy's abortStatus).
  assert.equal((await call({ 'x-envoy-fault-abort-request': '502', 'x-envoy-fault-abort-grpc-request': '14' })).status, 502);
  assert.equal((await call({ 'x-envoy-fault-abort-grpc-request': 'x' })).status, 200, 'an invalid gRPC status: no abort');

  const delayed = await call({ 'x-envoy-fault-delay-request': '300' });
  assert.deepEqual([delayed.status, delayed.flags], [200, 'DI']);
  assert.ok(delayed.ms >= 280, `delayed ${delayed.ms} ms`);
  for (const bad of ['0', 'soon', '-5']) {
    const r = await call({ 'x-envoy-fault-delay-request': bad });
    assert.deepEqual([r.status, r.flags], [200, '-'], `x-envoy-fault-delay-request: ${bad}`);
  }
  const notDelayed = await call({ 'x-envoy-fault-delay-request': '300', 'x-envoy-fault-delay-request-percentage': '0' });
  assert.deepEqual([notDelayed.flags, notDelayed.ms < 250], ['-', true]);
  // Delay, then abort.
  const both = await call({ 'x-envoy-fault-delay-request': '150', 'x-envoy-fault-abort-request': '503' });
  assert.deepEqual([both.status, both.flags], [503, 'DI,FI']);
  assert.ok(both.ms >= 130, `delayed ${both.ms} ms before the abort`);

  // Every abort above was answered by the sidecar: the app saw only the requests that passed.
  assert.equal(shop.hits - before, 13);

  // A delay longer than a Node timer can wait (2^31-1 ms) still delays (it does not fire at once); the client that
  // gives up ends it, and its active fault with it (Envoy's onDestroy).
  const gaveUp = await new Promise<string>((resolve) => {
    const req = http.get({ host: '127.0.0.1', port: sc.outboundPort, headers: { host: 'shop', 'x-envoy-fault-delay-request': '99999999999999' }, agent: false }, () => resolve('answered'));
    req.on('error', () => resolve('gave up'));
    setTimeout(() => req.destroy(), 300);
  });
  assert.equal(gaveUp, 'gave up');
  await eventually(async () => (await metric(sc.adminPort, 'envoy_http_fault_active_faults', { envoy_http_conn_manager_prefix: 'outbound' })) === 0, 5000, 'the delayed request no longer counts');
  assert.equal(shop.hits - before, 13, 'the request given up never reached the app');
});

interface GrpcOutcome {
  code: number;
  details: string;
}

test('abort.grpc_status: a gRPC caller gets an HTTP 200 trailers-only answer with that grpc-status and grpc-message "fault filter abort"; fault.http[.<cluster>].abort.grpc_status and x-envoy-fault-abort-grpc-request change it', { timeout: 60_000 }, async () => {
  const shop = await app('shop');
  const m = await mesh((f, name) => {
    if (name === 'default/shop/asked') f.abort = { header_abort: {}, percentage: { numerator: 100 } };
    else f.abort = { grpc_status: 14, percentage: f.abort.percentage };
  });
  m.model.update({
    services: [service('caller', 8000), service('shop', 7000)],
    instances: [instance('shop', shop.port)],
    routes: [route('shop', [
      { name: 'asked', ...byHeader('asked'), destinations: [{ service: 'shop', weight: 1 }], fault: { abort: { httpStatus: 503, percentage: 100 } } },
      { name: 'grpc', destinations: [{ service: 'shop', weight: 1 }], fault: { abort: { httpStatus: 503, percentage: 100 } } },
    ])],
  });
  const sc = await m.sidecar('caller', 8000);

  // On the wire: one HEADERS frame that ends the stream, :status 200 with the gRPC status in it.
  const session = http2.connect(`http://127.0.0.1:${sc.outboundPort}`);
  closers.push(async () => void session.close());
  const head = await new Promise<{ headers: http2.IncomingHttpHeaders; flags: number }>((resolve, reject) => {
    const req = session.request({ ':method': 'POST', ':path': '/shop.Shop/Buy', ':authority': 'shop', 'content-type': 'application/grpc', te: 'trailers' });
    req.on('response', (headers, flags) => resolve({ headers, flags }));
    req.on('error', reject);
    req.end();
  });
  assert.deepEqual([head.headers[':status'], head.headers['content-type'], head.headers['grpc-status'], head.headers['grpc-message']], [200, 'application/grpc', '14', 'fault filter abort']);
  assert.equal(head.flags & http2.constants.NGHTTP2_FLAG_END_STREAM, http2.constants.NGHTTP2_FLAG_END_STREAM, 'trailers-only');

  // A real gRPC client reads it as that status.
  const raw = (b: Buffer): Buffer => b;
  const definition = { buy: { path: '/shop.Shop/Buy', requestStream: false, responseStream: false, requestSerialize: raw, requestDeserialize: raw, responseSerialize: raw, responseDeserialize: raw } };
  const Client = grpc.makeGenericClientConstructor(definition as unknown as grpc.ServiceDefinition, 'Shop');
  const client = new Client(`127.0.0.1:${sc.outboundPort}`, grpc.credentials.createInsecure(), { 'grpc.default_authority': 'shop' });
  closers.push(async () => client.close());
  const buy = (headers: Record<string, string> = {}) =>
    new Promise<GrpcOutcome>((resolve) => {
      const md = new grpc.Metadata();
      for (const [k, v] of Object.entries(headers)) md.set(k, v);
      (client as unknown as Record<string, (req: Buffer, md: grpc.Metadata, cb: (e: grpc.ServiceError | null) => void) => void>).buy!(Buffer.from('one'), md, (e) => resolve(e ? { code: e.code, details: e.details } : { code: 0, details: '' }));
    });
  assert.deepEqual(await buy(), { code: grpc.status.UNAVAILABLE, details: 'fault filter abort' });
  // The runtime's key over the configured status; a downstream cluster's key in its place for that cluster.
  await modify(sc.adminPort, 'fault.http.abort.grpc_status=7');
  assert.deepEqual(await buy(), { code: grpc.status.PERMISSION_DENIED, details: 'fault filter abort' });
  await modify(sc.adminPort, 'fault.http.web.abort.grpc_status=8');
  assert.equal((await buy({ 'x-envoy-downstream-service-cluster': 'web' })).code, grpc.status.RESOURCE_EXHAUSTED);
  assert.equal((await buy({ 'x-envoy-downstream-service-cluster': 'batch' })).code, grpc.status.UNAVAILABLE, "another cluster: its own (unset) key over the configured 14, not the filter's key");
  await modify(sc.adminPort, 'fault.http.abort.grpc_status=&fault.http.web.abort.grpc_status=');

  // header_abort: the caller's x-envoy-fault-abort-grpc-request.
  assert.deepEqual(await buy({ 'x-test': 'asked', 'x-envoy-fault-abort-grpc-request': '5' }), { code: grpc.status.NOT_FOUND, details: 'fault filter abort' });
  // Without it the call goes to the app (an HTTP/1.1 app, not gRPC: the client sees no gRPC answer, but it got there).
  const hits = shop.hits;
  await buy({ 'x-test': 'asked' });
  assert.equal(shop.hits, hits + 1);
  assert.equal(hits, 0, 'no aborted call reached the app');
});

test("the filter's headers: the fault applies only when every matcher matches the request (Envoy's HeaderUtility::matchHeaders)", { timeout: 60_000 }, async () => {
  const shop = await app('shop');
  const m = await mesh((f) => {
    f.headers = [
      { name: 'x-canary', string_match: { exact: 'yes' } },
      { name: 'x-user', present_match: true },
      { name: 'x-tier', string_match: { prefix: 'gold' }, invert_match: true },
    ];
  });
  m.model.update({
    services: [service('caller', 8000), service('shop', 7000)],
    instances: [instance('shop', shop.port)],
    routes: [route('shop', [{ name: 'gated', destinations: [{ service: 'shop', weight: 1 }], fault: { abort: { httpStatus: 503, percentage: 100 } } }])],
  });
  const sc = await m.sidecar('caller', 8000);
  const status = async (headers: Record<string, string>) => (await get(sc.outboundPort, 'shop', '/', { headers })).status;
  assert.equal(await status({}), 200);
  assert.equal(await status({ 'x-canary': 'yes' }), 200, 'x-user missing');
  assert.equal(await status({ 'x-canary': 'no', 'x-user': 'ann' }), 200);
  // As Envoy's HeaderData::matchesHeaders: an inverted value matcher does not match a request without the header.
  assert.equal(await status({ 'x-canary': 'yes', 'x-user': 'ann' }), 200, 'x-tier missing');
  assert.equal(await status({ 'x-canary': 'yes', 'x-user': 'ann', 'x-tier': 'silver' }), 503);
  assert.equal(await status({ 'x-canary': 'yes', 'x-user': 'ann', 'x-tier': 'gold-plus' }), 200, 'the inverted matcher matched nothing');
  assert.equal(shop.hits, 5);
});

test('per-downstream-cluster counters: http.<prefix>.fault.<cluster>.delays_injected / aborts_injected beside the totals, in Prometheus with envoy_fault_downstream_cluster; none for an empty cluster or with disable_downstream_cluster_stats', { timeout: 60_000 }, async () => {
  const shop = await app('shop');
  const m = await mesh((f, name) => {
    if (name === 'default/shop/quiet') f.disable_downstream_cluster_stats = true;
  });
  m.model.update({
    services: [service('caller', 8000), service('shop', 7000)],
    instances: [instance('shop', shop.port)],
    routes: [route('shop', [
      { name: 'quiet', ...byHeader('quiet'), destinations: [{ service: 'shop', weight: 1 }], fault: { abort: { httpStatus: 503, percentage: 100 } } },
      { name: 'slow', ...byHeader('slow'), destinations: [{ service: 'shop', weight: 1 }], fault: { delay: { fixedDelayMs: 20, percentage: 100 } } },
      { name: 'broken', destinations: [{ service: 'shop', weight: 1 }], fault: { abort: { httpStatus: 503, percentage: 100 } } },
    ])],
  });
  const sc = await m.sidecar('caller', 8000);
  const call = async (headers: Record<string, string>) => (await get(sc.outboundPort, 'shop', '/', { headers })).status;
  const cluster = (name: string) => ({ 'x-envoy-downstream-service-cluster': name });
  for (const h of [cluster('web'), cluster('web'), cluster('batch'), {}, cluster('')]) assert.equal(await call(h), 503);
  for (const h of [cluster('web'), cluster('jobs')]) assert.equal(await call({ ...h, 'x-test': 'slow' }), 200);
  assert.equal(await call({ ...cluster('hidden'), 'x-test': 'quiet' }), 503);

  const prom = (await admin(sc.adminPort, '/stats/prometheus')).body.split('\n').filter((l) => /^envoy_http_fault_(aborts|delays)_injected[{ ]/.test(l)).sort();
  assert.deepEqual(prom, [
    'envoy_http_fault_aborts_injected{envoy_http_conn_manager_prefix="outbound",envoy_fault_downstream_cluster="batch"} 1',
    'envoy_http_fault_aborts_injected{envoy_http_conn_manager_prefix="outbound",envoy_fault_downstream_cluster="web"} 2',
    'envoy_http_fault_aborts_injected{envoy_http_conn_manager_prefix="outbound"} 6',
    'envoy_http_fault_delays_injected{envoy_http_conn_manager_prefix="outbound",envoy_fault_downstream_cluster="jobs"} 1',
    'envoy_http_fault_delays_injected{envoy_http_conn_manager_prefix="outbound",envoy_fault_downstream_cluster="web"} 1',
    'envoy_http_fault_delays_injected{envoy_http_conn_manager_prefix="outbound"} 2',
  ]);
  // The harness's metric() gives the connection manager's total, not the total plus its per-cluster series again.
  assert.equal(await metric(sc.adminPort, 'envoy_http_fault_aborts_injected', { envoy_http_conn_manager_prefix: 'outbound' }), 6);
  assert.equal(await metric(sc.adminPort, 'envoy_http_fault_aborts_injected', { envoy_fault_downstream_cluster: 'web' }), 2);
  // One family per name, as Envoy's: one TYPE line each.
  const exposition = (await admin(sc.adminPort, '/stats/prometheus')).body;
  assert.equal(exposition.match(/^# TYPE envoy_http_fault_aborts_injected counter$/gm)?.length, 1);
  // Envoy's own names in /stats, and its filter on them.
  const text = (await admin(sc.adminPort, '/stats?filter=^http\\.outbound\\.fault\\.')).body;
  for (const line of ['http.outbound.fault.aborts_injected: 6', 'http.outbound.fault.web.aborts_injected: 2', 'http.outbound.fault.batch.aborts_injected: 1', 'http.outbound.fault.web.delays_injected: 1', 'http.outbound.fault.jobs.delays_injected: 1', 'http.outbound.fault.delays_injected: 2']) {
    assert.ok(text.split('\n').includes(line), `${line} in\n${text}`);
  }
  assert.doesNotMatch(text, /hidden|fault\.\.aborts/);
  const filtered = (await admin(sc.adminPort, '/stats/prometheus?filter=fault\\.web\\.')).body;
  assert.match(filtered, /^envoy_http_fault_aborts_injected\{envoy_http_conn_manager_prefix="outbound",envoy_fault_downstream_cluster="web"\} 2$/m);
  assert.doesNotMatch(filtered, /envoy_fault_downstream_cluster="batch"|prefix="outbound"\} /);
});
