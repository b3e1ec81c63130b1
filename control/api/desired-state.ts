// The one path every operator write takes: compute the desired state the
// changes would produce, check it whole (cross references, binding configs
// against their filter's schema), and only then commit, as one revision.
// Nothing is stored on error.
//
// Operator writes run one at a time (serialWrite): each plans and checks
// against the state the previous one committed. Checked side by side, a
// route to service X and the deletion of X each passed against a state that
// still had X, and together stored a dangling reference (which then refused
// every later write); two creates of one name both got 201.
import type { FilterBinding, FilterModule } from '../model/types.ts';
import { RUNTIME_KINDS } from '../store/store.ts';
import { FILTER_MODULE_KIND, type ApiDeps, type Change, type StoredObject } from './deps.ts';
import { ApiError, joinPath, type FieldError } from './errors.ts';
import { deliveryErrors } from './write-check.ts';

/**
 * Kinds that are not operator policy: instances belong to the registry,
 * catalog entries to the filter catalog. Everything else in the store is an
 * operator kind (whatever control/model registers).
 */
const NON_OPERATOR_KINDS = new Set([...RUNTIME_KINDS, FILTER_MODULE_KIND]);

const key = (o: { kind: string; namespace: string; name: string }) => `${o.kind}/${o.namespace}/${o.name}`;

export function operatorObjects(objects: StoredObject[]): StoredObject[] {
  return objects.filter((o) => !NON_OPERATOR_KINDS.has(o.kind));
}

/** The store's objects with `changes` applied (puts replace, deletes remove). */
export function applyChanges(current: StoredObject[], changes: Change[]): StoredObject[] {
  const byKey = new Map(current.map((o) => [key(o), o]));
  for (const c of changes) {
    if (c.op === 'delete') byKey.delete(key(c));
    else byKey.set(key(c), { kind: c.kind, namespace: c.namespace, name: c.name, spec: c.spec });
  }
  return [...byKey.values()];
}

/** Whether a put would alter the stored object (deep equality of specs). */
export function isUnchanged(deps: ApiDeps, change: Change): boolean {
  const stored = deps.store.get(change.kind, change.namespace, change.name);
  if (change.op === 'delete') return stored === undefined;
  return stored !== undefined && canonical(stored.spec) === canonical(change.spec);
}

export function canonical(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => a.localeCompare(b)))
      : v,
  );
}

/**
 * Errors of the state `changes` would produce: the model's cross-reference
 * checks over the whole state, plus each changed binding's config against
 * its filter's schema. `pathOf` maps a changed object to where it sits in the
 * request (a body: "", a manifest: "documents[2].spec").
 */
export async function checkChanges(
  deps: ApiDeps,
  changes: Change[],
  pathOf: (c: Change) => string,
): Promise<{ state: StoredObject[]; errors: FieldError[] }> {
  const state = applyChanges(deps.store.list(), changes);
  const errors: FieldError[] = [];
  for (const e of deps.checkReferences(operatorObjects(state))) {
    // An error in an object this request changes points into the request;
    // one in an object it leaves alone (a route to a service being deleted)
    // names that object.
    const own = changes.find((c) => c.op === 'put' && c.kind === e.kind && c.namespace === e.namespace && c.name === e.name);
    if (own) errors.push({ path: joinPath(pathOf(own), e.path), message: e.message });
    else errors.push({ path: joinPath(`${e.kind}/${e.namespace}/${e.name}`, e.path), message: `${e.message} (${e.kind} ${e.namespace}/${e.name} still refers to it)` });
  }
  // The bindings to check: those this request writes, and those whose filter module it replaces (a new build of a filter must still take every config bound to it).
  const modules = new Set(changes.filter((c) => c.op === 'put' && c.kind === FILTER_MODULE_KIND).map((c) => c.name));
  const bindings = [
    ...changes.filter((c) => c.op === 'put' && c.kind === 'FilterBinding').map((c) => ({ spec: c.spec as FilterBinding, at: pathOf(c) })),
    ...state
      .filter((o) => o.kind === 'FilterBinding' && modules.has((o.spec as FilterBinding).filter) && !changes.some((c) => c.kind === o.kind && c.namespace === o.namespace && c.name === o.name))
      .map((o) => ({ spec: o.spec as FilterBinding, at: `FilterBinding/${o.namespace}/${o.name}` })),
  ];
  if (bindings.length > 0) {
    const catalog = state.filter((o) => o.kind === FILTER_MODULE_KIND).map((o) => o.spec as FilterModule);
    for (const { spec: binding, at } of bindings) {
      const filter = catalog.find((f) => f.name === binding.filter);
      if (!filter) {
        errors.push({ path: joinPath(at, 'filter'), message: `unknown filter "${binding.filter}"; known filters: ${catalog.map((f) => f.name).sort().join(', ') || 'none'}` });
        continue;
      }
      const schemaErrors = deps.filters.validateConfig(filter, binding.config);
      for (const e of schemaErrors) errors.push({ path: joinPath(joinPath(at, 'config'), e.path), message: e.message });
      if (schemaErrors.length > 0) continue;
      // The plugin configuration exactly as the translator sends it (http-filter-wasm.ts): name, root_id, the config as JSON.
      for (const e of await deps.filters.configureErrors(filter, { name: binding.name, rootId: binding.filter, configuration: JSON.stringify(binding.config ?? {}) })) {
        errors.push({ path: joinPath(joinPath(at, 'config'), e.path), message: e.message });
      }
    }
  }
  return { state, errors: dedupe(errors) };
}

function dedupe(errors: FieldError[]): FieldError[] {
  const seen = new Set<string>();
  return errors.filter((e) => {
    const k = `${e.path}\u0000${e.message}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

const writeQueues = new WeakMap<object, Promise<unknown>>();
const writing = new WeakSet<object>();

/**
 * Runs an operator write (its plan, preconditions and commitChecked) after
 * every earlier one on the same store has committed or failed. Reads are not
 * held up; registry writes (instances) do not wait either.
 */
export function serialWrite<T>(deps: ApiDeps, task: () => Promise<T>): Promise<T> {
  const store = deps.store;
  const run = (writeQueues.get(store) ?? Promise.resolve()).then(async () => {
    writing.add(store);
    try {
      return await task();
    } finally {
      writing.delete(store);
    }
  });
  writeQueues.set(store, run.catch(() => undefined));
  return run;
}

/** Checks, then commits `changes` as one revision; throws ApiError (nothing stored) on any error. Call it inside serialWrite. */
export async function commitChecked(
  deps: ApiDeps,
  changes: Change[],
  meta: { actor: string; summary: string },
  pathOf: (c: Change) => string,
): Promise<{ revision: number; changed: boolean }> {
  if (!writing.has(deps.store)) throw new Error('commitChecked outside serialWrite: a concurrent write could invalidate its checks');
  const { state, errors } = await checkChanges(deps, changes, pathOf);
  if (errors.length > 0) {
    const first = errors[0]!;
    throw new ApiError('INVALID_REFERENCE', `${first.path ? `${first.path}: ` : ''}${first.message}${errors.length > 1 ? ` (and ${errors.length - 1} more)` : ''}`, errors);
  }
  checkDelivery(deps, changes, state);
  return deps.store.commit(changes, meta);
}

/** Throws UNDELIVERABLE (nothing stored) when the state would give a proxy an error the xDS server refuses its snapshot for (write-check.ts). */
export function checkDelivery(deps: ApiDeps, changes: Change[], state: StoredObject[]): void {
  const { errors, services } = deliveryErrors(deps, changes, state);
  if (errors.length === 0) return;
  const first = errors[0]!;
  throw new ApiError(
    'UNDELIVERABLE',
    `the change would give the proxies of ${services.join(', ')} configuration the xDS server refuses to send (they would get no further config until it is undone): ${first.path ? `${first.path}: ` : ''}${first.message}${errors.length > 1 ? ` (and ${errors.length - 1} more)` : ''}`,
    errors,
  );
}
