// The API's own audit entries, for what the store's revisions cannot say:
// which operator token made a registry change (the registry commits under
// its own actor) and token creation (tokens are not store objects). Kept as
// an append-only JSON-lines file, each line fsynced before the request
// answers, so an acknowledged action is never missing from the audit log.
import { appendFile, open, readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { fsyncDir, mkdirDurable } from '../store/atomic-file.ts';

export interface AuditEvent {
  time: string;
  /** `token:<name>`. */
  actor: string;
  /** What happened, e.g. "register instance orders-3f2a of default/orders". */
  action: string;
  /** The store revision the action produced, when it produced one. */
  revision?: number;
  /** For an action that produced no revision: the store's revision when it happened (orders the audit log). */
  afterRevision?: number;
}

export interface AuditJournal {
  record(event: AuditEvent): Promise<void>;
  list(): AuditEvent[];
}

export function memoryAuditJournal(): AuditJournal {
  const events: AuditEvent[] = [];
  return {
    record: async (e) => void events.push(e),
    list: () => [...events],
  };
}

/**
 * Opens (creating if needed) the journal at `path`. A crash can leave the last
 * line torn (never acknowledged): it is skipped, and cut off the file before
 * anything is appended, or the next acknowledged line would be glued to it and
 * lost at the following open. A failed append (ENOSPC, EIO) is cut off the
 * same way before record() rejects; when that cut fails too, every later
 * record() is refused.
 */
export async function openAuditJournal(path: string): Promise<AuditJournal> {
  mkdirDurable(dirname(path));
  const events: AuditEvent[] = [];
  let bytes: Buffer | undefined;
  try {
    bytes = await readFile(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  /** Bytes of whole, fsynced lines: where the file is cut back to when an append fails. */
  let goodBytes = 0;
  if (bytes === undefined) {
    // The new file's directory entry must be durable too, or a crash could lose every line fsynced into it.
    await (await open(path, 'a', 0o600)).close();
    fsyncDir(dirname(path));
  } else {
    // Only newline-ended lines were ever acknowledged (each is written whole with its newline, then fsynced).
    goodBytes = bytes.lastIndexOf(0x0a) + 1;
    for (const line of bytes.subarray(0, goodBytes).toString('utf8').split('\n')) {
      if (!line.trim()) continue;
      try {
        events.push(JSON.parse(line) as AuditEvent);
      } catch {
        // a damaged line: skipped (the store log, not this journal, is the record of state)
      }
    }
    if (goodBytes < bytes.length) await cutBack(path, goodBytes);
  }
  /** Set when a failed append could not be cut back off the file: appending after its fragment would lose the next entry. */
  let broken: Error | undefined;
  let writes: Promise<void> = Promise.resolve();
  return {
    record(event) {
      const next = writes.then(async () => {
        if (broken) throw broken;
        const line = JSON.stringify(event) + '\n';
        try {
          await appendFile(path, line, { mode: 0o600 });
          const handle = await open(path, 'r');
          try {
            await handle.sync();
          } finally {
            await handle.close();
          }
        } catch (err) {
          // A full disk or an I/O error can land part of the line: cut it off, or the next
          // acknowledged entry would be glued to it and skipped at the next open.
          await cutBack(path, goodBytes).catch((cutErr: Error) => {
            broken = new Error(`audit journal ${path}: a failed write (${(err as Error).message}) could not be cut back off the file (${cutErr.message}); restart the control plane`);
          });
          throw err;
        }
        goodBytes += Buffer.byteLength(line);
        events.push(event);
      });
      writes = next.catch(() => undefined);
      return next;
    },
    list: () => [...events],
  };
}

/** Truncates the journal to `length` bytes, durably: the cut must hold before new lines follow it. */
async function cutBack(path: string, length: number): Promise<void> {
  const handle = await open(path, 'r+');
  try {
    await handle.truncate(length);
    await handle.sync();
  } finally {
    await handle.close();
  }
}
