// The embedded file store (the default; no server). Layout of <dataDir>/store:
//   LOCK                    pid of the control plane using it
//   log-<first rev>.jsonl   append-only revision log segments, one checksummed
//                           JSON line per revision, fsynced before commit resolves
//   snapshot-<rev>.json     state + revision records as of <rev>, written
//                           atomically by compaction; opening replays only the
//                           log after it
//   log-<first rev>.jsonl.dropped-<time>
//                           a damaged last line open() cut off the log, kept
// Segments are kept after compaction: they are the full history, so stateAt
// can answer for any past revision.

import { closeSync, fsyncSync, ftruncateSync, openSync, readFileSync, readdirSync } from 'node:fs';
import { open, unlink, type FileHandle } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { fsyncDir, mkdirDurable, parseJsonFile, removeLeftoverTemps, writeFileAtomic, writeFileAtomicSync } from './atomic-file.ts';
import { RevisionListeners } from './listeners.ts';
import { acquireLock, removeDeadLockTemps } from './lock.ts';
import { encodeRecord, readSegment } from './log-format.ts';
import { assertRevision, historyOf, newRevisionRecord, replay, type RevisionRecord } from './memory-store.ts';
import { ObjectState } from './state.ts';
import { StoreWriteError, type Change, type CommitMeta, type RevisionInfo, type Store, type StoredObject } from './store.ts';

export interface FileStoreOptions {
  now?: () => Date;
  /** Write a snapshot after this many revisions since the last one (default 1000). */
  compactEvery?: number;
  /** Revision records kept for history() (default 10000); stateAt still reaches every revision. */
  historyLimit?: number;
}

export interface FileStore extends Store {
  /** Writes a snapshot now and starts a new log segment. */
  compact(): Promise<void>;
  /** What open() found: a dropped torn tail, replayed records. */
  readonly openReport: { snapshotRevision: number; replayed: number; droppedTail?: DroppedTail };
}

/** The damaged last line(s) of the log that open() cut off (for the control plane to report at start). */
export interface DroppedTail {
  /** The log segment they were cut off. */
  file: string;
  /** What was wrong: "incomplete line N" (a write a crash cut short) or "bad checksum on line N". */
  reason: string;
  /** The first line dropped (1-based). */
  line: number;
  /** The revision the first dropped line would have been; the next commit takes its number. */
  revision: number;
  bytes: number;
  /** Where the dropped bytes were kept (written and fsynced before the cut). */
  keptIn: string;
}

interface Snapshot {
  format: 1;
  revision: number;
  objects: StoredObject[];
  history: RevisionInfo[];
}

const LOCK_FILE = 'LOCK';
const pad = (n: number) => String(n).padStart(12, '0');
const segmentName = (first: number) => `log-${pad(first)}.jsonl`;
const snapshotName = (rev: number) => `snapshot-${pad(rev)}.json`;

function numbered(dir: string, prefix: string, suffix: string): number[] {
  return readdirSync(dir)
    .filter((f) => f.startsWith(prefix) && f.endsWith(suffix))
    .map((f) => Number(f.slice(prefix.length, -suffix.length)))
    .filter((n) => Number.isInteger(n))
    .sort((a, b) => a - b);
}

function readSnapshot(path: string): Snapshot {
  // Every revision is in the log segments too (they are never removed), so the state can be rebuilt without it.
  const remedy = `restore it from a backup, or rename it (to ${basename(path)}.damaged) and start again to rebuild the state from the log segments beside it`;
  return parseJsonFile(path, readFileSync(path, 'utf8'), remedy) as Snapshot;
}

export async function openFileStore(dataDir: string, opts: FileStoreOptions = {}): Promise<FileStore> {
  const dir = join(dataDir, 'store');
  mkdirDurable(dir, 0o700);
  const releaseLock = acquireLock(join(dir, LOCK_FILE));
  try {
    return await openLocked(dir, opts, releaseLock);
  } catch (e) {
    releaseLock();
    throw e;
  }
}

async function openLocked(dir: string, opts: FileStoreOptions, releaseLock: () => void): Promise<FileStore> {
  const now = opts.now ?? (() => new Date());
  const compactEvery = opts.compactEvery ?? 1000;
  const historyLimit = opts.historyLimit ?? 10_000;
  const state = new ObjectState();
  const listeners = new RevisionListeners();
  let history: RevisionInfo[] = [];
  let revision = 0;

  // 0. Leftovers of a crash: a compaction's snapshot temp file or a dropped tail's kept copy not yet
  // renamed, a lock attempt's temp file not yet removed. Only now, holding the lock: until then another control plane may own
  // the dir and be writing them.
  removeLeftoverTemps(dir, (name) => name.startsWith('snapshot-') || /^log-\d+\.jsonl\.dropped-/.test(name));
  removeDeadLockTemps(join(dir, LOCK_FILE));

  // 1. The newest snapshot.
  const snapshots = numbered(dir, 'snapshot-', '.json');
  let snapshotRevision = 0;
  if (snapshots.length > 0) {
    snapshotRevision = snapshots[snapshots.length - 1]!;
    const snap = readSnapshot(join(dir, snapshotName(snapshotRevision)));
    state.apply(snap.objects.map((o) => ({ op: 'put', ...o })));
    history = snap.history;
    revision = snap.revision;
  }

  // 2. The log after it. A torn tail can only be in the last segment.
  const segments = numbered(dir, 'log-', '.jsonl');
  const startAt = Math.max(0, segments.findLastIndex((first) => first <= revision + 1));
  let replayed = 0;
  let droppedTail: DroppedTail | undefined;
  for (let i = startAt; i < segments.length; i++) {
    const file = join(dir, segmentName(segments[i]!));
    const bytes = readFileSync(file);
    const read = readSegment(bytes, file);
    let dropped: Omit<DroppedTail, 'revision'> | undefined;
    if (read.tornTail) {
      if (i !== segments.length - 1) throw new Error(`store log ${file} has a damaged tail but is not the last segment: ${read.tornTail}`);
      // A torn write was never acknowledged, but a complete line whose checksum fails may be an
      // acknowledged revision damaged on disk: its bytes are kept aside, durably, before they are
      // cut off, for the operator to look at (the start names the file).
      const tail = bytes.subarray(read.validBytes);
      const keptIn = `${file}.dropped-${now().toISOString().replace(/:/g, '-')}`;
      try {
        writeFileAtomicSync(keptIn, tail);
      } catch (e) {
        throw new Error(`store log ${file} has a damaged last line (${read.tornTail}) that could not be kept aside in ${keptIn} before cutting it off: ${(e as Error).message}`);
      }
      // The cut must be durable before new lines follow it, or a second crash could resurrect the
      // torn line in front of acknowledged ones.
      const fd = openSync(file, 'r+');
      try {
        ftruncateSync(fd, read.validBytes);
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      dropped = { file, reason: read.tornTail, line: read.tornLine ?? 0, bytes: tail.length, keptIn };
    }
    for (const record of read.records) {
      if (record.info.revision <= revision) continue;
      if (record.info.revision !== revision + 1) throw new Error(`store log ${file} skips from revision ${revision} to ${record.info.revision}`);
      state.apply(record.changes);
      history.push(record.info);
      revision = record.info.revision;
      replayed++;
    }
    if (dropped) droppedTail = { ...dropped, revision: revision + 1 };
  }
  history = history.slice(-historyLimit);

  // 3. The segment new revisions go to.
  let activeFirst = segments.length > 0 ? segments[segments.length - 1]! : revision + 1;
  let log: FileHandle = await open(join(dir, segmentName(activeFirst)), 'a', 0o600);
  let logBytes = (await log.stat()).size;
  if (segments.length === 0) fsyncDir(dir);
  let sinceSnapshot = revision - snapshotRevision;

  let queue: Promise<unknown> = Promise.resolve();
  let broken: StoreWriteError | undefined;
  let closed = false;
  const serial = <T>(task: () => Promise<T>): Promise<T> => {
    const run = queue.then(task);
    queue = run.catch(() => undefined);
    return run;
  };

  /** Appends the lines of a group of revisions with one write and one fsync. */
  async function append(records: RevisionRecord[]): Promise<void> {
    const lines = records.map(encodeRecord).join('');
    try {
      await log.appendFile(lines);
      await log.datasync();
    } catch (e) {
      const cause = (e as Error).message;
      // Nothing of this group was acknowledged. Cutting the log back to its last fsynced line, and
      // making the cut durable, leaves exactly the acknowledged revisions on disk again, so the next
      // commit is tried afresh (a disk that was full for a moment takes it). The pages of a write
      // whose fsync failed cannot be trusted, but they are the ones cut off. When even the cut
      // fails, appending after what is there could glue acknowledged lines to a fragment: refuse
      // every commit until the store is reopened, and say so (unwritable(), /readyz).
      try {
        await log.truncate(logBytes);
        await log.sync();
      } catch (cutError) {
        broken = new StoreWriteError(
          `store write failed (${cause}) and its log could not be cut back to the last stored revision (${(cutError as Error).message}): no write is stored until the control plane is restarted`,
          true,
        );
        throw broken;
      }
      throw new StoreWriteError(`store write failed (${cause}): nothing was stored`, false);
    }
    logBytes += Buffer.byteLength(lines);
  }

  // Group commit: commits that arrive while a write is in flight share the
  // next fsync. Each stays its own revision and its own log line.
  interface PendingCommit {
    changes: Change[];
    meta: CommitMeta;
    resolve(result: { revision: number; changed: boolean }): void;
    reject(error: unknown): void;
  }
  let pending: PendingCommit[] = [];
  let drainScheduled = false;

  async function drainCommits(): Promise<void> {
    drainScheduled = false;
    const batch = pending;
    pending = [];
    if (closed || broken) {
      for (const p of batch) p.reject(broken ?? new Error('store is closed'));
      return;
    }
    const staged = new Map<string, string | undefined>();
    const records: RevisionRecord[] = [];
    const settle: (() => void)[] = [];
    let next = revision;
    for (const p of batch) {
      let effective: Change[];
      try {
        effective = state.effective(p.changes, staged);
      } catch (e) {
        settle.push(() => p.reject(e));
        continue;
      }
      const at = effective.length === 0 ? next : ++next;
      if (effective.length > 0) records.push(newRevisionRecord(at, now(), p.meta, effective));
      settle.push(() => p.resolve({ revision: at, changed: effective.length > 0 }));
    }
    if (records.length > 0) {
      try {
        await append(records);
      } catch (e) {
        for (const p of batch) p.reject(e);
        return;
      }
      for (const record of records) {
        state.apply(record.changes);
        revision = record.info.revision;
        history.push(record.info);
        sinceSnapshot++;
        listeners.notify(revision);
      }
      if (history.length > historyLimit) history = history.slice(-historyLimit);
    }
    for (const s of settle) s();
    if (sinceSnapshot >= compactEvery) {
      // The revisions are durable already; a failed compaction only delays the next snapshot.
      await compactNow().catch((e: Error) => process.emitWarning(`store compaction failed: ${e.message}`));
    }
  }

  async function compactNow(): Promise<void> {
    const snapshot: Snapshot = { format: 1, revision, objects: state.list(), history };
    await writeFileAtomic(join(dir, snapshotName(revision)), JSON.stringify(snapshot));
    const oldSnapshot = snapshotRevision;
    snapshotRevision = revision;
    sinceSnapshot = 0;
    if (activeFirst !== revision + 1) {
      await log.close();
      activeFirst = revision + 1;
      log = await open(join(dir, segmentName(activeFirst)), 'a', 0o600);
      logBytes = 0;
      fsyncDir(dir);
    }
    if (oldSnapshot !== snapshotRevision) {
      await unlink(join(dir, snapshotName(oldSnapshot))).catch(() => undefined);
    }
  }

  /** Records from the log with revision > after, up to `upTo`, read fresh from disk. */
  function recordsFromDisk(after: number, upTo: number): RevisionRecord[] {
    const out: RevisionRecord[] = [];
    const files = numbered(dir, 'log-', '.jsonl');
    const from = Math.max(0, files.findLastIndex((first) => first <= after + 1));
    for (const first of files.slice(from)) {
      if (first > upTo) break;
      const file = join(dir, segmentName(first));
      for (const r of readSegment(readFileSync(file), file).records) {
        if (r.info.revision > after && r.info.revision <= upTo) out.push(r);
      }
    }
    return out;
  }

  const store: FileStore = {
    openReport: droppedTail === undefined ? { snapshotRevision, replayed } : { snapshotRevision, replayed, droppedTail },
    revision: () => revision,
    get: (kind, namespace, name) => state.get(kind, namespace, name),
    list: (kind) => state.list(kind),
    commit(changes: Change[], meta: CommitMeta) {
      return new Promise((resolve, reject) => {
        pending.push({ changes, meta, resolve, reject });
        if (!drainScheduled) {
          drainScheduled = true;
          void serial(drainCommits);
        }
      });
    },
    history: (o) => historyOf(history, o?.limit),
    stateAt(rev) {
      assertRevision(rev, revision);
      if (rev === revision) return state.list();
      if (rev >= snapshotRevision && snapshotRevision > 0) {
        const snap = readSnapshot(join(dir, snapshotName(snapshotRevision)));
        return replay(snap.objects, recordsFromDisk(snapshotRevision, rev), rev);
      }
      return replay([], recordsFromDisk(0, rev), rev);
    },
    subscribe: (listener) => listeners.add(listener),
    unwritable: () => broken?.message,
    compact: () => serial(compactNow),
    close() {
      return serial(async () => {
        if (closed) return;
        closed = true;
        listeners.clear();
        await log.close();
        releaseLock();
      });
    },
  };
  return store;
}
