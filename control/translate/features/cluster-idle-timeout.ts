// DestinationPolicy.idleTimeoutMs: pooled upstream connections idle this long
// are closed (common_http_protocol_options.idle_timeout).

import { registerClusterFeature } from '../registry.ts';
import { duration } from '../envoy-json.ts';
import { upstreamHttpOptions } from './upstream-http-options.ts';

registerClusterFeature('idle-timeout', (cluster, target) => {
  const idleMs = target.policy?.idleTimeoutMs;
  if (idleMs === undefined || target.port.protocol === 'tcp') return;
  upstreamHttpOptions(cluster, target.port).common_http_protocol_options = { idle_timeout: duration(idleMs) };
});
