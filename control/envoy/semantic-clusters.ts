// Cluster, endpoint and address refusals Envoy makes at config load, beyond PGV.
import { isIP } from 'node:net';
import { indexPath, joinPath } from './errors.ts';
import type { FieldError } from './errors.ts';

type Json = Record<string, unknown>;

const asObject = (v: unknown): Json | undefined => (typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Json) : undefined);
const asArray = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);

// Enums may be written by name or number; the walker already checked which.
const CLUSTER_TYPES = ['STATIC', 'STRICT_DNS', 'LOGICAL_DNS', 'EDS', 'ORIGINAL_DST'];
const LB_POLICIES: Record<number, string> = { 0: 'ROUND_ROBIN', 1: 'LEAST_REQUEST', 2: 'RING_HASH', 3: 'RANDOM', 5: 'MAGLEV', 6: 'CLUSTER_PROVIDED', 7: 'LOAD_BALANCING_POLICY_CONFIG' };
const enumName = (v: unknown, names: Record<number, string> | string[], fallback: string): string =>
  typeof v === 'string' ? v : typeof v === 'number' ? ((names as Record<number, string>)[v] ?? String(v)) : fallback;

/**
 * A socket address that Envoy connects to or binds without DNS must be an IP
 * ("malformed IP address"): listener addresses, STATIC cluster hosts and EDS
 * endpoints, unless a custom resolver_name is set.
 */
function requireIp(address: unknown, path: string, what: string, errors: FieldError[]): void {
  const socket = asObject(asObject(address)?.socket_address);
  if (!socket || (typeof socket.resolver_name === 'string' && socket.resolver_name !== '')) return;
  const host = socket.address;
  if (typeof host === 'string' && host !== '' && isIP(host) === 0) {
    errors.push({ path: joinPath(path, 'socket_address.address'), message: `"${host}" is not an IP address; ${what} addresses are not resolved by DNS (use a STRICT_DNS or LOGICAL_DNS cluster for hostnames)` });
  }
}

function eachEndpoint(assignment: unknown, path: string, visit: (address: unknown, path: string) => void): void {
  asArray(asObject(assignment)?.endpoints).forEach((locality, i) => {
    const localityPath = indexPath(joinPath(path, 'endpoints'), i);
    asArray(asObject(locality)?.lb_endpoints).forEach((lb, j) => {
      const endpointPath = joinPath(indexPath(joinPath(localityPath, 'lb_endpoints'), j), 'endpoint');
      visit(asObject(asObject(lb)?.endpoint)?.address, joinPath(endpointPath, 'address'));
    });
  });
}

function countEndpoints(assignment: unknown): { localities: number; endpoints: number } {
  const localities = asArray(asObject(assignment)?.endpoints);
  return { localities: localities.length, endpoints: localities.reduce<number>((n, l) => n + asArray(asObject(l)?.lb_endpoints).length, 0) };
}

/** The rules Envoy's cluster factories apply per discovery type. */
export function clusterTypeRules(json: Json, path: string, errors: FieldError[]): void {
  if (json.cluster_type != null) return; // a custom cluster type has its own rules
  const type = enumName(json.type, CLUSTER_TYPES, 'STATIC');
  const lbPolicy = enumName(json.lb_policy, LB_POLICIES, 'ROUND_ROBIN');
  const at = (field: string): string => joinPath(path, field);
  const name = JSON.stringify(json.name ?? '');
  if (type === 'EDS' && json.eds_cluster_config == null) {
    errors.push({ path: at('eds_cluster_config'), message: `EDS cluster ${name} needs eds_cluster_config (Envoy: "cannot create an EDS cluster without an EDS config")` });
  }
  if (type === 'STATIC') eachEndpoint(json.load_assignment, at('load_assignment'), (a, p) => requireIp(a, p, 'STATIC cluster', errors));
  if (type === 'LOGICAL_DNS' && json.load_assignment != null) {
    const { localities, endpoints } = countEndpoints(json.load_assignment);
    if (localities !== 1 || endpoints !== 1) {
      errors.push({ path: at('load_assignment'), message: 'LOGICAL_DNS clusters must have a single locality_lb_endpoint and a single lb_endpoint' });
    }
  }
  if (type === 'ORIGINAL_DST') {
    if (lbPolicy !== 'CLUSTER_PROVIDED') errors.push({ path: at('lb_policy'), message: `only CLUSTER_PROVIDED is allowed with cluster type ORIGINAL_DST (got ${lbPolicy})` });
    if (json.load_assignment != null) errors.push({ path: at('load_assignment'), message: 'ORIGINAL_DST clusters must have no load assignment configured' });
  } else if (lbPolicy === 'CLUSTER_PROVIDED') {
    errors.push({ path: at('lb_policy'), message: `CLUSTER_PROVIDED is only valid with cluster type ORIGINAL_DST (got ${type})` });
  }
}

/** An EDS resource (a top-level ClusterLoadAssignment) carries IP endpoints only. */
export function edsEndpointsAreIps(json: Json, path: string, errors: FieldError[]): void {
  // Inline load_assignment of a DNS cluster may name hosts; only the resource itself is EDS.
  if (path !== '') return;
  eachEndpoint(json, path, (a, p) => requireIp(a, p, 'EDS endpoint', errors));
}

export function listenerAddressIsIp(json: Json, path: string, errors: FieldError[]): void {
  requireIp(json.address, joinPath(path, 'address'), 'listener', errors);
}
