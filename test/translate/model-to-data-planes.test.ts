// What the model accepts must run on both data planes: every value an
// enumerated field of a manifest offers, once validated and translated,
// passes Envoy's codec and the weft sidecar's fidelity contract. A value
// either data plane refuses would be a 201 from the API followed by a NACK
// of the whole route configuration on every caller.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { validateRoute } from '../../control/model/route.ts';
import { RETRY_ON } from '../../control/model/route-actions.ts';
import { translateProxy } from '../../control/translate/index.ts';
import { validateResource } from '../../control/envoy/index.ts';
import { accept } from '../../sidecar/fidelity.ts';
import { buildCase } from '../golden/load-case.ts';

const ROUTE_TYPE = 'type.googleapis.com/envoy.config.route.v3.RouteConfiguration';

function routeConfigFor(rule: Record<string, unknown>): Record<string, unknown> {
  const validated = validateRoute({ name: 'orders', service: 'orders', rules: [{ destinations: [{ service: 'orders' }], ...rule }] });
  assert.ok(validated.ok, JSON.stringify(validated));
  const c = buildCase({
    model: { services: [{ name: 'web', ports: [{ port: 8080, protocol: 'http' }] }, { name: 'orders', ports: [{ port: 9080, protocol: 'http' }] }] },
    proxy: { service: 'web' },
  });
  c.model.routes = [validated.value];
  const out = translateProxy(c.model, c.proxy, c.options);
  assert.deepEqual(out.errors, []);
  return out.routes.find((r) => r.name === 'outbound')!.value;
}

test('every retryOn condition the model accepts passes the Envoy codec and the weft sidecar', () => {
  for (const condition of RETRY_ON) {
    const config = routeConfigFor({
      retries: { attempts: 2, retryOn: [condition], ...(condition === 'retriable-status-codes' ? { retriableStatusCodes: [503] } : {}) },
    });
    assert.deepEqual(validateResource(ROUTE_TYPE, config), [], `${condition}: Envoy codec`);
    const verdict = accept('route', config);
    assert.deepEqual(verdict.ok ? [] : verdict.errors, [], `${condition}: NACKed by the weft sidecar`);
  }
});
