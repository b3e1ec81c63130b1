// Every translation feature, imported once for its registration. Order here
// is the order features run within a stage (it only matters where two touch
// the same field, which none do).

import './cluster-connect-timeout.ts';
import './cluster-circuit-breakers.ts';
import './cluster-outlier-detection.ts';
import './cluster-health-check.ts';
import './cluster-load-balancer.ts';
import './cluster-http2.ts';
import './cluster-idle-timeout.ts';
import './cluster-mtls.ts';

import './route-match-path.ts';
import './route-match-headers.ts';
import './route-match-method.ts';
import './route-match-query.ts';

import './route-destinations.ts';
import './route-timeout.ts';
import './route-retries.ts';
import './route-rewrite.ts';
import './route-headers.ts';
import './route-mirror.ts';
import './route-fault.ts';
import './route-hash-policy.ts';

import './http-filter-health-check.ts';
import './http-filter-wasm.ts';
import './http-filter-rbac.ts';
import './http-filter-fault.ts';
import './http-filter-router.ts';

import './hcm-access-log.ts';
import './hcm-tracing.ts';
import './hcm-websocket.ts';
