// Warnings (control/api/warnings.ts): configuration every proxy takes that
// will still hurt is said in the answer to the apply, the dry run and the
// diff, and refuses nothing. The ops review applied a 50/50 split to a subset
// with no instance, and retries on a POST-only route: both answered with
// nothing to say, and half the traffic then failed 503 UH.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startApi } from './harness.ts';

const mesh = `apiVersion: weft.dev/v1
kind: Service
metadata: {name: orders}
spec: {ports: [{port: 8080, protocol: http}]}
---
apiVersion: weft.dev/v1
kind: DestinationPolicy
metadata: {name: orders}
spec:
  service: orders
  subsets: [{name: v1, labels: {version: v1}}, {name: v3, labels: {version: v3}}]
`;

const split = (subset: string) => `apiVersion: weft.dev/v1
kind: Route
metadata: {name: orders}
spec:
  service: orders
  rules:
    - match: [{method: POST}]
      retries: {attempts: 3, retryOn: [5xx, connect-failure]}
      destinations: [{service: orders, subset: v1, weight: 1}]
    - destinations: [{service: orders, subset: v1, weight: 50}, {service: orders, subset: ${subset}, weight: 50}]
`;

test('a split to a subset no instance matches, and retries of POST on 5xx, are warned of, naming the field; nothing is refused', async (t) => {
  const h = await startApi();
  t.after(() => h.close());
  assert.equal((await h.call('POST', '/api/v1/apply', mesh)).status, 200);
  assert.equal((await h.call('POST', '/api/v1/services/orders/instances', { address: '127.0.0.1', port: 9001, labels: { version: 'v1' } })).status, 201);

  const diff = await h.call('POST', '/api/v1/diff', split('v3'));
  assert.equal(diff.status, 200, diff.body);
  const warned = (diff.json.warnings ?? []).map((w: { path: string; message: string }) => `${w.path}: ${w.message}`);
  assert.equal(warned.length, 2, warned.join('\n'));
  assert.match(warned[0], /^documents\[0\]\.spec\.rules\[0\]\.retries\.retryOn: retries POST requests on 5xx: the app may already have acted/);
  assert.match(warned[1], /^documents\[0\]\.spec\.rules\[1\]\.destinations\[1\]\.subset: subset "v3" of orders\.default \(version=v3\) matches no healthy instance: its 50% of the rule's traffic gets 503 no healthy upstream \(UH\)/);

  const dry = await h.call('POST', '/api/v1/apply?dryRun=true', split('v3'));
  assert.deepEqual(dry.json.warnings, diff.json.warnings);
  const applied = await h.call('POST', '/api/v1/apply', split('v3'));
  assert.equal(applied.status, 200, 'a warning refuses nothing');
  assert.equal(applied.json.changed, true);
  assert.deepEqual(applied.json.warnings, diff.json.warnings);

  // Once v3 has an instance, and the retried rule retries only before the app saw the request, there is nothing to say.
  assert.equal((await h.call('POST', '/api/v1/services/orders/instances', { address: '127.0.0.1', port: 9003, labels: { version: 'v3' } })).status, 201);
  const fixed = await h.call('POST', '/api/v1/apply', split('v3').replace('[5xx, connect-failure]', '[connect-failure, refused-stream]'));
  assert.equal(fixed.status, 200);
  assert.equal(fixed.json.warnings, undefined, JSON.stringify(fixed.json.warnings));
});
