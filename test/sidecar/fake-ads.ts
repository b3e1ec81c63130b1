// An ADS server that is not weft's, for the sidecar's xDS client tests: it
// records every request and answers the first one `respond` has an answer for,
// once, on Delta or SotW.
import * as grpc from '@grpc/grpc-js';
import { discoveryTypes } from '../../control/envoy/index.ts';

const SERVICE = '/envoy.service.discovery.v3.AggregatedDiscoveryService';
const CONVERT = { longs: String, enums: String, defaults: false, oneofs: true } as const;

export interface SeenRequest {
  type_url?: string;
  response_nonce?: string;
  version_info?: string;
  error_detail?: { code?: number; message?: string };
}

export async function fakeAds(sotw: boolean, respond: (request: SeenRequest) => object | undefined): Promise<{ port: number; seen: SeenRequest[]; close: () => void }> {
  const types = discoveryTypes();
  const req = sotw ? types.DiscoveryRequest : types.DeltaDiscoveryRequest;
  const res = sotw ? types.DiscoveryResponse : types.DeltaDiscoveryResponse;
  const seen: SeenRequest[] = [];
  const server = new grpc.Server();
  server.register(
    `${SERVICE}/${sotw ? 'StreamAggregatedResources' : 'DeltaAggregatedResources'}`,
    (call: grpc.ServerDuplexStream<SeenRequest, object>) => {
      let sent = false;
      call.sendMetadata(new grpc.Metadata());
      call.on('data', (m: SeenRequest) => {
        seen.push(m);
        if (sent) return;
        const answer = respond(m);
        if (answer === undefined) return;
        sent = true;
        call.write(answer);
      });
      call.on('error', () => undefined);
    },
    (m: object) => Buffer.from(res.encode(res.fromObject(m)).finish()),
    (b: Buffer) => req.toObject(req.decode(b), CONVERT) as SeenRequest,
    'bidi',
  );
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  return { port, seen, close: () => server.forceShutdown() };
}
