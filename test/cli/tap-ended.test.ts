// `weft tap PROXY` when the sidecar it watches stops: the command ends with
// exit 1 and one line saying the tap ended, after the requests it printed.
// Until 2026-11-28 it printed "error: TypeError: terminated" and undici's
// stack trace. Real processes: a `weft control`, a `weft sidecar` and an app
// on loopback; the sidecar is stopped once a tapped request has been printed.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { api, startControl, type ControlProcess } from './control-process.ts';
import { eventually, freePort, get, spawnWeft, type WeftProcess } from '../sidecar/harness.ts';

describe('weft tap PROXY: the sidecar stops while it is tapped', () => {
  let dir: string;
  let control: ControlProcess;
  let app: http.Server;
  let sidecar: WeftProcess;
  let tap: WeftProcess | undefined;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'weft-tap-ended-'));
    control = await startControl(dir);
    app = http.createServer((_req, res) => res.end('hello'));
    await new Promise<void>((r) => app.listen(0, '127.0.0.1', r));
    const appPort = (app.address() as import('node:net').AddressInfo).port;
    await api(control, 'POST', '/api/v1/services', { name: 'orders', ports: [{ port: 8081, protocol: 'http' }] });
    const adminPort = await freePort();
    const inbound = await freePort();
    sidecar = spawnWeft(['sidecar', '--service', 'orders', '--xds', `127.0.0.1:${control.xdsPort}`, '--app-port', String(appPort), '--inbound-port', String(inbound), '--admin-port', String(adminPort)], { WEFT_ACCESS_LOG: 'off' });
    await eventually(async () => (await fetch(`http://127.0.0.1:${adminPort}/ready`).catch(() => undefined))?.status === 200, 30_000, `sidecar ready\n${sidecar.output()}`);
    const dump = (await (await fetch(`http://127.0.0.1:${adminPort}/config_dump`)).json()) as { configs: { bootstrap?: { node: { id: string } } }[] };
    const id = dump.configs.find((c) => c.bootstrap)!.bootstrap!.node.id;

    tap = spawnWeft(['tap', id], { WEFT_API: control.api, WEFT_TOKEN: control.token });
    // requests until one is printed: then the tap is open and its stream has begun
    await eventually(async () => {
      await get(inbound, 'orders', '/seen');
      return /orders\/seen -> 200/.test(tap!.output());
    }, 30_000, `a tapped request printed\n${tap.output()}`);
    sidecar.kill();
  });
  after(async () => {
    tap?.kill();
    sidecar?.kill();
    app?.close();
    await control?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('exits 1 with one line saying the tap ended, and no stack trace', async () => {
    const code = await tap!.exited;
    const out = tap!.output();
    assert.equal(code, 1, out);
    assert.match(out, /orders\/seen -> 200/, 'what was tapped before stays printed');
    assert.match(out, /^error: the tap of proxy \S+ ended: /m);
    assert.doesNotMatch(out, /TypeError|\n\s+at /);
  });
});
