// The store: every operator object and instance registration, as numbered
// revisions. Everything above it (registry, API, model assembly) codes
// against this interface; the file store is the embedded default.

export interface StoredObject {
  kind: string;
  namespace: string;
  name: string;
  /** The validated domain object (e.g. a Service); frozen, never mutate it. */
  spec: unknown;
}

export interface Change {
  op: 'put' | 'delete';
  kind: string;
  namespace: string;
  name: string;
  /** Required for put. */
  spec?: unknown;
  /** Set by the store on the changes it commits (ignored on input): see ChangeRef. */
  action?: ChangeAction;
}

/** What a committed change did: a put of an object that did not exist creates it; of one that did, updates it. */
export type ChangeAction = 'create' | 'update' | 'delete';

export interface ChangeRef {
  op: 'put' | 'delete';
  kind: string;
  namespace: string;
  name: string;
  /** Absent from revisions written before 2026-11-29 (a put there may be either). */
  action?: ChangeAction;
}

export interface RevisionInfo {
  revision: number;
  /** ISO 8601 time of the commit. */
  time: string;
  actor: string;
  summary: string;
  changes: ChangeRef[];
}

export interface CommitMeta {
  actor: string;
  summary: string;
}

export interface Store {
  /** The latest committed revision; 0 for an empty store. */
  revision(): number;
  get(kind: string, namespace: string, name: string): StoredObject | undefined;
  /** Objects of one kind (or all), sorted by kind, namespace, name. */
  list(kind?: string): StoredObject[];
  /**
   * Applies all changes atomically as one new revision; resolves after the
   * write is durable (fsync). Changes that alter nothing produce no revision
   * (resolves with the current one and changed:false). Commits are applied in
   * call order.
   */
  commit(changes: Change[], meta: CommitMeta): Promise<{ revision: number; changed: boolean }>;
  /** Revision records, newest first. */
  history(opts?: { limit?: number }): RevisionInfo[];
  /** The full state as of a past revision (0..revision()), sorted like list(); throws RangeError outside that range. */
  stateAt(revision: number): StoredObject[];
  /** Called after each new revision is durable and visible; returns the unsubscribe function. */
  subscribe(listener: (revision: number) => void): () => void;
  /** Why every commit is refused now (a write failed and the store could not recover from it); undefined while it takes commits. */
  unwritable?(): string | undefined;
  close(): Promise<void>;
}

/**
 * A commit the store could not write (a full disk, an I/O error): nothing of
 * it was stored. `restartRequired` when the store could not recover from the
 * failure and refuses every commit until it is reopened (the process restarts);
 * otherwise the next commit is tried afresh.
 */
export class StoreWriteError extends Error {
  override name = 'StoreWriteError';
  readonly restartRequired: boolean;

  constructor(message: string, restartRequired: boolean) {
    super(message);
    this.restartRequired = restartRequired;
  }
}

/** The kinds the registry owns (runtime state, not operator configuration). */
export const RUNTIME_KINDS: readonly string[] = ['Instance'];

/**
 * Kinds rollback leaves alone: runtime state, and filter modules, which are
 * content-addressed artifacts (keeping one never changes traffic; the
 * bindings that use it do roll back).
 */
export const ROLLBACK_EXEMPT_KINDS: readonly string[] = [...RUNTIME_KINDS, 'FilterModule'];

export function objectKey(kind: string, namespace: string, name: string): string {
  return `${kind}\u0000${namespace}\u0000${name}`;
}
