// lb_policy from DestinationPolicy.loadBalancer. The matching route-side
// hash_policy for ring_hash lives in route-hash-policy.ts.

import { registerClusterFeature } from '../registry.ts';

const LB_POLICY = {
  round_robin: 'ROUND_ROBIN',
  least_request: 'LEAST_REQUEST',
  random: 'RANDOM',
  ring_hash: 'RING_HASH',
} as const;

registerClusterFeature('load-balancer', (cluster, target, ctx) => {
  const policy = target.policy?.loadBalancer?.policy ?? 'round_robin';
  // grpc-js-xds accepts only ROUND_ROBIN and RING_HASH in lb_policy and
  // NACKs the cluster otherwise; a proxyless client falls back to round robin.
  if (ctx.proxy.kind === 'proxyless-grpc' && policy !== 'ring_hash') {
    cluster.lb_policy = 'ROUND_ROBIN';
    return;
  }
  cluster.lb_policy = LB_POLICY[policy];
});
