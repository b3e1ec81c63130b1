// Retry policy: conditions, attempts, per-try timeout, retriable status codes.

import { DEFAULT_ROUTE_RETRY } from '../../model/route-actions.ts';
import { registerRouteActionFeature } from '../registry.ts';
import { duration, type Json } from '../envoy-json.ts';

/** Retries go to another host where there is one (Envoy's previous_hosts predicate, as Istio sets it). */
const AVOID_PREVIOUS_HOSTS = {
  retry_host_predicate: [{ name: 'envoy.retry_host_predicates.previous_hosts', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate' } }],
  host_selection_retry_max_attempts: 5,
};

registerRouteActionFeature('retries', (envoyRoute, target, ctx) => {
  const retries = target.rule.retries;
  if (!retries) {
    // Proxyless gRPC clients retry refused streams and failed connections themselves (transparent retry).
    if (target.proxyless) return;
    (envoyRoute.route as Json).retry_policy = { retry_on: DEFAULT_ROUTE_RETRY.retryOn.join(','), num_retries: DEFAULT_ROUTE_RETRY.attempts, ...AVOID_PREVIOUS_HOSTS };
    return;
  }
  // attempts 0: no retry at all, the default's included.
  if (retries.attempts === 0) return;
  const policy: Json = { retry_on: retries.retryOn.join(','), num_retries: retries.attempts };
  if (retries.perTryTimeoutMs !== undefined) policy.per_try_timeout = duration(retries.perTryTimeoutMs);
  if (retries.retriableStatusCodes?.length) {
    policy.retriable_status_codes = retries.retriableStatusCodes;
    // Envoy ignores the codes unless retry_on names them.
    if (!retries.retryOn.includes('retriable-status-codes')) {
      ctx.errors.push({
        path: `${target.path}.retries.retryOn`,
        message: 'retriableStatusCodes are set but retryOn lacks "retriable-status-codes", so they would never apply',
      });
    }
  }
  (envoyRoute.route as Json).retry_policy = policy;
});
