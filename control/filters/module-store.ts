// Content-addressed module storage: `<dataDir>/wasm/<sha256>.wasm`. A write
// goes to a temporary file, is synced, then renamed, so a reader never sees
// a partial module; the same bytes always land at the same name.

import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { mkdirDurable, writeFileAtomic } from '../store/atomic-file.ts';

const SHA256_HEX = /^[0-9a-f]{64}$/;

export function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

export class ModuleStore {
  readonly dir: string;

  constructor(dataDir: string) {
    this.dir = join(dataDir, 'wasm');
  }

  pathOf(sha256: string): string {
    if (!SHA256_HEX.test(sha256)) throw new Error(`not a sha256 hex digest: ${JSON.stringify(sha256)}`);
    return join(this.dir, `${sha256}.wasm`);
  }

  /** Stores the bytes and returns their sha256 (hex). */
  async put(bytes: Uint8Array): Promise<string> {
    const sha256 = sha256Hex(bytes);
    mkdirDurable(this.dir);
    const path = this.pathOf(sha256);
    await writeFileAtomic(path, bytes, 0o644);
    return sha256;
  }

  /** The module's bytes, or undefined when absent; bytes that no longer hash to their name are treated as absent. */
  async get(sha256: string): Promise<Uint8Array | undefined> {
    if (!SHA256_HEX.test(sha256)) return undefined;
    let bytes: Uint8Array;
    try {
      bytes = new Uint8Array(await readFile(this.pathOf(sha256)));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
    return sha256Hex(bytes) === sha256 ? bytes : undefined;
  }
}
