// http2 and grpc ports speak HTTP/2 upstream (gRPC needs it end to end).

import { registerClusterFeature } from '../registry.ts';
import { isHttp2Port } from '../context.ts';
import { upstreamHttpOptions } from './upstream-http-options.ts';

registerClusterFeature('http2', (cluster, target) => {
  if (isHttp2Port(target.port)) upstreamHttpOptions(cluster, target.port);
});
