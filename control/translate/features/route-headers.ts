// Request and response header add / remove, on the route (not the action)
// so they also apply to direct responses.

import type { HeaderMutation } from '../../model/types.ts';
import { registerRouteActionFeature } from '../registry.ts';
import type { Json } from '../envoy-json.ts';

function headerOptions(mutation: HeaderMutation): Json[] {
  return (mutation.add ?? []).map((h) => ({
    header: { key: h.name, value: h.value },
    append_action: h.append ? 'APPEND_IF_EXISTS_OR_ADD' : 'OVERWRITE_IF_EXISTS_OR_ADD',
  }));
}

registerRouteActionFeature('header-mutation', (envoyRoute, target) => {
  const { requestHeaders, responseHeaders } = target.rule;
  if (requestHeaders?.add?.length) envoyRoute.request_headers_to_add = headerOptions(requestHeaders);
  if (requestHeaders?.remove?.length) envoyRoute.request_headers_to_remove = requestHeaders.remove;
  if (responseHeaders?.add?.length) envoyRoute.response_headers_to_add = headerOptions(responseHeaders);
  if (responseHeaders?.remove?.length) envoyRoute.response_headers_to_remove = responseHeaders.remove;
});
