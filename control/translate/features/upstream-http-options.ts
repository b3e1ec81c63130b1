// The one HttpProtocolOptions extension Envoy reads per cluster, shared by
// the features that set parts of it (cluster-http2.ts, cluster-idle-timeout.ts).

import type { ServicePort } from '../../model/types.ts';
import { isHttp2Port } from '../context.ts';
import { TYPE, type Json } from '../envoy-json.ts';

const KEY = 'envoy.extensions.upstreams.http.v3.HttpProtocolOptions';

/**
 * The cluster's HttpProtocolOptions, created on first use. explicit_http_config
 * is always set: Envoy requires one of the upstream protocol choices.
 */
export function upstreamHttpOptions(cluster: Json, port: ServicePort): Json {
  const extensions = (cluster.typed_extension_protocol_options ??= {}) as Json;
  let options = extensions[KEY] as Json | undefined;
  if (!options) {
    options = {
      '@type': TYPE.upstreamHttpProtocolOptions,
      explicit_http_config: isHttp2Port(port) ? { http2_protocol_options: {} } : { http_protocol_options: {} },
    };
    extensions[KEY] = options;
  }
  return options;
}
