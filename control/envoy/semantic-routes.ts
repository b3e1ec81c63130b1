// Route-side refusals Envoy makes at config load, beyond PGV.
import { indexPath, joinPath } from './errors.ts';
import type { FieldError } from './errors.ts';

/** "Only unique values for domains are permitted": domains compare lowercased across all virtual hosts. */
export function uniqueDomains(json: Record<string, unknown>, path: string, errors: FieldError[]): void {
  const vhosts = json.virtual_hosts;
  if (!Array.isArray(vhosts)) return;
  const owner = new Map<string, number>();
  vhosts.forEach((vh, i) => {
    const domains = (vh as { domains?: unknown } | null)?.domains;
    if (!Array.isArray(domains)) return;
    domains.forEach((d, j) => {
      if (typeof d !== 'string') return;
      const domain = d.toLowerCase();
      const first = owner.get(domain);
      if (first !== undefined) {
        const where = joinPath(indexPath(joinPath(path, 'virtual_hosts'), i), 'domains');
        errors.push({ path: indexPath(where, j), message: `domain "${domain}" is already used by virtual_hosts[${first}]; Envoy permits each domain once per route configuration` });
      } else owner.set(domain, i);
    });
  });
}

// Envoy's HeaderUtility::isModifiableHeader: pseudo-headers and Host stay as routed.
function modifiable(name: string): boolean {
  return !name.startsWith(':') && name.toLowerCase() !== 'host';
}

/** request/response_headers_to_add and _to_remove may not touch ":"-headers or Host. */
export function modifiableHeaders(json: Record<string, unknown>, path: string, errors: FieldError[]): void {
  for (const field of ['request_headers_to_add', 'response_headers_to_add']) {
    const options = json[field];
    if (!Array.isArray(options)) continue;
    options.forEach((option, i) => {
      const key = (option as { header?: { key?: unknown } } | null)?.header?.key;
      if (typeof key === 'string' && !modifiable(key)) {
        errors.push({ path: joinPath(indexPath(joinPath(path, field), i), 'header.key'), message: `":"-prefixed and host headers may not be modified (got "${key}")` });
      }
    });
  }
  for (const field of ['request_headers_to_remove', 'response_headers_to_remove']) {
    const names = json[field];
    if (!Array.isArray(names)) continue;
    names.forEach((name, i) => {
      if (typeof name === 'string' && !modifiable(name)) {
        errors.push({ path: indexPath(joinPath(path, field), i), message: `":"-prefixed and host headers may not be removed (got "${name}")` });
      }
    });
  }
}

const UINT32_MAX = 4294967295;

/** Weighted clusters: the weights must sum to more than 0, fit in uint32, and match total_weight when that is set. */
export function weightedClusterSum(json: Record<string, unknown>, path: string, errors: FieldError[]): void {
  const clusters = json.clusters;
  if (!Array.isArray(clusters) || clusters.length === 0) return;
  let sum = 0;
  for (const c of clusters) {
    const w = (c as { weight?: unknown } | null)?.weight;
    if (typeof w === 'number') sum += w;
  }
  const clustersPath = joinPath(path, 'clusters');
  if (sum === 0) errors.push({ path: clustersPath, message: 'the sum of the cluster weights must be greater than 0' });
  else if (sum > UINT32_MAX) errors.push({ path: clustersPath, message: `the sum of the cluster weights (${sum}) exceeds ${UINT32_MAX}` });
  const total = json.total_weight;
  if (typeof total === 'number' && total > 0 && total !== sum) {
    errors.push({ path: joinPath(path, 'total_weight'), message: `total_weight ${total} differs from the sum of the cluster weights (${sum})` });
  }
}
