// GET /proxies/{id}/tap when the proxy's tap ends in error before its first
// request (the sidecar stopped or restarted while `weft tap` waited): a 502
// PROXY_UNREACHABLE that says so, as when the proxy cannot be reached at all.
// Until 2026-11-28 it was a 500 INTERNAL ("internal error: the control plane
// logged the cause") with undici's stack trace in the control plane's log.
// The proxy's admin here is a real HTTP server on 127.0.0.1 that accepts the
// tap and then drops the connection, as a sidecar that is killed does; the
// run against real processes (a sidecar stopped mid-tap) is
// test/cli/tap-ended.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ProxyStatusPort, ProxyView } from '../../control/api/deps.ts';
import type { ProxyRef } from '../../control/model/types.ts';
import { startApi } from './harness.ts';

/** One connected proxy whose admin is at `adminPort`. */
function oneProxy(adminPort: number): ProxyStatusPort {
  const view: ProxyView = { id: 'orders-1', service: 'orders', namespace: 'default', kind: 'sidecar', status: 'SYNCED', versions: {}, nacks: [] };
  const ref: ProxyRef = { id: 'orders-1', service: 'orders', namespace: 'default', kind: 'sidecar', inboundPort: 15006, outboundPort: 15001, appPort: 8081, appAddress: '127.0.0.1', bindAddress: '127.0.0.1', adminPort };
  return { list: () => [view], get: (id) => (id === view.id ? view : undefined), config: () => undefined, ref: (id) => (id === ref.id ? ref : undefined) };
}

test('a tap the proxy drops before any request is a 502 PROXY_UNREACHABLE naming the proxy, not a 500', async (t) => {
  let tapped = 0;
  const admin = http.createServer((req, res) => {
    assert.match(req.url ?? '', /^\/tap\?/);
    tapped++;
    // The sidecar's answer to GET /tap: headers at once, then a line per request; here it goes away instead.
    res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store' });
    res.flushHeaders();
    setImmediate(() => res.socket?.destroy());
  });
  await new Promise<void>((r) => admin.listen(0, '127.0.0.1', r));
  t.after(() => admin.close());
  const api = await startApi({ proxies: oneProxy((admin.address() as AddressInfo).port) });
  t.after(() => api.close());

  const res = await api.call('GET', '/api/v1/proxies/orders-1/tap?status=5xx');
  assert.equal(tapped, 1, 'the control plane opened the tap');
  assert.equal(res.status, 502, res.body);
  assert.equal(res.json.error.code, 'PROXY_UNREACHABLE');
  assert.match(res.json.error.message, /^proxy orders-1: its tap ended before any request: /);
});
