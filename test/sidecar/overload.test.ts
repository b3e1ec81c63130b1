// Envoy's overload manager in the sidecar (sidecar/overload.ts): a connection
// over --max-downstream-connections is closed at accept and counted, and
// capacity comes back as connections close; a heap over --max-heap-mb
// answers new requests 503 `envoy overloaded` (response flag OM) and closes
// connections after their response, on a real `weft sidecar` process; and the
// actions follow the heap's pressure both ways.

import assert from 'node:assert/strict';
import net from 'node:net';
import { after, test } from 'node:test';
import { defaultTranslator } from '../../control/xds/index.ts';
import { OverloadManager } from '../../sidecar/overload.ts';
import { SidecarStats } from '../../sidecar/stats.ts';
import { TestMesh, connect, eventually, exchange, freePort, instance, metric, service, spawnWeft, startApp } from './harness.ts';

// Access logs on, as `weft control --access-log`: the OM line is read from a sidecar's stdout.
const mesh = await TestMesh.start({ translator: defaultTranslator({ wasmBaseUrl: 'http://127.0.0.1:1', wasmClusterName: 'weft-control', accessLog: {} }) });
after(() => mesh.close());

/** Whether the peer closes the connection without sending a byte. */
function closedWithoutAnswer(socket: net.Socket): Promise<boolean> {
  return new Promise((resolve) => {
    let got = 0;
    socket.on('data', (c: Buffer) => (got += c.length));
    socket.once('close', () => resolve(got === 0));
    socket.on('error', () => undefined);
    socket.write('GET / HTTP/1.1\r\nhost: limited\r\n\r\n');
  });
}

test('--max-downstream-connections: the connection over the limit is closed at accept and counted; capacity comes back when one closes', { timeout: 30_000 }, async () => {
  const app = await startApp('limited');
  mesh.track(() => app.close());
  mesh.model.update({ services: [service('limited', 9000), service('caller', 8000)], instances: [instance('limited', app.port)] });
  const sc = await mesh.sidecar('caller', 8000, { maxDownstreamConnections: 2 });
  const a = await connect(sc.outboundPort);
  const b = await connect(sc.outboundPort);
  mesh.track(async () => void [a, b].forEach((s) => s.destroy()));
  assert.equal((await exchange(a, 'limited')).status, 200);
  assert.equal((await exchange(b, 'limited')).status, 200);
  assert.equal(await metric(sc.adminPort, 'envoy_overload_global_downstream_max_connections_pressure'), 100);

  assert.equal(await closedWithoutAnswer(await connect(sc.outboundPort)), true, 'the third connection is closed unanswered');
  const stats = await (await fetch(`http://127.0.0.1:${sc.adminPort}/stats?filter=downstream_global_cx_overflow`)).text();
  assert.equal(stats, `listener.127.0.0.1_${sc.outboundPort}.downstream_global_cx_overflow: 1\n`);
  assert.equal((await exchange(a, 'limited')).status, 200, 'the admitted connections are untouched');

  b.destroy();
  await eventually(async () => (await metric(sc.adminPort, 'envoy_overload_global_downstream_max_connections_pressure')) === 50, 5000, 'a slot freed');
  const c = await connect(sc.outboundPort);
  mesh.track(async () => void c.destroy());
  assert.equal((await exchange(c, 'limited')).status, 200, 'a new connection is served again');
});

test('weft sidecar --max-heap-mb: over it, new requests get 503 `envoy overloaded` (OM in the access log), connections close after their response, and the overload stats say why', { timeout: 60_000 }, async () => {
  const app = await startApp('heavy');
  mesh.track(() => app.close());
  const [inbound, adminPort] = [await freePort(), await freePort()];
  mesh.model.update({ services: [service('heavy', 9000)], instances: [instance('heavy', inbound)] });
  const args = ['sidecar', '--service', 'heavy', '--xds', `127.0.0.1:${mesh.xdsPort}`, '--app-port', String(app.port), '--inbound-port', String(inbound), '--admin-port', String(adminPort)];
  // a Node process's heap is far over 1 MiB from the start: the actions are on before the first request
  const sidecar = spawnWeft([...args, '--max-heap-mb', '1']);
  try {
    await eventually(async () => (await fetch(`http://127.0.0.1:${adminPort}/ready`).catch(() => undefined))?.status === 200, 30_000, `the sidecar ready\n${sidecar.output()}`);
    const socket = await connect(inbound);
    const r = await exchange(socket, 'heavy');
    assert.deepEqual([r.status, r.body], [503, 'envoy overloaded']);
    assert.match(r.head, /\r\nconnection: close/, 'disable_http_keepalive');
    assert.equal(app.hits, 0, 'the request never reached the app');
    await eventually(() => /"response_code":503,"response_flags":"OM"/.test(sidecar.output()), 5000, `the access log line with OM\n${sidecar.output()}`);

    const stats = await (await fetch(`http://127.0.0.1:${adminPort}/stats?filter=overload`)).text();
    assert.match(stats, /^http\.inbound\.downstream_rq_overload_close: 1$/m);
    assert.match(stats, /^overload\.envoy\.overload_actions\.stop_accepting_requests\.active: 1$/m);
    assert.match(stats, /^overload\.envoy\.overload_actions\.disable_http_keepalive\.active: 1$/m);
    assert.match(stats, /^overload\.envoy\.resource_monitors\.fixed_heap\.pressure: 100$/m);
    assert.equal((await fetch(`http://127.0.0.1:${adminPort}/ready`)).status, 200, 'readiness is not the overload manager\'s business');
  } finally {
    sidecar.kill();
  }

  // the flags are checked: the error names the flag, exit 2
  for (const bad of ['0', '1.5', 'lots']) {
    const refused = spawnWeft([...args, '--max-heap-mb', bad]);
    assert.equal(await refused.exited, 2);
    assert.match(refused.output(), new RegExp(`--max-heap-mb must be a whole number, 1 or more \\(got "${bad.replace('.', '\\.')}"\\)`));
  }
});

test('the heap actions follow pressure both ways: keep-alive off at 95%, requests refused at 98%, both lifted below', async () => {
  const stats = new SidecarStats();
  let heap = 50;
  const keepalive: boolean[] = [];
  const om = new OverloadManager({ maxHeapBytes: 100 }, stats, (disabled) => keepalive.push(disabled), () => heap);
  after(() => om.close());
  const gauge = (name: string) => stats.registry.metrics().split('\n').find((l) => l.startsWith(`${name} `));
  assert.deepEqual([om.keepaliveDisabled, om.stopAcceptingRequests, gauge('envoy_overload_fixed_heap_pressure')], [false, false, 'envoy_overload_fixed_heap_pressure 50']);
  heap = 96;
  await eventually(() => om.keepaliveDisabled, 2000, 'keep-alive off at 96%');
  assert.equal(om.stopAcceptingRequests, false);
  heap = 99;
  await eventually(() => om.stopAcceptingRequests, 2000, 'requests refused at 99%');
  assert.equal(gauge('envoy_overload_stop_accepting_requests_active'), 'envoy_overload_stop_accepting_requests_active 1');
  heap = 97;
  await eventually(() => !om.stopAcceptingRequests, 2000, 'requests taken again at 97%');
  assert.equal(om.keepaliveDisabled, true);
  heap = 10;
  await eventually(() => !om.keepaliveDisabled, 2000, 'keep-alive back at 10%');
  assert.deepEqual(keepalive, [true, false], 'the listeners were told once each way');
  assert.equal(gauge('envoy_overload_disable_http_keepalive_scale_percent'), 'envoy_overload_disable_http_keepalive_scale_percent 0');
});
