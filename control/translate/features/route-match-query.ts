// Query parameter match: exact / prefix / regex / present.

import { registerRouteMatchFeature } from '../registry.ts';
import { valueMatcher } from './string-match.ts';

registerRouteMatchFeature('query-params', (envoyMatch, match) => {
  if (!match.queryParams?.length) return;
  envoyMatch.query_parameters = match.queryParams.map((q) => ({ name: q.name, ...valueMatcher(q.match) }));
});
