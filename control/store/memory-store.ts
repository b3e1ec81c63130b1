// The in-memory store: the Store contract without a disk, for tests and
// tools. Keeps every revision's changes, so stateAt replays from empty.

import { RevisionListeners } from './listeners.ts';
import { ObjectState } from './state.ts';
import type { Change, ChangeRef, CommitMeta, RevisionInfo, Store, StoredObject } from './store.ts';

export interface RevisionRecord {
  info: RevisionInfo;
  /** The effective changes, specs included. */
  changes: Change[];
}

export function newRevisionRecord(revision: number, time: Date, meta: CommitMeta, changes: Change[]): RevisionRecord {
  return {
    info: {
      revision,
      time: time.toISOString(),
      actor: meta.actor,
      summary: meta.summary,
      changes: changes.map(changeRef),
    },
    changes,
  };
}

/** A committed change without its spec. */
export function changeRef({ op, kind, namespace, name, action }: Change): ChangeRef {
  return action === undefined ? { op, kind, namespace, name } : { op, kind, namespace, name, action };
}

/** Replays records (ascending, contiguous from `base`'s revision) up to `revision`. */
export function replay(base: StoredObject[], records: Iterable<RevisionRecord>, revision: number): StoredObject[] {
  const state = new ObjectState();
  state.apply(base.map((o) => ({ op: 'put', ...o })));
  for (const r of records) {
    if (r.info.revision > revision) break;
    state.apply(r.changes);
  }
  return state.list();
}

/** Newest first; copies only the `limit` newest, since callers poll it on every revision. */
export function historyOf(infos: RevisionInfo[], limit?: number): RevisionInfo[] {
  const count = limit === undefined ? infos.length : Math.min(infos.length, Math.max(0, Math.floor(limit)));
  return infos.slice(infos.length - count).reverse();
}

export function assertRevision(revision: number, latest: number): void {
  if (!Number.isInteger(revision) || revision < 0 || revision > latest) {
    throw new RangeError(`revision ${revision} does not exist (0..${latest})`);
  }
}

export function createMemoryStore(opts: { now?: () => Date } = {}): Store {
  const now = opts.now ?? (() => new Date());
  const state = new ObjectState();
  const records: RevisionRecord[] = [];
  const listeners = new RevisionListeners();
  let closed = false;
  const revision = () => records.length;

  return {
    revision,
    get: (kind, namespace, name) => state.get(kind, namespace, name),
    list: (kind) => state.list(kind),
    async commit(changes, meta) {
      if (closed) throw new Error('store is closed');
      const effective = state.effective(changes);
      if (effective.length === 0) return { revision: revision(), changed: false };
      records.push(newRevisionRecord(revision() + 1, now(), meta, effective));
      state.apply(effective);
      listeners.notify(revision());
      return { revision: revision(), changed: true };
    },
    history: (o) => historyOf(records.map((r) => r.info), o?.limit),
    stateAt(rev) {
      assertRevision(rev, revision());
      return replay([], records, rev);
    },
    subscribe: (listener) => listeners.add(listener),
    async close() {
      closed = true;
      listeners.clear();
    },
  };
}
