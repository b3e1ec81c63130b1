// Crash-safe whole-file writes: temp file, fsync, rename, fsync the directory.
// A reader sees the old file or the new one, never a torn one.

import { open, rename, unlink } from 'node:fs/promises';
import { closeSync, fsyncSync, openSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

export function fsyncDir(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

export async function writeFileAtomic(path: string, data: string | Uint8Array, mode = 0o600): Promise<void> {
  const dir = dirname(path);
  const temp = join(dir, `.${basename(path)}.${process.pid}.tmp`);
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
