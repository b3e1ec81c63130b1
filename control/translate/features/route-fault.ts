// Fault injection per route: typed_per_filter_config for the fault filter
// (http-filter-fault.ts adds the filter itself to HCMs that need it).

import { registerRouteActionFeature } from '../registry.ts';
import { duration, fractionalPercent, TYPE, type Json } from '../envoy-json.ts';

export const FAULT_FILTER_NAME = 'envoy.filters.http.fault';

registerRouteActionFeature('fault', (envoyRoute, target) => {
  const fault = target.rule.fault;
  if (!fault || (!fault.delay && !fault.abort)) return;
  const config: Json = { '@type': TYPE.fault };
  if (fault.delay) {
    config.delay = { fixed_delay: duration(fault.delay.fixedDelayMs), percentage: fractionalPercent(fault.delay.percentage) };
  }
  if (fault.abort) {
    config.abort = { http_status: fault.abort.httpStatus, percentage: fractionalPercent(fault.abort.percentage) };
  }
  envoyRoute.typed_per_filter_config = { [FAULT_FILTER_NAME]: config };
});
