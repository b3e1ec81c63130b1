// The data-dir lock: one control plane per data dir. A lock left by a process
// that no longer exists (kill -9) is taken over; a live holder is an error.

import { closeSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Takes the lock at `path`; returns its release function. Throws when another live process holds it. */
export function acquireLock(path: string): () => void {
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fd = openSync(path, 'wx', 0o600);
      writeSync(fd, `${process.pid}\n`);
      closeSync(fd);
      return () => {
        try {
          unlinkSync(path);
        } catch {
          // already gone: nothing to release
        }
      };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    let holder = NaN;
    try {
      holder = Number.parseInt(readFileSync(path, 'utf8'), 10);
    } catch {
      continue; // released between our open and read: try again
    }
    if (Number.isInteger(holder) && holder > 0 && alive(holder)) {
      throw new Error(`data dir is locked by running process ${holder} (${path}); is another control plane using it?`);
    }
    try {
      unlinkSync(path); // stale: its holder is gone
    } catch {
      // someone else removed it first
    }
  }
  throw new Error(`could not acquire lock ${path}`);
}
