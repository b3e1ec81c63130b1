// translateProxy: runs every stage for one proxy and collects all errors.
// Reads services, routes, policies, bindings and modules; never instances.

import type { MeshModel, ProxyRef } from '../model/types.ts';
import './features/index.ts';
import { compare, createContext } from './context.ts';
import type { EnvoyResource, ProxyResources, TranslateError, TranslateOptions } from './index.ts';
import { inboundCluster, outboundClustersFor } from './clusters.ts';
import { inboundListener, outboundListener } from './listeners.ts';
import { notFoundVirtualHost, virtualHostsFor } from './route-config.ts';
import { apiListeners } from './proxyless-grpc.ts';
import { httpFilterFeatures } from './registry.ts';
import { INBOUND_LISTENER, OUTBOUND_ROUTE_CONFIG } from './names.ts';
import type { Json } from './envoy-json.ts';

function sorted(resources: EnvoyResource[]): EnvoyResource[] {
  return resources.sort((a, b) => compare(a.name, b.name));
}

/** A rule is built once per port and per api_listener name; its error is reported once. */
function uniqueErrors(errors: TranslateError[]): TranslateError[] {
  const seen = new Set<string>();
  return errors.filter((e) => {
    const key = `${e.resource ?? ''}\n${e.path}\n${e.message}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

export function translateProxyResources(model: MeshModel, proxy: ProxyRef, options: TranslateOptions): ProxyResources {
  const ctx = createContext(model, proxy, options);
  const listeners: EnvoyResource[] = [];
  const routes: EnvoyResource[] = [];
  const clusters: EnvoyResource[] = [];

  if (proxy.kind === 'sidecar') {
    if (ctx.self) {
      const port = ctx.self.ports.find((p) => p.port === proxy.appPort) ?? ctx.self.ports[0];
      listeners.push(inboundListener(ctx.self, ctx));
      if (port) clusters.push(inboundCluster(ctx.self, port, ctx));
    } else {
      ctx.errors.push({
        resource: INBOUND_LISTENER,
        path: 'proxy.service',
        message: `the proxy's service ${proxy.service}.${proxy.namespace} is not registered, so it has no inbound listener`,
      });
    }
    const usedDomains = new Set<string>();
    const virtualHosts: Json[] = ctx.reachable.flatMap((service) => virtualHostsFor(service, ctx, false, usedDomains));
    virtualHosts.push(notFoundVirtualHost(ctx.self?.dependsOn));
    const routeConfig: Json = { name: OUTBOUND_ROUTE_CONFIG, virtual_hosts: virtualHosts };
    routes.push({ name: OUTBOUND_ROUTE_CONFIG, value: routeConfig });
    listeners.push(outboundListener(routeConfig, ctx));
  } else {
    listeners.push(...apiListeners(ctx));
  }

  // Clusters for every reachable service and for anything a route sends or
  // mirrors to (which may lie outside dependsOn: the operator's route says so).
  const hosts = new Set(ctx.reachable.map((s) => `${s.name}.${s.namespace}`));
  for (const host of ctx.referencedHosts) hosts.add(host);
  const outbound = [...hosts].sort(compare).flatMap((host) => {
    const service = ctx.serviceByHost.get(host);
    return service ? outboundClustersFor(service, ctx) : [];
  });
  clusters.push(...outbound);

  const extensionConfigs = httpFilterFeatures.flatMap((f) => f.feature.extensionConfigs?.(ctx) ?? []);

  return {
    listeners: sorted(listeners),
    routes: sorted(routes),
    clusters: sorted(clusters),
    extensionConfigs: sorted(extensionConfigs),
    endpointNames: outbound.map((c) => c.name).sort(compare),
    errors: uniqueErrors(ctx.errors),
  };
}
