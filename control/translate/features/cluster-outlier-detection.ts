// Passive health checking: eject an endpoint after consecutive 5xx. On for
// every outbound cluster (Envoy's defaults unless the policy says otherwise)
// so a crashed instance stops receiving traffic before its TTL lapses.
//
// always_eject_one_host: since Envoy 1.27, max_ejection_percent counts the
// host about to be ejected, so with the default 10% a service of fewer than
// ten instances would never lose a bad one (2 instances: 50% > 10%). One host
// may always go; the percentage still caps the rest. A policy that sets
// maxEjectionPercent: 0 turns ejection off, and gets no exception.
// Success-rate ejection stays Envoy's default (on, from 5 instances with 100
// requests each per interval), and its three thresholds are written out:
// @grpc/grpc-js-xds (1.14) reads an unset success_rate_minimum_hosts as
// undefined rather than 5, and then every proxyless client crashed at its
// first outlier interval (10 s) with "Reduce of empty array".

import { registerClusterFeature } from '../registry.ts';
import { duration } from '../envoy-json.ts';
import type { OutlierDetection } from '../../model/types.ts';

export const DEFAULT_OUTLIER_DETECTION: OutlierDetection = {
  consecutive5xx: 5,
  intervalMs: 10_000,
  baseEjectionTimeMs: 30_000,
  maxEjectionPercent: 10,
};

registerClusterFeature('outlier-detection', (cluster, target) => {
  const od = target.policy?.outlierDetection ?? DEFAULT_OUTLIER_DETECTION;
  cluster.outlier_detection = {
    consecutive_5xx: od.consecutive5xx,
    interval: duration(od.intervalMs),
    base_ejection_time: duration(od.baseEjectionTimeMs),
    max_ejection_percent: od.maxEjectionPercent,
    success_rate_minimum_hosts: 5,
    success_rate_request_volume: 100,
    success_rate_stdev_factor: 1900,
    ...(od.maxEjectionPercent > 0 ? { always_eject_one_host: true } : {}),
  };
});
