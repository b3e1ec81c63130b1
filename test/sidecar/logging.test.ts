// Log levels as an Envoy operator changes them: `weft sidecar --log-level`
// and `--component-log-level` at start, POST /logging on the admin port at
// run time. The wasm logger's level reaches filters that are already running
// (what they may log, and what proxy_get_log_level tells them); the config
// logger writes every accepted xDS update at debug and NACKs at warning.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { defaultTranslator } from '../../control/xds/index.ts';
import { Loggers, parseComponentLevels } from '../../sidecar/logging.ts';
import { TestMesh, eventually, freePort, get, instance, route, service, startApp } from './harness.ts';

const root = fileURLToPath(new URL('../../', import.meta.url));
const telemetryWasm = fileURLToPath(new URL('../../filters/dist/telemetry.wasm', import.meta.url));
const closers: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of closers.reverse()) await c();
});

async function admin(port: number, path: string, method = 'POST'): Promise<{ status: number; body: string }> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`, { method });
  return { status: res.status, body: await res.text() };
}

/** The paths of the telemetry filter's access lines among a sidecar's log lines. */
const accessPaths = (lines: string[]) => lines.filter((l) => l.includes('"source":"wasm"')).map((l) => (JSON.parse(JSON.parse(l).msg) as { path: string }).path);
const acks = (lines: string[]) => lines.filter((l) => l.includes('"xds ACK"')).map((l) => JSON.parse(l) as { level: string; source: string; type: string; version: string; updated: string[]; removed: string[] });

test('POST /logging: the wasm level reaches a running filter (its access line off at warning, back at info), the config logger writes each accepted update at debug; bad input is a 400 naming the parameter and changes nothing', { timeout: 60_000, skip: !existsSync(telemetryWasm) && 'filters/dist/telemetry.wasm not built' }, async () => {
  const bytes = new Uint8Array(readFileSync(telemetryWasm));
  const digest = createHash('sha256').update(bytes).digest('hex');
  const modules = http.createServer((_req, res) => res.end(bytes));
  await new Promise<void>((r) => modules.listen(0, '127.0.0.1', () => r()));
  closers.push(() => new Promise((r) => modules.close(() => r())));
  const mesh = await TestMesh.start({ translator: defaultTranslator({ wasmBaseUrl: `http://127.0.0.1:${(modules.address() as AddressInfo).port}`, wasmClusterName: 'weft-control' }) });
  closers.push(() => mesh.close());
  const app = await startApp('ledger');
  mesh.track(() => app.close());
  const inbound = await freePort();
  const model = {
    services: [service('ledger', 7800)],
    instances: [instance('ledger', inbound)],
    filterModules: [{ name: 'telemetry', sha256: digest, size: bytes.length, abiVersion: '0.2.1' as const }],
    filterBindings: [{ name: 'ledger-telemetry', namespace: 'default', service: 'ledger', direction: 'inbound' as const, filter: 'telemetry', order: 0, config: {}, failurePolicy: 'fail_open' as const }],
  };
  mesh.model.update(model);
  const lines: string[] = [];
  const sc = await mesh.sidecar('ledger', app.port, { inboundPort: inbound, log: (l) => lines.push(l), componentLogLevel: 'config:debug' });

  // Started with config at debug: every accepted update is a line, with the names it carried.
  const started = acks(lines);
  assert.ok(started.some((a) => a.type === 'listener' && a.updated.includes('inbound')), JSON.stringify(started));
  assert.ok(started.some((a) => a.type === 'cluster' && a.updated.length > 0));
  assert.ok(started.every((a) => a.level === 'debug' && a.source === 'config'));

  assert.equal((await admin(sc.adminPort, '/logging', 'GET')).status, 405, 'a GET changes nothing');
  assert.deepEqual(await admin(sc.adminPort, '/logging'), { status: 200, body: 'active loggers:\n  config: debug\n  wasm: info\n' });

  assert.equal((await get(inbound, 'ledger', '/first')).status, 200);
  await eventually(() => accessPaths(lines).includes('/first'), 5000, 'the access line at info');

  // warn is read as warning, as in Envoy; the filter now skips its access line (it asks proxy_get_log_level).
  assert.deepEqual(await admin(sc.adminPort, '/logging?wasm=warn'), { status: 200, body: 'active loggers:\n  config: debug\n  wasm: warning\n' });
  assert.equal((await get(inbound, 'ledger', '/quiet')).status, 200);
  // level= sets every logger.
  assert.deepEqual(await admin(sc.adminPort, '/logging?level=info'), { status: 200, body: 'active loggers:\n  config: info\n  wasm: info\n' });
  assert.equal((await get(inbound, 'ledger', '/again')).status, 200);
  await eventually(() => accessPaths(lines).includes('/again'), 5000, 'the access line back at info');
  assert.deepEqual(accessPaths(lines), ['/first', '/again'], 'nothing logged for the request made at warning');

  // Config at info: a route change is applied (traffic shows it) and no ACK line is written.
  const ackCount = acks(lines).length;
  // (Routes are the callers' side: seen through the sidecar's own outbound listener.)
  mesh.model.update({ ...model, routes: [route('ledger', [{ destinations: [{ service: 'ledger', weight: 1 }], fault: { abort: { httpStatus: 418, percentage: 100 } } }])] });
  await eventually(async () => (await get(sc.outboundPort, 'ledger', '/')).status === 418, 10_000, 'the route change');
  assert.equal(acks(lines).length, ackCount);
  // paths= sets several at once; config at debug again: the next update is written.
  assert.deepEqual(await admin(sc.adminPort, '/logging?paths=config:debug,wasm:error'), { status: 200, body: 'active loggers:\n  config: debug\n  wasm: error\n' });
  mesh.model.update({ ...model, routes: [] });
  await eventually(async () => (await get(sc.outboundPort, 'ledger', '/')).status === 200, 10_000, 'the route removed');
  assert.ok(acks(lines).slice(ackCount).some((a) => a.type === 'route'), 'the route update logged at debug');

  // Bad input: a 400 naming the parameter, and no level changes.
  for (const [query, message] of [
    ['wasm=loud', /^wasm: "loud" is not a log level \(trace, debug, info, warning \(or warn\), error, critical, off\)\n$/],
    ['router=debug', /^router: unknown parameter \(logging takes level, paths or a logger name: config, wasm\)\n$/],
    ['level=trace&wasm=debug', /^level, wasm: one parameter at a time, as Envoy's \/logging \(level, paths or a logger name\)\n$/],
    ['paths=wasm', /^paths: expected name:level\[,name:level\.\.\.\], got "wasm"\n$/],
    ['paths=upstream:debug', /^paths: unknown logger "upstream" \(loggers: config, wasm\)\n$/],
  ] as const) {
    const r = await admin(sc.adminPort, `/logging?${query}`);
    assert.equal(r.status, 400, query);
    assert.match(r.body, message);
  }
  assert.equal((await admin(sc.adminPort, '/logging')).body, 'active loggers:\n  config: debug\n  wasm: error\n');
});

test('the config logger above warning hides NACKs; --log-level and --component-log-level are checked at start', () => {
  const quiet = new Loggers(2, [['config', 4]]);
  assert.equal(quiet.enabled('config', 3), false, 'a NACK (warning) is not written at error');
  assert.equal(quiet.enabled('wasm', 3), true);
  assert.equal(new Loggers(6).enabled('wasm', 5), false, 'off writes nothing, critical included');
  assert.deepEqual(parseComponentLevels('wasm:debug,config:warn'), [['wasm', 1], ['config', 3]]);

  for (const [flags, message] of [
    [['--log-level', 'loud'], /log-level: "loud" is not a log level/],
    [['--component-log-level', 'wasm=debug'], /component-log-level: expected name:level\[,name:level\.\.\.\], got "wasm=debug"/],
    [['--component-log-level', 'http:debug'], /component-log-level: unknown logger "http" \(loggers: config, wasm\)/],
  ] as const) {
    const r = spawnSync(process.execPath, ['bin/weft.mjs', 'sidecar', '--service', 'job', '--xds', '127.0.0.1:9', '--app-port', '9', ...flags], { cwd: root, encoding: 'utf8', timeout: 30_000 });
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, message);
  }
});
