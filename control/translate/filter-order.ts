// The order of HTTP filters in every HTTP connection manager, decided here
// and nowhere else. Filters run top to bottom on requests.

export const HTTP_FILTER_ORDER = [
  // The health_check filter in pass-through mode (inbound only): marks a
  // caller's active health check (user-agent Envoy/HC) as one and lets it
  // through. First, as Envoy's docs place it, so the mark is there whatever
  // a later filter answers.
  'health-check',
  // Operator-bound wasm filters (auth, route, telemetry, user filters), in
  // binding `order`. First, so an auth filter rejects a request before any
  // injected fault spends time on it, and telemetry sees every request.
  'wasm',
  // Authorization (AuthorizationPolicy -> RBAC, inbound only): DENY then
  // ALLOW. After the wasm filters so rules can match the JWT claims the auth
  // filter forwarded as headers; before fault injection so a denied caller
  // never costs an injected delay.
  'rbac',
  // Fault injection (delay / abort per route). After the operator's filters
  // because it stands in for a failing upstream; only present when a route
  // this HCM serves declares a fault, so adding the first fault is the only
  // route change that touches the listener.
  'fault',
  // The router forwards upstream. Envoy and gRPC both require it last.
  'router',
] as const;

export type HttpFilterPosition = (typeof HTTP_FILTER_ORDER)[number];
