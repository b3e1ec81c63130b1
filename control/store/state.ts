// The in-memory state both stores share: objects by key, plus the rules for
// turning a change list into the effective changes of one revision.

import { objectKey, type Change, type StoredObject } from './store.ts';

/** JSON with sorted keys: two specs are the same when their canonical forms are. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) return v;
    return Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  });
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}

/** Throws on a malformed change: that is a caller bug, not user input (validation happens before the store). */
export function assertChange(change: Change, index: number): void {
  const ok =
    (change.op === 'put' || change.op === 'delete') &&
    [change.kind, change.namespace, change.name].every((s) => typeof s === 'string' && s.length > 0) &&
    (change.op === 'delete' || (change.spec !== undefined && canonicalJson(change.spec) !== undefined));
  if (!ok) throw new TypeError(`changes[${index}] is not a valid store change: ${JSON.stringify(change)}`);
}

export function compareObjects(a: { kind: string; namespace: string; name: string }, b: { kind: string; namespace: string; name: string }): number {
  const cmp = (x: string, y: string) => (x < y ? -1 : x > y ? 1 : 0);
  return cmp(a.kind, b.kind) || cmp(a.namespace, b.namespace) || cmp(a.name, b.name);
}

export class ObjectState {
  readonly objects = new Map<string, StoredObject>();

  get(kind: string, namespace: string, name: string): StoredObject | undefined {
    return this.objects.get(objectKey(kind, namespace, name));
  }

  list(kind?: string): StoredObject[] {
    const all = [...this.objects.values()];
    return (kind === undefined ? all : all.filter((o) => o.kind === kind)).sort(compareObjects);
  }

  /**
   * The net changes that alter this state: one per object whose final value
   * differs from its current one, in order of first mention, with specs
   * copied as canonical JSON (so callers' later mutation cannot reach the
   * store, and key order never counts as a change).
   *
   * `staged` holds canonical values of commits accepted but not yet applied
   * (a group commit in flight); it is read as the current state and updated
   * with this commit's outcome.
   */
  effective(changes: Change[], staged: Map<string, string | undefined> = new Map()): Change[] {
    const finals = new Map<string, { change: Change; canonical: string | undefined }>();
    changes.forEach((change, i) => {
      assertChange(change, i);
      const key = objectKey(change.kind, change.namespace, change.name);
      finals.set(key, { change, canonical: change.op === 'delete' ? undefined : canonicalJson(change.spec) });
    });
    const out: Change[] = [];
    for (const [key, { change, canonical }] of finals) {
      const current = staged.has(key) ? staged.get(key) : this.canonicalOf(key);
      if (canonical === current) continue;
      staged.set(key, canonical);
      const ref = { kind: change.kind, namespace: change.namespace, name: change.name };
      out.push(canonical === undefined ? { op: 'delete', ...ref, action: 'delete' } : { op: 'put', ...ref, spec: JSON.parse(canonical), action: current === undefined ? 'create' : 'update' });
    }
    return out;
  }

  apply(changes: Change[]): void {
    for (const c of changes) {
      const key = objectKey(c.kind, c.namespace, c.name);
      if (c.op === 'delete') this.objects.delete(key);
      else this.objects.set(key, deepFreeze({ kind: c.kind, namespace: c.namespace, name: c.name, spec: c.spec }));
    }
  }

  private canonicalOf(key: string): string | undefined {
    const o = this.objects.get(key);
    return o === undefined ? undefined : canonicalJson(o.spec);
  }
}
