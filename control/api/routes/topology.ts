// GET /api/v1/topology: the mesh as the UI draws it. Nodes are services with
// their health (instances and proxies) and traffic figures from their
// proxies' own stats; edges are who calls whom, declared (dependsOn, routes
// that send a service's callers elsewhere) and observed (outbound cluster
// counters). Rates are over the interval since the previous request, so a
// UI polling every few seconds sees current traffic.
import type { FastifyPluginAsync } from 'fastify';
import type { Service, Route } from '../../model/types.ts';
import type { ApiDeps, ProxyView } from '../deps.ts';
import { proxyAdminUrl, ratesBetween, scrapeProxy, sumSamples, type ProxySample, type Rates } from '../sidecar-stats.ts';

export type ServiceHealth = 'healthy' | 'degraded' | 'down' | 'unknown';

export interface TopologyNode {
  id: string;
  name: string;
  namespace: string;
  health: ServiceHealth;
  /** Why the health is what it is, for the UI's tooltip. */
  reasons: string[];
  instances: { total: number; healthy: number };
  proxies: { total: number; synced: number; nacked: number; stale: number };
  /** null when none of its proxies could be scraped. */
  stats: Rates | null;
}

export interface TopologyEdge {
  from: string;
  to: string;
  declared: boolean;
  observed: boolean;
  requestsPerSecond: number;
}

/** Error rate above which a serving service is shown degraded. */
const DEGRADED_ERROR_RATE = 0.05;

const idOf = (name: string, namespace: string) => `${name}.${namespace}`;

function qualify(ref: string, namespace: string): string {
  return ref.includes('.') ? ref : idOf(ref, namespace);
}

/** Declared edges: dependsOn, and routes sending a service's callers to another service. */
export function declaredEdges(services: Service[], routes: Route[]): Set<string> {
  const edges = new Set<string>();
  for (const s of services) for (const d of s.dependsOn ?? []) edges.add(`${idOf(s.name, s.namespace)}>${qualify(d, s.namespace)}`);
  for (const r of routes) {
    const target = idOf(r.service, r.namespace);
    for (const s of services) {
      const caller = idOf(s.name, s.namespace);
      if (!edges.has(`${caller}>${target}`)) continue;
      for (const rule of r.rules) for (const d of rule.destinations) {
        const to = qualify(d.service, r.namespace);
        if (to !== target) edges.add(`${caller}>${to}`);
      }
    }
  }
  return edges;
}

function healthOf(instances: { total: number; healthy: number }, proxies: ProxyView[], stats: Rates | null): { health: ServiceHealth; reasons: string[] } {
  const reasons: string[] = [];
  // Nothing registered: unknown, whether or not a proxy of it is connected (a client-only service's is). Until
  // 2026-11-29 a connected proxy made it healthy, '0/0 up', while its callers got 503 UH.
  if (instances.total === 0) return { health: 'unknown', reasons: ['no instances registered'] };
  if (instances.total > 0 && instances.healthy === 0) return { health: 'down', reasons: ['no healthy live instance'] };
  if (instances.healthy < instances.total) reasons.push(`${instances.total - instances.healthy} of ${instances.total} instances not healthy`);
  const nacked = proxies.filter((p) => p.status === 'NACKED').length;
  if (nacked > 0) reasons.push(`${nacked} proxy NACKed its configuration`);
  const notSent = proxies.filter((p) => p.status === 'NOT_SENT').length;
  if (notSent > 0) reasons.push(`the control plane refuses the configuration of ${notSent} proxy`);
  if (stats && stats.requests > 0 && stats.errorRate > DEGRADED_ERROR_RATE) reasons.push(`error rate ${(stats.errorRate * 100).toFixed(1)}%`);
  return { health: reasons.length > 0 ? 'degraded' : 'healthy', reasons };
}

export const topologyRoutes: FastifyPluginAsync<ApiDeps> = async (app, deps) => {
  const startedAt = Date.now();
  /** The previous summed sample per service (and per caller, for edge rates). */
  const previous = new Map<string, ProxySample>();

  app.get('/topology', { schema: { tags: ['Topology'], summary: 'services, who calls whom, health and traffic from the proxies\' stats (for the UI)' } }, async () => {
    const services = deps.store.list('Service').map((o) => o.spec as Service);
    const routes = deps.store.list('Route').map((o) => o.spec as Route);
    const instances = deps.registry.instances();
    const proxies = deps.proxies.list();

    const connected = proxies.filter((p) => p.status !== 'DISCONNECTED');
    const scrapeErrors: { proxy: string; message: string }[] = [];
    const samples = new Map<string, ProxySample[]>();
    await Promise.all(
      connected.map(async (p) => {
        const port = deps.proxies.ref(p.id)?.adminPort;
        if (port === undefined) return;
        const result = await scrapeProxy(proxyAdminUrl(port, '/stats/prometheus'));
        if (!result.ok) return void scrapeErrors.push({ proxy: p.id, message: result.message });
        const key = idOf(p.service, p.namespace);
        samples.set(key, [...(samples.get(key) ?? []), result.sample]);
      }),
    );

    const declared = declaredEdges(services, routes);
    const observed = new Map<string, number>();
    const nodes: TopologyNode[] = services
      .map((s) => {
        const id = idOf(s.name, s.namespace);
        const mine = instances.filter((i) => i.service === s.name && i.namespace === s.namespace);
        const counts = { total: mine.length, healthy: mine.filter((i) => i.live && i.health === 'healthy').length };
        const own = proxies.filter((p) => p.service === s.name && p.namespace === s.namespace && p.status !== 'DISCONNECTED');
        let stats: Rates | null = null;
        const got = samples.get(id);
        if (got) {
          const now = sumSamples(got);
          const before = previous.get(id);
          stats = ratesBetween(before, now, startedAt);
          const seconds = stats.windowSeconds;
          for (const [to, n] of Object.entries(now.upstreamRequests)) {
            const delta = before && n >= (before.upstreamRequests[to] ?? 0) ? n - (before.upstreamRequests[to] ?? 0) : n;
            if (n > 0) observed.set(`${id}>${to}`, delta / seconds);
          }
          previous.set(id, now);
        }
        const { health, reasons } = healthOf(counts, own, stats);
        return {
          id,
          name: s.name,
          namespace: s.namespace,
          health,
          reasons,
          instances: counts,
          proxies: {
            total: own.length,
            synced: own.filter((p) => p.status === 'SYNCED').length,
            nacked: own.filter((p) => p.status === 'NACKED').length,
            stale: own.filter((p) => p.status === 'STALE').length,
          },
          stats,
        };
      })
      .sort((a, b) => a.id.localeCompare(b.id));

    const known = new Set(nodes.map((n) => n.id));
    const edges: TopologyEdge[] = [...new Set([...declared, ...observed.keys()])]
      .map((key) => {
        const [from, to] = key.split('>') as [string, string];
        return { from, to, declared: declared.has(key), observed: observed.has(key), requestsPerSecond: observed.get(key) ?? 0 };
      })
      .filter((e) => known.has(e.from) && known.has(e.to))
      .sort((a, b) => a.from.localeCompare(b.from) || a.to.localeCompare(b.to));

    return { revision: deps.store.revision(), time: new Date().toISOString(), nodes, edges, scrapeErrors };
  });
};
