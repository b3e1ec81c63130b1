// Child process of `npm run bench:xds`: N simulated proxies, each on its own
// gRPC connection, speaking SotW or Delta ADS like a sidecar (CDS and LDS
// wildcard, EDS for every outbound cluster, RDS "outbound") and ACKing every
// response at once. Prints JSON lines: {"event":"connecting","t"} then
// {"event":"synced","t"} once every proxy holds all four types. Exits when
// stdin closes.
//   usage: xds-swarm.ts <xds-port> <clients> <services> <delta-share 0..1>
import * as grpc from '@grpc/grpc-js';
import protobuf from 'protobufjs';
import { discoveryTypes } from '../../control/envoy/index.ts';

const [port, clientCount, serviceCount, deltaShareArg] = process.argv.slice(2).map(Number) as [number, number, number, number];
const deltaShare = Number.isFinite(deltaShareArg) ? deltaShareArg : 0.5;
const T = discoveryTypes();
const CDS = 'type.googleapis.com/envoy.config.cluster.v3.Cluster';
const EDS = 'type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment';
const LDS = 'type.googleapis.com/envoy.config.listener.v3.Listener';
const RDS = 'type.googleapis.com/envoy.config.route.v3.RouteConfiguration';
const METHOD = '/envoy.service.discovery.v3.AggregatedDiscoveryService/';

function nameOf(bytes: Uint8Array): string {
  const r = protobuf.Reader.create(bytes);
  while (r.pos < r.len) {
    const tag = r.uint32();
    if (tag >>> 3 === 1 && (tag & 7) === 2) return r.string();
    r.skipType(tag & 7);
  }
  return '';
}

const encode = (type: protobuf.Type) => (m: object) => Buffer.from(type.encode(type.fromObject(m)).finish());
let ready = 0;
function markReady(): void {
  if (++ready === clientCount) process.stdout.write(`${JSON.stringify({ event: 'synced', t: Date.now() })}\n`);
}

interface Msg {
  type_url: string;
  nonce: string;
  version_info?: string;
  resources: { value?: Uint8Array; name?: string; resource?: { value: Uint8Array } }[];
}

function startProxy(i: number): void {
  // spreads the Delta share evenly over the proxies (0.5: every other one)
  const useDelta = Math.floor((i + 1) * deltaShare) > Math.floor(i * deltaShare);
  const node = { id: `proxy-${i}`, cluster: `svc-${i % serviceCount}` };
  const client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1, 'grpc.max_receive_message_length': 64 * 1024 * 1024 });
  const reqType = useDelta ? T.DeltaDiscoveryRequest : T.DiscoveryRequest;
  const resType = useDelta ? T.DeltaDiscoveryResponse : T.DiscoveryResponse;
  const call = client.makeBidiStreamRequest(METHOD + (useDelta ? 'DeltaAggregatedResources' : 'StreamAggregatedResources'), encode(reqType), (b: Buffer) => resType.decode(b) as unknown as Msg);
  const seen = new Set<string>();
  let edsNames: string[] = [];
  const lastEds: { nonce: string; version: string } = { nonce: '', version: '' };
  let first = true;
  const send = (m: Record<string, unknown>) => {
    if (first) {
      m.node = node;
      first = false;
    }
    call.write(m);
  };
  call.on('data', (m: Msg) => {
    const type = m.type_url;
    if (useDelta) send({ type_url: type, response_nonce: m.nonce });
    else send({ type_url: type, response_nonce: m.nonce, version_info: m.version_info, resource_names: type === EDS ? edsNames : type === RDS ? ['outbound'] : [] });
    if (type === EDS) Object.assign(lastEds, { nonce: m.nonce, version: m.version_info ?? '' });
    if (type === CDS) {
      const names = useDelta ? m.resources.map((r) => r.name ?? '') : m.resources.map((r) => nameOf(r.value ?? new Uint8Array()));
      const outbound = names.filter((n) => n.startsWith('outbound|'));
      const added = outbound.filter((n) => !edsNames.includes(n));
      if (added.length > 0 || !seen.has(CDS)) {
        edsNames = useDelta ? [...new Set([...edsNames, ...outbound])] : outbound;
        if (useDelta) send({ type_url: EDS, resource_names_subscribe: added });
        else send({ type_url: EDS, resource_names: edsNames, response_nonce: lastEds.nonce, version_info: lastEds.version });
      }
      if (!seen.has(CDS)) {
        if (useDelta) {
          send({ type_url: LDS });
          send({ type_url: RDS, resource_names_subscribe: ['outbound'] });
        } else {
          send({ type_url: LDS });
          send({ type_url: RDS, resource_names: ['outbound'] });
        }
      }
    }
    const before = seen.size;
    seen.add(type);
    if (before < 4 && seen.size === 4) markReady();
  });
  call.on('error', (e: Error) => process.stderr.write(`proxy-${i}: ${e.message}\n`));
  if (useDelta) send({ type_url: CDS });
  else send({ type_url: CDS, resource_names: [] });
}

process.stdout.write(`${JSON.stringify({ event: 'connecting', t: Date.now() })}\n`);
for (let i = 0; i < clientCount; i++) startProxy(i);
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
