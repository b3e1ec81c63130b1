// Virtual hosts and routes for calls to a service. Each Route rule becomes
// one Envoy route per match (matches of a rule are alternatives), built by the
// registered match and action features; a final default route sends anything
// unmatched to all instances.

import type { HttpRouteRule, Route, RouteMatch, Service, ServicePort } from '../model/types.ts';
import { byHost, isHttpPort, routeLabel, type TranslationContext } from './context.ts';
import type { Json } from './envoy-json.ts';
import { routeActionFeatures, routeMatchFeatures, type RouteTarget } from './registry.ts';

/**
 * Authorities a caller may use for `service` on `port`. The port-less forms
 * go to the service's first HTTP port only, and the bare name only to
 * services in the caller's namespace (as Kubernetes DNS search paths do).
 */
export function domainsFor(service: Service, port: ServicePort, primary: boolean, callerNamespace: string): string[] {
  const qualified = `${service.name}.${service.namespace}`;
  const hosts = [qualified, `${qualified}.svc`, `${qualified}.svc.cluster.local`];
  if (service.namespace === callerNamespace) hosts.unshift(service.name);
  const suffix = `:${port.port}`;
  const domains: string[] = [];
  for (const host of hosts) {
    if (primary) domains.push(host);
    domains.push(host + suffix);
  }
  return domains;
}

function buildMatch(match: RouteMatch | undefined, path: string, ctx: TranslationContext): Json {
  const envoyMatch: Json = { prefix: '/' };
  if (match) for (const feature of routeMatchFeatures) feature.apply(envoyMatch, match, path, ctx);
  return envoyMatch;
}

function buildRoute(name: string, match: Json, target: RouteTarget, ctx: TranslationContext): Json | undefined {
  const envoyRoute: Json = { name, match, route: {} };
  const errorsBefore = ctx.errors.length;
  for (const feature of routeActionFeatures) feature.apply(envoyRoute, target, ctx);
  const action = envoyRoute.route as Json;
  // A rule whose destinations could not be resolved has no cluster; the
  // errors say why, and the route is left out rather than half-built.
  if (ctx.errors.length > errorsBefore && action.cluster === undefined && action.weighted_clusters === undefined) return undefined;
  return envoyRoute;
}

export function routesFor(service: Service, port: ServicePort, proxyless: boolean, ctx: TranslationContext): Json[] {
  const out: Json[] = [];
  for (const route of ctx.routesByHost.get(byHost(service)) ?? []) {
    route.rules.forEach((rule, i) => {
      const path = `${routeLabel(route)}.rules[${i}]`;
      const target: RouteTarget = { route, rule, path, service, port, proxyless };
      const matches = rule.match?.length ? rule.match : [undefined];
      matches.forEach((match, j) => {
        const base = `${route.namespace}/${route.name}/${rule.name ?? i}`;
        const name = matches.length > 1 ? `${base}/${j}` : base;
        const built = buildRoute(name, buildMatch(match, `${path}.match[${j}]`, ctx), target, ctx);
        if (built) out.push(built);
      });
    });
  }
  // The default route runs the same action features with a synthetic rule,
  // so policy-driven route settings (ring hash) apply to it as well.
  const defaultRoute: Route = { name: 'default', namespace: service.namespace, service: service.name, rules: [] };
  const defaultRule: HttpRouteRule = { destinations: [{ service: service.name, port: port.port, weight: 1 }] };
  const built = buildRoute('default', { prefix: '/' }, {
    route: defaultRoute, rule: defaultRule, path: `services[${byHost(service)}]`, service, port, proxyless,
  }, ctx);
  if (built) out.push(built);
  return out;
}

/** One virtual host per HTTP port of `service`. */
export function virtualHostsFor(service: Service, ctx: TranslationContext, proxyless: boolean, usedDomains: Set<string>): Json[] {
  const httpPorts = service.ports.filter(isHttpPort);
  if (httpPorts.length === 0) {
    for (const route of ctx.routesByHost.get(byHost(service)) ?? []) {
      ctx.errors.push({
        resource: `route ${route.namespace}/${route.name}`,
        path: `${routeLabel(route)}.service`,
        message: `service ${byHost(service)} has only tcp ports, so HTTP routes cannot apply to it`,
      });
    }
  }
  return httpPorts.map((port, index) => {
    // Envoy rejects a route configuration in which two virtual hosts share a
    // domain; the first (sorted) service keeps it.
    const domains = domainsFor(service, port, index === 0, ctx.proxy.namespace).filter((d) => !usedDomains.has(d));
    for (const d of domains) usedDomains.add(d);
    return { name: `${byHost(service)}:${port.port}`, domains, routes: routesFor(service, port, proxyless, ctx) };
  }).filter((vh) => vh.domains.length > 0);
}

/**
 * Unknown authorities get a 404 from the proxy instead of a hang or a random upstream. A proxy whose service
 * lists what it calls (dependsOn) says so: a call to a real service left off that list got the same words as a
 * call to no service at all, and nothing named the cause.
 */
export function notFoundVirtualHost(dependsOn?: string[]): Json {
  const text = dependsOn === undefined
    ? 'weft: no service matches this authority\n'
    : `weft: no service this proxy may call matches this authority (its service's dependsOn: ${dependsOn.length > 0 ? dependsOn.join(', ') : 'none'})\n`;
  return {
    name: 'not_found',
    domains: ['*'],
    routes: [{
      name: 'not_found',
      match: { prefix: '/' },
      direct_response: { status: 404, body: { inline_string: text } },
    }],
  };
}
