// The data-dir lock: one control plane per data dir. A lock left by a process
// that no longer exists (kill -9) is taken over; a live holder is an error.
//
// The lock file holds the holder's pid and, where /proc exists, the process's
// start time (clock ticks since boot). A pid alone is not enough: a container
// restarted after a crash starts its processes over from the same small pids,
// so the dead holder's pid is often the new control plane's own, or another
// live process's. A holder counts as alive only if a process with that pid
// exists, is not this one, and started when the lock says it did.

import { closeSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';

/** A process's start time from /proc/<pid>/stat (field 22), or undefined where there is no /proc. */
function startTime(pid: number | 'self'): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // the command name (field 2) may hold spaces and parentheses: count from after its closing one
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

/** Locks this process holds now: its own pid in a lock file it does not hold was written by an earlier life of that pid. */
const held = new Set<string>();

function alive(path: string, pid: number, started: string | undefined): boolean {
  if (pid === process.pid) return held.has(path);
  try {
    process.kill(pid, 0);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  if (started === undefined) return true; // an old lock file, or no /proc: the pid is all there is
  const now = startTime(pid);
  return now === undefined || now === started;
}

/** Another live process holds the lock. */
export class LockHeldError extends Error {
  override name = 'LockHeldError';
}

/** Takes the lock at `path`; returns its release function. Throws when another live process holds it. */
export function acquireLock(path: string): () => void {
  const me = startTime('self');
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fd = openSync(path, 'wx', 0o600);
      writeSync(fd, `${process.pid}${me === undefined ? '' : ` ${me}`}\n`);
      closeSync(fd);
      held.add(path);
      return () => {
        held.delete(path);
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
    let started: string | undefined;
    try {
      const [pid, start] = readFileSync(path, 'utf8').trim().split(/\s+/);
      holder = Number.parseInt(pid ?? '', 10);
      started = start;
    } catch {
      continue; // released between our open and read: try again
    }
    if (Number.isInteger(holder) && holder > 0 && alive(path, holder, started)) {
      throw new LockHeldError(`data dir is locked by running process ${holder} (${path}); is another control plane using it?`);
    }
    try {
      unlinkSync(path); // stale: its holder is gone
    } catch {
      // someone else removed it first
    }
  }
  throw new Error(`could not acquire lock ${path}`);
}
