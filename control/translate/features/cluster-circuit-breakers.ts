// Circuit breakers on every outbound cluster. Defaults are Envoy's own
// (1024 / 1024 / 1024 / 3), written out so /config_dump shows the limits in
// force; DestinationPolicy.circuitBreakers overrides them one by one.

import { registerClusterFeature } from '../registry.ts';

export const DEFAULT_CIRCUIT_BREAKERS = { maxConnections: 1024, maxPendingRequests: 1024, maxRequests: 1024, maxRetries: 3 };

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
