// What a load balancer sees of an upstream host, and its contract.

export interface LbHost {
  /** "address:port", unique in a cluster. */
  readonly key: string;
  /** What ring hash hashes for this host when it is not `key` (Envoy's hash key: `envoy.lb` hash_key metadata, the hostname, an IPv6 address in brackets). */
  readonly hashKey?: string;
  readonly weight: number;
  /** In-flight requests to this host (least request reads it). */
  readonly activeRequests: number;
}

export interface PickContext {
  /** From the route's hash_policy (unsigned 64-bit, Envoy's xxHash64 of the key); ring hash only. */
  hash?: bigint;
  /** Hosts to avoid (retry previous_hosts predicate), best effort. */
  avoid?: ReadonlySet<string>;
  /** host_selection_retry_max_attempts (default 1): how many more picks a host to avoid may cost, as Envoy's. */
  hostSelectionRetries?: number;
  /** Which of the cluster's host sets `hosts` is (Envoy's HostsSource): round robin keeps its place in each apart. */
  source?: HostSource;
}

export type HostSource = 'healthy' | 'degraded' | 'all';

export interface LoadBalancer {
  /** Chooses one of `hosts` (already filtered to those that may take new requests); undefined only when hosts is empty. */
  pick(hosts: readonly LbHost[], ctx: PickContext): LbHost | undefined;
}

/**
 * Envoy's host selection retries (ZoneAwareLoadBalancerBase::chooseHost): with hosts to avoid, up to
 * host_selection_retry_max_attempts further picks are made while the pick is one to avoid, and the last pick stands
 * even if it is one (Envoy's predicate is a preference, not a filter).
 */
export function pickAvoiding(ctx: PickContext, pickOnce: () => LbHost | undefined): LbHost | undefined {
  const retries = ctx.avoid && ctx.avoid.size > 0 ? (ctx.hostSelectionRetries ?? 1) : 0;
  let host = pickOnce();
  for (let i = 0; i < retries && host && ctx.avoid!.has(host.key); i++) host = pickOnce();
  return host;
}
