// The access log as a user of the weft sidecar sees it: lines only where the
// control plane's listeners carry Envoy's stdout access logger, with the
// fields the control plane was given; what the sidecar does not implement is
// NACKed with its field path while the previous configuration keeps serving.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { startControl } from '../../control/main.ts';
import type { TranslateOptions } from '../../control/translate/index.ts';
import { defaultTranslator } from '../../control/xds/index.ts';
import { runSidecar } from '../../sidecar/main.ts';
import { TestMesh, eventually, get, service, startApp, withTimeout } from './harness.ts';

const closers: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of closers.reverse()) await c().catch(() => undefined);
});

test("custom fields given to weft control's access log reach the sidecar's line, typed as Envoy types them", { timeout: 60_000 }, async () => {
  const dataDir = await mkdtemp(join(tmpdir(), 'weft-alog-'));
  const fields = {
    code: '%RESPONSE_CODE%',
    what: '%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% -> %RESPONSE_CODE%',
    agent: '%REQ(USER-AGENT):4%',
    trace: '%REQ(X-NOT-SENT)%',
    details: '%RESPONSE_CODE_DETAILS%',
    route: '%ROUTE_NAME%',
    attempts: '%UPSTREAM_REQUEST_ATTEMPT_COUNT%',
    peer: '%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%',
    sent: '%BYTES_SENT%',
  };
  const control = await startControl({ dataDir, apiPort: 0, xdsPort: 0, host: '127.0.0.1', observability: { accessLog: { fields } } });
  closers.push(async () => {
    await control.close();
    await rm(dataDir, { recursive: true, force: true });
  });
  const token = (await readFile(join(dataDir, 'admin.token'), 'utf8')).trim();
  const app = await startApp('web', (_req, res) => res.end('hello'));
  closers.push(() => app.close());
  const created = await fetch(`${control.apiUrl}/api/v1/services`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ name: 'web', ports: [{ port: app.port, protocol: 'http' }] }),
  });
  assert.equal(created.status, 201, await created.text());

  const lines: string[] = [];
  const sc = await runSidecar({ service: 'web', xds: `127.0.0.1:${control.xdsPort}`, appPort: app.port, accessLog: (l) => lines.push(l), log: () => undefined });
  closers.push(() => sc.close());
  await withTimeout(sc.ready, 20_000, 'sidecar ready');

  const res = await get(sc.inboundPort, 'web', '/hi?x=1', { headers: { 'user-agent': 'weft-test/1' } });
  assert.equal(res.status, 200);
  await eventually(() => lines.length === 1, 5000, 'one access log line');
  const line = JSON.parse(lines[0]!);
  // Exactly the configured keys, plus the two literals the translator adds.
  assert.deepEqual(Object.keys(line), [...Object.keys(fields), 'weft_service', 'weft_direction']);
  assert.deepEqual(line, {
    code: 200,
    what: 'GET /hi?x=1 -> 200',
    agent: 'weft',
    trace: null,
    details: 'via_upstream',
    route: line.route,
    attempts: 1,
    peer: '127.0.0.1',
    sent: 5,
    weft_service: 'web.default',
    weft_direction: 'inbound',
  });
  assert.equal(typeof line.route, 'string', 'the inbound route has a name');
});

test('no access_log, no line; an operator the sidecar lacks is NACKed by path and the previous config keeps serving; a valid one logs', { timeout: 60_000 }, async () => {
  const options: TranslateOptions = { wasmBaseUrl: 'http://127.0.0.1:1', wasmClusterName: 'weft-control' };
  const mesh = await TestMesh.start({ translator: defaultTranslator(options) });
  closers.push(() => mesh.close());
  const app = await startApp('web', (_req, res) => res.end('ok'));
  closers.push(() => app.close());
  mesh.model.update({ services: [service('web', app.port)] });
  const lines: string[] = [];
  const sc = await mesh.sidecar('web', app.port, { accessLog: (l) => lines.push(l) });

  // The control plane was not asked for access logs: Envoy would log nothing, and neither does the sidecar.
  assert.equal((await get(sc.inboundPort, 'web', '/quiet')).status, 200);
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(lines, []);

  options.accessLog = { fields: { code: '%RESPONSE_CODE%', meta: '%UPSTREAM_FILTER_STATE(weft.x)%' } };
  mesh.model.update({ services: [service('web', app.port)] });
  await eventually(() => Object.keys(mesh.xds.status.get(sc.nodeId)?.lastNacks ?? {}).length > 0, 10_000, 'the NACK');
  const nack = JSON.stringify(mesh.xds.status.get(sc.nodeId)!.lastNacks);
  assert.match(nack, /access_log\[0\]\.typed_config\.log_format\.json_format\.meta: %UPSTREAM_FILTER_STATE\(weft\.x\)% is not supported by the weft sidecar/);
  assert.equal((await get(sc.inboundPort, 'web', '/still')).status, 200, 'the previous listener still serves');
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(lines, [], 'and still logs nothing');

  options.accessLog = { fields: { code: '%RESPONSE_CODE%', path: '%REQ(:PATH)%' } };
  mesh.model.update({ services: [service('web', app.port)] });
  await eventually(async () => {
    await get(sc.inboundPort, 'web', '/logged');
    return lines.length > 0;
  }, 10_000, 'a line once the valid format is applied');
  assert.deepEqual(JSON.parse(lines.at(-1)!), { code: 200, path: '/logged', weft_service: 'web.default', weft_direction: 'inbound' });

  // The HTTP/1 codec's own 400 (a header line without a colon) is logged too, with no path: it never parsed one.
  const before = lines.length;
  const answer = await new Promise<string>((resolve, reject) => {
    const socket = net.connect(sc.inboundPort, '127.0.0.1', () => socket.end('GET / HTTP/1.1\r\nHost x\r\n\r\n'));
    let got = '';
    socket.on('data', (c) => (got += c));
    socket.on('close', () => resolve(got));
    socket.on('error', reject);
  });
  assert.match(answer, /^HTTP\/1\.1 400 /);
  await eventually(() => lines.length > before, 5000, "the codec reply's line");
  assert.deepEqual(JSON.parse(lines.at(-1)!), { code: 400, path: null, weft_service: 'web.default', weft_direction: 'inbound' });
});

test("callers' active health checks (user-agent Envoy/HC) stay out of the inbound access log unless asked for; every other request is logged", { timeout: 60_000 }, async () => {
  const options: TranslateOptions = { wasmBaseUrl: 'http://127.0.0.1:1', wasmClusterName: 'weft-control', accessLog: { fields: { path: '%REQ(:PATH)%', agent: '%REQ(USER-AGENT)%' } } };
  const mesh = await TestMesh.start({ translator: defaultTranslator(options) });
  closers.push(() => mesh.close());
  const app = await startApp('probed', (_req, res) => res.end('ok'));
  closers.push(() => app.close());
  mesh.model.update({ services: [service('probed', app.port)] });
  const lines: string[] = [];
  const sc = await mesh.sidecar('probed', app.port, { accessLog: (l) => lines.push(l) });
  const send = async (path: string, agent?: string) => assert.equal((await get(sc.inboundPort, 'probed', path, agent ? { headers: { 'user-agent': agent } } : {})).status, 200);
  await send('/hc', 'Envoy/HC');
  await send('/none');
  await send('/curl', 'curl/8.5.0');
  await send('/hc-again', 'Envoy/HC');
  await eventually(() => lines.length >= 2, 5000, 'two lines');
  await new Promise((r) => setTimeout(r, 100));
  assert.deepEqual(lines.map((l) => JSON.parse(l).path), ['/none', '/curl'], 'the health checks are not logged');

  // healthChecks: true logs them too.
  options.accessLog = { ...options.accessLog, healthChecks: true };
  mesh.model.update({ services: [service('probed', app.port)] });
  await eventually(async () => {
    await send('/hc-logged', 'Envoy/HC');
    return lines.some((l) => JSON.parse(l).path === '/hc-logged');
  }, 10_000, 'a health check logged once asked for');
});
