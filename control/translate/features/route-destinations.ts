// Where a rule sends traffic: one cluster, or weighted_clusters across
// subsets (canary 90/10, blue/green 100/0) and services. References to an
// unknown service, port or subset are errors naming the destination's path.

import type { Service, WeightedDestination } from '../../model/types.ts';
import { registerRouteActionFeature, type RouteTarget } from '../registry.ts';
import { byHost, isHttpPort, resolveServiceRef, subsetOf, type TranslationContext } from '../context.ts';
import { outboundClusterName } from '../names.ts';
import type { Json } from '../envoy-json.ts';

/**
 * The cluster for a destination-like reference (also used by mirroring), or
 * undefined after recording an error at `path`.
 */
export function resolveDestinationCluster(
  dest: Pick<WeightedDestination, 'service' | 'subset' | 'port'>,
  target: RouteTarget,
  path: string,
  ctx: TranslationContext,
): { cluster: string; service: Service } | undefined {
  const host = resolveServiceRef(dest.service, target.route.namespace);
  const service = ctx.serviceByHost.get(host);
  const resource = `route ${target.route.namespace}/${target.route.name}`;
  if (!service) {
    ctx.errors.push({ resource, path: `${path}.service`, message: `unknown service "${dest.service}" (looked up as ${host})` });
    return undefined;
  }
  // Same service as the virtual host: stay on the port the caller used.
  // Otherwise its first HTTP port: the first port may be a tcp one (a
  // database, a raw protocol), and an HTTP request sent there fails.
  const port = dest.port ?? (byHost(service) === byHost(target.service) ? target.port.port : service.ports.find(isHttpPort)?.port);
  if (port === undefined || !service.ports.some((p) => p.port === port)) {
    ctx.errors.push({ resource, path: `${path}.port`, message: port === undefined ? `service ${host} has no HTTP port` : `service ${host} has no port ${port}` });
    return undefined;
  }
  if (dest.subset !== undefined && !subsetOf(ctx, service, dest.subset)) {
    ctx.errors.push({
      resource,
      path: `${path}.subset`,
      message: `unknown subset "${dest.subset}" of service ${host}: no DestinationPolicy for it declares that subset`,
    });
    return undefined;
  }
  ctx.referencedHosts.add(host);
  return { cluster: outboundClusterName(service.name, service.namespace, port, dest.subset), service };
}

registerRouteActionFeature('destinations', (envoyRoute, target, ctx) => {
  const action = envoyRoute.route as Json;
  const resolved = target.rule.destinations.map((dest, k) => {
    const r = resolveDestinationCluster(dest, target, `${target.path}.destinations[${k}]`, ctx);
    return r && { name: r.cluster, weight: dest.weight };
  });
  if (resolved.some((r) => r === undefined) || resolved.length === 0) {
    if (resolved.length === 0) ctx.errors.push({ path: `${target.path}.destinations`, message: 'a rule needs at least one destination' });
    return;
  }
  const clusters = resolved as { name: string; weight: number }[];
  if (clusters.length === 1) {
    action.cluster = clusters[0]!.name;
    return;
  }
  if (clusters.every((c) => c.weight === 0)) {
    ctx.errors.push({ path: `${target.path}.destinations`, message: 'weights sum to 0: no destination would receive traffic' });
    return;
  }
  action.weighted_clusters = { clusters };
});
