// Feature registry (Envoy Gateway's translator shape): each feature lives in
// its own file under features/ and registers itself here; the builders for
// clusters, routes and HTTP connection managers run every registered feature.
// features/index.ts imports them all, so adding a feature is one new file and
// one import line.

import type {
  DestinationPolicy, HttpRouteRule, Route, RouteMatch, Service, ServicePort, Subset,
} from '../model/types.ts';
import type { TranslationContext } from './context.ts';
import type { Json } from './envoy-json.ts';
import type { EnvoyResource } from './index.ts';
import type { HttpFilterPosition } from './filter-order.ts';

/** An outbound cluster being built: one service port, optionally one subset. */
export interface ClusterTarget {
  service: Service;
  port: ServicePort;
  subset?: Subset;
  policy?: DestinationPolicy;
}

/** One Envoy route built from one match of one rule. */
export interface RouteTarget {
  route: Route;
  rule: HttpRouteRule;
  /** Model path of the rule, for errors: routes[ns/name].rules[i] */
  path: string;
  /** The virtual host's service and port the rule was attached to. */
  service: Service;
  port: ServicePort;
  /** Clients that are gRPC libraries rather than Envoy (fewer features honoured). */
  proxyless: boolean;
}

/** Where an HCM sits; features decide what they contribute to each. */
export type HcmKind = 'inbound' | 'outbound' | 'proxyless';

export interface HcmTarget {
  kind: HcmKind;
  /** The route configurations this HCM serves (inline or via RDS), to see which route features are in use. */
  routeConfigs: Json[];
}

export type ClusterFeature = (cluster: Json, target: ClusterTarget, ctx: TranslationContext) => void;
export type RouteMatchFeature = (envoyMatch: Json, match: RouteMatch, path: string, ctx: TranslationContext) => void;
export type RouteActionFeature = (envoyRoute: Json, target: RouteTarget, ctx: TranslationContext) => void;
export interface HttpFilterFeature {
  position: HttpFilterPosition;
  filters(target: HcmTarget, ctx: TranslationContext): Json[];
  /** ECDS resources this feature's filters name. */
  extensionConfigs?(ctx: TranslationContext): EnvoyResource[];
}

/** Sets HCM-level fields (access_log, tracing, ...) on an HTTP connection manager being built. */
export type HcmFeature = (hcm: Json, target: HcmTarget, ctx: TranslationContext) => void;

export const clusterFeatures: { name: string; apply: ClusterFeature }[] = [];
export const routeMatchFeatures: { name: string; apply: RouteMatchFeature }[] = [];
export const routeActionFeatures: { name: string; apply: RouteActionFeature }[] = [];
export const httpFilterFeatures: { name: string; feature: HttpFilterFeature }[] = [];
export const hcmFeatures: { name: string; apply: HcmFeature }[] = [];

export function registerClusterFeature(name: string, apply: ClusterFeature): void {
  clusterFeatures.push({ name, apply });
}
export function registerRouteMatchFeature(name: string, apply: RouteMatchFeature): void {
  routeMatchFeatures.push({ name, apply });
}
export function registerRouteActionFeature(name: string, apply: RouteActionFeature): void {
  routeActionFeatures.push({ name, apply });
}
export function registerHttpFilterFeature(name: string, feature: HttpFilterFeature): void {
  httpFilterFeatures.push({ name, feature });
}
export function registerHcmFeature(name: string, apply: HcmFeature): void {
  hcmFeatures.push({ name, apply });
}
