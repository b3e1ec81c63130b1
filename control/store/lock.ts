// The data-dir lock: one control plane per data dir. A lock left by a process
// that no longer exists (kill -9) is taken over; a live holder is an error.
//
// The lock file holds the holder's pid and, where /proc exists, the process's
// start time (clock ticks since boot). A pid alone is not enough: a container
// restarted after a crash starts its processes over from the same small pids,
// so the dead holder's pid is often the new control plane's own, or another
// live process's. A holder counts as alive only if a process with that pid
// exists, is not this one, and started when the lock says it did.
//
// Several processes may find the same stale lock at once (a supervisor
// restarting replicas after a crash). Reading it, judging it stale and
// removing it are three steps, so a slower one could remove the lock a faster
// one had just taken, and both would run. A stale lock is therefore removed
// only under a takeover guard (`<lock>.takeover`, created as the lock is, so
// one process at a time holds it) and only if it still holds what was judged
// stale; a guard whose holder died is itself stale and removed the same way.
// Lock and guard files are created whole (written to a temp file, then
// linked into place), so no one reads a lock half written and takes it for
// stale.

import { linkSync, readdirSync, readFileSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

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

/** Creates `path` holding `content` whole, unless it exists: false then. */
function createWhole(path: string, content: string): boolean {
  const temp = `${path}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
  try {
    // Inside the try: a write that fails part-way (a full disk) leaves the temp file, removed below.
    writeFileSync(temp, content, { mode: 0o600 });
    linkSync(temp, path);
    return true;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') return false;
    if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP' && code !== 'ENOSYS') throw e;
    // A file system without hard links: create in place (a reader may then see it before its content).
    try {
      writeFileSync(path, content, { mode: 0o600, flag: 'wx' });
      return true;
    } catch (e2) {
      if ((e2 as NodeJS.ErrnoException).code === 'EEXIST') return false;
      throw e2;
    }
  } finally {
    try {
      unlinkSync(temp);
    } catch (e) {
      // never created (the write failed opening it): the write's error is the one to throw
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
  }
}

interface Holder {
  text: string;
  pid: number;
  started: string | undefined;
}

/** Who the lock file at `path` names, or undefined when there is no file. */
function readHolder(path: string): Holder | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
  const [pid, started] = text.trim().split(/\s+/);
  return { text, pid: Number.parseInt(pid ?? '', 10), started };
}

const isAlive = (path: string, h: Holder) => Number.isInteger(h.pid) && h.pid > 0 && alive(path, h.pid, h.started);

/** An empty lock younger than a second is being written; an older one was left by a crash in between. */
function justCreated(path: string): boolean {
  try {
    return Date.now() - statSync(path).mtimeMs < 1000;
  } catch {
    return false;
  }
}

function pause(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/**
 * Removes the lock at `path` if it still holds `staleText`, under its takeover guard. Returns
 * without removing anything when another process is taking it over (the caller looks again).
 */
function removeStale(path: string, staleText: string, me: string, depth = 0): void {
  if (depth > 8) throw new Error(`could not take over stale lock ${path}: too many stale takeover guards`);
  const guard = `${path}.takeover`;
  if (!createWhole(guard, me)) {
    const holder = readHolder(guard);
    if (holder === undefined) return; // released between our create and read
    if (isAlive(guard, holder) || (holder.text === '' && justCreated(guard))) return pause(5); // another process is taking it over now
    return removeStale(guard, holder.text, me, depth + 1); // its taker died mid-takeover
  }
  held.add(guard);
  try {
    // Only the guard's holder removes the lock, and its dead holder cannot change it: what is
    // read here is what gets removed.
    if (readHolder(path)?.text === staleText) unlinkSync(path);
  } finally {
    held.delete(guard);
    unlinkSync(guard);
  }
}

/** A process with this pid exists (maybe not ours to signal). */
function pidExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Removes the temp files createWhole left beside the lock at `path` (`<lock>[.takeover].<pid>.<random>.tmp`)
 * when a process died between writing and removing one. Unlike the data dir's other files, these are
 * written by every process that tries the lock, not only its holder: one whose pid is alive may be
 * another control plane trying it now, and is left alone. This process's own are never in flight
 * outside createWhole, so one with its pid is an earlier life's (a restarted container reuses pids).
 * Call it holding the lock. Returns the names removed.
 */
export function removeDeadLockTemps(path: string): string[] {
  const pattern = new RegExp(`^${basename(path).replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}(?:\\.takeover)*\\.(\\d+)\\.[0-9a-z]*\\.tmp$`);
  const removed: string[] = [];
  for (const entry of readdirSync(dirname(path))) {
    const pid = Number(pattern.exec(entry)?.[1]);
    if (!Number.isInteger(pid) || pid <= 0 || (pid !== process.pid && pidExists(pid))) continue;
    try {
      unlinkSync(join(dirname(path), entry));
      removed.push(entry);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
  }
  return removed;
}

/** Takes the lock at `path`; returns its release function. Throws when another live process holds it. */
export function acquireLock(path: string): () => void {
  const started = startTime('self');
  const me = `${process.pid}${started === undefined ? '' : ` ${started}`}\n`;
  for (let attempt = 0; attempt < 200; attempt++) {
    if (createWhole(path, me)) {
      held.add(path);
      return () => {
        held.delete(path);
        try {
          unlinkSync(path);
        } catch {
          // already gone: nothing to release
        }
      };
    }
    const holder = readHolder(path);
    if (holder === undefined) continue; // released between our create and read: try again
    if (holder.text === '' && justCreated(path)) {
      pause(5); // created in place and not yet written (no hard links here): its creator is alive
      continue;
    }
    if (isAlive(path, holder)) {
      throw new LockHeldError(`data dir is locked by running process ${holder.pid} (${path}); is another control plane using it?`);
    }
    removeStale(path, holder.text, me);
  }
  throw new Error(`could not acquire lock ${path}`);
}
