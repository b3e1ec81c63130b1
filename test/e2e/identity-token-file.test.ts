// `weft sidecar --token-file`: the join token read from a file (a mounted
// secret), so it is in no process list; and the flag's usage errors.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { IdentityMesh, eventually } from './identity-mesh.ts';
import { freePort, spawnWeft, type WeftProcess } from '../sidecar/harness.ts';

let mesh: IdentityMesh | undefined;
const procs: WeftProcess[] = [];
after(async () => {
  for (const p of procs) {
    p.kill();
    await p.exited;
  }
  await mesh?.close();
}, { timeout: 20_000 });

/** Every command line under `pid` (bin/weft.mjs runs the command in a child process). */
function commandLines(pid: number): string[] {
  const out: string[] = [];
  const walk = (p: number) => {
    try {
      out.push(readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0').join(' '));
      for (const child of readFileSync(`/proc/${p}/task/${p}/children`, 'utf8').trim().split(/\s+/).filter(Boolean)) walk(Number(child));
    } catch {
      // gone, or no /proc: nothing to add
    }
  };
  walk(pid);
  return out;
}

test('a sidecar joins with the token in --token-file, and the token is on no command line', { timeout: 60_000 }, async () => {
  mesh = await IdentityMesh.start();
  await mesh.must('POST', '/services', { name: 'ledger', ports: [{ port: 8080, protocol: 'http' }] });
  const token = await mesh.joinToken('ledger');
  const file = join(mesh.dataDir, 'ledger.token');
  writeFileSync(file, `${token}\n`, { mode: 0o600 });
  const admin = await freePort();
  const sidecar = spawnWeft(['sidecar', '--service', 'ledger', '--xds', `127.0.0.1:${mesh.control.xdsPort}`, '--app-port', '9', '--admin-port', String(admin), '--token-file', file]);
  procs.push(sidecar);
  await eventually(async () => (await fetch(`http://127.0.0.1:${admin}/ready`).then((r) => r.status, () => 0)) === 200, `the sidecar ready with its SPIFFE identity\n${sidecar.output()}`);
  const lines = commandLines(sidecar.child.pid!);
  assert.ok(lines.some((l) => l.includes('--token-file')), lines.join('\n'));
  assert.ok(lines.every((l) => !l.includes(token)), 'the token itself is in no command line');

  const both = spawnWeft(['sidecar', '--service', 'ledger', '--xds', '127.0.0.1:1', '--app-port', '9', '--token', token, '--token-file', file]);
  procs.push(both);
  assert.equal(await both.exited, 2);
  assert.match(both.output(), /--token and --token-file are alternatives/);
  const missing = spawnWeft(['sidecar', '--service', 'ledger', '--xds', '127.0.0.1:1', '--app-port', '9', '--token-file', join(mesh.dataDir, 'nope')]);
  procs.push(missing);
  assert.equal(await missing.exited, 2);
  assert.match(missing.output(), /--token-file .*nope: no such file/);
});
