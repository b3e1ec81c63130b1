// Envoy's health_check HTTP filter, in pass-through mode, first in every
// inbound HTTP connection manager. Callers' active health checks reach a
// service's inbound listener every interval from every calling proxy (the
// demo's orders: 1.5 a second). The filter marks a request from Envoy's
// health checker (user-agent Envoy/HC; the weft sidecar's says the same) as a
// health check, and passes it on to the app, whose answer is the check's.
// Marked, a request is not traced (Envoy unsamples its span and the spans it
// parents upstream) and the access logs' not_health_check_filter leaves it
// out; its answer carries x-envoy-upstream-healthchecked-cluster.

import { registerHttpFilterFeature } from '../registry.ts';
import { TYPE } from '../envoy-json.ts';

export const HEALTH_CHECK_FILTER_NAME = 'envoy.filters.http.health_check';
export const HEALTH_CHECKER_USER_AGENT = 'Envoy/HC';

registerHttpFilterFeature('health-check', {
  position: 'health-check',
  filters: (target) =>
    target.kind === 'inbound'
      ? [{
          name: HEALTH_CHECK_FILTER_NAME,
          typed_config: {
            '@type': TYPE.healthCheck,
            pass_through_mode: true,
            headers: [{ name: 'user-agent', string_match: { exact: HEALTH_CHECKER_USER_AGENT } }],
          },
        }]
      : [],
});
