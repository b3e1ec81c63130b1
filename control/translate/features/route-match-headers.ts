// Header match: exact / prefix / regex / present, optionally inverted.

import { registerRouteMatchFeature } from '../registry.ts';
import type { Json } from '../envoy-json.ts';
import { valueMatcher } from './string-match.ts';

registerRouteMatchFeature('headers', (envoyMatch, match) => {
  if (!match.headers?.length) return;
  const headers = (envoyMatch.headers as unknown[] | undefined) ?? [];
  for (const header of match.headers) {
    const matcher: Json = { name: header.name.toLowerCase(), ...valueMatcher(header.match) };
    if (header.invert) matcher.invert_match = true;
    headers.push(matcher);
  }
  envoyMatch.headers = headers;
});
