// Admin /clusters as Envoy writes it: one `cluster::key::value` line per
// fact (what an operator greps for first: `health_flags`), or, with
// ?format=json, Envoy's ClusterStatuses shape. What the sidecar does not
// track is left out rather than printed as zeros: connection stats (cx_total, cx_active),
// locality beyond the zone, local-origin success rates (the sidecar does not
// split them; always -1 in Envoy without the split).

import type { Cluster, Host } from './clusters.ts';
import type { ClusterManager } from './clusters.ts';

/** Envoy's health flags for a host, in Envoy's order; "healthy" when none is set. */
export function healthFlags(c: Cluster, h: Host): string {
  let flags = '';
  if (!h.activeHealthy) flags += '/failed_active_hc';
  if (c.isEjected(h)) flags += '/failed_outlier_check';
  if (h.edsHealth === 'UNHEALTHY' || h.edsHealth === 'TIMEOUT') flags += '/failed_eds_health';
  if (h.activeDegraded) flags += '/degraded_active_hc';
  if (h.edsHealth === 'DEGRADED') flags += '/degraded_eds_health';
  if (h.pendingActiveHc) flags += '/pending_active_hc';
  if (h.edsHealth === 'DRAINING') flags += '/eds_status_draining';
  return flags || 'healthy';
}

/**
 * HostHealthStatus.eds_health_status as Envoy's admin sets it: from the host's EDS health flags, not the status EDS
 * sent. UNHEALTHY and TIMEOUT fail EDS health (UNHEALTHY), DRAINING is its own, and a host without either flag is
 * HEALTHY, UNKNOWN included (istioctl proxy-config endpoints prints this column).
 */
function edsHealthStatus(h: Host): 'HEALTHY' | 'UNHEALTHY' | 'DEGRADED' | 'DRAINING' {
  switch (h.edsHealth) {
    case 'DRAINING':
    case 'DEGRADED':
      return h.edsHealth;
    case 'UNHEALTHY':
    case 'TIMEOUT':
      return 'UNHEALTHY';
    default:
      return 'HEALTHY';
  }
}

function hostStats(h: Host): [string, number, 'COUNTER' | 'GAUGE'][] {
  const c = h.counters;
  return [
    ['cx_connect_fail', c.cxConnectFail, 'COUNTER'],
    ['rq_active', h.activeRequests, 'GAUGE'],
    ['rq_error', c.rqError, 'COUNTER'],
    ['rq_success', c.rqSuccess, 'COUNTER'],
    ['rq_timeout', c.rqTimeout, 'COUNTER'],
    ['rq_total', c.rqTotal, 'COUNTER'],
  ];
}

/**
 * A priority's circuit breaker limits (0 DEFAULT, 1 HIGH), as Envoy's addCircuitBreakerSettingsAs{Text,Json}: each
 * resource's max() now, so the circuit_breakers.<cluster>.<priority>.* runtime keys and a retry budget show.
 */
function thresholds(c: Cluster, priority: 0 | 1): [string, number][] {
  const cb = c.breakers[priority];
  return [
    ['max_connections', cb.maxConnections()],
    ['max_pending_requests', cb.maxPendingRequests()],
    ['max_requests', cb.maxRequests()],
    ['max_retries', cb.maxRetries()],
  ];
}

export function clustersText(cm: ClusterManager): string {
  let out = '';
  // As Envoy's ClustersHandler: active_clusters_ only, so a cluster still warming (at start too) is not listed.
  for (const c of cm.active()) {
    const n = c.name;
    out += `${n}::observability_name::${c.config.altStatName ?? n}\n`;
    if (c.config.outlierDetection) {
      const sr = c.outlierSuccessRate();
      out += `${n}::outlier::success_rate_average::${sr ? sr.mean : -1}\n`;
      out += `${n}::outlier::success_rate_ejection_threshold::${sr ? sr.threshold : -1}\n`;
      out += `${n}::outlier::local_origin_success_rate_average::-1\n`;
      out += `${n}::outlier::local_origin_success_rate_ejection_threshold::-1\n`;
    }
    for (const [k, v] of thresholds(c, 0)) out += `${n}::default_priority::${k}::${v}\n`;
    for (const [k, v] of thresholds(c, 1)) out += `${n}::high_priority::${k}::${v}\n`;
    out += `${n}::added_via_api::true\n`;
    if (c.config.edsServiceName) out += `${n}::eds_service_name::${c.config.edsServiceName}\n`;
    for (const h of c.hosts) {
      const p = `${n}::${h.key}::`;
      for (const [k, v] of hostStats(h)) out += `${p}${k}::${v}\n`;
      out += `${p}hostname::${h.hostname ?? ''}\n`;
      out += `${p}health_flags::${healthFlags(c, h)}\n`;
      out += `${p}weight::${h.weight}\n`;
      out += `${p}region::\n`;
      out += `${p}zone::${h.zone ?? ''}\n`;
      out += `${p}sub_zone::\n`;
      out += `${p}canary::false\n`;
      out += `${p}priority::${h.priority}\n`;
      out += `${p}success_rate::${c.hostSuccessRate(h)}\n`;
      out += `${p}local_origin_success_rate::-1\n`;
    }
  }
  return out;
}

export function clustersJson(cm: ClusterManager): unknown {
  return {
    cluster_statuses: [...cm.active()].map((c) => {
      const sr = c.outlierSuccessRate();
      return {
        name: c.name,
        added_via_api: true,
        observability_name: c.config.altStatName ?? c.name,
        ...(c.config.edsServiceName ? { eds_service_name: c.config.edsServiceName } : {}),
        ...(sr ? { success_rate_ejection_threshold: { value: sr.threshold } } : {}),
        circuit_breakers: { thresholds: [{ priority: 'DEFAULT', ...Object.fromEntries(thresholds(c, 0)) }, { priority: 'HIGH', ...Object.fromEntries(thresholds(c, 1)) }] },
        host_statuses: c.hosts.map((h) => {
          const rate = c.hostSuccessRate(h);
          return {
            address: { socket_address: { address: h.address, port_value: h.port } },
            ...(h.hostname ? { hostname: h.hostname } : {}),
            stats: hostStats(h).map(([name, value, type]) => ({ ...(type === 'GAUGE' ? { type } : {}), name, value: String(value) })),
            health_status: {
              eds_health_status: edsHealthStatus(h),
              ...(h.activeHealthy ? {} : { failed_active_health_check: true }),
              ...(c.isEjected(h) ? { failed_outlier_check: true } : {}),
              // Envoy's DEGRADED_ACTIVE_HC: its last passing check answered x-envoy-degraded.
              ...(h.activeDegraded ? { failed_active_degraded_check: true } : {}),
              // Envoy's PENDING_ACTIVE_HC (ignore_new_hosts_until_first_hc): not yet checked, left out.
              ...(h.pendingActiveHc ? { pending_active_hc: true } : {}),
            },
            weight: h.weight,
            priority: h.priority,
            locality: h.zone ? { zone: h.zone } : {},
            ...(rate >= 0 ? { success_rate: { value: rate } } : {}),
          };
        }),
      };
    }),
  };
}
