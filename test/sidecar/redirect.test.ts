// A route's redirect as Envoy builds its location (RouteEntryImplBase::newUri):
// the request's scheme and authority unless host_redirect says otherwise, and
// path_redirect keeping the request's query unless it has one of its own.

import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { TestMesh, get, instance, service, startApp, withFields } from './harness.ts';

const closers: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of closers.reverse()) await c();
});

test('path_redirect keeps the query string unless it carries its own, as Envoy', { timeout: 30_000 }, async () => {
  const app = await startApp('app');
  closers.push(() => app.close());
  const routes = [
    { name: 'own-query', match: { prefix: '/search' }, redirect: { path_redirect: '/find?q=all', response_code: 'FOUND' } },
    { name: 'moved', match: { prefix: '/old' }, redirect: { path_redirect: '/new' } },
    { name: 'elsewhere', match: { prefix: '/' }, redirect: { host_redirect: 'www.example.com' } },
  ];
  const mesh = await TestMesh.start({ translator: withFields({}, {}, undefined, { routes }) });
  closers.push(() => mesh.close());
  mesh.model.update({ services: [service('caller', 8000), service('app', 7000)], instances: [instance('app', app.port)], routes: [] });
  const port = (await mesh.sidecar('caller', 8000)).outboundPort;

  const moved = await get(port, 'app', '/old/page?id=7&x=y');
  assert.equal(moved.status, 301);
  assert.equal(moved.headers.location, 'http://app/new?id=7&x=y');
  assert.equal((await get(port, 'app', '/old')).headers.location, 'http://app/new');
  const own = await get(port, 'app', '/search?q=mine');
  assert.equal(own.status, 302);
  assert.equal(own.headers.location, 'http://app/find?q=all', "path_redirect's own query wins");
  assert.equal((await get(port, 'app', '/a/b?c=d')).headers.location, 'http://www.example.com/a/b?c=d');
  assert.equal(app.hits, 0);
});
