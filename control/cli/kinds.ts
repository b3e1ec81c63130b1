// The object kinds `weft get` knows: where each lives in the REST API, what
// its table shows, and (for manifest kinds) how to turn the API's flat object
// back into a manifest that `weft apply -f` accepts.

type Row = Record<string, unknown>;

export interface KindInfo {
  /** The manifest kind, for kinds operators write as YAML. */
  manifestKind?: string;
  /** Path under /api/v1 listing the kind. */
  path: string;
  /** Whether `get KIND NAME` reads `${path}/${name}`. */
  namedGet: boolean;
  headers: string[];
  row(item: Row): (string | number | undefined)[];
  /** What an empty list says it found none of (default: the path's words). */
  plural?: string;
}

const str = (v: unknown): string | undefined => (v === undefined || v === null ? undefined : String(v));
const count = (v: unknown): number => (Array.isArray(v) ? v.length : 0);
const labels = (v: unknown): string | undefined => {
  if (!v || typeof v !== 'object') return undefined;
  const pairs = Object.entries(v as Record<string, unknown>).map(([k, x]) => `${k}=${String(x)}`);
  return pairs.length ? pairs.join(',') : undefined;
};

const SERVICE: KindInfo = {
  manifestKind: 'Service',
  path: '/services',
  namedGet: true,
  headers: ['NAMESPACE', 'NAME', 'PORTS', 'DEPENDS-ON'],
  row: (s) => [
    str(s.namespace),
    str(s.name),
    Array.isArray(s.ports) ? s.ports.map((p: Row) => `${String(p.port)}/${String(p.protocol)}`).join(',') : undefined,
    Array.isArray(s.dependsOn) ? s.dependsOn.join(',') : undefined,
  ],
};

const ROUTE: KindInfo = {
  manifestKind: 'Route',
  path: '/routes',
  namedGet: true,
  headers: ['NAMESPACE', 'NAME', 'SERVICE', 'RULES'],
  row: (r) => [str(r.namespace), str(r.name), str(r.service), count(r.rules)],
};

const DESTINATION_POLICY: KindInfo = {
  manifestKind: 'DestinationPolicy',
  path: '/destination-policies',
  namedGet: true,
  headers: ['NAMESPACE', 'NAME', 'SERVICE', 'SUBSETS', 'LB'],
  row: (p) => [
    str(p.namespace),
    str(p.name),
    str(p.service),
    Array.isArray(p.subsets) ? p.subsets.map((s: Row) => str(s.name)).join(',') : undefined,
    str((p.loadBalancer as Row | undefined)?.policy),
  ],
};

const FILTER_BINDING: KindInfo = {
  manifestKind: 'FilterBinding',
  path: '/filter-bindings',
  namedGet: true,
  headers: ['NAMESPACE', 'NAME', 'SERVICE', 'DIRECTION', 'FILTER', 'ORDER'],
  row: (b) => [str(b.namespace), str(b.name), str(b.service), str(b.direction), str(b.filter), str(b.order)],
};

const AUTHORIZATION_POLICY: KindInfo = {
  manifestKind: 'AuthorizationPolicy',
  path: '/authorization-policies',
  namedGet: true,
  headers: ['NAMESPACE', 'NAME', 'SERVICE', 'ACTION', 'RULES'],
  // A dry-run policy is evaluated, not enforced: its action says so.
  row: (p) => [str(p.namespace), str(p.name), str(p.service), p.dryRun === true ? `${str(p.action)} (dry run)` : str(p.action), count(p.rules)],
};

const PEER_AUTHENTICATION: KindInfo = {
  manifestKind: 'PeerAuthentication',
  path: '/peer-authentications',
  namedGet: true,
  // no service: the namespace's policy
  headers: ['NAMESPACE', 'NAME', 'SERVICE', 'MODE'],
  row: (p) => [str(p.namespace), str(p.name), str(p.service), str(p.mode)],
};

const INSTANCE: KindInfo = {
  path: '/instances',
  namedGet: false,
  headers: ['ID', 'SERVICE', 'ADDRESS', 'HEALTH', 'LIVE', 'ZONE', 'LABELS'],
  row: (i) => [str(i.id), str(i.service), `${String(i.address)}:${String(i.port)}`, str(i.health), i.live === false ? 'no (TTL lapsed)' : 'yes', str(i.zone), labels(i.labels)],
};

const FILTER: KindInfo = {
  path: '/filters',
  namedGet: true,
  headers: ['NAME', 'SHA256', 'SIZE', 'ABI', 'SCHEMA'],
  row: (f) => [str(f.name), str(f.sha256)?.slice(0, 12), str(f.size), str(f.abiVersion), f.configSchema ? 'yes' : 'no'],
};

const PROXY: KindInfo = {
  path: '/proxies',
  namedGet: true,
  headers: ['ID', 'SERVICE', 'KIND', 'STATUS'],
  row: (p) => [str(p.id), str(p.service), str(p.kind), str(p.status)],
};

const TOKEN: KindInfo = {
  path: '/tokens',
  namedGet: false,
  headers: ['NAME', 'ROLE', 'CREATED'],
  row: (t) => [str(t.name), str(t.role), str(t.createdAt)],
};

const JOIN_TOKEN: KindInfo = {
  path: '/tokens/join',
  plural: 'join tokens',
  namedGet: false,
  headers: ['ID', 'SERVICE', 'NAMESPACE', 'ISSUED', 'EXPIRES'],
  row: (t) => [str(t.id), str(t.service), str(t.namespace), str(t.issuedAt), t.expired ? `${str(t.expiresAt)} (expired)` : (str(t.expiresAt) ?? 'never')],
};

const KINDS: Record<string, KindInfo> = {
  service: SERVICE, services: SERVICE, svc: SERVICE,
  route: ROUTE, routes: ROUTE,
  destinationpolicy: DESTINATION_POLICY, destinationpolicies: DESTINATION_POLICY, 'destination-policies': DESTINATION_POLICY, dp: DESTINATION_POLICY,
  filterbinding: FILTER_BINDING, filterbindings: FILTER_BINDING, 'filter-bindings': FILTER_BINDING, fb: FILTER_BINDING,
  authorizationpolicy: AUTHORIZATION_POLICY, authorizationpolicies: AUTHORIZATION_POLICY, 'authorization-policies': AUTHORIZATION_POLICY, ap: AUTHORIZATION_POLICY,
  peerauthentication: PEER_AUTHENTICATION, peerauthentications: PEER_AUTHENTICATION, 'peer-authentications': PEER_AUTHENTICATION, pa: PEER_AUTHENTICATION,
  instance: INSTANCE, instances: INSTANCE, inst: INSTANCE,
  filter: FILTER, filters: FILTER,
  proxy: PROXY, proxies: PROXY,
  token: TOKEN, tokens: TOKEN,
  jointoken: JOIN_TOKEN, jointokens: JOIN_TOKEN, 'join-tokens': JOIN_TOKEN, 'join-token': JOIN_TOKEN,
};

export function lookupKind(name: string): KindInfo | undefined {
  return KINDS[name.toLowerCase()];
}

/**
 * A kind this CLI has no table for (one control/model registered after this
 * CLI was written): listed by its API path, shown by namespace and name.
 */
export function genericKind(name: string): KindInfo | undefined {
  const path = name.toLowerCase();
  if (!/^[a-z][a-z-]*[a-z]$/.test(path)) return undefined;
  return { path: `/${path}`, namedGet: true, headers: ['NAMESPACE', 'NAME'], row: (o) => [str(o.namespace), str(o.name)] };
}

export const KIND_NAMES = 'services, instances, routes, destinationpolicies (dp), filterbindings (fb), authorizationpolicies (ap), peerauthentications (pa), filters, proxies, tokens, join-tokens';

/** The API's flat object as a manifest: name and namespace move to metadata. */
export function toManifest(kind: string, item: Row): Row {
  const { name, namespace, ...spec } = item;
  return { apiVersion: 'weft.dev/v1', kind, metadata: { name, namespace }, spec };
}
