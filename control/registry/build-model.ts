// Assembles the MeshModel the translator consumes: operator objects from the
// store as of its current revision, instances from the registry's live set
// (so the translator never reads a clock). Instances of services that no
// longer exist are left out.

import type { AuthorizationPolicy, DestinationPolicy, FilterBinding, FilterModule, MeshModel, PeerAuthentication, Route, Service } from '../model/types.ts';
import type { Store } from '../store/store.ts';
import type { Registry } from './registry.ts';

export function buildModel(store: Store, registry: Pick<Registry, 'liveInstances'>): MeshModel {
  const specs = <T>(kind: string) => store.list(kind).map((o) => o.spec as T);
  const services = specs<Service>('Service');
  const known = new Set(services.map((s) => `${s.namespace}/${s.name}`));
  return {
    revision: store.revision(),
    services,
    instances: registry.liveInstances().filter((i) => known.has(`${i.namespace}/${i.service}`)),
    routes: specs<Route>('Route'),
    destinationPolicies: specs<DestinationPolicy>('DestinationPolicy'),
    filterBindings: specs<FilterBinding>('FilterBinding'),
    filterModules: specs<FilterModule>('FilterModule'),
    peerAuthentications: specs<PeerAuthentication>('PeerAuthentication'),
    authorizationPolicies: specs<AuthorizationPolicy>('AuthorizationPolicy'),
  };
}
