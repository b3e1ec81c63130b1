// A proxy that behaves like Envoy on a SotW ADS stream: wildcard CDS and LDS,
// EDS for the clusters it got, RDS for the route configs its listeners name,
// and an ACK for every response. Built on the xDS tests' raw client.
import { SotwClient, testNode, type SotwReply } from '../xds/ads-client.ts';
import { TypeUrl } from '../../control/envoy/type-urls.ts';

export class SotwProxy {
  readonly client: SotwClient;
  readonly #last = new Map<string, SotwReply>();
  /** Responses received, by type URL. */
  readonly received = new Map<string, number>();
  #running = true;
  readonly done: Promise<void>;

  constructor(xdsPort: number, id: string, service: string) {
    this.client = new SotwClient(xdsPort, testNode(id, service));
    this.client.request(TypeUrl.Cluster);
    this.client.request(TypeUrl.Listener);
    this.done = this.#loop();
  }

  async #loop(): Promise<void> {
    while (this.#running) {
      let reply: SotwReply;
      try {
        reply = await this.client.next(3_600_000);
      } catch {
        return;
      }
      const first = !this.#last.has(reply.typeUrl);
      this.received.set(reply.typeUrl, (this.received.get(reply.typeUrl) ?? 0) + 1);
      this.#last.set(reply.typeUrl, reply);
      const names = reply.typeUrl === TypeUrl.ClusterLoadAssignment || reply.typeUrl === TypeUrl.RouteConfiguration ? this.#subscribed(reply.typeUrl) : [];
      this.client.ack(reply, names);
      if (reply.typeUrl === TypeUrl.Cluster) this.#follow(TypeUrl.ClusterLoadAssignment, reply.names.filter((n) => n.startsWith('outbound|')));
      if (reply.typeUrl === TypeUrl.Listener && first) this.#follow(TypeUrl.RouteConfiguration, ['outbound']);
    }
  }

  readonly #names = new Map<string, string[]>();
  #subscribed(typeUrl: string): string[] {
    return this.#names.get(typeUrl) ?? [];
  }

  #follow(typeUrl: string, names: string[]): void {
    const sorted = [...names].sort();
    if (JSON.stringify(sorted) === JSON.stringify(this.#names.get(typeUrl))) return;
    this.#names.set(typeUrl, sorted);
    this.client.request(typeUrl, sorted, this.#last.get(typeUrl));
  }

  close(): void {
    this.#running = false;
    this.client.close();
  }
}
