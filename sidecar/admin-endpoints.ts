// /config_dump?include_eds's EndpointsConfigDump as Envoy writes it
// (ConfigDumpHandler::dumpEndpointConfigs): not the EDS resources as
// received but one ClusterLoadAssignment per cluster, STATIC ones too,
// rebuilt from the hosts the cluster has now: by priority and locality, each
// host with its weight and the health Envoy's host reports (coarseHealth:
// UNHEALTHY while it fails active health checks, is ejected by outlier
// detection, or EDS said UNHEALTHY, TIMEOUT or DRAINING; DEGRADED when a
// check or EDS says so), and the policy's overprovisioning_factor. What an
// operator reads to see which hosts a cluster may send to.

import type { Cluster, Host } from './clusters.ts';
import type { ClusterManager } from './clusters.ts';
import { TYPE_URLS } from './fidelity.ts';

type Json = Record<string, unknown>;

/** Envoy's Host::coarseHealth, as an EDS HealthStatus. */
export function coarseHealth(c: Cluster, h: Host): 'HEALTHY' | 'UNHEALTHY' | 'DEGRADED' {
  if (!h.activeHealthy || c.isEjected(h) || h.edsHealth === 'UNHEALTHY' || h.edsHealth === 'TIMEOUT' || h.edsHealth === 'DRAINING') return 'UNHEALTHY';
  if (h.activeDegraded || h.edsHealth === 'DEGRADED') return 'DEGRADED';
  return 'HEALTHY';
}

/** The name Envoy dumps a cluster's endpoints under: its EDS service_name, else its own name. */
export function endpointsName(c: Cluster): string {
  return c.config.edsServiceName || c.name;
}

/** One cluster's hosts as a ClusterLoadAssignment (with its @type), grouped by priority, then locality in the order hosts came. */
export function loadAssignment(c: Cluster): Json {
  const groups: { priority: number; zone: string; hosts: Host[] }[] = [];
  for (const h of [...c.hosts].sort((a, b) => a.priority - b.priority)) {
    const zone = h.zone ?? '';
    let g = groups.find((x) => x.priority === h.priority && x.zone === zone);
    if (!g) groups.push((g = { priority: h.priority, zone, hosts: [] }));
    g.hosts.push(h);
  }
  return {
    '@type': TYPE_URLS.endpoint,
    cluster_name: endpointsName(c),
    endpoints: groups.map((g) => ({
      locality: g.zone ? { zone: g.zone } : {},
      lb_endpoints: g.hosts.map((h) => ({
        endpoint: { address: { socket_address: { address: h.address, port_value: h.port } }, ...(h.hostname ? { hostname: h.hostname } : {}) },
        health_status: coarseHealth(c, h),
        load_balancing_weight: h.weight,
      })),
      ...(g.priority ? { priority: g.priority } : {}),
    })),
    policy: { overprovisioning_factor: c.endpointPolicy.overprovisioningFactor },
  };
}

/**
 * Envoy's EndpointsConfigDump: every cluster's assignment under dynamic_endpoint_configs (all the sidecar's clusters
 * come from CDS: Envoy's added_via_api). `eds(name)` is what the sidecar knows of the EDS resource of that name: its
 * version_info and last_updated when it holds one, and the error_state and client_status of a refused update.
 */
export function endpointsConfigDump(cm: ClusterManager, eds: (name: string) => Json): Json {
  return {
    '@type': 'type.googleapis.com/envoy.admin.v3.EndpointsConfigDump',
    // As Envoy's dumpEndpointConfigs: the active clusters (one still warming, at start too, is left out).
    dynamic_endpoint_configs: [...cm.active()].map((c) => {
      const { version_info, last_updated, ...failed } = c.config.type === 'EDS' ? eds(endpointsName(c)) : {};
      return { ...(version_info === undefined ? {} : { version_info }), endpoint_config: loadAssignment(c), ...(last_updated === undefined ? {} : { last_updated }), ...failed };
    }),
  };
}
