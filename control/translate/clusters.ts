// Cluster skeletons. The outbound EDS cluster carries only what every cluster
// needs; connect timeout, circuit breakers, outlier detection, health checks,
// load balancing and protocol options come from features/cluster-*.ts.

import type { Service, ServicePort } from '../model/types.ts';
import { isHttp2Port, policyOf, type TranslationContext } from './context.ts';
import { adsConfigSource, socketAddress, type Json } from './envoy-json.ts';
import type { EnvoyResource } from './index.ts';
import { inboundClusterName, outboundClusterName } from './names.ts';
import { clusterFeatures, type ClusterTarget } from './registry.ts';
import { upstreamHttpOptions } from './features/upstream-http-options.ts';
import { DEFAULT_CONNECT_TIMEOUT } from './features/cluster-connect-timeout.ts';

function outboundCluster(target: ClusterTarget, ctx: TranslationContext): EnvoyResource {
  const name = outboundClusterName(target.service.name, target.service.namespace, target.port.port, target.subset?.name);
  const cluster: Json = {
    name,
    type: 'EDS',
    // service_name = cluster name: the EDS resource is keyed the same way, so
    // a subset cluster gets its own, label-filtered ClusterLoadAssignment.
    eds_cluster_config: { eds_config: adsConfigSource(), service_name: name },
  };
  for (const feature of clusterFeatures) feature.apply(cluster, target, ctx);
  return { name, value: cluster };
}

/** Every port of `service`, and every subset of its policy, as EDS clusters. */
export function outboundClustersFor(service: Service, ctx: TranslationContext): EnvoyResource[] {
  const policy = policyOf(ctx, service);
  const out: EnvoyResource[] = [];
  for (const port of service.ports) {
    out.push(outboundCluster({ service, port, policy }, ctx));
    for (const subset of policy?.subsets ?? []) out.push(outboundCluster({ service, port, subset, policy }, ctx));
  }
  return out;
}

/** The local app behind the inbound listener; STATIC, so no EDS round trip. */
export function inboundCluster(service: Service, port: ServicePort, ctx: TranslationContext): EnvoyResource {
  const { proxy } = ctx;
  const name = inboundClusterName(service.name, service.namespace, proxy.appPort);
  const cluster: Json = {
    name,
    type: 'STATIC',
    connect_timeout: DEFAULT_CONNECT_TIMEOUT,
    load_assignment: {
      cluster_name: name,
      endpoints: [{ lb_endpoints: [{ endpoint: { address: socketAddress(proxy.appAddress, proxy.appPort) } }] }],
    },
  };
  if (isHttp2Port(port)) upstreamHttpOptions(cluster, port);
  return { name, value: cluster };
}
