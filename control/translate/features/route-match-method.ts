// Method match: Envoy has no method field; the :method pseudo-header is
// matched like any header (appended after the operator's header matchers).

import { registerRouteMatchFeature } from '../registry.ts';

registerRouteMatchFeature('method', (envoyMatch, match) => {
  if (!match.method) return;
  const headers = (envoyMatch.headers as unknown[] | undefined) ?? [];
  headers.push({ name: ':method', string_match: { exact: match.method } });
  envoyMatch.headers = headers;
});
