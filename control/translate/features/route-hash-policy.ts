// Ring hash needs a hash key on the route: a header or a cookie, from the
// destination's DestinationPolicy (the cluster side is cluster-load-balancer.ts).
// The policy of the rule's first destination decides: weighted splits send
// every key to one subset's ring, so they share the same hash.

import { registerRouteActionFeature } from '../registry.ts';
import { duration, type Json } from '../envoy-json.ts';
import { resolveServiceRef } from '../context.ts';

registerRouteActionFeature('hash-policy', (envoyRoute, target, ctx) => {
  const first = target.rule.destinations[0];
  if (!first) return;
  const host = resolveServiceRef(first.service, target.route.namespace);
  const lb = ctx.policyByHost.get(host)?.loadBalancer;
  if (lb?.policy !== 'ring_hash') return;
  const action = envoyRoute.route as Json;
  if ('header' in lb.hashOn) {
    action.hash_policy = [{ header: { header_name: lb.hashOn.header.toLowerCase() } }];
  } else {
    const cookie: Json = { name: lb.hashOn.cookie };
    // With a ttl Envoy sets the cookie when the client has none, so a
    // client sticks to one endpoint from its first request.
    if (lb.hashOn.ttlSeconds !== undefined) cookie.ttl = duration(lb.hashOn.ttlSeconds * 1000);
    action.hash_policy = [{ cookie }];
  }
});
