// `weft proxy-status PROXY` against real processes: a `weft control` and
// `weft sidecar`s on loopback. The control plane reads each sidecar's own
// /config_dump and compares it with what it means the sidecar to run: a
// sidecar that took everything is in sync (Delta and SotW alike), one whose
// inbound port is taken shows its refused listener with the proxy's reason,
// the same report comes from a dump sent with --file, and one that does not
// answer is named with the address that did not.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { api, startControl, weft, type ControlProcess } from './control-process.ts';
import { eventually, freePort, spawnWeft, type WeftProcess } from '../sidecar/harness.ts';

interface Sidecar {
  proc: WeftProcess;
  adminPort: number;
  inboundPort: number;
  /** node.id, from its own config dump. */
  id(): Promise<string>;
}

async function sidecar(control: ControlProcess, service: string, opts: { sotw?: boolean; inboundPort?: number } = {}): Promise<Sidecar> {
  const [appPort, outboundPort, adminPort] = [await freePort(), await freePort(), await freePort()];
  const inboundPort = opts.inboundPort ?? (await freePort());
  const args = ['sidecar', '--service', service, '--xds', `127.0.0.1:${control.xdsPort}`, '--app-port', String(appPort), '--inbound-port', String(inboundPort), '--outbound-port', String(outboundPort), '--admin-port', String(adminPort)];
  const proc = spawnWeft(opts.sotw ? [...args, '--sotw'] : args);
  const id = async () => {
    const dump = (await (await fetch(`http://127.0.0.1:${adminPort}/config_dump`)).json()) as { configs: { bootstrap?: { node: { id: string } } }[] };
    return dump.configs.find((c) => c.bootstrap)!.bootstrap!.node.id;
  };
  return { proc, adminPort, inboundPort, id };
}

interface SyncReply {
  inSync: boolean;
  source: string;
  resources: { type: string; name: string; state: string; error?: { details: string; version?: string }; desired?: unknown }[];
}

describe('weft proxy-status PROXY: what a sidecar runs against what the control plane means it to run', () => {
  let dir: string;
  let control: ControlProcess;
  const started: WeftProcess[] = [];
  let holder: net.Server | undefined;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'weft-sync-'));
    control = await startControl(dir);
    await api(control, 'POST', '/api/v1/services', { name: 'orders', ports: [{ port: 8081, protocol: 'http' }] });
    await api(control, 'POST', '/api/v1/services', { name: 'frontend', ports: [{ port: 8080, protocol: 'http' }], dependsOn: ['orders'] });
    await api(control, 'POST', '/api/v1/services/orders/instances', { address: '127.0.0.1', port: 9301 });
  });
  after(async () => {
    for (const p of started) p.kill();
    holder?.close();
    await control?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  /** Admin ports of the frontend sidecars started. */
  const frontendAdmins: number[] = [];

  async function ready(s: Sidecar): Promise<string> {
    started.push(s.proc);
    frontendAdmins.push(s.adminPort);
    await eventually(async () => (await fetch(`http://127.0.0.1:${s.adminPort}/ready`).catch(() => undefined))?.status === 200, 30_000, `sidecar ready:\n${s.proc.output()}`);
    return s.id();
  }

  it('a sidecar that took its whole config is in sync, on Delta and on SotW, with exit 0', async () => {
    for (const sotw of [false, true]) {
      const s = await sidecar(control, 'frontend', { sotw });
      const id = await ready(s);
      // the first config is applied before /ready; its ACKs may still be on the way
      let text = await weft(control, ['proxy-status', id]);
      await eventually(async () => (text = await weft(control, ['proxy-status', id])).code === 0, 10_000, `in sync (${sotw ? 'SotW' : 'Delta'}):\n${text.stdout}${text.stderr}`);
      assert.match(text.stdout, new RegExp(`^proxy ${id} \\(frontend\\.default\\), running config from http://127\\.0\\.0\\.1:${s.adminPort}/config_dump\\?include_eds$`, 'm'));
      for (const type of ['listeners', 'routes', 'clusters', 'endpoints']) assert.match(text.stdout, new RegExp(`^${type} +\\d+ +SYNCED$`, 'm'));
      assert.match(text.stdout, /^in sync: the proxy runs what the control plane means it to run$/m);
      assert.equal(text.stderr, '');

      const json = JSON.parse((await weft(control, ['proxy-status', id, '-o', 'json'])).stdout) as SyncReply;
      assert.equal(json.inSync, true);
      const names = json.resources.map((r) => `${r.type}/${r.name}`);
      for (const want of ['listeners/inbound', 'listeners/outbound', 'routes/outbound', 'clusters/outbound|8081||orders.default', 'endpoints/outbound|8081||orders.default']) {
        assert.ok(names.includes(want), `${want} compared (got ${names.join(', ')})`);
      }
    }
  });

  it('--wait: right after a change, it returns once the sidecar runs it', async () => {
    const s = await sidecar(control, 'frontend');
    const id = await ready(s);
    const before = await weft(control, ['proxy-status', id, '--wait', '20']);
    assert.equal(before.code, 0, before.stdout + before.stderr);
    // a new orders instance: the frontend sidecar's endpoints change
    await api(control, 'POST', '/api/v1/services/orders/instances', { address: '127.0.0.1', port: 9377 });
    const waited = await weft(control, ['proxy-status', id, '--wait', '20']);
    assert.equal(waited.code, 0, waited.stdout + waited.stderr);
    assert.match(waited.stdout, /^in sync: /m);
    const eds = await (await fetch(`http://127.0.0.1:${s.adminPort}/config_dump?resource=dynamic_endpoint_configs&include_eds`)).text();
    assert.match(eds, /"port_value": 9377/, 'the sidecar runs the new endpoint once --wait says so');
    const bad = await weft(control, ['proxy-status', id, '--wait', 'soon']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--wait must be a number of seconds, more than 0 \(got "soon"\)/);
  });

  it('weft apply --wait: returns once every connected proxy runs the change', async () => {
    const file = join(dir, 'route.yaml');
    await writeFile(file, ['apiVersion: weft.dev/v1', 'kind: Route', 'metadata: { name: orders }', 'spec:', '  service: orders', '  rules:', '    - name: slow-ok', '      destinations: [{ service: orders }]', '      timeoutMs: 4321', ''].join('\n'));
    const applied = await weft(control, ['apply', '-f', file, '--wait', '20']);
    assert.equal(applied.code, 0, applied.stdout + applied.stderr);
    const proxies = (await api(control, 'GET', '/api/v1/proxies')).items.filter((p: { status: string }) => p.status !== 'DISCONNECTED') as { id: string }[];
    assert.ok(proxies.length >= 3);
    for (const p of proxies) assert.match(applied.stdout, new RegExp(`^proxy ${p.id} runs it \\([\\d.]+ s\\)$`, 'm'));
    // and it does: each frontend sidecar's route has the new timeout
    for (const port of frontendAdmins) {
      const routes = await (await fetch(`http://127.0.0.1:${port}/config_dump?resource=dynamic_route_configs`)).text();
      assert.match(routes, /"timeout": "4\.321s"/, `sidecar :${port} runs the route`);
    }
    const dry = await weft(control, ['apply', '-f', file, '--wait', '5', '--dry-run']);
    assert.equal(dry.code, 2);
  });

  it('a sidecar whose inbound port is taken shows that listener NACKED with the reason, exit 1', async () => {
    holder = net.createServer();
    await new Promise<void>((r) => holder!.listen(0, '127.0.0.1', r));
    const taken = (holder.address() as net.AddressInfo).port;
    const s = await sidecar(control, 'orders', { inboundPort: taken });
    started.push(s.proc);
    // the listener is refused, so /ready is not the signal: the NACK is
    await eventually(async () => (await api(control, 'GET', '/api/v1/proxies')).items.some((p: { status: string; service: string }) => p.service === 'orders' && p.status === 'NACKED'), 30_000, `the NACK:\n${s.proc.output()}`);
    const id = await s.id();
    // Its first config is not whole: not ready, and /init_dump says why (it said ready, LIVE, with an /init_dump of {}).
    assert.equal((await fetch(`http://127.0.0.1:${s.adminPort}/ready`)).status, 503);
    const waiting = (await (await fetch(`http://127.0.0.1:${s.adminPort}/init_dump`)).text());
    assert.match(waiting, new RegExp(`LDS listener inbound \\(version \\\\"[^"\\\\]+\\\\" NACKed: .*cannot bind 127\\.0\\.0\\.1:${taken}.*EADDRINUSE`));

    // --wait does not wait forever for what will not happen: the report at the deadline, exit 1
    const t0 = Date.now();
    const text = await weft(control, ['proxy-status', id, '--wait', '1']);
    assert.ok(Date.now() - t0 >= 1000, 'it kept checking for the second it was given');
    assert.equal(text.code, 1, text.stderr);
    assert.match(text.stdout, /^listeners +2 +1 NACKED, 1 SYNCED$/m);
    assert.match(text.stdout, new RegExp(`^NACKED listeners/inbound: refused version "[^"]+" at \\S+: .*cannot bind 127\\.0\\.0\\.1:${taken}.*EADDRINUSE.*; serving nothing for it$`, 'm'));
    assert.match(text.stderr, new RegExp(`^proxy ${id} is not in sync: \\d+ SYNCED, 1 NACKED`, 'm'));

    // weft apply --wait names the proxy that will not get there
    const route = join(dir, 'route.yaml');
    await writeFile(route, ['apiVersion: weft.dev/v1', 'kind: Route', 'metadata: { name: orders }', 'spec:', '  service: orders', '  rules:', '    - name: slow-ok', '      destinations: [{ service: orders }]', '      timeoutMs: 5432', ''].join('\n'));
    const stuck = await weft(control, ['apply', '-f', route, '--wait', '2']);
    assert.equal(stuck.code, 1, stuck.stdout + stuck.stderr);
    assert.match(stuck.stdout, new RegExp(`^proxy ${id} does not yet: .*listeners/inbound NACKED`, 'm'));
    assert.match(stuck.stderr, /^error: 1 of \d+ proxies do not run the new configuration after 2 s/m);

    const json = JSON.parse((await weft(control, ['proxy-status', id, '-o', 'json'])).stdout) as SyncReply;
    const inbound = json.resources.find((r) => r.type === 'listeners' && r.name === 'inbound')!;
    assert.equal(inbound.state, 'NACKED');
    assert.match(JSON.stringify(inbound.desired), new RegExp(`"port_value":${taken}`), 'the refused listener is shown as the control plane meant it');
    assert.equal(json.resources.find((r) => r.type === 'listeners' && r.name === 'outbound')!.state, 'SYNCED');

    // the same from a dump taken by hand (an Envoy whose admin the control
    // plane cannot reach): --file sends it, and a file that is no dump is named
    const file = join(dir, 'dump.json');
    await writeFile(file, await (await fetch(`http://127.0.0.1:${s.adminPort}/config_dump?include_eds`)).text());
    const fromFile = await weft(control, ['proxy-status', id, '--file', file]);
    assert.equal(fromFile.code, 1);
    assert.match(fromFile.stdout, new RegExp(`^proxy ${id} \\(orders\\.default\\), running config from request body$`, 'm'));
    assert.equal(fromFile.stdout.split('\n').slice(1).join('\n'), text.stdout.split('\n').slice(1).join('\n'), 'the same report as from the admin port');
    // comparing changes nothing, so a viewer may send a dump too
    const viewer = (await api(control, 'POST', '/api/v1/tokens', { name: 'auditor', role: 'viewer' })) as { token: string };
    const asViewer = await weft({ api: control.api, token: viewer.token }, ['proxy-status', id, '--file', file]);
    assert.equal(asViewer.stdout, fromFile.stdout, asViewer.stderr);
    await writeFile(file, '{"configs": {"dynamic_active_clusters": []}}');
    const bad = await weft(control, ['proxy-status', id, '--file', file]);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /invalid config dump: configs: not an Envoy ConfigDump/);
    await writeFile(file, 'cluster.outbound|8081||orders.default.upstream_cx_total: 0');
    const notJson = await weft(control, ['proxy-status', id, '--file', file]);
    assert.equal(notJson.code, 1);
    assert.match(notJson.stderr, new RegExp(`^error: ${file.replace(/[.]/g, '\\.')} is not JSON`));
    const noProxy = await weft(control, ['proxy-status', '--file', file]);
    assert.equal(noProxy.code, 2);
    assert.match(noProxy.stderr, /--file needs a proxy id/);
  });

  it('a sidecar of a service nobody registered is NOT_SENT with the reason, in the list and on its own (it showed SYNCED, and only the control plane\'s log said why), exit 1', async () => {
    const s = await sidecar(control, 'ghost');
    started.push(s.proc);
    const id = await (async () => {
      let found = '';
      await eventually(async () => (found = await s.id().catch(() => '')) !== '', 30_000, `ghost sidecar's admin:\n${s.proc.output()}`);
      return found;
    })();
    let view: { status: string; refused?: { path: string; message: string; revision: number }[] } = { status: '' };
    await eventually(async () => (view = await api(control, 'GET', `/api/v1/proxies/${encodeURIComponent(id)}`).catch(() => view)).status !== '', 30_000, 'the ghost proxy known');
    assert.equal(view.status, 'NOT_SENT');
    assert.match(view.refused?.[0]?.message ?? '', /ghost\.default is not registered/);
    const list = await weft(control, ['proxy-status']);
    assert.match(list.stdout, new RegExp(`^${id.replace(/[.]/g, '\\.')}\\s.*NOT_SENT`, 'm'));
    assert.match(list.stdout, new RegExp(`^${id.replace(/[.]/g, '\\.')}: NOT SENT \\(revision \\d+\\): the control plane refuses this proxy's config: .*ghost\\.default is not registered`, 'm'));
    const one = await weft(control, ['proxy-status', id]);
    assert.equal(one.code, 1);
    assert.match(one.stdout, /^NOT SENT: the control plane refuses to build this proxy's config \(revision \d+\): .*ghost\.default is not registered/m);
    assert.match(one.stderr, /is not in sync: the control plane refuses to build its config/);
    s.proc.kill();
  });

  it('a sidecar whose admin does not answer, and an unknown id, are errors that say so', async () => {
    const s = await sidecar(control, 'frontend');
    const id = await ready(s);
    // hung: its xDS stream stays open, its admin answers nothing (the
    // sidecar is the child bin/weft.mjs started, not the wrapper itself)
    const pid = Number(execFileSync('pgrep', ['-P', String(s.proc.child.pid)], { encoding: 'utf8' }).trim().split('\n')[0]);
    process.kill(pid, 'SIGSTOP');
    try {
      const text = await weft(control, ['proxy-status', id]);
      assert.equal(text.code, 1);
      assert.match(text.stderr, new RegExp(`proxy ${id}: http://127\\.0\\.0\\.1:${s.adminPort}/config_dump\\?include_eds: .*(timeout|aborted)`, 'i'));
      assert.equal(text.stdout, '');
    } finally {
      process.kill(pid, 'SIGCONT');
    }
    const unknown = await weft(control, ['proxy-status', 'nobody']);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /proxy nobody not found/);
  });
});
