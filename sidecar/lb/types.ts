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
}

export interface LoadBalancer {
  /** Chooses one of `hosts` (already filtered to those that may take new requests); undefined only when hosts is empty. */
  pick(hosts: readonly LbHost[], ctx: PickContext): LbHost | undefined;
}

export function preferNotAvoided(hosts: readonly LbHost[], avoid: ReadonlySet<string> | undefined): readonly LbHost[] {
  if (!avoid || avoid.size === 0) return hosts;
  const rest = hosts.filter((h) => !avoid.has(h.key));
  return rest.length > 0 ? rest : hosts;
}
