// Prometheus metrics for the xDS server, in their own Registry (the API
// merges it into /metrics). Fed by the stream lifecycle hooks, plus the
// controller's snapshot build errors.
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { ResponseInfo, StreamInfo, XdsHooks } from './stream.ts';

export interface XdsMetrics {
  registry: Registry;
  hooks: XdsHooks;
  /** Incremented by the controller when a snapshot is refused (labels: kind = group | endpoints). */
  snapshotErrors: Counter<'kind'>;
}

/** 'type.googleapis.com/envoy.config.cluster.v3.Cluster' -> 'Cluster' */
export function shortType(typeUrl: string): string {
  return typeUrl.slice(typeUrl.lastIndexOf('.') + 1);
}

export function createXdsMetrics(): XdsMetrics {
  const registry = new Registry();
  const connected = new Gauge({ name: 'weft_xds_connected_proxies', help: 'Open ADS streams, by stream type (sotw, delta)', labelNames: ['stream'], registers: [registry] });
  const pushes = new Counter({ name: 'weft_xds_pushes_total', help: 'Discovery responses sent, by resource type', labelNames: ['type'], registers: [registry] });
  const pushBytes = new Histogram({
    name: 'weft_xds_push_size_bytes',
    help: 'Size of each discovery response, by resource type and stream type',
    labelNames: ['type', 'stream'],
    buckets: [256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304],
    registers: [registry],
  });
  const nacks = new Counter({ name: 'weft_xds_nacks_total', help: 'Responses rejected by proxies, by resource type', labelNames: ['type'], registers: [registry] });
  const convergence = new Histogram({
    name: 'weft_xds_convergence_seconds',
    help: 'From a change committed to the store to the ACK of every push it caused, per proxy',
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  });
  const snapshotErrors = new Counter({ name: 'weft_xds_snapshot_errors_total', help: 'Snapshots refused (invalid or inconsistent); the last good one stays', labelNames: ['kind'], registers: [registry] });
  const overflows = new Counter({ name: 'weft_xds_stream_queue_overflows_total', help: 'Changes coalesced because a slow stream had not drained the previous push', registers: [registry] });
  const rejected = new Counter({ name: 'weft_xds_rejected_streams_total', help: 'Streams refused (bad node or authentication)', registers: [registry] });

  const hooks: XdsHooks = {
    streamOpened: (s: StreamInfo) => connected.inc({ stream: s.streamType }),
    streamClosed: (s: StreamInfo) => connected.dec({ stream: s.streamType }),
    responseSent: (s: StreamInfo, r: ResponseInfo) => {
      pushes.inc({ type: shortType(r.typeUrl) });
      pushBytes.observe({ type: shortType(r.typeUrl), stream: s.streamType }, r.bytes);
    },
    nacked: (_s, typeUrl) => nacks.inc({ type: shortType(typeUrl) }),
    converged: (_s, _stamp, seconds) => convergence.observe(seconds),
    overflow: () => overflows.inc(),
    rejected: () => rejected.inc(),
  };
  // Pre-create the stream-type series so dashboards see zeros, not gaps.
  connected.set({ stream: 'sotw' }, 0);
  connected.set({ stream: 'delta' }, 0);
  return { registry, hooks, snapshotErrors };
}
