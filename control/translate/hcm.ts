// HTTP connection managers: the shared shell and the filter chain, ordered by
// filter-order.ts whatever order features registered in.

import type { TranslationContext } from './context.ts';
import { TYPE, type Json } from './envoy-json.ts';
import { HTTP_FILTER_ORDER } from './filter-order.ts';
import { hcmFeatures, httpFilterFeatures, type HcmTarget } from './registry.ts';

export function httpFilters(target: HcmTarget, ctx: TranslationContext): Json[] {
  return HTTP_FILTER_ORDER.flatMap((position) =>
    httpFilterFeatures.filter((f) => f.feature.position === position).flatMap((f) => f.feature.filters(target, ctx)));
}

/** An HCM with either an RDS name or an inline route configuration. */
export function httpConnectionManager(
  statPrefix: string,
  routeSpecifier: { rds: Json } | { route_config: Json },
  target: HcmTarget,
  ctx: TranslationContext,
): Json {
  const hcm: Json = {
    '@type': TYPE.httpConnectionManager,
    stat_prefix: statPrefix,
    codec_type: 'AUTO',
    // Paths are normalized (RFC 3986 dot segments, backslashes, unreserved escapes) before routing and RBAC
    // see them, and the inbound side also merges slashes: otherwise an AuthorizationPolicy on /admin is
    // passed by /x/../admin or //admin, which the app resolves to /admin. Inbound is where policy is
    // enforced; outbound keeps // for apps whose paths carry it (object keys), as Istio's default does.
    // Proxyless gRPC clients route /package.Service/Method and take neither.
    ...(target.kind === 'proxyless' ? {} : { normalize_path: true }),
    ...(target.kind === 'inbound' ? { merge_slashes: true } : {}),
    // With identity, the app learns its verified caller as Istio's apps do: x-forwarded-client-cert set from the
    // mutual TLS handshake (By, Hash, Subject, URI, DNS), any header the caller sent replaced (SANITIZE_SET).
    ...(target.kind === 'inbound' && ctx.options.identity
      ? { forward_client_cert_details: 'SANITIZE_SET', set_current_client_cert_details: { subject: true, uri: true, dns: true } }
      : {}),
    ...routeSpecifier,
    http_filters: httpFilters(target, ctx),
  };
  for (const feature of hcmFeatures) feature.apply(hcm, target, ctx);
  return hcm;
}
