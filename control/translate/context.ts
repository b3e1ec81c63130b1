// The per-proxy view the features read: the model indexed by name, the
// services this proxy may reach, and the error list every stage appends to
// (translation collects all errors rather than stopping at the first).

import type {
  DestinationPolicy, FilterBinding, FilterModule, MeshModel, ProxyRef, Route, Service, ServicePort, Subset,
} from '../model/types.ts';
import type { TranslateError, TranslateOptions } from './index.ts';
import { serviceHost } from './names.ts';

export interface TranslationContext {
  model: MeshModel;
  proxy: ProxyRef;
  options: TranslateOptions;
  errors: TranslateError[];
  /** The proxy's own service, when registered. */
  self?: Service;
  /** Services this proxy may call, sorted by host. */
  reachable: Service[];
  serviceByHost: Map<string, Service>;
  policyByHost: Map<string, DestinationPolicy>;
  routesByHost: Map<string, Route[]>;
  modulesByName: Map<string, FilterModule>;
  /** Hosts that routes send or mirror to; they get clusters even outside `reachable`. */
  referencedHosts: Set<string>;
}

export function byHost(service: Pick<Service, 'name' | 'namespace'>): string {
  return serviceHost(service.name, service.namespace);
}

/** "orders" in the referrer's namespace, or "orders.shop" across namespaces. */
export function resolveServiceRef(ref: string, fromNamespace: string): string {
  return ref.includes('.') ? ref : serviceHost(ref, fromNamespace);
}

export function routeLabel(route: Route): string {
  return `routes[${route.namespace}/${route.name}]`;
}

export function policyOf(ctx: TranslationContext, service: Service): DestinationPolicy | undefined {
  return ctx.policyByHost.get(byHost(service));
}

export function subsetOf(ctx: TranslationContext, service: Service, name: string): Subset | undefined {
  return policyOf(ctx, service)?.subsets?.find((s) => s.name === name);
}

export function isHttpPort(port: ServicePort): boolean {
  return port.protocol !== 'tcp';
}

export function isHttp2Port(port: ServicePort): boolean {
  return port.protocol === 'http2' || port.protocol === 'grpc';
}

export function bindingsOf(ctx: TranslationContext, direction: FilterBinding['direction']): FilterBinding[] {
  const host = serviceHost(ctx.proxy.service, ctx.proxy.namespace);
  return ctx.model.filterBindings
    .filter((b) => b.direction === direction && resolveServiceRef(b.service, b.namespace) === host)
    .sort((a, b) => a.order - b.order || compare(a.name, b.name));
}

export function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * The effective policy per service. With several, each setting comes from
 * the first (by namespace/name) that sets it, so store order never matters,
 * and subsets are the union, as the model's reference check accepts a subset
 * from any of them.
 */
export function policiesByHost(model: Pick<MeshModel, 'destinationPolicies'>): Map<string, DestinationPolicy> {
  const policyByHost = new Map<string, DestinationPolicy>();
  for (const policy of [...model.destinationPolicies].sort((a, b) => compare(`${a.namespace}/${a.name}`, `${b.namespace}/${b.name}`))) {
    const host = resolveServiceRef(policy.service, policy.namespace);
    const seen = policyByHost.get(host);
    if (!seen) {
      policyByHost.set(host, policy);
      continue;
    }
    const defined = Object.fromEntries(Object.entries(seen).filter(([, v]) => v !== undefined));
    const extra = (policy.subsets ?? []).filter((s) => !seen.subsets?.some((t) => t.name === s.name));
    const subsets = [...(seen.subsets ?? []), ...extra];
    policyByHost.set(host, { ...policy, ...defined, ...(subsets.length > 0 ? { subsets } : {}) } as DestinationPolicy);
  }
  return policyByHost;
}

export function createContext(model: MeshModel, proxy: ProxyRef, options: TranslateOptions): TranslationContext {
  const serviceByHost = new Map<string, Service>();
  for (const service of model.services) serviceByHost.set(byHost(service), service);

  const policyByHost = policiesByHost(model);

  // Several Route objects for one service are concatenated in name order.
  const routesByHost = new Map<string, Route[]>();
  for (const route of [...model.routes].sort((a, b) => compare(`${a.namespace}/${a.name}`, `${b.namespace}/${b.name}`))) {
    const host = resolveServiceRef(route.service, route.namespace);
    const list = routesByHost.get(host) ?? [];
    list.push(route);
    routesByHost.set(host, list);
  }

  const modulesByName = new Map<string, FilterModule>();
  for (const module of model.filterModules) modulesByName.set(module.name, module);

  const self = serviceByHost.get(serviceHost(proxy.service, proxy.namespace));
  const errors: TranslateError[] = [];

  // Per-proxy scoping (Istio's Sidecar lesson): dependsOn, when set, is the
  // whole outbound world of this proxy. Entries not registered yet are skipped,
  // not errors, so a caller can be deployed before its upstream.
  let reachable: Service[];
  if (self?.dependsOn !== undefined) {
    const hosts = new Set(self.dependsOn.map((ref) => resolveServiceRef(ref, self.namespace)));
    reachable = [...hosts].flatMap((host) => serviceByHost.get(host) ?? []);
  } else {
    reachable = [...model.services];
  }
  reachable.sort((a, b) => compare(byHost(a), byHost(b)));

  return {
    model, proxy, options, errors, self, reachable, serviceByHost, policyByHost, routesByHost, modulesByName,
    referencedHosts: new Set(),
  };
}
