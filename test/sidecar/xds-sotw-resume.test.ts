// The sidecar's SotW client on a new stream, as Envoy's GrpcMuxImpl: each
// type's first request carries the version it last accepted (a control plane
// that keeps versions, such as go-control-plane, then sends nothing that has
// not changed) and no nonce; the node says the client's version
// (user_agent_build_version, as Envoy's node does).
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { test } from 'node:test';
import { discoveryTypes, encodeResource } from '../../control/envoy/index.ts';
import { DataPlane } from '../../sidecar/dataplane.ts';
import { SidecarStats } from '../../sidecar/stats.ts';
import { XdsClient } from '../../sidecar/xds-client.ts';
import { cluster } from '../xds/fixtures.ts';

const SERVICE = '/envoy.service.discovery.v3.AggregatedDiscoveryService';
const CDS = 'type.googleapis.com/envoy.config.cluster.v3.Cluster';

interface Request {
  type_url?: string;
  version_info?: string;
  response_nonce?: string;
  error_detail?: unknown;
  node?: { user_agent_name?: string; user_agent_build_version?: { version?: { major_number?: number; minor_number?: number; patch?: number } } };
}

test('SotW: on a new stream the first CDS request carries the version last accepted, without a nonce, and the node its build version', { timeout: 30_000 }, async () => {
  const types = discoveryTypes();
  const streams: Request[][] = [];
  const server = new grpc.Server();
  const bytes = encodeResource(CDS, cluster('a').value);
  if ('errors' in bytes) throw new Error(JSON.stringify(bytes.errors));
  server.register(
    `${SERVICE}/StreamAggregatedResources`,
    (call: grpc.ServerDuplexStream<Request, object>) => {
      const seen: Request[] = [];
      const first = streams.length === 0;
      streams.push(seen);
      call.sendMetadata(new grpc.Metadata());
      call.on('data', (m: Request) => {
        seen.push(m);
        if (!first || m.type_url !== CDS) return;
        // The first stream: CDS version v1, and the stream ends once it is ACKed.
        if (!m.response_nonce) call.write({ version_info: 'v1', type_url: CDS, nonce: 'n1', resources: [{ type_url: CDS, value: bytes.bytes }] });
        else if (m.response_nonce === 'n1' && !m.error_detail) call.emit('error', Object.assign(new Error('going away'), { code: grpc.status.UNAVAILABLE }));
      });
      call.on('error', () => undefined);
    },
    (m: object) => Buffer.from(types.DiscoveryResponse.encode(types.DiscoveryResponse.fromObject(m)).finish()),
    (b: Buffer) => types.DiscoveryRequest.toObject(types.DiscoveryRequest.decode(b), { longs: Number, enums: String, defaults: false, oneofs: true }) as Request,
    'bidi',
  );
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
  const dataPlane = new DataPlane(new SidecarStats());
  const client = new XdsClient({ server: `127.0.0.1:${port}`, node: { id: 'resume-1', cluster: 'resume', metadata: {} }, dataPlane, sotw: true });
  try {
    client.start();
    const deadline = Date.now() + 15_000;
    while (!(streams[1] ?? []).some((m) => m.type_url === CDS)) {
      if (Date.now() > deadline) throw new Error(`no second stream: ${JSON.stringify(streams)}`);
      await new Promise((r) => setTimeout(r, 10));
    }
    const resumed = streams[1]!.find((m) => m.type_url === CDS)!;
    assert.equal(resumed.version_info, 'v1', 'the version it accepted on the first stream');
    assert.equal(resumed.response_nonce ?? '', '', 'no nonce: they belong to the stream that ended');
    const node = streams[1]![0]!.node;
    assert.equal(node?.user_agent_name, 'weft-sidecar');
    assert.ok(node?.user_agent_build_version?.version, `a build version in the node: ${JSON.stringify(node)}`);
    assert.deepEqual([...dataPlane.versions('cluster').keys()], ['a'], 'still serving what it had');
  } finally {
    client.close();
    server.forceShutdown();
    await dataPlane.close();
  }
});
