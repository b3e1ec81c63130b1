// Proxyless gRPC (grpc-js-xds and the other gRPC xDS clients): a channel to
// xds:///orders asks LDS for a Listener named "orders" whose api_listener is
// an HttpConnectionManager. We inline the route configuration (one virtual
// host, so no RDS round trip) and end http_filters with the router, which
// gRPC requires. gRPC NACKs direct_response routes, so there is no 404 host.
// Only proxyless proxies get these: Envoy installs an api_listener from its
// bootstrap only, never over LDS (listener.proto), so sidecars would gain
// nothing but a warning.

import type { Service } from '../model/types.ts';
import { byHost, compare, type TranslationContext } from './context.ts';
import type { EnvoyResource } from './index.ts';
import { httpConnectionManager } from './hcm.ts';
import { routesFor } from './route-config.ts';

/** Names a gRPC client may dial for this service's grpc ports. */
export function apiListenerNames(service: Service, callerNamespace: string): { name: string; port: number }[] {
  const grpcPorts = service.ports.filter((p) => p.protocol === 'grpc');
  const hosts = [...(service.namespace === callerNamespace ? [service.name] : []), byHost(service)];
  return grpcPorts.flatMap((port, index) =>
    hosts.flatMap((host) => [...(index === 0 ? [{ name: host, port: port.port }] : []), { name: `${host}:${port.port}`, port: port.port }]));
}

export function apiListeners(ctx: TranslationContext): EnvoyResource[] {
  const out: EnvoyResource[] = [];
  for (const service of ctx.reachable) {
    for (const { name, port: portNumber } of apiListenerNames(service, ctx.proxy.namespace)) {
      const port = service.ports.find((p) => p.port === portNumber)!;
      const routeConfig = {
        name,
        // One virtual host per listener: the listener name already chose the service.
        virtual_hosts: [{ name: `${byHost(service)}:${port.port}`, domains: ['*'], routes: routesFor(service, port, true, ctx) }],
      };
      const hcm = httpConnectionManager(name, { route_config: routeConfig }, { kind: 'proxyless', routeConfigs: [routeConfig] }, ctx);
      out.push({ name, value: { name, api_listener: { api_listener: hcm } } });
    }
  }
  return out.sort((a, b) => compare(a.name, b.name));
}
