// A method a path does not take is 405 Method Not Allowed with an `Allow`
// header naming the methods it does take (RFC 9110 §15.5.6), in the API's
// error shape; only a path no route has is 404.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startApi } from './harness.ts';

const allowOf = (headers: Record<string, unknown>) => String(headers.allow ?? '').split(',').map((m) => m.trim()).filter(Boolean);

test('a method an existing /api/v1 path does not take is 405 with Allow listing the ones it does', async (t) => {
  const h = await startApi();
  t.after(() => h.close());
  const cases: Array<[string, string, string[]]> = [
    ['PATCH', '/api/v1/services/orders', ['GET', 'HEAD', 'PUT', 'DELETE']],
    ['PUT', '/api/v1/services', ['GET', 'HEAD', 'POST']],
    ['DELETE', '/api/v1/services?namespace=shop', ['GET', 'HEAD', 'POST']],
    ['GET', '/api/v1/apply', ['POST']],
    ['PATCH', '/api/v1/services/orders/instances/abc/heartbeat', ['PUT']],
    ['POST', '/api/v1/revisions/3', ['GET', 'HEAD']],
  ];
  for (const [method, url, allow] of cases) {
    const res = await h.call(method as 'PATCH', url);
    assert.equal(res.status, 405, `${method} ${url}`);
    assert.deepEqual(allowOf(res.headers), allow, `${method} ${url}: Allow`);
    assert.deepEqual(Object.keys(res.json.error).sort(), ['code', 'details', 'message']);
    assert.equal(res.json.error.code, 'METHOD_NOT_ALLOWED');
    assert.equal(res.json.error.message, `method ${method} is not allowed on ${url.split('?')[0]}: it takes ${allow.join(', ')}`);
    // every method Allow names is one the path really answers (not 404 or 405)
    for (const m of allow.filter((a) => a !== 'HEAD')) {
      const answer = await h.call(m as 'GET', url, m === 'GET' ? undefined : {});
      assert.notEqual(answer.status, 405, `${m} ${url}`);
      assert.doesNotMatch(answer.json?.error?.message ?? '', /^no route/, `${m} ${url} reaches a route`);
    }
  }
});

test('the 405 comes after the token, and a 405 changes nothing', async (t) => {
  const h = await startApi();
  t.after(() => h.close());
  const anonymous = await h.call('PATCH', '/api/v1/services', undefined, null);
  assert.equal(anonymous.status, 401, 'no token learns nothing about which methods a path takes');
  assert.equal(anonymous.headers.allow, undefined);
  const before = h.store.revision();
  assert.equal((await h.call('PATCH', '/api/v1/services/orders', { name: 'orders', ports: [{ port: 80, protocol: 'http' }] })).status, 405);
  assert.equal(h.store.revision(), before);
});

test('outside /api/v1 too: POST /healthz is 405 (Allow: GET, HEAD), an unknown path is still 404', async (t) => {
  const h = await startApi();
  t.after(() => h.close());
  const health = await h.app.inject({ method: 'POST', url: '/healthz', payload: {} });
  assert.equal(health.statusCode, 405);
  assert.equal(health.headers.allow, 'GET, HEAD');
  assert.equal(health.json().error.code, 'METHOD_NOT_ALLOWED');
  const wasm = await h.app.inject({ method: 'DELETE', url: `/wasm/${'0'.repeat(64)}.wasm` });
  assert.equal(wasm.statusCode, 405);
  assert.equal(wasm.headers.allow, 'GET, HEAD');
  for (const [method, url] of [['PATCH', '/nope'], ['GET', '/api/v1/nothing-here'], ['PATCH', '/api/v1/services/orders/extra']] as const) {
    const res = url.startsWith('/api') ? await h.call(method, url) : await h.app.inject({ method, url }).then((r) => ({ status: r.statusCode, json: r.json(), headers: r.headers }));
    assert.equal(res.status, 404, `${method} ${url}`);
    assert.equal(res.json.error.code, 'NOT_FOUND');
    assert.equal(res.headers.allow, undefined);
  }
});
