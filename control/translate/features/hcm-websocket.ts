// WebSocket upgrades through every sidecar connection manager, as Istio and
// Linkerd carry them without configuration: Envoy refuses an `Upgrade:
// websocket` request (403) unless upgrade_configs allows it. The upgraded
// stream then has no route timeout to cut it (Envoy starts that timer only
// once the request has ended); the stream idle timeout still applies.

import { registerHcmFeature } from '../registry.ts';

registerHcmFeature('websocket', (hcm, target) => {
  // gRPC libraries speak HTTP/2 only: nothing to upgrade.
  if (target.kind === 'proxyless') return;
  hcm.upgrade_configs = [{ upgrade_type: 'websocket' }];
});
