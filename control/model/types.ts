// The mesh's domain types. No protos, no HTTP, no clock: everything above
// (API, CLI, registry) produces these, everything below (translate) consumes
// them. Validation of each kind lives beside it in control/model/.

export type Protocol = 'http' | 'http2' | 'grpc' | 'tcp';

export interface ServicePort {
  /** Optional port name, unique within the service. */
  name?: string;
  /** 1..65535 */
  port: number;
  protocol: Protocol;
}

/** Active HTTP health check, run by every proxy that calls the service. */
export interface HttpHealthCheck {
  /** Absolute path, e.g. "/healthz". */
  path: string;
  /** Defaults filled in by validation. */
  intervalMs: number;
  timeoutMs: number;
  healthyThreshold: number;
  unhealthyThreshold: number;
  /** Expected status range [start, end), default [200, 400). */
  expectedStatuses?: { start: number; end: number }[];
}

export interface Service {
  name: string;
  /** Defaults to "default". */
  namespace: string;
  ports: ServicePort[];
  healthCheck?: HttpHealthCheck;
  /**
   * The services this one calls (Consul's upstreams, Istio's Sidecar egress).
   * When set, its proxies receive configuration for these services only;
   * when absent, for every service in the mesh.
   */
  dependsOn?: string[];
}

export type InstanceHealth = 'healthy' | 'unhealthy' | 'draining';

export interface Instance {
  /** Assigned by the registry; stable for the instance's life. */
  id: string;
  service: string;
  namespace: string;
  /** IPv4 or IPv6 literal (EDS endpoints are IPs: Envoy resolves no names there). For sidecar'd services: the sidecar's inbound listener. */
  address: string;
  port: number;
  labels: Record<string, string>;
  zone?: string;
  health: InstanceHealth;
  /** Heartbeat TTL; 0 = no TTL (static registration). */
  ttlSeconds: number;
  /**
   * When its TTL lapsed (ISO 8601), while no heartbeat has come since. Kept
   * in the store, so a restarted control plane does not bring an instance it
   * had already found dead back into EDS.
   */
  lapsedAt?: string;
}

// ---------------------------------------------------------------------------
// Operator policy (manifests / API). Names are unique per namespace and kind.

export type StringMatch =
  | { exact: string }
  | { prefix: string }
  | { regex: string };

export interface RouteMatch {
  path?: StringMatch;
  /** Upper-case HTTP method. */
  method?: string;
  headers?: { name: string; match: StringMatch | { present: true }; invert?: boolean }[];
  queryParams?: { name: string; match: StringMatch | { present: true } }[];
}

export interface WeightedDestination {
  /** Destination service name (same namespace unless "name.namespace"). */
  service: string;
  /** Named subset from the destination's DestinationPolicy; absent = all instances. */
  subset?: string;
  /** Relative weight; weights of one route need not sum to 100. */
  weight: number;
  /** Destination port, an HTTP one; defaults to the port the caller used when it is the route's own service, else to the service's first HTTP port. */
  port?: number;
}

export interface RetryPolicy {
  attempts: number;
  perTryTimeoutMs?: number;
  /** Envoy retry_on conditions, one of RETRY_ON (control/model/route-actions.ts): "5xx", "gateway-error", "connect-failure", "retriable-4xx", "refused-stream", "reset", "retriable-status-codes" and the gRPC ones. */
  retryOn: string[];
  retriableStatusCodes?: number[];
}

export interface HeaderMutation {
  add?: { name: string; value: string; append?: boolean }[];
  remove?: string[];
}

export interface FaultInjection {
  delay?: { fixedDelayMs: number; percentage: number };
  abort?: { httpStatus: number; percentage: number };
  /** Paces the response body at limitKbps KiB/s (Envoy's response_rate_limit). */
  responseRateLimit?: { limitKbps: number; percentage: number };
}

export interface HttpRouteRule {
  name?: string;
  match?: RouteMatch[];
  destinations: WeightedDestination[];
  /** 0: none (Envoy's `0s`); unset: Envoy's default, 15 s (none on grpc ports). */
  timeoutMs?: number;
  retries?: RetryPolicy;
  prefixRewrite?: string;
  requestHeaders?: HeaderMutation;
  responseHeaders?: HeaderMutation;
  mirror?: { service: string; subset?: string; percentage: number };
  fault?: FaultInjection;
}

/** Traffic rules for calls to `service` (Istio VirtualService, one host). */
export interface Route {
  name: string;
  namespace: string;
  /** The service whose callers this applies to. */
  service: string;
  /** Evaluated in order; first match wins; a final default goes to all instances. */
  rules: HttpRouteRule[];
}

export type LoadBalancer =
  | { policy: 'round_robin' | 'least_request' | 'random' }
  | { policy: 'ring_hash'; hashOn: { header: string } | { cookie: string; ttlSeconds?: number } };

export interface CircuitBreakers {
  maxConnections?: number;
  maxPendingRequests?: number;
  maxRequests?: number;
  maxRetries?: number;
}

export interface OutlierDetection {
  consecutive5xx: number;
  intervalMs: number;
  baseEjectionTimeMs: number;
  maxEjectionPercent: number;
}

export interface Subset {
  name: string;
  labels: Record<string, string>;
}

/** How callers talk to `service` (Istio DestinationRule). */
export interface DestinationPolicy {
  name: string;
  namespace: string;
  service: string;
  subsets?: Subset[];
  loadBalancer?: LoadBalancer;
  circuitBreakers?: CircuitBreakers;
  outlierDetection?: OutlierDetection;
  healthCheck?: HttpHealthCheck;
  connectTimeoutMs?: number;
  idleTimeoutMs?: number;
}

/** A wasm filter bound to a service's inbound or outbound HTTP traffic. */
export interface FilterBinding {
  name: string;
  namespace: string;
  service: string;
  direction: 'inbound' | 'outbound';
  /** Catalog name of the filter ("auth", "route", "telemetry", or a user filter). */
  filter: string;
  /** Lower runs first. */
  order: number;
  /** JSON config, validated against the filter's schema. */
  config: unknown;
  failurePolicy: 'fail_closed' | 'fail_open';
}

/** How a service's sidecars accept inbound connections (Istio PeerAuthentication). */
export type PeerAuthenticationMode = 'STRICT' | 'PERMISSIVE' | 'DISABLE';

/**
 * Mutual TLS mode for one service (`service` set) or every service of the
 * namespace (`service` absent). A service-level policy beats a namespace-level
 * one; with neither, the mesh default (PERMISSIVE) applies.
 */
export interface PeerAuthentication {
  name: string;
  namespace: string;
  service?: string;
  mode: PeerAuthenticationMode;
}

/**
 * One rule of an AuthorizationPolicy. Every field given must match (AND);
 * within a field any value matches (OR); a rule with no field matches every
 * request.
 */
export interface AuthorizationRule {
  /** Caller SPIFFE IDs; `*` matches any run of characters ("spiffe://weft.local/ns/shop/*"). */
  principals?: string[];
  /** Caller namespaces (from the caller's SPIFFE ID). */
  namespaces?: string[];
  /** Request paths: exact, "prefix*", "*suffix" or "*". */
  paths?: string[];
  /** Upper-case HTTP methods. */
  methods?: string[];
  /** Request headers (e.g. JWT claims the auth filter forwarded) with accepted values. */
  headers?: { name: string; values: string[] }[];
}

/** Who may call `service` (Istio AuthorizationPolicy). Deny policies win; any ALLOW policy makes the rest denied. */
export interface AuthorizationPolicy {
  name: string;
  namespace: string;
  service: string;
  action: 'ALLOW' | 'DENY';
  rules: AuthorizationRule[];
  /**
   * Evaluated, never enforced (Istio's istio.io/dry-run): proxies count and log what the service's policies would
   * decide with this one enforced (RBAC shadow rules), and requests go through as before.
   */
  dryRun?: boolean;
}

/** A wasm module known to the control plane, content-addressed. */
export interface FilterModule {
  name: string;
  sha256: string;
  size: number;
  abiVersion: '0.2.0' | '0.2.1';
  configSchema?: unknown;
}

/**
 * Everything the translator needs, as of one store revision. Instances are
 * already filtered by the registry (TTL lapsed ones are absent), so the
 * translator never reads a clock.
 */
export interface MeshModel {
  revision: number;
  services: Service[];
  instances: Instance[];
  routes: Route[];
  destinationPolicies: DestinationPolicy[];
  filterBindings: FilterBinding[];
  filterModules: FilterModule[];
  /** Mutual TLS modes (issue 7); absent = none, every service on the mesh default. */
  peerAuthentications?: PeerAuthentication[];
  /** Authorization policies (issue 7); absent = none. */
  authorizationPolicies?: AuthorizationPolicy[];
}

/** The proxy a translation is for (from the xDS node). */
export interface ProxyRef {
  /** node.id */
  id: string;
  /** node.cluster: the service it fronts. */
  service: string;
  namespace: string;
  /** Proxy flavour: envoy and weft sidecars get listeners; grpc clients get api_listeners. */
  kind: 'sidecar' | 'proxyless-grpc';
  /**
   * Where the sidecar listens and where its app is, from node.metadata
   * (WEFT_INBOUND_PORT, WEFT_OUTBOUND_PORT, WEFT_APP_PORT); the xDS server fills
   * defaults (15006, 15001, the service's first port) so translation stays pure.
   */
  inboundPort: number;
  outboundPort: number;
  appPort: number;
  /** Address the app listens on, default 127.0.0.1. */
  appAddress: string;
  /**
   * Address the inbound listener binds (WEFT_BIND_ADDRESS): 0.0.0.0 in
   * containers, 127.0.0.1 for the local mesh. The outbound listener always
   * binds 127.0.0.1: only the local app may use it.
   */
  bindAddress: string;
  /**
   * The proxy's admin port on its own host (WEFT_ADMIN_PORT), where its
   * /stats/prometheus is; absent when the proxy did not say. Read by the
   * API's topology (stats), never by translation.
   */
  adminPort?: number;
}
