// Request timeout for the whole request (all retries included).

import { registerRouteActionFeature } from '../registry.ts';
import { duration, type Json } from '../envoy-json.ts';

registerRouteActionFeature('timeout', (envoyRoute, target) => {
  if (target.rule.timeoutMs === undefined) return;
  (envoyRoute.route as Json).timeout = duration(target.rule.timeoutMs);
});
