// Which mutual TLS mode a service's inbound side runs in. A PeerAuthentication
// naming the service beats one for its whole namespace; with neither, the
// mesh default PERMISSIVE applies (Istio's: services join mTLS without a
// flag day, and STRICT is opted into). Several at one level: the first by
// name wins, so store order never matters.

import { DEFAULT_PEER_AUTHENTICATION_MODE } from '../../model/peer-authentication.ts';
import type { MeshModel, PeerAuthenticationMode, Service } from '../../model/types.ts';
import { byHost, compare, resolveServiceRef } from '../context.ts';

export function peerAuthenticationMode(model: MeshModel, service: Pick<Service, 'name' | 'namespace'>): PeerAuthenticationMode {
  const policies = [...(model.peerAuthentications ?? [])].sort((a, b) => compare(a.name, b.name));
  const host = byHost(service);
  const own = policies.find((p) => p.service !== undefined && resolveServiceRef(p.service, p.namespace) === host);
  if (own) return own.mode;
  const namespaceWide = policies.find((p) => p.service === undefined && p.namespace === service.namespace);
  return namespaceWide?.mode ?? DEFAULT_PEER_AUTHENTICATION_MODE;
}

/** SPIFFE ID of a service, for SAN checks and RBAC. */
export function spiffeIdOf(trustDomain: string, service: Pick<Service, 'name' | 'namespace'>): string {
  return `spiffe://${trustDomain}/ns/${service.namespace}/sa/${service.name}`;
}
