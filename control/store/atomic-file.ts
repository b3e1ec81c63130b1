// Crash-safe whole-file writes: temp file, fsync, rename, fsync the directory.
// A reader sees the old file or the new one, never a torn one.

import { open, rename, unlink } from 'node:fs/promises';
import { closeSync, fsyncSync, openSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

export function fsyncDir(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

let writes = 0;
/** A temp name no other write (in this process or another) is using: two writes of one file at once must not share one. */
const tempFor = (path: string) => join(dirname(path), `.${basename(path)}.${process.pid}.${++writes}.tmp`);

export async function writeFileAtomic(path: string, data: string | Uint8Array, mode = 0o600): Promise<void> {
  const dir = dirname(path);
  const temp = tempFor(path);
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
