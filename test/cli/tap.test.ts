// `weft tap PROXY` against real processes: a `weft control`, a `weft
// sidecar` and an app on loopback. The requests going through the sidecar
// come out one line each while they happen, filtered, headers (credentials
// redacted) with -o json; viewers may not tap; bad filters are named.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { api, startControl, weft, type ControlProcess } from './control-process.ts';
import { eventually, freePort, spawnWeft, type WeftProcess } from '../sidecar/harness.ts';

describe('weft tap PROXY: live requests through a sidecar', () => {
  let dir: string;
  let control: ControlProcess;
  let app: http.Server;
  let sidecar: WeftProcess;
  let outbound = 0;
  let adminPortOf = () => 0;
  let id = '';

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'weft-tap-'));
    control = await startControl(dir);
    app = http.createServer((_req, res) => res.end('hello'));
    await new Promise<void>((r) => app.listen(0, '127.0.0.1', r));
    const appPort = (app.address() as import('node:net').AddressInfo).port;
    await api(control, 'POST', '/api/v1/services', { name: 'orders', ports: [{ port: 8081, protocol: 'http' }] });
    await api(control, 'POST', '/api/v1/services', { name: 'frontend', ports: [{ port: 8080, protocol: 'http' }], dependsOn: ['orders'] });
    await api(control, 'POST', '/api/v1/services/orders/instances', { address: '127.0.0.1', port: appPort });
    const adminPort = await freePort();
    adminPortOf = () => adminPort;
    outbound = await freePort();
    sidecar = spawnWeft(['sidecar', '--service', 'frontend', '--xds', `127.0.0.1:${control.xdsPort}`, '--app-port', String(await freePort()), '--outbound-port', String(outbound), '--admin-port', String(adminPort)], { WEFT_ACCESS_LOG: 'off' });
    await eventually(async () => (await fetch(`http://127.0.0.1:${adminPort}/ready`).catch(() => undefined))?.status === 200, 30_000, `sidecar ready\n${sidecar.output()}`);
    const dump = (await (await fetch(`http://127.0.0.1:${adminPort}/config_dump`)).json()) as { configs: { bootstrap?: { node: { id: string } } }[] };
    id = dump.configs.find((c) => c.bootstrap)!.bootstrap!.node.id;
  });
  after(async () => {
    sidecar?.kill();
    app?.close();
    await control?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  /** Sends requests through the sidecar until `done` settles (the tap must be open to see them). */
  async function trafficUntil<T>(done: Promise<T>, path: string, headers: Record<string, string> = {}): Promise<T> {
    let finished = false;
    void done.finally(() => (finished = true));
    // (node:http, not fetch: fetch does not let a caller set Host)
    const call = (host: string, p: string, h: Record<string, string> = {}) =>
      new Promise<void>((resolve, reject) => {
        http.get({ host: '127.0.0.1', port: outbound, path: p, headers: { host, ...h } }, (res) => res.resume().once('end', () => resolve())).once('error', reject);
      });
    while (!finished) {
      await call('orders', path, headers);
      await call('nowhere', '/elsewhere');
      await new Promise((r) => setTimeout(r, 100));
    }
    return done;
  }

  it('prints each matching request as it completes, and stops after --max', async () => {
    const tapped = await trafficUntil(weft(control, ['tap', id, '--authority', 'orders', '--max', '2']), '/hello');
    assert.equal(tapped.code, 0, tapped.stderr);
    const lines = tapped.stdout.trimEnd().split('\n');
    assert.equal(lines.length, 2, tapped.stdout);
    for (const line of lines) assert.match(line, /^\d{4}-\d\d-\d\dT\S+ outbound GET orders\/hello -> 200 - \d+ ms 127\.0\.0\.1:\d+$/);
  });

  it('-o json: the access log fields and the headers, credentials redacted; --status filters', async () => {
    const tapped = await trafficUntil(weft(control, ['tap', id, '--path-prefix', '/json', '--max', '1', '-o', 'json']), '/json', { authorization: 'Bearer hunter2', 'x-trace-me': 'yes' });
    assert.equal(tapped.code, 0, tapped.stderr);
    const event = JSON.parse(tapped.stdout) as { path: string; response_code: number; request_headers: [string, string][]; response_headers: [string, string][] };
    assert.equal(event.path, '/json');
    assert.deepEqual(event.request_headers.find(([k]) => k === 'authorization'), ['authorization', '[redacted]']);
    assert.deepEqual(event.request_headers.find(([k]) => k === 'x-trace-me'), ['x-trace-me', 'yes']);
    assert.deepEqual(event.response_headers.find(([k]) => k === ':status'), [':status', '200']);
    assert.doesNotMatch(tapped.stdout, /hunter2/);

    const notFound = await trafficUntil(weft(control, ['tap', id, '--status', '4xx', '--max', '1']), '/hello');
    // The sidecar's own answer says why (the catch-all route's direct response).
    assert.match(notFound.stdout, /^\S+ outbound GET nowhere\/elsewhere -> 404 - \(direct_response\) \d+ ms/);
  });

  it('-o json: a header a request chose with a C1 control (byte 0x9b, CSI) is printed escaped, the JSON still exact', async () => {
    // node:http writes a header value as latin1, and the sidecar reads it so: the byte arrives as U+009B
    const csi = '\u009b2J\u009b31mred';
    const tapped = await trafficUntil(weft(control, ['tap', id, '--path-prefix', '/csi', '--max', '1', '-o', 'json']), '/csi', { 'x-csi': csi });
    assert.equal(tapped.code, 0, tapped.stderr);
    assert.doesNotMatch(tapped.stdout, /[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/, 'no raw control character but the line end');
    assert.ok(tapped.stdout.includes('\\u009b2J\\u009b31mred'), tapped.stdout);
    const event = JSON.parse(tapped.stdout) as { request_headers: [string, string][] };
    assert.deepEqual(event.request_headers.find(([k]) => k === 'x-csi'), ['x-csi', csi]);
  });

  it('sessions are bounded, and one that ends (Ctrl-C) frees its place in the sidecar', { timeout: 120_000 }, async () => {
    const adminTap = async () => {
      const res = await fetch(`http://127.0.0.1:${adminPortOf()}/tap?max=1`, { signal: AbortSignal.timeout(2000) }).catch(() => undefined);
      const status = res?.status;
      await res?.body?.cancel();
      return status;
    };
    const taps = Array.from({ length: 9 }, () => spawnWeft(['tap', id], { WEFT_API: control.api, WEFT_TOKEN: control.token }));
    try {
      // eight hold the sidecar's eight places; the ninth is told so and exits 1
      const codes = await Promise.race([Promise.any(taps.map((t) => t.exited)), new Promise<'none'>((r) => setTimeout(() => r('none'), 60_000))]);
      assert.equal(codes, 1, taps.map((t) => t.output()).join('\n'));
      const refused = taps.find((t) => t.child.exitCode === 1)!;
      assert.match(refused.output(), /UNAVAILABLE|8 sessions are open already/);
      assert.equal(await adminTap(), 503);
      for (const t of taps) if (t !== refused) t.child.kill('SIGINT');
      const ended = await Promise.all(taps.filter((t) => t !== refused).map((t) => t.exited));
      assert.deepEqual(ended, Array(8).fill(0), 'Ctrl-C ends a tap quietly');
      await eventually(async () => (await adminTap()) === 200, 10_000, 'the sidecar to free the places of the ended taps');
    } finally {
      for (const t of taps) t.kill();
    }
  });

  it('viewers may not tap; a bad filter and an unknown proxy are named', async () => {
    const viewer = (await api(control, 'POST', '/api/v1/tokens', { name: 'watcher', role: 'viewer' })) as { token: string };
    const refused = await weft({ api: control.api, token: viewer.token }, ['tap', id, '--max', '1']);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /has role viewer; this request needs role admin/);
    const bad = await weft(control, ['tap', id, '--status', '5']);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /status: must be a code \(503\) or a class \(5xx\)/);
    const unknown = await weft(control, ['tap', 'nobody']);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /proxy nobody not found/);
  });
});
