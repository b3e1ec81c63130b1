// One load balancer per cluster, chosen by lb_policy.

import type { ClusterConfig } from '../config.ts';
import { LeastRequest } from './least-request.ts';
import { RandomLb } from './random.ts';
import { RingHash } from './ring-hash.ts';
import { RoundRobin } from './round-robin.ts';
import type { LoadBalancer } from './types.ts';

export type { HostSource, LbHost, LoadBalancer, PickContext } from './types.ts';

export function createLoadBalancer(cluster: Pick<ClusterConfig, 'lbPolicy' | 'ringHash' | 'leastRequest'>): LoadBalancer {
  switch (cluster.lbPolicy) {
    case 'LEAST_REQUEST':
      return new LeastRequest(Math.random, cluster.leastRequest?.choiceCount, cluster.leastRequest?.activeRequestBias);
    case 'RANDOM':
      return new RandomLb();
    case 'RING_HASH':
      return new RingHash(cluster.ringHash.minimumRingSize, cluster.ringHash.maximumRingSize);
    default:
      return new RoundRobin();
  }
}
