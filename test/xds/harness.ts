// Starts a real ADS server on 127.0.0.1:0 over a fresh snapshot cache.
import type { ChangeStamp } from '../../control/xds/cache.ts';
import { SnapshotCache } from '../../control/xds/cache.ts';
import type { XdsNode } from '../../control/xds/discovery.ts';
import { TypeUrl } from '../../control/xds/discovery.ts';
import { groupKey, proxyFromNode } from '../../control/xds/node.ts';
import type { AdsServerOptions } from '../../control/xds/server.ts';
import { AdsServer } from '../../control/xds/server.ts';
import type { DeltaClient, DeltaReply, SotwClient, SotwReply } from './ads-client.ts';
import { BARRIER_ROUTE, cla, meshResources, testEncoder } from './fixtures.ts';
import { testNode } from './ads-client.ts';

export interface Harness {
  cache: SnapshotCache;
  server: AdsServer;
  port: number;
  close(): Promise<void>;
}

export async function startServer(options: Partial<AdsServerOptions> = {}): Promise<Harness> {
  const cache = options.cache ?? new SnapshotCache(testEncoder);
  const server = new AdsServer({ ...options, cache });
  const port = await server.listen('127.0.0.1', 0);
  return { cache, server, port, close: () => server.close() };
}

let revision = 0;
export function stamp(): ChangeStamp {
  return { revision: ++revision, committedAt: Date.now() };
}

export function groupOf(node: XdsNode): string {
  const r = proxyFromNode(node);
  if ('errors' in r) throw new Error(JSON.stringify(r.errors));
  return groupKey(r.proxy);
}

let barrierType = 0;
/**
 * Everything the server pushed before this point, up to a barrier: a first
 * request for a type nobody serves, which SotW answers at once. Responses are
 * ordered on the stream, so anything sent earlier arrives before it.
 */
export async function sotwBarrier(client: SotwClient): Promise<SotwReply[]> {
  const typeUrl = `type.googleapis.com/weft.test.Barrier${++barrierType}`;
  client.request(typeUrl);
  const replies = await client.collectUntil((r) => r.typeUrl === typeUrl);
  return replies.slice(0, -1);
}

/** The Delta counterpart: re-subscribing to the fixture's barrier route forces one response. */
export async function deltaBarrier(client: DeltaClient, routeName = BARRIER_ROUTE): Promise<DeltaReply[]> {
  client.subscribe(TypeUrl.route, [], { unsubscribe: [routeName] });
  client.subscribe(TypeUrl.route, [routeName]);
  const replies = await client.collectUntil((r) => r.typeUrl === TypeUrl.route && r.resources.some((x) => x.name === routeName));
  const last = replies[replies.length - 1]!;
  client.ack(last);
  return replies.slice(0, -1);
}

/** Polls a condition on server state (bounded; for sequencing, not timing). */
export async function waitFor(condition: () => boolean, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met within bound');
    await new Promise((r) => setTimeout(r, 5));
  }
}

/**
 * A test proxy `id` (service svc-ID) whose group holds the mesh resources for
 * `clusters`, each with one endpoint at portBase + i, published endpoints first
 * as the controller does.
 */
export function meshGroup(h: Harness, id: string, clusters: string[], portBase: number): { node: XdsNode; group: string } {
  const node = testNode(id, `svc-${id}`);
  const group = groupOf(node);
  h.cache.setEndpoints(stamp(), clusters.map((c, i) => cla(c, [portBase + i])));
  h.cache.setGroup(group, { stamp: stamp(), resources: meshResources(clusters), endpointNames: clusters });
  return { node, group };
}
