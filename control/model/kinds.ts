// The kinds table: manifest/store kind -> spec schema and validator. Adding a
// kind (AuthorizationPolicy, PeerAuthentication, ...) is one defineKind file
// plus one registerKind call.

import { authorizationPolicyKind } from './authorization-policy.ts';
import { destinationPolicyKind } from './destination-policy.ts';
import { filterBindingKind } from './filter-binding.ts';
import { peerAuthenticationKind } from './peer-authentication.ts';
import type { Kind } from './kind.ts';
import { routeKind } from './route.ts';
import { serviceKind } from './service.ts';

const kinds = new Map<string, Kind<unknown>>();

/** Makes a kind available to manifests and the API. Registering the same kind name twice is a bug. */
export function registerKind(kind: Kind<unknown>): void {
  if (kinds.has(kind.kind)) throw new Error(`kind ${kind.kind} is already registered`);
  kinds.set(kind.kind, kind);
}

export function kindNamed(name: string): Kind<unknown> | undefined {
  return kinds.get(name);
}

/** Registered kind names, in registration order. */
export function kindNames(): string[] {
  return [...kinds.keys()];
}

registerKind(serviceKind);
registerKind(routeKind);
registerKind(destinationPolicyKind);
registerKind(filterBindingKind);
registerKind(peerAuthenticationKind);
registerKind(authorizationPolicyKind);
