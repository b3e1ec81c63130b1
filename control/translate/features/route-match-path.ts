// Path match: exact -> path, prefix -> prefix, regex -> safe_regex (RE2).

import { registerRouteMatchFeature } from '../registry.ts';

registerRouteMatchFeature('path', (envoyMatch, match) => {
  const path = match.path;
  if (!path) return;
  delete envoyMatch.prefix;
  if ('exact' in path) envoyMatch.path = path.exact;
  else if ('prefix' in path) envoyMatch.prefix = path.prefix;
  else envoyMatch.safe_regex = { regex: path.regex };
});
