// A connection that never sends a byte is not kept for ever: a plaintext one
// is closed after the connection manager's idle timeout, as Envoy's codec
// closes it; a PERMISSIVE listener's TLS detection gives up after
// listener_filters_timeout (tests/e2e/identity.test.ts holds it to Envoy's
// 15 s default).
import assert from 'node:assert/strict';
import net from 'node:net';
import { after, test } from 'node:test';
import { TestMesh, freePort, get, instance, metric, service, startApp, withFields } from './harness.ts';

const closers: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of closers.reverse()) await c();
});

/** Connects, sends nothing, and resolves with how long the peer took to close (or 'open' after `ms`). */
function silentFor(port: number, ms: number): Promise<number | 'open'> {
  return new Promise((resolve) => {
    const started = Date.now();
    const socket = net.connect(port, '127.0.0.1');
    const timer = setTimeout(() => {
      socket.destroy();
      resolve('open');
    }, ms);
    socket.on('error', () => undefined);
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(Date.now() - started);
    });
  });
}

test('a silent plaintext connection is closed after the idle timeout; one that speaks is served', { timeout: 30_000 }, async () => {
  const app = await startApp('quiet');
  closers.push(() => app.close());
  const mesh = await TestMesh.start({ translator: withFields({ common_http_protocol_options: { idle_timeout: '0.5s' } }) });
  closers.push(() => mesh.close());
  const inboundPort = await freePort();
  mesh.model.update({ services: [service('quiet', 7300)], instances: [instance('quiet', inboundPort)], routes: [] });
  const sc = await mesh.sidecar('quiet', app.port, { inboundPort });
  const closed = await silentFor(sc.inboundPort, 10_000);
  assert.notEqual(closed, 'open', 'closed, not held');
  assert.ok((closed as number) >= 400, `not before the idle timeout (${closed} ms)`);
  assert.equal(await metric(sc.adminPort, 'envoy_http_downstream_cx_idle_timeout'), 1, 'counted as the idle timeout');
  assert.equal((await get(sc.inboundPort, 'quiet', '/')).status, 200);
});
