// connect_timeout: DestinationPolicy.connectTimeoutMs, default 1s (Envoy's
// own default is 5s, too long for a mesh where a dead endpoint should be
// skipped quickly).

import { registerClusterFeature } from '../registry.ts';
import { duration } from '../envoy-json.ts';

export const DEFAULT_CONNECT_TIMEOUT = '1s';

registerClusterFeature('connect-timeout', (cluster, target) => {
  const ms = target.policy?.connectTimeoutMs;
  cluster.connect_timeout = ms !== undefined ? duration(ms) : DEFAULT_CONNECT_TIMEOUT;
});
