// ClusterLoadAssignment (EDS) -> ClusterLoadAssignmentConfig.

import type { ClusterLoadAssignmentConfig, EndpointConfig, EndpointHealth } from '../config.ts';
import { socketAddress } from './common.ts';
import { Fields } from './fields.ts';
import type { FieldError } from './fields.ts';

const HEALTH: readonly EndpointHealth[] = ['UNKNOWN', 'HEALTHY', 'UNHEALTHY', 'DRAINING', 'TIMEOUT', 'DEGRADED'];

export function decodeClusterLoadAssignment(value: unknown, errors: FieldError[]): ClusterLoadAssignmentConfig | undefined {
  const f = Fields.of(value, '', errors);
  if (!f) return undefined;
  const clusterName = f.str('cluster_name') ?? '';
  if (!clusterName) f.fail('cluster_name', 'required');
  const endpoints = decodeLocalityEndpoints(f);
  const policy = decodeEndpointPolicy(f);
  f.done();
  return { clusterName, endpoints, policy };
}

/** The `policy` field of a ClusterLoadAssignment (also a STATIC cluster's load_assignment). */
export function decodeEndpointPolicy(f: Fields): ClusterLoadAssignmentConfig['policy'] {
  const p = f.obj('policy');
  const policy = { overprovisioningFactor: 140, weightedPriorityHealth: false };
  if (p) {
    // With one priority, the factor decides when degraded hosts take traffic (Cluster.hostSets).
    const factor = p.num('overprovisioning_factor');
    if (factor !== undefined) {
      if (!Number.isInteger(factor) || factor < 1) p.fail('overprovisioning_factor', 'must be a whole number above 0 (percent)');
      else policy.overprovisioningFactor = factor;
    }
    policy.weightedPriorityHealth = p.bool('weighted_priority_health') ?? false;
    p.ignore('endpoint_stale_after');
    p.done();
  }
  return policy;
}

/** The `endpoints` field of a ClusterLoadAssignment (also a STATIC cluster's load_assignment). */
export function decodeLocalityEndpoints(f: Fields): EndpointConfig[] {
  const out: EndpointConfig[] = [];
  for (const le of f.list('endpoints')) {
    const loc = le.obj('locality');
    const zone = loc?.str('zone') || undefined;
    loc?.ignore('region', 'sub_zone');
    loc?.done();
    const priority = le.num('priority') ?? 0;
    if (priority !== 0) le.fail('priority', 'the weft sidecar supports priority 0 only');
    le.num('load_balancing_weight');
    for (const lb of le.list('lb_endpoints')) {
      const ep = lb.obj('endpoint');
      const health = lb.enumOf('health_status', HEALTH, HEALTH) ?? 'UNKNOWN';
      const weight = lb.num('load_balancing_weight') ?? 1;
      const hashKey = envoyLbHashKey(lb.raw('metadata'));
      lb.done();
      if (!ep) {
        lb.fail('endpoint', 'required');
        continue;
      }
      const address = socketAddress(ep.obj('address'));
      const hostname = ep.str('hostname') || undefined;
      const hc = ep.obj('health_check_config');
      if (hc) {
        hc.ignore('port_value', 'hostname');
        if (hc.has('port_value')) hc.fail('port_value', 'a separate health check port is not supported');
        hc.done();
      }
      ep.done();
      if (address) out.push({ ...address, health, weight, priority, zone, ...(hostname ? { hostname } : {}), ...(hashKey ? { hashKey } : {}) });
    }
    le.done();
  }
  return out;
}

/** metadata.filter_metadata["envoy.lb"].hash_key when it is a non-empty string (Envoy ignores any other kind); the rest of the metadata changes nothing here. */
function envoyLbHashKey(metadata: unknown): string | undefined {
  if (typeof metadata !== 'object' || metadata === null) return undefined;
  const lb = (metadata as { filter_metadata?: Record<string, unknown> }).filter_metadata?.['envoy.lb'];
  const key = typeof lb === 'object' && lb !== null ? (lb as Record<string, unknown>).hash_key : undefined;
  return typeof key === 'string' && key !== '' ? key : undefined;
}
