// Retry policy: conditions, attempts, per-try timeout, retriable status codes.

import { registerRouteActionFeature } from '../registry.ts';
import { duration, type Json } from '../envoy-json.ts';

registerRouteActionFeature('retries', (envoyRoute, target, ctx) => {
  const retries = target.rule.retries;
  if (!retries) return;
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
