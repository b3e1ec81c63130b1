// Circuit breakers on every outbound cluster. Defaults are Envoy's own
// (1024 / 1024 / 1024) for connections and requests, written out so
// /config_dump shows the limits in force; DestinationPolicy.circuitBreakers
// overrides them one by one. Retries in flight default to 1024, not Envoy's 3:
// every route retries a refused stream (DEFAULT_ROUTE_RETRY), and a server
// closing a busy connection refuses all its streams at once, so with 3 most of
// those retries overflowed (50 of 59 in the review's repro) and failed. Istio
// lifts the limit altogether (2^32-1); retries stay bounded by each route's attempts.

import { registerClusterFeature } from '../registry.ts';

export const DEFAULT_CIRCUIT_BREAKERS = { maxConnections: 1024, maxPendingRequests: 1024, maxRequests: 1024, maxRetries: 1024 };

registerClusterFeature('circuit-breakers', (cluster, target) => {
  const limits = { ...DEFAULT_CIRCUIT_BREAKERS, ...target.policy?.circuitBreakers };
  cluster.circuit_breakers = {
    thresholds: [{
      priority: 'DEFAULT',
      max_connections: limits.maxConnections,
      max_pending_requests: limits.maxPendingRequests,
      max_requests: limits.maxRequests,
      max_retries: limits.maxRetries,
    }],
  };
});
