// `kill -9` of the `weft` a supervisor started (the launcher, bin/weft.mjs,
// which runs the command in a child under tsx): the control plane in the
// child stops too, so it does not run on unseen with the data dir locked and
// its ports bound, and `weft control` starts again on the same data dir.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { api, eventually, startControl } from './control-process.ts';

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

test('SIGKILL of the weft launcher stops the control plane it started; the data dir can be used again', { timeout: 120_000 }, async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'weft-launcher-'));
  let holder = 0;
  t.after(async () => {
    if (holder && alive(holder)) process.kill(holder, 'SIGKILL'); // the old behaviour: never leave it running
    await rm(dir, { recursive: true, force: true });
  });
  const first = await startControl(dir);
  holder = Number.parseInt(readFileSync(join(dir, 'store', 'LOCK'), 'utf8'), 10);
  assert.notEqual(holder, first.launcherPid, 'the control plane runs in the launcher\'s child');

  process.kill(first.launcherPid, 'SIGKILL');
  await eventually(async () => (alive(holder) ? undefined : true), 'the orphaned control plane to stop', 15_000);

  const again = await startControl(dir);
  t.after(() => again.stop());
  assert.equal((await api(again, 'GET', '/api/v1/whoami')).role, 'admin');
});
