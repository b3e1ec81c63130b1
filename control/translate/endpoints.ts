// ClusterLoadAssignments from live instances: one per EDS cluster name,
// grouped by zone into localities, with each instance's health, and filtered
// by the subset's labels for subset clusters.

import type { DestinationPolicy, Instance, MeshModel, Subset } from '../model/types.ts';
import { compare, policiesByHost, resolveServiceRef } from './context.ts';
import { socketAddress, type Json } from './envoy-json.ts';
import type { EnvoyResource, TranslateError } from './index.ts';
import { parseClusterName, serviceHost } from './names.ts';

const HEALTH_STATUS = { healthy: 'HEALTHY', unhealthy: 'UNHEALTHY', draining: 'DRAINING' } as const;

function lbEndpoint(instance: Instance): Json {
  return { endpoint: { address: socketAddress(instance.address, instance.port) }, health_status: HEALTH_STATUS[instance.health] };
}

function matchesLabels(instance: Instance, labels: Record<string, string>): boolean {
  return Object.entries(labels).every(([k, v]) => instance.labels[k] === v);
}

/**
 * Instances of a service host. A whole-mesh request (every cluster, at
 * startup) indexes the instances once; a one-cluster update (the common
 * case: one instance changed) just scans them.
 */
function instanceLookup(instances: Instance[], clusterCount: number): (service: string, namespace: string) => Instance[] {
  if (clusterCount <= 8) return (service, namespace) => instances.filter((i) => i.service === service && i.namespace === namespace);
  const byHost = new Map<string, Instance[]>();
  for (const instance of instances) {
    const host = serviceHost(instance.service, instance.namespace);
    const list = byHost.get(host);
    if (list) list.push(instance);
    else byHost.set(host, [instance]);
  }
  return (service, namespace) => byHost.get(serviceHost(service, namespace)) ?? [];
}

/**
 * Subsets declared for a service host. Same trade-off: a one-cluster update
 * must not sort every policy in the mesh; a whole-mesh request indexes once.
 */
function subsetLookup(policies: DestinationPolicy[], clusterCount: number): (host: string) => Subset[] {
  if (clusterCount > 8) {
    const all = policiesByHost({ destinationPolicies: policies });
    return (host) => all.get(host)?.subsets ?? [];
  }
  return (host) => {
    const own = policies.filter((p) => resolveServiceRef(p.service, p.namespace) === host);
    return own.length === 0 ? [] : policiesByHost({ destinationPolicies: own }).get(host)?.subsets ?? [];
  };
}

/**
 * A cluster name whose service or subset no longer exists gets an empty
 * assignment, not an error: clusters outlive their services briefly
 * (make-before-break), and an empty CLA is exactly "no endpoints".
 */
export function translateClusterLoadAssignments(
  model: MeshModel,
  clusterNames: Iterable<string>,
): { endpoints: EnvoyResource[]; errors: TranslateError[] } {
  const names = [...new Set(clusterNames)].sort(compare);
  const instancesOf = instanceLookup(model.instances, names.length);
  const subsetsOf = subsetLookup(model.destinationPolicies, names.length);
  const errors: TranslateError[] = [];
  const endpoints: EnvoyResource[] = [];
  for (const name of names) {
    const parsed = parseClusterName(name);
    if (!parsed || parsed.direction !== 'outbound') {
      errors.push({ resource: name, path: `endpoints[${name}]`, message: 'not an outbound|<port>|<subset>|<service>.<namespace> cluster name' });
      continue;
    }
    const host = serviceHost(parsed.service, parsed.namespace);
    let instances = instancesOf(parsed.service, parsed.namespace);
    if (parsed.subset !== undefined) {
      const subset = subsetsOf(host).find((s) => s.name === parsed.subset);
      instances = subset ? instances.filter((i) => matchesLabels(i, subset.labels)) : [];
    }
    const byZone = new Map<string, Instance[]>();
    for (const instance of instances) {
      const zone = instance.zone ?? '';
      const members = byZone.get(zone);
      if (members) members.push(instance);
      else byZone.set(zone, [instance]);
    }
    const localities = [...byZone.keys()].sort(compare).map((zone) => {
      const members = byZone.get(zone)!.sort((a, b) =>
        compare(a.address, b.address) || a.port - b.port || compare(a.id, b.id));
      // gRPC's xDS clients skip a locality without load_balancing_weight
      // (Envoy ignores it unless locality-weighted LB is on). Weighting by
      // endpoint count keeps the per-endpoint share even across zones.
      // gRPC also NACKs a CLA whose locality is unset: zone-less instances
      // get the empty locality.
      return {
        locality: zone === '' ? {} : { zone },
        lb_endpoints: members.map(lbEndpoint),
        load_balancing_weight: members.length,
      };
    });
    endpoints.push({ name, value: { cluster_name: name, endpoints: localities } });
  }
  return { endpoints, errors };
}
