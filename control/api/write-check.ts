// The write-time delivery check: before a write commits, the proxies it can
// reach are translated under the state as it is and as it would be, and the
// write is refused if it would give any of them an error the xDS server
// refuses a snapshot for (a translator error, or Envoy's validation of a
// resource it adds or alters: protos, PGV, the semantic checks). Without it
// such a write got 200 and a revision, and the xDS server then sent the
// proxies of every service it touched nothing further, of any kind, until a
// later write undid it (proxy-status NOT_SENT): the error surfaced far from
// the write, to whoever looked.
//
// Only errors the write introduces refuse it. One the state already has (a
// control plane started with a bad option makes every snapshot invalid)
// leaves every write through, so one bad resource cannot lock the API, and a
// write that mends part of it is not refused for the rest.
//
// Which proxies: one per service the write names (its own inbound and
// outbound side), and one caller of it when its own proxies do not call it
// (dependsOn), so the resources every caller gets for it are checked too.
// Connected proxies are checked as themselves, a service with none as
// diff's representative sidecar. At most MAX_CHECKED_SERVICES services, so a
// namespace-wide policy in a large namespace costs a bounded time: the rest
// are the xDS server's to refuse, and show as NOT_SENT as before.
import type { MeshModel, ProxyRef, Service } from '../model/types.ts';
import { resolveServiceRef } from '../model/references.ts';
import { FILTER_MODULE_KIND, type ApiDeps, type Change, type StoredObject } from './deps.ts';
import type { FieldError } from './errors.ts';
import { compareProxy, representativeProxy } from './proxy-diff.ts';

/** Services whose proxies are checked per write, at most (each costs two translations, and one of a caller). */
export const MAX_CHECKED_SERVICES = 16;

const keyOf = (s: { name: string; namespace: string }) => `${s.name}.${s.namespace}`;

/** Every string under a `service` key of a spec, at any depth (a route's own service, its destinations, its mirror). */
function serviceRefs(value: unknown, out: string[] = []): string[] {
  if (Array.isArray(value)) for (const v of value) serviceRefs(v, out);
  else if (value && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) {
      if (k === 'service' && typeof v === 'string') out.push(v);
      else serviceRefs(v, out);
    }
  }
  return out;
}

/** Services (name.namespace) whose proxies' configuration `changes` may alter, in either state. */
export function touchedServices(deps: ApiDeps, changes: Change[], before: MeshModel, after: MeshModel): string[] {
  const touched = new Set<string>();
  const services = [...before.services, ...after.services];
  for (const change of changes) {
    const stored = deps.store.get(change.kind, change.namespace, change.name);
    const specs = [stored?.spec, change.op === 'put' ? change.spec : undefined].filter((s) => s !== undefined);
    if (change.kind === 'Service') {
      touched.add(keyOf(change));
      continue;
    }
    if (change.kind === FILTER_MODULE_KIND) {
      // A new build of a filter, or its removal, reaches every service a binding puts it on.
      for (const b of [...before.filterBindings, ...after.filterBindings]) if (b.filter === change.name) touched.add(keyOf(resolveServiceRef(b.service, b.namespace)));
      continue;
    }
    const refs = specs.flatMap((spec) => serviceRefs(spec));
    if (refs.length === 0) {
      // A policy naming no service is the namespace's (a namespace-wide PeerAuthentication).
      for (const s of services) if (s.namespace === change.namespace) touched.add(keyOf(s));
      continue;
    }
    for (const ref of refs) touched.add(keyOf(resolveServiceRef(ref, change.namespace)));
  }
  const known = new Set(services.map(keyOf));
  return [...touched].filter((k) => known.has(k)).sort();
}

function reaches(caller: Service, target: string): boolean {
  if (caller.dependsOn === undefined) return true;
  return caller.dependsOn.some((ref) => keyOf(resolveServiceRef(ref, caller.namespace)) === target);
}

/** The proxies to check for `touched`: each service's own, and a caller's where its own does not call it. */
function proxiesFor(deps: ApiDeps, touched: string[], after: MeshModel): ProxyRef[] {
  const connected = new Map<string, ProxyRef>();
  for (const view of [...deps.proxies.list()].sort((a, b) => a.id.localeCompare(b.id))) {
    if (view.status === 'DISCONNECTED') continue;
    const ref = deps.proxies.ref(view.id);
    if (ref && !connected.has(keyOf({ name: ref.service, namespace: ref.namespace }))) connected.set(keyOf({ name: ref.service, namespace: ref.namespace }), ref);
  }
  const refOf = (s: Service) => connected.get(keyOf(s)) ?? representativeProxy(s);
  const sorted = [...after.services].sort((a, b) => keyOf(a).localeCompare(keyOf(b)));
  const out = new Map<string, ProxyRef>();
  for (const key of touched) {
    // A service the write deletes has no proxies to send to (its own would get "not registered", which is the point).
    const own = after.services.find((s) => keyOf(s) === key);
    if (own) out.set(key, refOf(own));
    if (own && reaches(own, key)) continue;
    const caller = sorted.find((s) => keyOf(s) !== key && reaches(s, key));
    if (caller && !out.has(keyOf(caller))) out.set(keyOf(caller), refOf(caller));
  }
  return [...out.values()];
}

export interface DeliveryErrors {
  /** Errors the write would introduce, each once, naming the resource and field (`TYPE/NAME: path`, or the translator's own path). */
  errors: FieldError[];
  /** The services (name.namespace) whose proxies would get them. */
  services: string[];
}

/** What the xDS server would refuse after `changes` (giving `state`) that it does not refuse now. */
export function deliveryErrors(deps: ApiDeps, changes: Change[], state: StoredObject[]): DeliveryErrors {
  const before = deps.buildModel();
  const after = deps.buildModel(state);
  const touched = touchedServices(deps, changes, before, after).slice(0, MAX_CHECKED_SERVICES);
  const errors = new Map<string, FieldError>();
  const services = new Set<string>();
  for (const ref of proxiesFor(deps, touched, after)) {
    const { errors: found } = compareProxy(deps, before, after, ref);
    const had = new Set(found.before.map((e) => `${e.path}\u0000${e.message}`));
    for (const e of found.after) {
      const k = `${e.path}\u0000${e.message}`;
      if (had.has(k)) continue;
      errors.set(k, e);
      services.add(keyOf({ name: ref.service, namespace: ref.namespace }));
    }
  }
  return { errors: [...errors.values()], services: [...services].sort() };
}
