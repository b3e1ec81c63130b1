// response.code_details on the main request path, as a wasm filter reads it
// in proxy_on_log: Envoy's exact strings (envoy/stream_info/stream_info.h
// ResponseCodeDetailValues; router.cc onResponseTimeout, onPerTryTimeout and
// onUpstreamReset; rbac_filter.cc and filters/common/rbac/utility.cc;
// conn_manager_impl.cc) where the sidecar's response flag alone does not tell
// them apart. Until 2026-11-28 each of these was NOT_FOUND.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import http from 'node:http';
import { after, test } from 'node:test';
import { defaultTranslator } from '../../control/xds/index.ts';
import { TestMesh, eventually, freePort, get, instance, policy, route, service, startApp, moduleServer, tap } from './harness.ts';
import { wat } from '../wasm/wat.ts';

const closers: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of closers.reverse()) await c();
});

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

/** In proxy_on_log: logs "details:", then request.path and response.code_details as they are ("#1" when NOT_FOUND). */
const recorder = () =>
  wat({
    imports: ['proxy_get_property'],
    strings: { tag: 'details:', path: 'request\0path', details: 'response\0code_details' },
    body: (s) => `
  (func $show (param $ptr i32) (param $len i32)
    (local $code i32)
    (local.set $code (call $proxy_get_property (local.get $ptr) (local.get $len) (i32.const 0) (i32.const 4)))
    (if (i32.eqz (local.get $code))
      (then (call $log_returned))
      (else (call $report (local.get $code)))))
  (func (export "proxy_on_log") (param i32)
    (drop (call $proxy_log (i32.const 2) ${s.tag}))
    (call $show ${s.path})
    (call $show ${s.details}))`,
  });

/** The details each path's on_log read, from the sidecar's log lines (undefined: NOT_FOUND). */
function detailsByPath(lines: string[]): Map<string, string | undefined> {
  const msgs = lines.filter((l) => l.includes('"source":"wasm"')).map((l) => JSON.parse(l).msg as string);
  const out = new Map<string, string | undefined>();
  for (let at = msgs.indexOf('details:'); at >= 0 && at + 2 < msgs.length; at = msgs.indexOf('details:', at + 1)) {
    out.set(msgs[at + 1]!, msgs[at + 2] === '#1' ? undefined : msgs[at + 2]);
  }
  return out;
}

/** A request whose client gives up after `ms` (the socket is destroyed). */
function leaveAfter(port: number, host: string, path: string, ms: number): Promise<void> {
  return new Promise((resolve) => {
    const req = http.request({ host: '127.0.0.1', port, path, headers: { host }, agent: false });
    req.on('error', () => resolve());
    req.end();
    setTimeout(() => {
      req.destroy();
      resolve();
    }, ms);
  });
}

/** A request read to its end or its reset: the status and whether the body ended cleanly. */
function fetchAll(port: number, host: string, path: string): Promise<{ status: number; complete: boolean }> {
  return new Promise((resolve) => {
    const req = http.request({ host: '127.0.0.1', port, path, headers: { host }, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, complete: res.complete }));
      res.on('aborted', () => resolve({ status: res.statusCode ?? 0, complete: false }));
      res.on('error', () => resolve({ status: res.statusCode ?? 0, complete: false }));
    });
    req.on('error', () => resolve({ status: 0, complete: false }));
    req.end();
  });
}

test("the router's timeouts, resets, overflow, retries spent and a client that left, as Envoy's details", { timeout: 90_000 }, async () => {
  const module = await recorder();
  const served = await moduleServer(new Map([[sha(module), module]]));
  closers.push(served.close);
  const mesh = await TestMesh.start({ translator: defaultTranslator({ wasmBaseUrl: served.url, wasmClusterName: 'weft-control' }) });
  closers.push(() => mesh.close());
  // The shop: slow answers, resets before and after its headers, a body that stalls.
  const timers = new Set<NodeJS.Timeout>();
  const later = (ms: number, f: () => void) => {
    const t = setTimeout(() => {
      timers.delete(t);
      f();
    }, ms);
    timers.add(t);
  };
  const shop = await startApp('shop', (req, res) => {
    const path = req.url ?? '/';
    if (path.startsWith('/reset') || path.startsWith('/retried')) return void req.socket.destroy();
    if (path.startsWith('/midbody')) {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('first;');
      return later(50, () => req.socket.destroy());
    }
    if (path.startsWith('/stall')) {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('first;');
      return later(3000, () => res.end('rest'));
    }
    if (path === '/ready') return void res.end('ok');
    later(path.startsWith('/narrow-hold') ? 1500 : 3000, () => res.end('late'));
  });
  mesh.track(async () => {
    for (const t of timers) clearTimeout(t);
    await shop.close();
  });
  const nobody = await freePort();
  mesh.model.update({
    services: [service('till', 7981), service('shop', 7982), service('gone', 7983), service('narrow', 7984)],
    instances: [instance('shop', shop.port), instance('gone', nobody), instance('narrow', shop.port)],
    destinationPolicies: [policy('narrow', { circuitBreakers: { maxConnections: 10, maxPendingRequests: 10, maxRequests: 1 } })],
    routes: [
      route('shop', [
        { name: 'timeout', match: [{ path: { prefix: '/timeout' } }], destinations: [{ service: 'shop', weight: 1 }], timeoutMs: 300 },
        { name: 'stall', match: [{ path: { prefix: '/stall' } }], destinations: [{ service: 'shop', weight: 1 }], timeoutMs: 300 },
        { name: 'pertry', match: [{ path: { prefix: '/pertry' } }], destinations: [{ service: 'shop', weight: 1 }], timeoutMs: 10_000, retries: { attempts: 1, perTryTimeoutMs: 200, retryOn: ['5xx'] } },
        { name: 'retried', match: [{ path: { prefix: '/retried' } }], destinations: [{ service: 'shop', weight: 1 }], retries: { attempts: 2, retryOn: ['reset'] } },
        { name: 'rest', destinations: [{ service: 'shop', weight: 1 }], timeoutMs: 10_000 },
      ]),
    ],
    filterModules: [{ name: 'recorder', sha256: sha(module), size: module.length, abiVersion: '0.2.1' }],
    filterBindings: [{ name: 'till-recorder', namespace: 'default', service: 'till', direction: 'outbound', filter: 'recorder', order: 0, config: {}, failurePolicy: 'fail_closed' }],
  });
  const lines: string[] = [];
  const sc = await mesh.sidecar('till', 8000, { log: (l) => lines.push(l) });
  const port = sc.outboundPort;
  await eventually(async () => (await get(port, 'shop', '/ready')).status === 200 && detailsByPath(lines).has('/ready'), 10_000, 'the routes and the filter in place');
  assert.equal(detailsByPath(lines).get('/ready'), 'via_upstream');

  // The route timeout before any response (UT): response_timeout.
  assert.equal((await get(port, 'shop', '/timeout')).status, 504);
  // The last try's own timeout, its retry spent (UT,URX): upstream_per_try_timeout.
  assert.equal((await get(port, 'shop', '/pertry')).status, 504);
  // The host closed the connection before answering (UC): the reset with its reason.
  assert.equal((await get(port, 'shop', '/reset')).status, 503);
  // Retries spent on resets (UC,URX): the last attempt's reset.
  assert.equal((await get(port, 'shop', '/retried')).status, 503);
  // Nothing listens (UF): a connection failure.
  assert.equal((await get(port, 'gone', '/refused')).status, 503);
  // After the headers went out: the reset and the route timeout end the stream with Envoy's late details.
  // The connection closing mid-body is flagged as before the response, UC (Envoy's streamResetReasonToResponseFlag;
  // UR until 2026-11-28, which is a stream reset's).
  const watching = await tap(sc.adminPort, '?path_prefix=/midbody&max=1');
  assert.deepEqual(await fetchAll(port, 'shop', '/midbody'), { status: 200, complete: false });
  await eventually(() => watching.lines.length === 1, 5000, 'the tap line');
  watching.close();
  assert.deepEqual([watching.lines[0]!.response_code, watching.lines[0]!.response_flags], [200, 'UC']);
  assert.deepEqual(await fetchAll(port, 'shop', '/stall'), { status: 200, complete: false });
  // The circuit breaker (max_requests 1) refuses a second request while the first is out (UO).
  const before = shop.hits;
  const holding = get(port, 'narrow', '/narrow-hold');
  await eventually(() => shop.hits > before, 5000, 'the first narrow request at the shop');
  assert.equal((await get(port, 'narrow', '/narrow-over')).status, 503);
  assert.equal((await holding).status, 200);
  // The client went away while the shop was still thinking (DC).
  await leaveAfter(port, 'shop', '/leave', 200);

  const expected: Record<string, string> = {
    '/timeout': 'response_timeout',
    '/pertry': 'upstream_per_try_timeout',
    '/reset': 'upstream_reset_before_response_started{connection_termination}',
    '/retried': 'upstream_reset_before_response_started{connection_termination}',
    '/refused': 'upstream_reset_before_response_started{connection_failure}',
    '/midbody': 'upstream_reset_after_response_started{connection_termination}',
    '/stall': 'response_timeout',
    '/narrow-over': 'upstream_reset_before_response_started{overflow}',
    '/narrow-hold': 'via_upstream',
    '/leave': 'downstream_remote_disconnect',
  };
  await eventually(() => Object.keys(expected).every((p) => detailsByPath(lines).has(p)), 10_000, 'on_log of every request');
  const seen = detailsByPath(lines);
  assert.deepEqual(Object.fromEntries(Object.keys(expected).map((p) => [p, seen.get(p)])), expected);
});

test("RBAC's denials name the DENY policy that matched, or none for an ALLOW no policy matched", { timeout: 60_000 }, async () => {
  const module = await recorder();
  const served = await moduleServer(new Map([[sha(module), module]]));
  closers.push(served.close);
  const mesh = await TestMesh.start({ translator: defaultTranslator({ wasmBaseUrl: served.url, wasmClusterName: 'weft-control' }) });
  closers.push(() => mesh.close());
  const app = await startApp('vault');
  mesh.track(() => app.close());
  const inbound = await freePort();
  mesh.model.update({
    services: [service('vault', 7985)],
    instances: [instance('vault', inbound)],
    authorizationPolicies: [
      { name: 'no-admin', namespace: 'default', service: 'vault', action: 'DENY', rules: [{ paths: ['/admin*'] }] },
      { name: 'readers', namespace: 'default', service: 'vault', action: 'ALLOW', rules: [{ methods: ['GET'] }] },
    ],
    filterModules: [{ name: 'recorder', sha256: sha(module), size: module.length, abiVersion: '0.2.1' }],
    filterBindings: [{ name: 'vault-recorder', namespace: 'default', service: 'vault', direction: 'inbound', filter: 'recorder', order: 0, config: {}, failurePolicy: 'fail_closed' }],
  });
  const lines: string[] = [];
  await mesh.sidecar('vault', app.port, { inboundPort: inbound, log: (l) => lines.push(l) });
  await eventually(async () => (await get(inbound, 'vault', '/admin/keys')).status === 403 && detailsByPath(lines).has('/admin/keys'), 10_000, 'the policies and the filter in place');
  assert.equal((await get(inbound, 'vault', '/keys')).status, 200);
  const posted = await get(inbound, 'vault', '/keys/new', { method: 'POST', body: 'k' });
  assert.equal(posted.status, 403);
  assert.equal(posted.body, 'RBAC: access denied');
  await eventually(() => detailsByPath(lines).has('/keys/new') && detailsByPath(lines).has('/keys'), 5000, 'on_log of /keys and /keys/new');
  const seen = detailsByPath(lines);
  // The translator names each rule <namespace>/<policy>/rules[<i>]; Envoy's detail carries that name as it is.
  assert.equal(seen.get('/admin/keys'), 'rbac_access_denied_matched_policy[default/no-admin/rules[0]]');
  assert.equal(seen.get('/keys/new'), 'rbac_access_denied_matched_policy[none]');
  assert.equal(seen.get('/keys'), 'via_upstream');
});
