// Access log filters and the timing operators as a user of the weft sidecar
// sees them: an operator's access_log (here set on every connection manager,
// as an Envoy config might carry it) with a filter writes lines only for the
// requests it selects, evaluated as Envoy's access_log_impl.cc does; the
// runtime key of a filter changes the selection through POST /runtime_modify;
// %REQUEST_DURATION% <= %RESPONSE_DURATION% <= %DURATION% for a slow upstream.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { loadOrCreateCa } from '../../control/ca/root.ts';
import { issueSvid } from '../../control/ca/svid.ts';
import { DataPlane } from '../../sidecar/dataplane.ts';
import { SidecarStats } from '../../sidecar/stats.ts';
import { TestMesh, admin, eventually, get, service, startApp, withFields } from './harness.ts';

const closers: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of closers.reverse()) await c().catch(() => undefined);
});

const STDOUT = 'type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog';

/** A mesh whose sidecar for `web` (an app answering by path) logs with `filter` and `fields` on every connection manager. */
async function meshWith(filter: unknown, fields: Record<string, string>) {
  const accessLog = [{ name: 'envoy.access_loggers.stdout', ...(filter === undefined ? {} : { filter }), typed_config: { '@type': STDOUT, log_format: { json_format: fields } } }];
  const mesh = await TestMesh.start({ translator: withFields({ access_log: accessLog }) });
  closers.push(() => mesh.close());
  const app = await startApp('web', (req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const status = Number(url.searchParams.get('status') ?? 200);
    const delay = Number(url.searchParams.get('delay') ?? 0);
    // The head after `delay` ms, then the body after as long again.
    setTimeout(() => {
      res.writeHead(status, { 'content-type': 'text/plain' });
      res.write('a');
      setTimeout(() => res.end('b'), delay);
    }, delay);
  });
  closers.push(() => app.close());
  mesh.model.update({ services: [service('web', app.port)] });
  const lines: string[] = [];
  const sc = await mesh.sidecar('web', app.port, { accessLog: (l) => lines.push(l) });
  return { sc, lines };
}

/** A request the HTTP/1 codec refuses (a header line without a colon): the sidecar's own 400, flag DPE, nothing upstream. */
function malformed(port: number): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => socket.end('GET /bad HTTP/1.1\r\nHost x\r\n\r\n'));
    let got = '';
    socket.on('data', (c) => (got += c));
    socket.on('close', () => resolve(got));
    socket.on('error', reject);
  });
}

/** The parsed lines logged after `before`, once the batch is out. */
async function linesAfter(lines: string[], before: number, expected: number): Promise<Record<string, unknown>[]> {
  await eventually(() => lines.length >= before + expected, 5000, `${expected} new lines`);
  // Whatever else a wrong filter lets through would be written in the same turn: give it one more.
  await new Promise((r) => setTimeout(r, 50));
  return lines.slice(before).map((l) => JSON.parse(l) as Record<string, unknown>);
}

test('a status code filter with a runtime key logs only errors; /runtime_modify lowers the threshold', { timeout: 60_000 }, async () => {
  const { sc, lines } = await meshWith({ status_code_filter: { comparison: { op: 'GE', value: { default_value: 500, runtime_key: 'access_log.min_status' } } } }, { code: '%RESPONSE_CODE%', path: '%REQ(:PATH)%' });
  for (const s of [200, 404, 503]) assert.equal((await get(sc.inboundPort, 'web', `/r?status=${s}`)).status, s);
  assert.deepEqual(await linesAfter(lines, 0, 1), [{ code: 503, path: '/r?status=503' }]);

  const r = await admin(sc.adminPort, '/runtime_modify?access_log.min_status=400', 'POST');
  assert.equal(r.status, 200, r.body);
  const before = lines.length;
  for (const s of [200, 404]) assert.equal((await get(sc.inboundPort, 'web', `/again?status=${s}`)).status, s);
  assert.deepEqual(await linesAfter(lines, before, 1), [{ code: 404, path: '/again?status=404' }]);
});

test('or/and nesting of duration, header and response flag filters selects the slow and the failed, not the slow probe', { timeout: 60_000 }, async () => {
  const { sc, lines } = await meshWith(
    {
      or_filter: {
        filters: [
          {
            and_filter: {
              filters: [
                { duration_filter: { comparison: { op: 'GE', value: { default_value: 150, runtime_key: 'access_log.slow_ms' } } } },
                // As Envoy's HeaderUtility::matchHeaders: an inverted value match needs the header to be there.
                { header_filter: { header: { name: 'user-agent', string_match: { prefix: 'probe/' }, invert_match: true } } },
                { not_health_check_filter: {} },
              ],
            },
          },
          { response_flag_filter: { flags: ['DPE', 'UF'] } },
        ],
      },
    },
    { path: '%REQ(:PATH)%', flags: '%RESPONSE_FLAGS%' },
  );
  const ua = { 'user-agent': 'app/1' };
  assert.equal((await get(sc.inboundPort, 'web', '/fast', { headers: ua })).status, 200);
  assert.equal((await get(sc.inboundPort, 'web', '/slow?delay=100', { headers: ua })).status, 200);
  assert.equal((await get(sc.inboundPort, 'web', '/slow-probe?delay=100', { headers: { 'user-agent': 'probe/1' } })).status, 200);
  // The codec's own 400 (flag DPE): logged, with no path (it never parsed one).
  assert.match(await malformed(sc.inboundPort), /^HTTP\/1\.1 400 /);
  const got = await linesAfter(lines, 0, 2);
  assert.deepEqual(got, [
    { path: '/slow?delay=100', flags: '-' },
    { path: null, flags: 'DPE' },
  ]);
});

test('runtime sampling follows the x-request-id, so the same requests are logged everywhere; 0% and 100% through the runtime', { timeout: 60_000 }, async () => {
  const { sc, lines } = await meshWith({ runtime_filter: { runtime_key: 'access_log.sample', percent_sampled: { numerator: 50, denominator: 'HUNDRED' } } }, { id: '%REQ(X-REQUEST-ID)%' });
  // 0x00000031 = 49 is under 50 of 100; 0x00000032 = 50 is not.
  const ids = ['00000031-0000-4000-8000-000000000000', '00000032-0000-4000-8000-000000000000', '00000063-0000-4000-8000-000000000000', '000000c7-0000-4000-8000-000000000000'];
  for (const id of ids) assert.equal((await get(sc.inboundPort, 'web', '/s', { headers: { 'x-request-id': id } })).status, 200);
  // 0x63 = 99 (no), 0xc7 = 199 % 100 = 99 (no).
  assert.deepEqual(await linesAfter(lines, 0, 1), [{ id: ids[0] }]);

  assert.equal((await admin(sc.adminPort, '/runtime_modify?access_log.sample=100', 'POST')).status, 200);
  let before = lines.length;
  for (const id of ids) await get(sc.inboundPort, 'web', '/s', { headers: { 'x-request-id': id } });
  assert.equal((await linesAfter(lines, before, 4)).length, 4, 'all of them at 100');

  assert.equal((await admin(sc.adminPort, '/runtime_modify?access_log.sample=0', 'POST')).status, 200);
  before = lines.length;
  for (const id of ids) await get(sc.inboundPort, 'web', '/s', { headers: { 'x-request-id': id } });
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(lines.length, before, 'none at 0');
});

test('the timing operators of a slow upstream are ordered as Envoy orders them; a local reply has none of the upstream ones', { timeout: 60_000 }, async () => {
  const { sc, lines } = await meshWith(undefined, {
    path: '%REQ(:PATH)%',
    rq: '%REQUEST_DURATION%',
    rqtx: '%REQUEST_TX_DURATION%',
    rs: '%RESPONSE_DURATION%',
    rstx: '%RESPONSE_TX_DURATION%',
    d: '%DURATION%',
    local: '%UPSTREAM_LOCAL_ADDRESS%',
    host: '%UPSTREAM_HOST%',
  });
  assert.equal((await get(sc.inboundPort, 'web', '/slow?delay=120', { method: 'POST', body: 'x'.repeat(1000) })).status, 200);
  assert.match(await malformed(sc.inboundPort), /^HTTP\/1\.1 400 /);
  const [slow, local] = (await linesAfter(lines, 0, 2)) as Record<string, any>[];
  assert.equal(slow!.path, '/slow?delay=120');
  for (const k of ['rq', 'rqtx', 'rs', 'rstx', 'd']) assert.equal(typeof slow![k], 'number', `${k} is a number: ${JSON.stringify(slow)}`);
  assert.ok(slow!.rq <= slow!.rqtx && slow!.rqtx <= slow!.rs && slow!.rs <= slow!.d, `request <= request tx <= response <= duration: ${JSON.stringify(slow)}`);
  // The head came after ~120 ms and the body ~120 ms after it.
  assert.ok(slow!.rs >= 100, `the first upstream byte after the app's delay: ${slow!.rs}`);
  assert.ok(slow!.rstx >= 100, `the response took the body's delay to send: ${slow!.rstx}`);
  assert.ok(slow!.rs + slow!.rstx <= slow!.d + 1, `response + its sending fit in the duration: ${JSON.stringify(slow)}`);
  assert.ok(slow!.rq < 100, `the request itself arrived quickly: ${slow!.rq}`);
  // The upstream connection's own address, not the app's.
  assert.match(slow!.local, /^127\.0\.0\.1:\d+$/);
  assert.notEqual(slow!.local, slow!.host);
  // The codec's 400: no request was received whole, nothing went upstream.
  assert.deepEqual(local, { path: null, rq: null, rqtx: null, rs: null, rstx: null, d: 0, local: null, host: null });
});

// An upstream over mutual TLS whose certificate is another identity's: the handshake fails, and the access log
// says why (%UPSTREAM_TRANSPORT_FAILURE_REASON%), as the router's 503 body does; the data plane is driven directly
// with the golden minimal config, as test/sidecar/cluster-sds-warming.test.ts does.
type Json = Record<string, any>;
const SECURE = 'outbound|9443||secure.default';
const golden = (file: string): { name: string; value: Json }[] => JSON.parse(readFileSync(new URL(`../golden/minimal-http/${file}`, import.meta.url), 'utf8'));
const resources = (file: string, patch: (v: Json) => Json = (v) => v) => golden(file).map((r) => ({ name: r.name, version: 'v1', value: patch(structuredClone(r.value)) }));

test('a TLS handshake to the upstream that fails is in %UPSTREAM_TRANSPORT_FAILURE_REASON%, with flag UF and no upstream local address', { timeout: 30_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-alog-tls-'));
  closers.push(async () => rmSync(dir, { recursive: true, force: true }));
  const ca = await loadOrCreateCa(dir, 'weft.local');
  const issue = (service: string) => issueSvid(ca, { trustDomain: 'weft.local', namespace: 'default', service, ttlMs: 600_000, now: new Date() });
  const [impostor, web] = await Promise.all([issue('impostor'), issue('web')]);
  const server = https.createServer({ cert: impostor.certificateChainPem, key: impostor.privateKeyPem, ca: impostor.trustBundlePem, requestCert: true, rejectUnauthorized: true }, (_req, res) => res.end('secret'));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  closers.push(() => new Promise<void>((r) => server.close(() => r())));
  closers.push(async () => server.closeAllConnections());
  const appPort = (server.address() as { port: number }).port;

  const lines: string[] = [];
  const dp = new DataPlane(new SidecarStats(), { node: { id: 'web-1', cluster: 'web' }, accessLog: (l) => lines.push(l) });
  closers.push(() => dp.close());
  const sds = { ads: {}, resource_api_version: 'V3' };
  const cluster = {
    name: SECURE,
    version: 'v1',
    value: {
      name: SECURE,
      type: 'STATIC',
      connect_timeout: '1s',
      load_assignment: { cluster_name: SECURE, endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: appPort } } } }] }] },
      transport_socket: {
        name: 'envoy.transport_sockets.tls',
        typed_config: {
          '@type': 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext',
          common_tls_context: {
            tls_certificate_sds_secret_configs: [{ name: 'web-cert', sds_config: sds }],
            combined_validation_context: {
              default_validation_context: { match_typed_subject_alt_names: [{ san_type: 'URI', matcher: { exact: 'spiffe://weft.local/ns/default/sa/secure' } }] },
              validation_context_sds_secret_config: { name: 'root', sds_config: sds },
            },
          },
        },
      },
    },
  };
  const accessLog = [{ name: 'envoy.access_loggers.stdout', typed_config: { '@type': STDOUT, log_format: { json_format: { code: '%RESPONSE_CODE%', flags: '%RESPONSE_FLAGS%', why: '%UPSTREAM_TRANSPORT_FAILURE_REASON%', local: '%UPSTREAM_LOCAL_ADDRESS%' } } } }];
  const withLog = (l: Json) => {
    l.address = { socket_address: { address: '127.0.0.1', port_value: 0 } };
    l.filter_chains[0].filters[0].typed_config.access_log = accessLog;
    return l;
  };
  assert.deepEqual(await dp.apply('secret', [
    { name: 'web-cert', version: 'v1', value: { name: 'web-cert', tls_certificate: { certificate_chain: { inline_string: web.certificateChainPem }, private_key: { inline_string: web.privateKeyPem } } } },
    { name: 'root', version: 'v1', value: { name: 'root', validation_context: { trusted_ca: { inline_string: web.trustBundlePem } } } },
  ], [], false), { errors: [] });
  assert.deepEqual(await dp.apply('cluster', [...resources('clusters.json'), cluster], [], true), { errors: [] });
  assert.deepEqual(await dp.apply('listener', resources('listeners.json', withLog), [], true), { errors: [] });
  const routes = resources('routes.json', (r) => (r.name === 'outbound' ? { ...r, virtual_hosts: [{ name: 'secure', domains: ['secure'], routes: [{ match: { prefix: '/' }, route: { cluster: SECURE } }] }, ...r.virtual_hosts] } : r));
  assert.deepEqual(await dp.apply('route', routes, [], false), { errors: [] });
  assert.deepEqual(await dp.apply('endpoint', resources('endpoints.json'), [], false), { errors: [] });
  const port = dp.listenerPort('outbound')!;

  const failed = await get(port, 'secure');
  assert.equal(failed.status, 503);
  await eventually(() => lines.length === 1, 5000, 'the line');
  const line = JSON.parse(lines[0]!);
  assert.deepEqual({ code: line.code, flags: line.flags, local: line.local }, { code: 503, flags: 'UF', local: null });
  const why = 'TLS_error:ERR_TLS_CERT_ALTNAME_INVALID:server certificate SAN spiffe://weft.local/ns/default/sa/impostor is not spiffe://weft.local/ns/default/sa/secure';
  // The log writes it with spaces as '_', as Envoy's formatter does; the 503 body as it is.
  assert.equal(line.why, why.replaceAll(' ', '_'));
  assert.ok(failed.body.endsWith(`transport failure reason: ${why}`), 'the same reason as the 503 body');
});
