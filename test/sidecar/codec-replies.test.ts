// The HTTP/1 codec's own answers (a malformed request's 400, 431, 501, and
// 403 `upgrade failed`) are logged and counted as Envoy's connection manager
// logs and counts a codec error's local reply: an access log line (flag DPE
// for a request that could not be read) and downstream_rq_total /
// downstream_rq_4xx / 5xx. Until 2026-11-27 they left no trace.

import assert from 'node:assert/strict';
import net from 'node:net';
import { after, test } from 'node:test';
import { TestMesh, instance, metric, service, startApp, tap, withTimeout } from './harness.ts';

const closers: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of closers.reverse()) await c();
});

/** Writes `text` on a new connection and reads until the sidecar closes it. */
function send(port: number, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => socket.write(text));
    let data = '';
    socket.on('data', (d: Buffer) => (data += d.toString('latin1')));
    socket.on('close', () => resolve(data));
    socket.on('error', reject);
    socket.setTimeout(10_000, () => socket.destroy(new Error('no close')));
  });
}


test("the HTTP/1 codec's own 400, 431, 501 and 403 are logged (DPE for a request it could not read) and counted", { timeout: 30_000 }, async () => {
  const mesh = await TestMesh.start();
  closers.push(() => mesh.close());
  const app = await startApp('plain');
  mesh.track(() => app.close());
  mesh.model.update({ services: [service('plain-caller', 8000), service('plain', 7000)], instances: [instance('plain', app.port)] });
  const sc = await mesh.sidecar('plain-caller', 8000);
  const before = { total: await metric(sc.adminPort, 'envoy_http_downstream_rq_total'), x4: await metric(sc.adminPort, 'envoy_http_downstream_rq_xx', { envoy_response_code_class: '4' }), x5: await metric(sc.adminPort, 'envoy_http_downstream_rq_xx', { envoy_response_code_class: '5' }) };

  const taps = await tap(sc.adminPort, '?max=4');
  const asks = [
    ['GET / HTTP/1.1\r\nHost x\r\n\r\n', 400],
    [`GET /many HTTP/1.1\r\nHost: plain\r\n${Array.from({ length: 101 }, (_, i) => `X-H${i}: v\r\n`).join('')}\r\n`, 431],
    ['POST /zip HTTP/1.1\r\nHost: plain\r\nTransfer-Encoding: gzip\r\n\r\nhello', 501],
    ['GET /tls HTTP/1.1\r\nHost: plain\r\nConnection: Upgrade\r\nUpgrade: TLS/1.2\r\n\r\n', 403],
  ] as const;
  for (const [text, status] of asks) assert.match(await send(sc.outboundPort, text), new RegExp(`^HTTP/1\\.1 ${status} `));
  await withTimeout(taps.ended, 5000, 'four /tap lines');
  assert.deepEqual(
    taps.lines.map((l) => [l.response_code, l.response_flags, l.method, l.path, l.authority, l.listener]),
    [
      [400, 'DPE', '', '', '', 'outbound'],
      [431, 'DPE', 'GET', '/many', 'plain', 'outbound'],
      [501, 'DPE', 'POST', '/zip', 'plain', 'outbound'],
      [403, '-', 'GET', '/tls', 'plain', 'outbound'],
    ],
  );
  assert.equal(await metric(sc.adminPort, 'envoy_http_downstream_rq_total'), before.total + 4);
  assert.equal(await metric(sc.adminPort, 'envoy_http_downstream_rq_xx', { envoy_response_code_class: '4' }), before.x4 + 3);
  assert.equal(await metric(sc.adminPort, 'envoy_http_downstream_rq_xx', { envoy_response_code_class: '5' }), before.x5 + 1);
});
