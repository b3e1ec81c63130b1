// Prefix rewrite: the matched path prefix is replaced before forwarding.

import { registerRouteActionFeature } from '../registry.ts';
import type { Json } from '../envoy-json.ts';

registerRouteActionFeature('prefix-rewrite', (envoyRoute, target) => {
  if (target.rule.prefixRewrite === undefined) return;
  (envoyRoute.route as Json).prefix_rewrite = target.rule.prefixRewrite;
});
