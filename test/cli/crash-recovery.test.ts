// kill -9 of a real `weft control` in the middle of many clients' writes:
// every write it acknowledged is there after the restart, the revision
// history has no gap and no revision without its object, and the audit
// journal, whose last line the crash tore, goes on recording (an entry
// written after the torn line survives the next crash too). A second control
// plane on the same data dir is refused while the first runs.

import assert from 'node:assert/strict';
import { appendFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { api, startControl, weft, type ControlProcess } from './control-process.ts';

describe('weft control killed mid-write (SIGKILL), then started again on the same data dir', () => {
  let dir: string;
  let control: ControlProcess;
  const acknowledged: string[] = [];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'weft-crash-'));
    control = await startControl(dir);
  });
  after(async () => {
    await control?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('a second control plane on the same data dir is refused, naming the running one', async () => {
    await assert.rejects(startControl(dir, 60_000), /exited with 1:[\s\S]*--data-dir .*: data dir is locked by running process \d+/);
    assert.equal((await api(control, 'GET', '/api/v1/revisions')).current > 0, true, 'the first one is unharmed');
  });

  it('40 clients create services at once; the process is killed while they write', { timeout: 60_000 }, async () => {
    const names = Array.from({ length: 40 }, (_, i) => `svc-${i}`);
    let killed: Promise<void> | undefined;
    await Promise.all(
      names.map(async (name) => {
        const res = await fetch(`${control.api}/api/v1/services`, {
          method: 'POST',
          headers: { authorization: `Bearer ${control.token}`, 'content-type': 'application/json' },
          body: JSON.stringify({ name, ports: [{ port: 8080, protocol: 'http' }] }),
        }).catch(() => undefined);
        if (res?.status === 201) {
          acknowledged.push(name);
          if (acknowledged.length === 10) killed = control.crash();
        }
      }),
    );
    await killed;
    assert.ok(acknowledged.length >= 10, `${acknowledged.length} acknowledged before the kill`);
    // The crash cut the audit journal's last append short (it cannot be timed from outside, so it is written here).
    appendFileSync(join(dir, 'audit.jsonl'), '{"time":"2026-11-27T00:00:00.000Z","actor":"token:adm');
  });

  it('after the restart every acknowledged write is there, and the history is whole', { timeout: 60_000 }, async () => {
    control = await startControl(dir);
    const stored = new Set(((await api(control, 'GET', '/api/v1/services')).items as { name: string }[]).map((s) => s.name));
    for (const name of acknowledged) assert.ok(stored.has(name), `acknowledged ${name} survives`);
    const history = await api(control, 'GET', '/api/v1/revisions?limit=1000');
    const revisions = (history.items as { revision: number; changes: { kind: string; name: string }[] }[]).map((r) => r.revision);
    assert.deepEqual(revisions, Array.from({ length: history.current }, (_, i) => history.current - i), 'revisions 1..current, no gap');
    const created = (history.items as { changes: { kind: string; name: string }[] }[]).flatMap((r) => r.changes.filter((c) => c.kind === 'Service').map((c) => c.name));
    assert.deepEqual(new Set(created), stored, 'a revision for each stored service, and a stored service for each revision');
  });

  it('the audit journal goes on after its torn line: an entry written then survives the next crash', { timeout: 60_000 }, async () => {
    const created = await weft(control, ['token', 'create', '--role', 'viewer', '--name', 'after-crash']);
    assert.equal(created.code, 0, created.stderr);
    await control.crash();
    control = await startControl(dir);
    const audit = (await api(control, 'GET', '/api/v1/audit?limit=1000')).items as { action: string }[];
    assert.ok(audit.some((e) => e.action === 'create viewer token "after-crash"'), `the acknowledged token creation is in the audit log: ${JSON.stringify(audit.slice(0, 3))}`);
    assert.equal((await weft({ api: control.api, token: created.stdout.trim() }, ['get', 'services'])).code, 0, 'and the token itself works');
  });
});
