// envoy.extensions.filters.http.fault.v3.HTTPFault -> FaultConfig.

import type { FaultConfig } from '../config.ts';
import { percentParts } from './common.ts';
import type { Fields } from './fields.ts';
import { headerMatcher } from './route.ts';

/** A oneof member with an empty message (header_abort, header_delay): set, even as {}; it has no fields. */
function emptyMessage(f: Fields, key: string): void {
  const m = f.obj(key);
  m?.done();
}

export function faultConfig(f: Fields): FaultConfig {
  // The runtime keys (Envoy's FaultSettings: each *_runtime field, or its default key).
  const key = (field: string, fallback: string) => f.str(field) || fallback;
  const out: FaultConfig = {
    runtime: {
      delayPercent: key('delay_percent_runtime', 'fault.http.delay.fixed_delay_percent'),
      delayDuration: key('delay_duration_runtime', 'fault.http.delay.fixed_duration_ms'),
      abortPercent: key('abort_percent_runtime', 'fault.http.abort.abort_percent'),
      abortHttpStatus: key('abort_http_status_runtime', 'fault.http.abort.http_status'),
      abortGrpcStatus: key('abort_grpc_status_runtime', 'fault.http.abort.grpc_status'),
      maxActiveFaults: key('max_active_faults_runtime', 'fault.http.max_active_faults'),
      responseRateLimitPercent: key('response_rate_limit_percent_runtime', 'fault.http.rate_limit.response_percent'),
    },
  };
  // A UInt32Value: its value (proto3 JSON writes the wrapper as the number).
  const max = f.num('max_active_faults');
  if (max !== undefined) out.maxActiveFaults = max;
  // Envoy's FaultSettings: the fault's targets (fault_filter.cc matchesTargetUpstreamCluster, matchesDownstreamNodes,
  // and HeaderUtility::matchHeaders over `headers`, the route's header matchers compiled here once).
  const upstreamCluster = f.str('upstream_cluster');
  if (upstreamCluster) out.upstreamCluster = upstreamCluster;
  const nodes = f.strList('downstream_nodes');
  if (nodes.length > 0) out.downstreamNodes = new Set(nodes);
  const headers = f.list('headers').map(headerMatcher);
  if (headers.length > 0) out.headers = headers;
  if (f.bool('disable_downstream_cluster_stats')) out.disableDownstreamClusterStats = true;
  const delay = f.obj('delay');
  if (delay) {
    // FaultDelay's oneof fault_delay_secifier (sic): fixed_delay or header_delay (filters/common/fault/fault_config.cc).
    const set = ['fixed_delay', 'header_delay'].filter((k) => delay.raw(k) != null);
    const percent = percentParts(delay.obj('percentage')) ?? { numerator: 0, scale: 100 };
    const fraction = Math.min(1, percent.numerator / percent.scale);
    let ms: number | undefined;
    if (set.includes('fixed_delay')) ms = delay.durationMs('fixed_delay');
    if (set.includes('header_delay')) emptyMessage(delay, 'header_delay');
    delay.done();
    if (set.length === 0) delay.fail('fixed_delay', 'fixed_delay or header_delay is required');
    else if (set.length > 1) delay.fail('header_delay', 'only one of fixed_delay and header_delay may be set');
    else if (set[0] === 'header_delay') out.delay = { fraction, percent };
    else if (ms !== undefined) out.delay = { ms, fraction, percent };
  }
  const abort = f.obj('abort');
  if (abort) {
    // FaultAbort's oneof error_type: http_status, grpc_status or header_abort.
    const set = ['http_status', 'grpc_status', 'header_abort'].filter((k) => abort.raw(k) != null);
    const percent = percentParts(abort.obj('percentage')) ?? { numerator: 0, scale: 100 };
    const fraction = Math.min(1, percent.numerator / percent.scale);
    const status = set.includes('http_status') ? abort.num('http_status') : undefined;
    const grpcStatus = set.includes('grpc_status') ? abort.num('grpc_status') : undefined;
    if (set.includes('header_abort')) emptyMessage(abort, 'header_abort');
    abort.done();
    if (set.length === 0) abort.fail('http_status', 'one of http_status, grpc_status and header_abort is required');
    else if (set.length > 1) abort.fail(set[1]!, `only one of ${set.join(', ')} may be set`);
    else if (set[0] === 'header_abort') out.abort = { header: true, fraction, percent };
    else if (set[0] === 'grpc_status') {
      if (grpcStatus !== undefined && (!Number.isInteger(grpcStatus) || grpcStatus < 0 || grpcStatus > 0xffff_ffff)) abort.fail('grpc_status', 'must be a uint32');
      else if (grpcStatus !== undefined) out.abort = { grpcStatus, fraction, percent };
    } else if (status !== undefined) {
      if (status < 200 || status >= 600) abort.fail('http_status', 'must be in [200, 600)');
      else out.abort = { status, fraction, percent };
    }
  }
  const rl = f.obj('response_rate_limit');
  if (rl) {
    // FaultRateLimit's oneof limit_type: fixed_limit (limit_kbps >= 1) or header_limit (filters/common/fault/fault_config.cc).
    const set = ['fixed_limit', 'header_limit'].filter((k) => rl.raw(k) != null);
    const percent = percentParts(rl.obj('percentage')) ?? { numerator: 0, scale: 100 };
    const fraction = Math.min(1, percent.numerator / percent.scale);
    let kbps: number | undefined;
    if (set.includes('fixed_limit')) {
      const fixed = rl.obj('fixed_limit')!;
      kbps = fixed.num('limit_kbps');
      fixed.done();
      if (kbps === undefined || !Number.isInteger(kbps) || kbps < 1) {
        fixed.fail('limit_kbps', 'must be an integer of at least 1 (KiB/s)');
        kbps = undefined;
      }
    }
    if (set.includes('header_limit')) emptyMessage(rl, 'header_limit');
    rl.done();
    if (set.length === 0) rl.fail('fixed_limit', 'fixed_limit or header_limit is required');
    else if (set.length > 1) rl.fail('header_limit', 'only one of fixed_limit and header_limit may be set');
    else if (set[0] === 'header_limit') out.responseRateLimit = { fraction, percent };
    else if (kbps !== undefined) out.responseRateLimit = { kbps, fraction, percent };
  }
  f.done();
  return out;
}
