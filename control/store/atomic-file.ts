// Crash-safe whole-file writes: temp file, fsync, rename, fsync the directory.
// A reader sees the old file or the new one, never a torn one.

import { open, rename, unlink } from 'node:fs/promises';
import { closeSync, fsyncSync, mkdirSync, openSync, readdirSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';

export function fsyncDir(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/**
 * A data-dir file the control plane cannot read (not JSON, cut short): the
 * message names the file and what the operator can do, since only they can
 * tell a restorable backup from a file to give up.
 */
export class DamagedFileError extends Error {
  override name = 'DamagedFileError';
}

/** `text` (the content of `path`) parsed as JSON; a DamagedFileError naming `path` and `remedy` when it is not JSON. */
export function parseJsonFile(path: string, text: string, remedy: string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new DamagedFileError(`${path} is damaged (${(e as Error).message}): ${remedy}`);
  }
}

/**
 * `mkdir -p` whose new directories survive a crash: the entry of each one it creates is fsynced
 * into its parent, or a file fsynced inside could still be lost with the directory. Returns
 * whether it created any. `mode` as for mkdir (default 0o777 less the umask).
 */
export function mkdirDurable(dir: string, mode?: number): boolean {
  const first = mkdirSync(dir, mode === undefined ? { recursive: true } : { recursive: true, mode });
  if (first === undefined) return false;
  for (let created = resolve(dir); ; created = dirname(created)) {
    fsyncDir(dirname(created));
    if (created === resolve(first)) return true;
  }
}

let writes = 0;
/** A temp name no other write (in this process or another) is using: two writes of one file at once must not share one. */
const tempFor = (path: string) => join(dirname(path), `.${basename(path)}.${process.pid}.${++writes}.tmp`);

/** The temp files this process is writing now: created, not yet renamed or removed. */
const inFlight = new Set<string>();

/** `.<name>.<pid>.<n>.tmp`, and `.<name>.<pid>.tmp` as builds before 2026-11 named them. */
const TEMP_NAMES = [/^\.(.+)\.\d+\.\d+\.tmp$/, /^\.(.+)\.\d+\.tmp$/];

/**
 * Removes the temp files a crash between write and rename left in `dir` (writeFileAtomic's, for the
 * files `owns` names), which nothing else would ever remove. Call it only holding the data dir's
 * lock: its holder is the one process that writes these files, so every such temp file but the
 * ones this process is writing now is a dead process's. Returns the names removed.
 */
export function removeLeftoverTemps(dir: string, owns: (name: string) => boolean): string[] {
  const removed: string[] = [];
  let entries: string[];
  try {
    entries = readdirSync(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return removed;
    throw e;
  }
  for (const entry of entries) {
    const owned = TEMP_NAMES.some((pattern) => {
      const name = pattern.exec(entry)?.[1];
      return name !== undefined && owns(name);
    });
    if (!owned || inFlight.has(join(dir, entry))) continue;
    try {
      unlinkSync(join(dir, entry));
      removed.push(entry);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
  }
  return removed;
}

export async function writeFileAtomic(path: string, data: string | Uint8Array, mode = 0o600): Promise<void> {
  const dir = dirname(path);
  const temp = tempFor(path);
  inFlight.add(temp);
  try {
    const handle = await open(temp, 'w', mode);
    try {
      await handle.writeFile(data);
      await handle.sync();
    } catch (e) {
      await handle.close();
      await unlink(temp).catch(() => undefined);
      throw e;
    }
    await handle.close();
    await rename(temp, path);
  } finally {
    inFlight.delete(temp);
  }
  fsyncDir(dir);
}

/** writeFileAtomic for callers that must not yield (the write is done when it returns). */
export function writeFileAtomicSync(path: string, data: string | Uint8Array, mode = 0o600): void {
  const temp = tempFor(path);
  const fd = openSync(temp, 'w', mode);
  try {
    // writeFileSync on a descriptor writes until every byte is out (or throws); one writeSync may
    // write fewer (a full disk, a file size limit) and the short file would be renamed into place.
    writeFileSync(fd, data);
    fsyncSync(fd);
  } catch (e) {
    closeSync(fd);
    try {
      unlinkSync(temp);
    } catch {
      // never created, or gone
    }
    throw e;
  }
  closeSync(fd);
  renameSync(temp, path);
  fsyncDir(dirname(path));
}
