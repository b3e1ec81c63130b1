// SPIFFE IDs of mesh workloads: spiffe://<trust-domain>/ns/<namespace>/sa/<service>
// (Istio's layout, so tooling that reads Istio identities reads ours).

export const DEFAULT_TRUST_DOMAIN = 'weft.local';

export interface WorkloadIdentity {
  trustDomain: string;
  namespace: string;
  service: string;
}

export function spiffeId(trustDomain: string, namespace: string, service: string): string {
  return `spiffe://${trustDomain}/ns/${namespace}/sa/${service}`;
}

const SPIFFE = /^spiffe:\/\/([^/]+)\/ns\/([^/]+)\/sa\/([^/]+)$/;

/** The parts of a workload SPIFFE ID, or undefined when it is not one. */
export function parseSpiffeId(id: string): WorkloadIdentity | undefined {
  const m = SPIFFE.exec(id);
  return m ? { trustDomain: m[1]!, namespace: m[2]!, service: m[3]! } : undefined;
}

/** A trust domain is a DNS-like name: lowercase letters, digits, '.', '-' and '_' (SPIFFE spec). */
export function trustDomainError(td: string): string | undefined {
  return /^[a-z0-9._-]{1,255}$/.test(td) ? undefined : 'trust domain must be 1-255 lowercase letters, digits, ".", "-" or "_"';
}
