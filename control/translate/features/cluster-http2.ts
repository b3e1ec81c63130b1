// http2 and grpc ports speak HTTP/2 upstream; an idle timeout from the
// DestinationPolicy applies to pooled upstream connections. Both live in the
// one HttpProtocolOptions extension Envoy reads per cluster.

import { registerClusterFeature } from '../registry.ts';
import { duration, TYPE, type Json } from '../envoy-json.ts';
import { isHttp2Port } from '../context.ts';

const KEY = 'envoy.extensions.upstreams.http.v3.HttpProtocolOptions';

export function http2ProtocolOptions(): Json {
  return { [KEY]: { '@type': TYPE.upstreamHttpProtocolOptions, explicit_http_config: { http2_protocol_options: {} } } };
}

registerClusterFeature('http-protocol-options', (cluster, target) => {
  if (target.port.protocol === 'tcp') return;
  const http2 = isHttp2Port(target.port);
  const idleMs = target.policy?.idleTimeoutMs;
  if (!http2 && idleMs === undefined) return;
  const options: Json = {
    '@type': TYPE.upstreamHttpProtocolOptions,
    explicit_http_config: http2 ? { http2_protocol_options: {} } : { http_protocol_options: {} },
  };
  if (idleMs !== undefined) options.common_http_protocol_options = { idle_timeout: duration(idleMs) };
  cluster.typed_extension_protocol_options = { [KEY]: options };
});
