// The router: last in every HTTP connection manager (filter-order.ts).

import { registerHttpFilterFeature } from '../registry.ts';
import { TYPE } from '../envoy-json.ts';

registerHttpFilterFeature('router', {
  position: 'router',
  filters: () => [{ name: 'envoy.filters.http.router', typed_config: { '@type': TYPE.router } }],
});
