// Request timeout for the whole request (all retries included). Without one,
// Envoy's 15s default applies, except on grpc ports: gRPC streams live long
// and callers carry their own deadlines, so there the default is none (as in
// Istio).

import { registerRouteActionFeature } from '../registry.ts';
import { duration, type Json } from '../envoy-json.ts';

registerRouteActionFeature('timeout', (envoyRoute, target) => {
  const action = envoyRoute.route as Json;
  if (target.rule.timeoutMs !== undefined) action.timeout = duration(target.rule.timeoutMs);
  else if (target.port.protocol === 'grpc' && !target.proxyless) action.timeout = '0s';
});
