// Admin GET /tap: the requests going through a real sidecar, live, as JSON
// lines with their headers as they came, as sent upstream and back
// (credentials redacted), filtered, ending after
// ?max; bad parameters named; a bounded number of sessions.

import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { TestMesh, get, instance, service, startApp, tap, type Tapped } from './harness.ts';

const mesh = await TestMesh.start();
after(() => mesh.close());



const header = (pairs: [string, string][], name: string) => pairs.find(([k]) => k === name)?.[1];

test('GET /tap streams each matching request with its headers, credentials redacted, and ends after max', { timeout: 30_000 }, async () => {
  const app = await startApp('orders');
  mesh.track(() => app.close());
  mesh.model.update({ services: [service('orders', 9000), service('caller', 8000)], instances: [instance('orders', app.port)] });
  const sc = await mesh.sidecar('caller', 8000);

  const watching = await tap(sc.adminPort, '?authority=orders&max=2');
  assert.equal(watching.status, 200);
  const errors = await tap(sc.adminPort, '?status=4xx');
  assert.equal((await get(sc.outboundPort, 'nowhere', '/x')).status, 404, 'not the authority watched');
  const secret = { authorization: 'Bearer hunter2', cookie: 'session=abc', 'x-api-key': 'k-123', 'x-custom': 'visible' };
  assert.equal((await get(sc.outboundPort, 'orders', '/a?q=1', { headers: secret })).status, 200);
  assert.equal((await get(sc.outboundPort, 'orders', '/b')).status, 200);
  await watching.ended; // max=2: the sidecar ends the stream itself

  assert.deepEqual(watching.lines.map((l) => [l.listener, l.method, l.authority, l.path, l.response_code, l.response_flags]), [
    ['outbound', 'GET', 'orders', '/a?q=1', 200, '-'],
    ['outbound', 'GET', 'orders', '/b', 200, '-'],
  ]);
  const first = watching.lines[0]!;
  assert.equal(first.upstream_cluster, 'outbound|9000||orders.default');
  assert.equal(first.upstream_host, `127.0.0.1:${app.port}`);
  assert.match(first.start_time, /^\d{4}-\d\d-\d\dT/);
  for (const name of ['authorization', 'cookie', 'x-api-key']) assert.equal(header(first.request_headers, name), '[redacted]', name);
  assert.equal(header(first.request_headers, 'x-custom'), 'visible');
  assert.equal(header(first.response_headers, ':status'), '200');
  assert.ok(header(first.response_headers, 'x-envoy-upstream-service-time') !== undefined, JSON.stringify(first.response_headers));
  assert.doesNotMatch(JSON.stringify(watching.lines), /hunter2|session=abc|k-123/);
  // what went upstream: the router's own headers added (a request that came without them), credentials still redacted
  const up = first.upstream_request_headers as [string, string][];
  assert.deepEqual([header(up, ':method'), header(up, ':path'), header(up, ':authority')], ['GET', '/a?q=1', 'orders']);
  assert.equal(header(first.request_headers, 'x-envoy-expected-rq-timeout-ms'), undefined);
  assert.match(header(up, 'x-envoy-expected-rq-timeout-ms') ?? '', /^\d+$/);
  assert.equal(header(up, 'authorization'), '[redacted]');
  assert.equal(header(up, 'x-custom'), 'visible');

  // the other session saw only the 404 (the outbound route table's not_found answer), and is still open
  assert.deepEqual(errors.lines.map((l) => [l.authority, l.response_code, l.response_flags]), [['nowhere', 404, '-']]);
  assert.equal(errors.lines[0]!.upstream_request_headers, undefined, 'answered by the sidecar itself: nothing went upstream');
  errors.close();
});

test('GET /tap: bad parameters are named, other methods are refused, and sessions are bounded', { timeout: 30_000 }, async () => {
  const sc = await mesh.sidecar('caller', 8000);
  const body = async (q: string, method = 'GET') => {
    const res = await fetch(`http://127.0.0.1:${sc.adminPort}/tap${q}`, { method });
    return [res.status, await res.text()] as const;
  };
  assert.deepEqual(await body('?status=5'), [400, 'status: must be a code (503) or a class (5xx), got "5"\n']);
  assert.deepEqual(await body('?max=0'), [400, 'max: must be a whole number, 1 or more, got "0"\n']);
  assert.deepEqual(await body('?path_prefix=api'), [400, 'path_prefix: must start with "/", got "api"\n']);
  assert.match((await body('?paths=/'))[1], /^paths: unknown parameter \(it takes listener, method, authority, path_prefix, status, max\)/);
  assert.equal((await body('', 'POST'))[0], 405);

  const open = await Promise.all(Array.from({ length: 8 }, () => tap(sc.adminPort, '')));
  assert.ok(open.every((t) => t.status === 200));
  const ninth = await tap(sc.adminPort, '');
  assert.equal(ninth.status, 503);
  await ninth.ended;
  open[0]!.close();
  // a closed session frees its slot
  let again: Tapped | undefined;
  for (let i = 0; i < 50 && again?.status !== 200; i++) {
    again = await tap(sc.adminPort, '');
    if (again.status !== 200) await new Promise((r) => setTimeout(r, 50));
  }
  assert.equal(again!.status, 200);
  for (const t of [...open, again!]) t.close();
});
