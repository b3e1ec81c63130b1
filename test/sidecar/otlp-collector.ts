// An OTLP/gRPC trace collector for tests: @grpc/grpc-js serving
// opentelemetry.proto.collector.trace.v1.TraceService/Export, each request
// decoded by OpenTelemetry's own generated protobuf code
// (@opentelemetry/otlp-transformer). Neither was written here, so a span the
// sidecar encodes wrongly does not decode.

import { createRequire } from 'node:module';
import * as grpc from '@grpc/grpc-js';

const require = createRequire(import.meta.url);
const otlp = require('@opentelemetry/otlp-transformer/build/src/generated/root.js') as any;
const ExportRequest = otlp.opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest;

export interface ReceivedSpan {
  service: string;
  traceId: string;
  spanId: string;
  parentSpanId: string;
  name: string;
  kind: number;
  startNs: bigint;
  endNs: bigint;
  attributes: Record<string, string>;
  statusCode: number;
}

const hex = (b: Uint8Array | undefined) => Buffer.from(b ?? []).toString('hex');

/** An OTLP/gRPC trace collector on 127.0.0.1: every span of every Export, and the number of Export calls. */
export async function startCollector(): Promise<{ port: number; spans: ReceivedSpan[]; exports: () => number; close: () => Promise<void> }> {
  const spans: ReceivedSpan[] = [];
  let exports = 0;
  const server = new grpc.Server();
  server.addService(
    {
      Export: {
        path: '/opentelemetry.proto.collector.trace.v1.TraceService/Export',
        requestStream: false,
        responseStream: false,
        requestDeserialize: (b: Buffer) => ExportRequest.decode(b),
        requestSerialize: () => Buffer.alloc(0),
        responseSerialize: () => Buffer.alloc(0), // an empty ExportTraceServiceResponse
        responseDeserialize: () => ({}),
      },
    },
    {
      Export: (call: grpc.ServerUnaryCall<any, unknown>, done: grpc.sendUnaryData<unknown>) => {
        exports++;
        for (const rs of call.request.resourceSpans) {
          const svc = rs.resource.attributes.find((a: any) => a.key === 'service.name')?.value.stringValue ?? '';
          for (const ss of rs.scopeSpans) {
            for (const s of ss.spans) {
              spans.push({
                service: svc,
                traceId: hex(s.traceId),
                spanId: hex(s.spanId),
                parentSpanId: hex(s.parentSpanId),
                name: s.name,
                kind: s.kind,
                startNs: BigInt(s.startTimeUnixNano.toString()),
                endNs: BigInt(s.endTimeUnixNano.toString()),
                attributes: Object.fromEntries(s.attributes.map((a: any) => [a.key, a.value.stringValue])),
                statusCode: s.status?.code ?? 0,
              });
            }
          }
        }
        done(null, {});
      },
    },
  );
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
  return { port, spans, exports: () => exports, close: () => new Promise<void>((r) => server.tryShutdown(() => r())) };
}
