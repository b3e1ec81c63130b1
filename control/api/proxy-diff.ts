// Which proxies' resources a change of state would alter, resource by
// resource. Both states are translated with the real translator, so the diff
// is exactly what the proxies would be sent. Connected proxies are diffed as
// themselves; a service with no connected proxy gets one representative
// sidecar (default ports) so a diff before the first deploy still says what
// its proxies will receive.
import type { MeshModel, ProxyRef } from '../model/types.ts';
import { canonical } from './desired-state.ts';
import { CONFIG_TYPES, type ApiDeps, type StoredObject } from './deps.ts';
import { validateResource } from '../envoy/index.ts';
import type { FieldError } from './errors.ts';
import { TYPE_URL } from './proxy-sync.ts';

export interface ResourceDiff {
  type: string;
  name: string;
  action: 'added' | 'removed' | 'changed';
  before?: unknown;
  after?: unknown;
}

export interface ProxyDiff {
  proxy: string;
  service: string;
  connected: boolean;
  resources: ResourceDiff[];
  /**
   * Translation errors the new state would cause for this proxy, and Envoy's validation errors (protos, PGV, the
   * semantic checks) of each resource it adds or changes: what the xDS server would refuse the snapshot for, so
   * a dry run says it before a write does (until 2026-11-29 only the translator's were reported).
   */
  errors: FieldError[];
}

export function representativeProxy(service: { name: string; namespace: string; ports: { port: number }[] }): ProxyRef {
  return {
    id: `${service.name}.${service.namespace} (any sidecar)`,
    service: service.name,
    namespace: service.namespace,
    kind: 'sidecar',
    inboundPort: 15006,
    outboundPort: 15001,
    appPort: service.ports[0]?.port ?? 8080,
    appAddress: '127.0.0.1',
    bindAddress: '0.0.0.0',
  };
}

function proxiesToDiff(deps: ApiDeps, before: MeshModel, after: MeshModel): { ref: ProxyRef; connected: boolean }[] {
  const out: { ref: ProxyRef; connected: boolean }[] = [];
  const covered = new Set<string>();
  for (const view of deps.proxies.list()) {
    if (view.status === 'DISCONNECTED') continue;
    const ref = deps.proxies.ref(view.id);
    if (!ref) continue;
    out.push({ ref, connected: true });
    covered.add(`${ref.service}.${ref.namespace}`);
  }
  const services = new Map<string, MeshModel['services'][number]>();
  for (const s of [...before.services, ...after.services]) services.set(`${s.name}.${s.namespace}`, s);
  for (const [key, service] of [...services].sort(([a], [b]) => a.localeCompare(b))) {
    if (!covered.has(key)) out.push({ ref: representativeProxy(service), connected: false });
  }
  return out;
}

export function diffState(deps: ApiDeps, target: StoredObject[]): ProxyDiff[] {
  const before = deps.buildModel();
  const after = deps.buildModel(target);
  return proxiesToDiff(deps, before, after).map(({ ref, connected }) => {
    const { resources, errors } = compareProxy(deps, before, after, ref);
    return { proxy: ref.id, service: `${ref.service}.${ref.namespace}`, connected, resources, errors: errors.after };
  });
}

/** Deep equality of two translations of one resource: the translator is deterministic, so equal values almost always serialize alike and the key-sorting comparison is only the fallback (it was most of a write check's time). */
function sameValue(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b) || canonical(a) === canonical(b);
}

/**
 * One proxy's resources under two models: what changes, and the errors the xDS server would refuse each side's
 * snapshot for as far as the change reaches (the translator's errors, and Envoy's validation of every resource
 * the change adds or alters, as it was before and as it will be).
 */
export function compareProxy(deps: ApiDeps, before: MeshModel, after: MeshModel, ref: ProxyRef): { resources: ResourceDiff[]; errors: { before: FieldError[]; after: FieldError[] } } {
  const was = deps.translate(before, ref);
  const will = deps.translate(after, ref);
  const resources: ResourceDiff[] = [];
  for (const type of CONFIG_TYPES) {
    const old = new Map(was[type].map((r) => [r.name, r.value]));
    const next = new Map(will[type].map((r) => [r.name, r.value]));
    for (const name of [...new Set([...old.keys(), ...next.keys()])].sort()) {
      const a = old.get(name);
      const b = next.get(name);
      if (a === undefined) resources.push({ type, name, action: 'added', after: b });
      else if (b === undefined) resources.push({ type, name, action: 'removed', before: a });
      else if (!sameValue(a, b)) resources.push({ type, name, action: 'changed', before: a, after: b });
    }
  }
  const validation = (side: 'before' | 'after'): FieldError[] =>
    resources.flatMap((r) => {
      const value = r[side];
      if (value === undefined) return [];
      return validateResource(TYPE_URL[r.type as keyof typeof TYPE_URL], value).map((e) => ({ path: `${r.type}/${r.name}${e.path ? `: ${e.path}` : ''}`, message: e.message }));
    });
  return { resources, errors: { before: [...was.errors, ...validation('before')], after: [...will.errors, ...validation('after')] } };
}
