// The data-dir lock when several control planes start at once on a lock its
// dead holder left (a supervisor restarting replicas after a crash): exactly
// one of them may take it over. Each racer is a real process; they race on
// many lock files, so a window of microseconds shows.

import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, test } from 'node:test';
import { acquireLock } from '../../control/store/lock.ts';

const dir = mkdtempSync(join(tmpdir(), 'weft-lock-race-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const RACER = fileURLToPath(new URL('./lock-racer.ts', import.meta.url));

async function race(count: number, racers: number): Promise<number[][]> {
  const startAt = Date.now() + 3000; // after every racer has loaded (a late one only races less)
  const children = Array.from({ length: racers }, () => spawn(process.execPath, ['--import', 'tsx', RACER, dir, String(count), String(startAt)], { stdio: ['pipe', 'pipe', 'pipe'] }));
  try {
    return await Promise.all(
      children.map((child) =>
        new Promise<number[]>((resolve, reject) => {
          let out = '';
          let err = '';
          child.stdout.on('data', (b: Buffer) => {
            out += b.toString();
            if (out.endsWith('\n')) resolve(JSON.parse(out) as number[]);
          });
          child.stderr.on('data', (b: Buffer) => (err += b.toString()));
          child.once('exit', (code) => reject(new Error(`racer exited with ${code} before it reported: ${err}`)));
        }),
      ),
    );
  } finally {
    // every racer holds its locks until all have reported
    await Promise.all(children.map((child) => new Promise<void>((resolve) => {
      if (child.exitCode !== null) return resolve();
      child.once('exit', () => resolve());
      child.stdin.end();
    })));
  }
}

test('racers taking over stale locks at once: each lock goes to exactly one of them', { timeout: 60_000 }, async () => {
  const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  const count = 300;
  for (let i = 0; i < count; i++) writeFileSync(join(dir, `LOCK-${i}`), `${dead.stdout} 12345\n`);
  const got = await race(count, 3);
  const holders = Array.from({ length: count }, (_, i) => got.filter((g) => g.includes(i)).length);
  const shared = holders.flatMap((n, i) => (n > 1 ? [i] : []));
  const unowned = holders.flatMap((n, i) => (n === 0 ? [i] : []));
  assert.deepEqual(shared, [], `${shared.length} of ${count} locks were taken by two racers at once`);
  assert.deepEqual(unowned, [], 'every stale lock was taken by someone');
});

test('a takeover its taker died in the middle of is finished by the next start', () => {
  const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  const lock = join(dir, 'LOCK-guarded');
  writeFileSync(lock, `${dead.stdout} 12345\n`);
  writeFileSync(`${lock}.takeover`, `${dead.stdout} 12346\n`);
  const release = acquireLock(lock);
  assert.match(readFileSync(lock, 'utf8'), new RegExp(`^${process.pid}\\b`));
  assert.equal(existsSync(`${lock}.takeover`), false, 'the dead taker\'s guard is gone');
  release();
  assert.equal(existsSync(lock), false);
});
