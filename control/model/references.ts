// Cross-reference checks over a whole desired state: what no single object's
// validation can see. Run after applying a change set to the current state,
// before committing it.

import type { AuthorizationPolicy, DestinationPolicy, FilterBinding, PeerAuthentication, Route, Service } from './types.ts';
import type { FieldError } from './result.ts';

export interface DesiredState {
  services: Service[];
  routes: Route[];
  destinationPolicies: DestinationPolicy[];
  filterBindings: FilterBinding[];
  /** Filter catalog names; when absent, bindings' filters are not checked. */
  filters?: string[];
  peerAuthentications?: PeerAuthentication[];
  authorizationPolicies?: AuthorizationPolicy[];
}

/** A reference error, located by the object that holds the dangling reference. */
export interface ReferenceError extends FieldError {
  kind: string;
  namespace: string;
  name: string;
}

/** Resolves `name` or `name.namespace` relative to the referring object's namespace. */
export function resolveServiceRef(ref: string, fromNamespace: string): { name: string; namespace: string } {
  const dot = ref.indexOf('.');
  return dot < 0 ? { name: ref, namespace: fromNamespace } : { name: ref.slice(0, dot), namespace: ref.slice(dot + 1) };
}

export function checkReferences(state: DesiredState): ReferenceError[] {
  const services = new Map(state.services.map((s) => [`${s.namespace}/${s.name}`, s]));
  const subsets = new Map<string, Set<string>>();
  for (const p of state.destinationPolicies) {
    const target = resolveServiceRef(p.service, p.namespace);
    const key = `${target.namespace}/${target.name}`;
    const names = subsets.get(key) ?? new Set<string>();
    for (const s of p.subsets ?? []) names.add(s.name);
    subsets.set(key, names);
  }
  const errors: ReferenceError[] = [];

  const serviceAt = (ref: string, from: { kind: string; namespace: string; name: string }, path: string): Service | undefined => {
    const target = resolveServiceRef(ref, from.namespace);
    const found = services.get(`${target.namespace}/${target.name}`);
    if (!found) errors.push({ ...from, path, message: `unknown service ${target.namespace}/${target.name}` });
    return found;
  };
  const destinationAt = (d: { service: string; subset?: string; port?: number }, from: { kind: string; namespace: string; name: string }, path: string) => {
    const svc = serviceAt(d.service, from, `${path}.service`);
    if (!svc) return;
    const key = `${svc.namespace}/${svc.name}`;
    if (d.subset !== undefined && !subsets.get(key)?.has(d.subset)) {
      errors.push({ ...from, path: `${path}.subset`, message: `unknown subset ${d.subset} of service ${key}: no DestinationPolicy for it defines that subset` });
    }
    const port = d.port === undefined ? undefined : svc.ports.find((p) => p.port === d.port);
    if (d.port !== undefined && !port) {
      errors.push({ ...from, path: `${path}.port`, message: `service ${key} has no port ${d.port}` });
    } else if (port?.protocol === 'tcp') {
      errors.push({ ...from, path: `${path}.port`, message: `port ${d.port} of service ${key} is a tcp port: HTTP rules cannot send requests to it` });
    } else if (d.port === undefined && !svc.ports.some((p) => p.protocol !== 'tcp')) {
      errors.push({ ...from, path: `${path}.service`, message: `service ${key} has only tcp ports: HTTP rules cannot send requests to it` });
    }
  };

  for (const s of state.services) {
    const from = { kind: 'Service', namespace: s.namespace, name: s.name };
    (s.dependsOn ?? []).forEach((ref, i) => serviceAt(ref, from, `dependsOn[${i}]`));
  }
  for (const r of state.routes) {
    const from = { kind: 'Route', namespace: r.namespace, name: r.name };
    const host = serviceAt(r.service, from, 'service');
    // HTTP rules have nothing to attach to on a tcp-only service: translation
    // refuses them, and with them every snapshot of every caller.
    if (host && !host.ports.some((p) => p.protocol !== 'tcp')) {
      errors.push({ ...from, path: 'service', message: `service ${host.namespace}/${host.name} has only tcp ports, so HTTP routes cannot apply to it` });
    }
    r.rules.forEach((rule, i) => {
      rule.destinations.forEach((d, j) => destinationAt(d, from, `rules[${i}].destinations[${j}]`));
      if (rule.mirror) destinationAt(rule.mirror, from, `rules[${i}].mirror`);
    });
  }
  for (const p of state.destinationPolicies) {
    const from = { kind: 'DestinationPolicy', namespace: p.namespace, name: p.name };
    const target = serviceAt(p.service, from, 'service');
    // Settings only HTTP clusters and routes carry: on a tcp-only service
    // translation skips them, so they were accepted and silently did nothing.
    if (target && !target.ports.some((port) => port.protocol !== 'tcp')) {
      const httpOnly: [keyof DestinationPolicy, string][] = [['healthCheck', 'an HTTP health check'], ['idleTimeoutMs', 'an HTTP connection-pool setting'], ['loadBalancer', 'ring hashing keys on an HTTP header or cookie']];
      for (const [field, what] of httpOnly) {
        if (p[field] === undefined || (field === 'loadBalancer' && p.loadBalancer?.policy !== 'ring_hash')) continue;
        const at = field === 'loadBalancer' ? 'loadBalancer.policy' : field;
        errors.push({ ...from, path: at, message: `is ${what}, and service ${target.namespace}/${target.name} has only tcp ports: it would have no effect` });
      }
    }
  }
  for (const p of state.peerAuthentications ?? []) {
    if (p.service !== undefined) serviceAt(p.service, { kind: 'PeerAuthentication', namespace: p.namespace, name: p.name }, 'service');
  }
  for (const p of state.authorizationPolicies ?? []) {
    const from = { kind: 'AuthorizationPolicy', namespace: p.namespace, name: p.name };
    const governed = serviceAt(p.service, from, 'service');
    // Policies are enforced by the HTTP RBAC filter of the inbound listener; a
    // tcp-only service's inbound is a tcp_proxy, so the policy was stored and
    // silently not enforced (an ALLOW let every caller in).
    if (governed && !governed.ports.some((port) => port.protocol !== 'tcp')) {
      errors.push({ ...from, path: 'service', message: `service ${governed.namespace}/${governed.name} has only tcp ports; authorization policies are enforced on HTTP traffic only, so this one would not be` });
    }
  }
  const filters = state.filters ? new Set(state.filters) : undefined;
  for (const b of state.filterBindings) {
    const from = { kind: 'FilterBinding', namespace: b.namespace, name: b.name };
    const bound = serviceAt(b.service, from, 'service');
    // A tcp-only service's inbound side is a tcp_proxy: no HTTP filter chain
    // to run the filter in, so translation refuses the binding (and with it
    // the service's proxies' every later snapshot).
    if (bound && b.direction === 'inbound' && !bound.ports.some((p) => p.protocol !== 'tcp')) {
      errors.push({ ...from, path: 'direction', message: `service ${bound.namespace}/${bound.name} has only tcp ports, so inbound HTTP filters cannot apply to it` });
    }
    if (filters && !filters.has(b.filter)) {
      errors.push({ ...from, path: 'filter', message: `unknown filter ${b.filter}; the catalog has: ${[...filters].sort().join(', ') || 'none'}` });
    }
  }
  return errors;
}
