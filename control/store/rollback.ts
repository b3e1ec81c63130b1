// Rollback: the changes that return operator configuration to its state at
// an earlier revision. Instances are runtime state owned by the registry:
// rolling back a route must not resurrect or kill workloads.

import { canonicalJson, compareObjects } from './state.ts';
import { ROLLBACK_EXEMPT_KINDS, objectKey, type Change, type Store, type StoredObject } from './store.ts';

/**
 * Changes returning every kind except ROLLBACK_EXEMPT_KINDS (or exactly
 * `opts.kinds`) to revision `toRevision`. Empty when nothing differs. Throws
 * RangeError for a revision the store does not have.
 */
export function rollbackChanges(store: Store, toRevision: number, opts: { kinds?: readonly string[] } = {}): Change[] {
  const operatorOwned = (o: StoredObject) => (opts.kinds ? opts.kinds.includes(o.kind) : !ROLLBACK_EXEMPT_KINDS.includes(o.kind));
  const target = new Map(store.stateAt(toRevision).filter(operatorOwned).map((o) => [objectKey(o.kind, o.namespace, o.name), o]));
  const current = store.list().filter(operatorOwned);
  const changes: Change[] = [];
  for (const o of current) {
    const key = objectKey(o.kind, o.namespace, o.name);
    const then = target.get(key);
    if (!then) changes.push({ op: 'delete', kind: o.kind, namespace: o.namespace, name: o.name });
    else if (canonicalJson(then.spec) !== canonicalJson(o.spec)) changes.push({ op: 'put', kind: o.kind, namespace: o.namespace, name: o.name, spec: then.spec });
    target.delete(key);
  }
  for (const o of [...target.values()].sort(compareObjects)) {
    changes.push({ op: 'put', kind: o.kind, namespace: o.namespace, name: o.name, spec: o.spec });
  }
  return changes;
}
