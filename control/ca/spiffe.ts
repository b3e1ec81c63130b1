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

/** The control plane's identity: spiffe://<trust-domain>/ns/weft-system/sa/weft-control (as istiod's istio-system/istiod). */
export const CONTROL_NAMESPACE = 'weft-system';
export const CONTROL_SERVICE = 'weft-control';
/** The control plane's SPIFFE ID in any trust domain, as a regex both RE2 (Envoy's SAN matcher) and JavaScript read alike. */
export const CONTROL_PLANE_ID_PATTERN = `^spiffe://[^/]+/ns/${CONTROL_NAMESPACE}/sa/${CONTROL_SERVICE}$`;
