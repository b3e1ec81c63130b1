// The fault filter, only in HCMs whose routes declare a fault (its per-route
// config comes from route-fault.ts). An empty HTTPFault injects nothing by
// itself; the per-route config does.

import { registerHttpFilterFeature } from '../registry.ts';
import { TYPE, type Json } from '../envoy-json.ts';
import { FAULT_FILTER_NAME } from './route-fault.ts';

function usesFault(routeConfig: Json): boolean {
  const hosts = (routeConfig.virtual_hosts as Json[] | undefined) ?? [];
  return hosts.some((vh) => ((vh.routes as Json[] | undefined) ?? []).some((r) => {
    const perFilter = r.typed_per_filter_config as Json | undefined;
    return perFilter !== undefined && FAULT_FILTER_NAME in perFilter;
  }));
}

registerHttpFilterFeature('fault', {
  position: 'fault',
  filters: (target) => (target.routeConfigs.some(usesFault) ? [{ name: FAULT_FILTER_NAME, typed_config: { '@type': TYPE.fault } }] : []),
});
