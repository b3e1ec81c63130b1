// The sidecar's two listeners. inbound: the mesh's traffic for this service,
// handed to the local app. outbound: the local app's calls to other services,
// routed by authority through RDS "outbound".

import type { Service } from '../model/types.ts';
import type { TranslationContext } from './context.ts';
import { socketAddress, TYPE, adsConfigSource, type Json } from './envoy-json.ts';
import type { EnvoyResource } from './index.ts';
import { httpConnectionManager } from './hcm.ts';
import { applyInboundMtls } from './features/listener-mtls.ts';
import { inboundClusterName, INBOUND_LISTENER, INBOUND_ROUTE_CONFIG, OUTBOUND_LISTENER, OUTBOUND_ROUTE_CONFIG } from './names.ts';

export function inboundListener(self: Service, ctx: TranslationContext): EnvoyResource {
  const { proxy } = ctx;
  const port = self.ports.find((p) => p.port === proxy.appPort) ?? self.ports[0];
  const cluster = inboundClusterName(self.name, self.namespace, proxy.appPort);
  let filter: Json;
  if (port?.protocol === 'tcp') {
    filter = {
      name: 'envoy.filters.network.tcp_proxy',
      typed_config: { '@type': TYPE.tcpProxy, stat_prefix: INBOUND_LISTENER, cluster },
    };
  } else {
    const routeConfig: Json = {
      name: INBOUND_ROUTE_CONFIG,
      virtual_hosts: [{
        name: INBOUND_ROUTE_CONFIG,
        domains: ['*'],
        // timeout 0s: the caller's sidecar enforces the route timeout; a
        // second, default 15s one here would cut long streams and gRPC calls.
        routes: [{ name: 'app', match: { prefix: '/' }, route: { cluster, timeout: '0s' } }],
      }],
    };
    filter = {
      name: 'envoy.filters.network.http_connection_manager',
      typed_config: httpConnectionManager(INBOUND_LISTENER, { route_config: routeConfig }, { kind: 'inbound', routeConfigs: [routeConfig] }, ctx),
    };
  }
  const value: Json = {
    name: INBOUND_LISTENER,
    address: socketAddress(proxy.bindAddress, proxy.inboundPort),
    traffic_direction: 'INBOUND',
    filter_chains: [{ filters: [filter] }],
  };
  applyInboundMtls(value, self, ctx);
  return { name: INBOUND_LISTENER, value };
}

export function outboundListener(outboundRouteConfig: Json, ctx: TranslationContext): EnvoyResource {
  const rds = { config_source: adsConfigSource(), route_config_name: OUTBOUND_ROUTE_CONFIG };
  const hcm = httpConnectionManager(OUTBOUND_LISTENER, { rds }, { kind: 'outbound', routeConfigs: [outboundRouteConfig] }, ctx);
  return {
    name: OUTBOUND_LISTENER,
    value: {
      name: OUTBOUND_LISTENER,
      // Only the local app may use the outbound side.
      address: socketAddress('127.0.0.1', ctx.proxy.outboundPort),
      traffic_direction: 'OUTBOUND',
      filter_chains: [{ filters: [{ name: 'envoy.filters.network.http_connection_manager', typed_config: hcm }] }],
    },
  };
}
