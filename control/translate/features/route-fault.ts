// Fault injection per route: typed_per_filter_config for the fault filter
// (http-filter-fault.ts adds the filter itself to HCMs that need it).

import { registerRouteActionFeature } from '../registry.ts';
import { duration, fractionalPercent, TYPE, type Json } from '../envoy-json.ts';

export const FAULT_FILTER_NAME = 'envoy.filters.http.fault';

registerRouteActionFeature('fault', (envoyRoute, target) => {
  const fault = target.rule.fault;
  if (!fault || (!fault.delay && !fault.abort && !fault.responseRateLimit)) return;
  const config: Json = { '@type': TYPE.fault };
  if (fault.delay) {
    config.delay = { fixed_delay: duration(fault.delay.fixedDelayMs), percentage: fractionalPercent(fault.delay.percentage) };
  }
  if (fault.abort) {
    config.abort = { http_status: fault.abort.httpStatus, percentage: fractionalPercent(fault.abort.percentage) };
  }
  // Paces the response body (not its headers) at limit_kbps KiB/s. gRPC's
  // xDS clients do not read the field (gRFC A33's filter takes delay, abort
  // and max_active_faults), so a proxyless caller is not slowed.
  if (fault.responseRateLimit) {
    config.response_rate_limit = {
      fixed_limit: { limit_kbps: fault.responseRateLimit.limitKbps },
      percentage: fractionalPercent(fault.responseRateLimit.percentage),
    };
  }
  envoyRoute.typed_per_filter_config = { [FAULT_FILTER_NAME]: config };
});
