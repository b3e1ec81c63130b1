// A control plane that stays out of reach is said in the sidecar's log at its default level, as Envoy warns once
// its ADS stream has been failing for 30 s ("gRPC config stream to xds_cluster closed since 31s ago: 14, ...";
// GrpcStream::logClose). Real processes: a `weft control`, stopped and started again on the same xDS port, and a
// `weft sidecar` whose 30 s threshold is shortened with its hidden --xds-outage-warn-ms. Before, every UNAVAILABLE
// close was a debug line, and the sidecar's log said nothing of the outage, however long it lasted.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { startControl, type ControlProcess } from '../cli/control-process.ts';
import { eventually, freePort, spawnWeft, type WeftProcess } from './harness.ts';

const dir = mkdtempSync(join(tmpdir(), 'weft-outage-log-'));
let control: ControlProcess | undefined;
let sidecar: WeftProcess | undefined;
after(async () => {
  sidecar?.kill();
  if (sidecar) await sidecar.exited;
  await control?.stop();
  rmSync(dir, { recursive: true, force: true });
});

interface Line {
  level?: string;
  source?: string;
  msg?: string;
  xds?: string;
  down_s?: number;
  code?: number;
  error?: string;
}

/** The sidecar's JSON lines (the `ready:` line and any other text left out). */
function lines(p: WeftProcess): Line[] {
  return p
    .output()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Line);
}

const WARN_MS = 1000;

test('a control plane out of reach is warned about once the stream has been down a while, at most once per that while, and its return is logged', { timeout: 120_000 }, async () => {
  const xdsPort = await freePort();
  const adminPort = await freePort();
  // The same xDS port both times: the sidecar reconnects to the address it was given.
  control = await startControl(dir, 60_000, ['--xds-port', String(xdsPort)]);
  const xds = `127.0.0.1:${xdsPort}`;
  // Its service need not be registered: the stream comes up all the same.
  sidecar = spawnWeft(['sidecar', '--service', 'solo', '--xds', xds, '--app-port', '9', '--admin-port', String(adminPort), '--xds-outage-warn-ms', String(WARN_MS)]);
  const connected = async () => {
    try {
      return ((await (await fetch(`http://127.0.0.1:${adminPort}/xds`)).json()) as { connected: boolean }).connected;
    } catch {
      return false;
    }
  };
  await eventually(connected, 30_000, 'the sidecar connected to the control plane');

  assert.equal(await control.stop(), 0);
  const warnings = () => lines(sidecar!).filter((l) => l.msg?.startsWith('xds stream down'));
  // Two warnings: the first once the stream has been down WARN_MS, the next WARN_MS after it.
  await eventually(() => warnings().length >= 2, 30_000, `two outage warnings; the sidecar wrote:\n${sidecar.output()}`);
  const [first, second] = warnings();
  for (const w of [first!, second!]) {
    assert.equal(w.level, 'warn');
    assert.equal(w.source, 'config');
    assert.equal(w.xds, xds, 'the line names the control plane it cannot reach');
    // The last close's gRPC status: UNAVAILABLE, nothing listens on the port.
    assert.equal(w.code, 14, JSON.stringify(w));
    assert.match(w.error!, /^14 UNAVAILABLE/);
  }
  // How long it has been down: at least the threshold (timers never fire early), and the second a threshold later
  // than the first: a warning per threshold, not one per reconnect attempt (those come every 50 ms at first).
  assert.ok(first!.down_s! >= WARN_MS / 1000, JSON.stringify(first));
  assert.ok(second!.down_s! - first!.down_s! >= WARN_MS / 1000 - 0.1, `${JSON.stringify(first)} then ${JSON.stringify(second)}`);
  // The closes themselves stay debug lines, not written at the default level (info).
  assert.deepEqual(lines(sidecar).filter((l) => l.msg === 'xds stream closed'), []);

  // The control plane comes back: the sidecar says so, and for how long the stream was down.
  const downAtLeast = warnings().at(-1)!.down_s!;
  control = await startControl(dir, 60_000, ['--xds-port', String(xdsPort)]);
  await eventually(() => lines(sidecar!).some((l) => l.msg === 'xds stream up again'), 30_000, `the reconnect logged; the sidecar wrote:\n${sidecar.output()}`);
  const back = lines(sidecar).find((l) => l.msg === 'xds stream up again')!;
  assert.equal(back.level, 'info');
  assert.equal(back.xds, xds);
  assert.ok(back.down_s! >= downAtLeast, `${JSON.stringify(back)}: down at least ${downAtLeast} s`);
  // Up again, it stops warning.
  const warned = warnings().length;
  await new Promise((r) => setTimeout(r, 3 * WARN_MS));
  assert.equal(warnings().length, warned, `warned after the reconnect:\n${sidecar.output()}`);
});
