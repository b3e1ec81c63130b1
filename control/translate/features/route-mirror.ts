// Traffic mirroring: a copy of a percentage of requests goes to another
// service or subset; its responses are discarded.

import { registerRouteActionFeature } from '../registry.ts';
import { fractionalPercent, type Json } from '../envoy-json.ts';
import { resolveDestinationCluster } from './route-destinations.ts';

registerRouteActionFeature('mirror', (envoyRoute, target, ctx) => {
  const mirror = target.rule.mirror;
  if (!mirror) return;
  const resolved = resolveDestinationCluster(mirror, target, `${target.path}.mirror`, ctx);
  if (!resolved) return;
  (envoyRoute.route as Json).request_mirror_policies = [{
    cluster: resolved.cluster,
    runtime_fraction: { default_value: fractionalPercent(mirror.percentage) },
  }];
});
