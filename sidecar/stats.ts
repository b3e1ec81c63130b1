// The sidecar's metrics, named as Envoy's Prometheus endpoint names them
// (envoy_cluster_*, envoy_http_*, envoy_listener_*) so dashboards and queries
// written for Envoy work against the weft sidecar unchanged.

import { Counter, Gauge, Histogram, Registry } from 'prom-client';

export class SidecarStats {
  readonly registry = new Registry();

  readonly downstreamRq = this.#counter('envoy_http_downstream_rq_total', 'Downstream requests', ['envoy_http_conn_manager_prefix']);
  readonly downstreamRqXx = this.#counter('envoy_http_downstream_rq_xx', 'Downstream responses by class', ['envoy_http_conn_manager_prefix', 'envoy_response_code_class']);
  readonly downstreamRqTime = new Histogram({
    name: 'envoy_http_downstream_rq_time',
    help: 'Downstream request time (ms)',
    labelNames: ['envoy_http_conn_manager_prefix'],
    buckets: [0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000],
    registers: [this.registry],
  });
  readonly downstreamCxActive = this.#gauge('envoy_http_downstream_cx_active', 'Active downstream connections', ['envoy_http_conn_manager_prefix']);
  readonly noRoute = this.#counter('envoy_http_no_route', 'Requests with no matching route', ['envoy_http_conn_manager_prefix']);

  readonly upstreamRq = this.#counter('envoy_cluster_upstream_rq_total', 'Upstream requests', ['envoy_cluster_name']);
  readonly upstreamRqCode = this.#counter('envoy_cluster_upstream_rq', 'Upstream responses by code', ['envoy_cluster_name', 'envoy_response_code']);
  readonly upstreamRqXx = this.#counter('envoy_cluster_upstream_rq_xx', 'Upstream responses by class', ['envoy_cluster_name', 'envoy_response_code_class']);
  readonly upstreamRqTime = new Histogram({
    name: 'envoy_cluster_upstream_rq_time',
    help: 'Upstream request time (ms)',
    labelNames: ['envoy_cluster_name'],
    buckets: [0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000],
    registers: [this.registry],
  });
  readonly upstreamRqTimeout = this.#counter('envoy_cluster_upstream_rq_timeout', 'Upstream requests that timed out', ['envoy_cluster_name']);
  readonly upstreamRqPerTryTimeout = this.#counter('envoy_cluster_upstream_rq_per_try_timeout', 'Upstream attempts that hit the per-try timeout', ['envoy_cluster_name']);
  readonly upstreamRqRetry = this.#counter('envoy_cluster_upstream_rq_retry', 'Upstream request retries', ['envoy_cluster_name']);
  readonly upstreamRqRetrySuccess = this.#counter('envoy_cluster_upstream_rq_retry_success', 'Retries that succeeded', ['envoy_cluster_name']);
  readonly upstreamRqRetryOverflow = this.#counter('envoy_cluster_upstream_rq_retry_overflow', 'Retries not attempted: circuit breaker', ['envoy_cluster_name']);
  readonly upstreamRqPendingOverflow = this.#counter('envoy_cluster_upstream_rq_pending_overflow', 'Requests failed by the circuit breakers', ['envoy_cluster_name']);
  readonly upstreamRqPendingActive = this.#gauge('envoy_cluster_upstream_rq_pending_active', 'Requests waiting for a connection', ['envoy_cluster_name']);
  readonly upstreamRqActive = this.#gauge('envoy_cluster_upstream_rq_active', 'Active upstream requests', ['envoy_cluster_name']);
  readonly upstreamCxConnectFail = this.#counter('envoy_cluster_upstream_cx_connect_fail', 'Upstream connection failures', ['envoy_cluster_name']);
  readonly noHealthyUpstream = this.#counter('envoy_cluster_upstream_cx_none_healthy', 'Requests with no healthy host', ['envoy_cluster_name']);
  readonly membershipHealthy = this.#gauge('envoy_cluster_membership_healthy', 'Hosts that may take traffic', ['envoy_cluster_name']);
  readonly membershipTotal = this.#gauge('envoy_cluster_membership_total', 'Hosts in the cluster', ['envoy_cluster_name']);
  readonly ejectionsActive = this.#gauge('envoy_cluster_outlier_detection_ejections_active', 'Hosts currently ejected', ['envoy_cluster_name']);
  readonly ejectionsEnforced = this.#counter('envoy_cluster_outlier_detection_ejections_enforced_total', 'Ejections enforced', ['envoy_cluster_name']);
  readonly ejectionsConsecutive5xx = this.#counter('envoy_cluster_outlier_detection_ejections_enforced_consecutive_5xx', 'Ejections for consecutive 5xx', ['envoy_cluster_name']);
  readonly healthCheckSuccess = this.#counter('envoy_cluster_health_check_success', 'Passed active health checks', ['envoy_cluster_name']);
  readonly healthCheckFailure = this.#counter('envoy_cluster_health_check_failure', 'Failed active health checks', ['envoy_cluster_name']);

  readonly xdsUpdateSuccess = this.#counter('envoy_control_plane_update_success', 'xDS responses applied and ACKed', ['type']);
  readonly xdsUpdateRejected = this.#counter('envoy_control_plane_update_rejected', 'xDS responses NACKed', ['type']);
  readonly xdsConnected = this.#gauge('envoy_control_plane_connected_state', '1 while the ADS stream is up', []);
  readonly listenersActive = this.#gauge('envoy_listener_manager_total_listeners_active', 'Listeners bound', []);
  readonly wasmFailures = this.#counter('envoy_wasm_filter_failures', 'Wasm filter traps and load failures', ['filter']);

  #counter<L extends string>(name: string, help: string, labelNames: L[]): Counter<L> {
    return new Counter({ name, help, labelNames, registers: [this.registry] });
  }

  #gauge<L extends string>(name: string, help: string, labelNames: L[]): Gauge<L> {
    return new Gauge({ name, help, labelNames, registers: [this.registry] });
  }
}
