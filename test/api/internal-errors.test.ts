// A request that fails inside the control plane answers 500 INTERNAL without
// the cause (it could name files or internals), and the operator's log gets
// the cause with its stack. Before, weft control logged nothing: a 500 left no
// trace anywhere to find its cause by.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildApp } from '../../control/api/app.ts';
import type { ApiDeps } from '../../control/api/deps.ts';
import { startApi } from './harness.ts';

test('an internal error is a 500 saying only that, and its cause and stack go to the log', async (t) => {
  const h = await startApi();
  t.after(() => h.close());
  const registry: ApiDeps['registry'] = Object.create(h.deps.registry);
  registry.instances = () => {
    throw new Error('registry index damaged at /var/lib/weft/secret-path');
  };
  const lines: string[] = [];
  const app = await buildApp({ ...h.deps, registry }, { log: (line) => lines.push(line) });
  t.after(() => app.close());
  const res = await app.inject({ method: 'GET', url: '/api/v1/instances?token=x', headers: { authorization: `Bearer ${h.admin}` } });
  assert.equal(res.statusCode, 500);
  assert.deepEqual(res.json(), { error: { code: 'INTERNAL', message: 'internal error: the control plane logged the cause', details: [] } });
  assert.equal(lines.length, 1);
  assert.match(lines[0]!, /^api: GET \/api\/v1\/instances failed with an internal error: Error: registry index damaged at \/var\/lib\/weft\/secret-path\n\s+at /);
  assert.ok(!lines[0]!.includes(h.admin), 'the token is not logged');
  assert.ok(!lines[0]!.includes('token=x'), 'nor the query');
});
