// envoy.extensions.filters.http.fault.v3.HTTPFault -> FaultConfig.

import type { FaultConfig } from '../config.ts';
import { fractionalPercent } from './common.ts';
import type { Fields } from './fields.ts';

export function faultConfig(f: Fields): FaultConfig {
  // The runtime keys (Envoy's FaultSettings: each *_runtime field, or its default key).
  const key = (field: string, fallback: string) => f.str(field) || fallback;
  const out: FaultConfig = {
    runtime: {
      delayPercent: key('delay_percent_runtime', 'fault.http.delay.fixed_delay_percent'),
      delayDuration: key('delay_duration_runtime', 'fault.http.delay.fixed_duration_ms'),
      abortPercent: key('abort_percent_runtime', 'fault.http.abort.abort_percent'),
      abortHttpStatus: key('abort_http_status_runtime', 'fault.http.abort.http_status'),
      maxActiveFaults: key('max_active_faults_runtime', 'fault.http.max_active_faults'),
    },
  };
  // A UInt32Value: its value (proto3 JSON writes the wrapper as the number).
  const max = f.num('max_active_faults');
  if (max !== undefined) out.maxActiveFaults = max;
  // Envoy's FaultSettings: the fault's targets (fault_filter.cc matchesTargetUpstreamCluster, matchesDownstreamNodes).
  const upstreamCluster = f.str('upstream_cluster');
  if (upstreamCluster) out.upstreamCluster = upstreamCluster;
  const nodes = f.strList('downstream_nodes');
  if (nodes.length > 0) out.downstreamNodes = new Set(nodes);
  const delay = f.obj('delay');
  if (delay) {
    const ms = delay.durationMs('fixed_delay');
    const fraction = fractionalPercent(delay.obj('percentage')) ?? 0;
    delay.done();
    if (ms === undefined) delay.fail('fixed_delay', 'required (header_delay is not supported)');
    else out.delay = { ms, fraction };
  }
  const abort = f.obj('abort');
  if (abort) {
    const status = abort.num('http_status');
    const fraction = fractionalPercent(abort.obj('percentage')) ?? 0;
    abort.done();
    if (status === undefined) abort.fail('http_status', 'required (grpc_status and header_abort are not supported)');
    else if (status < 200 || status >= 600) abort.fail('http_status', 'must be in [200, 600)');
    else out.abort = { status, fraction };
  }
  f.done();
  return out;
}
