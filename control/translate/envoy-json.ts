// Small encoders for Envoy's proto3 JSON: durations, percentages, Any, config
// sources. Kept in one place so every feature spells them the same way.

export type Json = Record<string, unknown>;

export const TYPE = {
  httpConnectionManager: 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
  tcpProxy: 'type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy',
  router: 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router',
  fault: 'type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault',
  healthCheck: 'type.googleapis.com/envoy.extensions.filters.http.health_check.v3.HealthCheck',
  wasm: 'type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm',
  stringValue: 'type.googleapis.com/google.protobuf.StringValue',
  upstreamHttpProtocolOptions: 'type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions',
} as const;

/** Milliseconds -> proto3 JSON Duration ("1s", "0.250s"). */
export function duration(ms: number): string {
  // Millisecond precision is all the model carries; rounding first keeps 999.6 from becoming "0.1000s".
  const total = Math.round(ms);
  const whole = Math.floor(total / 1000);
  const frac = total - whole * 1000;
  return frac === 0 ? `${whole}s` : `${whole}.${String(frac).padStart(3, '0')}s`;
}

/**
 * A percentage (0..100, fractions allowed) as FractionalPercent. HUNDRED when
 * it is whole, MILLION otherwise so 0.1% stays exact.
 */
export function fractionalPercent(percentage: number): Json {
  if (Number.isInteger(percentage)) return { numerator: percentage, denominator: 'HUNDRED' };
  return { numerator: Math.round(percentage * 10_000), denominator: 'MILLION' };
}

/**
 * Every dynamic resource weft serves comes over the one ADS stream, and an
 * Envoy waits for it without a deadline (initial_fetch_timeout 0s, as Istio's
 * RDS, EDS and SDS sources): with Envoy's default 15 s, a route configuration,
 * endpoints, a filter config or a certificate that was slow or NACKed let
 * Envoy finish initializing without it and report itself ready, serving 404s,
 * 503s or a missing filter. Waiting keeps /ready at 503 until the whole
 * configuration is in, as the weft sidecar does.
 */
export function adsConfigSource(): Json {
  return { ads: {}, initial_fetch_timeout: '0s', resource_api_version: 'V3' };
}

export function socketAddress(address: string, port: number): Json {
  return { socket_address: { address, port_value: port } };
}
