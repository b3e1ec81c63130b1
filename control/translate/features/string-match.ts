// The model's StringMatch as Envoy's type.matcher.v3.StringMatcher, shared by
// the header, method and query parameter matchers.

import type { StringMatch } from '../../model/types.ts';
import type { Json } from '../envoy-json.ts';

export function stringMatcher(match: StringMatch): Json {
  if ('exact' in match) return { exact: match.exact };
  if ('prefix' in match) return { prefix: match.prefix };
  return { safe_regex: { regex: match.regex } };
}

/** HeaderMatcher / QueryParameterMatcher body: a string match, or presence. */
export function valueMatcher(match: StringMatch | { present: true }): Json {
  return 'present' in match ? { present_match: true } : { string_match: stringMatcher(match) };
}
