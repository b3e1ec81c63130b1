// Active HTTP health checks, when the DestinationPolicy or the Service
// declares one (the policy wins: it is the operator's word on how callers
// treat the service).
//
// no_traffic_interval is the interval too: Envoy checks a cluster that has
// not carried a request yet only every 60 s by default, and weft's health
// checks are there to take a dead instance out before traffic finds it.

import { registerClusterFeature } from '../registry.ts';
import { duration, type Json } from '../envoy-json.ts';
import { isHttp2Port } from '../context.ts';
import { serviceHost } from '../names.ts';

registerClusterFeature('health-check', (cluster, target) => {
  const check = target.policy?.healthCheck ?? target.service.healthCheck;
  if (!check || target.port.protocol === 'tcp') return;
  // The check's Host: the service's, which the callee's inbound proxy accepts. Left unset, Envoy (and the
  // weft sidecar) would send the cluster name, "outbound|8080||orders.default", which is no valid authority:
  // the inbound proxy answers it 400 and every instance would fail its checks.
  const http: Json = { path: check.path, host: serviceHost(target.service.name, target.service.namespace) };
  if (check.expectedStatuses?.length) {
    http.expected_statuses = check.expectedStatuses.map((r) => ({ start: r.start, end: r.end }));
  }
  // An h2-only server (gRPC) would refuse an HTTP/1.1 probe.
  if (isHttp2Port(target.port)) http.codec_client_type = 'HTTP2';
  cluster.health_checks = [{
    timeout: duration(check.timeoutMs),
    interval: duration(check.intervalMs),
    no_traffic_interval: duration(check.intervalMs),
    healthy_threshold: check.healthyThreshold,
    unhealthy_threshold: check.unhealthyThreshold,
    http_health_check: http,
  }];
});
