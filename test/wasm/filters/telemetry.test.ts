import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { exchange, header, loadFilter } from './kit.ts';

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

describe('telemetry filter', () => {
  it('sets x-request-id and a new traceparent when the request has neither', async () => {
    const plugin = await loadFilter('telemetry', { service: 'orders' });
    const { stream, request } = await exchange(plugin, {});
    assert.equal(request.action, 'continue');
    const rid = header(stream.requestHeaders, 'x-request-id');
    assert.match(rid ?? '', UUID);
    const tp = header(stream.requestHeaders, 'traceparent') ?? '';
    const m = TRACEPARENT.exec(tp);
    assert.ok(m, `traceparent ${tp}`);
    assert.notEqual(m[1], '0'.repeat(32));
    assert.equal(m[3], '01');
    assert.equal(header(stream.responseHeaders, 'x-request-id'), rid, 'request id echoed on the response');
    const second = await exchange(plugin, {});
    assert.notEqual(header(second.stream.requestHeaders, 'x-request-id'), rid, 'ids differ per request');
    assert.notEqual(header(second.stream.requestHeaders, 'traceparent')?.slice(3, 35), m[1]);
    await plugin.close();
  });

  it('keeps the caller trace id and flags, with a new span id for this hop', async () => {
    const plugin = await loadFilter('telemetry', { service: 'orders' });
    const incoming = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00';
    const { stream } = await exchange(plugin, { traceparent: incoming, 'x-request-id': 'abc-123', tracestate: 'k=v' });
    const m = TRACEPARENT.exec(header(stream.requestHeaders, 'traceparent') ?? '');
    assert.ok(m);
    assert.equal(m[1], '4bf92f3577b34da6a3ce929d0e0e4736');
    assert.notEqual(m[2], '00f067aa0ba902b7');
    assert.equal(m[3], '00');
    assert.equal(header(stream.requestHeaders, 'x-request-id'), 'abc-123');
    assert.equal(header(stream.requestHeaders, 'tracestate'), 'k=v');
    await plugin.close();
  });

  it('replaces a malformed traceparent with a new trace', async () => {
    const plugin = await loadFilter('telemetry', {});
    for (const bad of ['garbage', '00-00000000000000000000000000000000-00f067aa0ba902b7-01', '00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01']) {
      const { stream } = await exchange(plugin, { traceparent: bad });
      const tp = header(stream.requestHeaders, 'traceparent') ?? '';
      assert.match(tp, TRACEPARENT);
      assert.notEqual(tp, bad);
    }
    await plugin.close();
  });

  it('parses traceparent as W3C Trace Context says: later versions with more fields, only the sampled flag sent on, tracestate dropped on a restart', async () => {
    const plugin = await loadFilter('telemetry', {});
    const trace = '4bf92f3577b34da6a3ce929d0e0e4736';
    const span = '00f067aa0ba902b7';
    const hop = async (traceparent: string) => {
      const { stream } = await exchange(plugin, { traceparent, tracestate: 'rojo=00f067aa0ba902b7' });
      const m = TRACEPARENT.exec(header(stream.requestHeaders, 'traceparent') ?? '');
      assert.ok(m, traceparent);
      return { traceId: m[1], flags: m[3], tracestate: header(stream.requestHeaders, 'tracestate') };
    };
    // A later version is read as 00 when its first fields are 00's, and sent on as 00.
    assert.deepEqual(await hop(`01-${trace}-${span}-01`), { traceId: trace, flags: '01', tracestate: 'rojo=00f067aa0ba902b7' });
    assert.deepEqual(await hop(`cc-${trace}-${span}-01-what-the-future-will-be-like`), { traceId: trace, flags: '01', tracestate: 'rojo=00f067aa0ba902b7' });
    // Flags other than sampled are reserved and sent as zero.
    assert.equal((await hop(`00-${trace}-${span}-ff`)).flags, '01');
    assert.equal((await hop(`00-${trace}-${span}-fe`)).flags, '00');
    assert.equal((await hop(`00-${trace}-${span}-09`)).flags, '01');
    // Restarted: the flags must end the value or be followed by '-'; version ff; version 00 with more fields.
    for (const bad of [`01-${trace}-${span}-01x`, `01-${trace}-${span}-0100`, `ff-${trace}-${span}-01`, `00-${trace}-${span}-01-x`]) {
      const r = await hop(bad);
      assert.notEqual(r.traceId, trace, bad);
      assert.equal(r.tracestate, undefined, `${bad}: the old trace's tracestate is not sent with a new trace`);
    }
    await plugin.close();
  });

  it('counts requests by service, route and status class, records durations and logs one JSON line', async () => {
    let now = 1_700_000_000_000_000_000n;
    const plugin = await loadFilter('telemetry', { service: 'orders' }, { now: () => now });
    const stream = plugin.newHttpStream({
      'xds.route_name': 'orders-v2',
      'upstream.address': '127.0.0.1:9001',
      'connection.uri_san_peer_certificate': 'spiffe://weft.local/ns/default/sa/frontend',
    });
    await stream.onRequestHeaders([[':method', 'POST'], [':path', '/orders?x=1'], [':authority', 'orders']], true);
    now += 42_000_000n;
    await stream.onResponseHeaders([[':status', '503']], true);
    stream.complete();
    await exchange(plugin, {}, { status: 204 });

    const counter = plugin.metrics.find('weft_requests_total_service=.=orders;.;route=.=orders-v2;.;status_class=.=5xx;.;', 'counter');
    assert.equal(counter?.value, 1n);
    assert.equal(plugin.metrics.find('weft_requests_total_service=.=orders;.;route=.=default;.;status_class=.=2xx;.;', 'counter')?.value, 1n);
    const histogram = plugin.metrics.find('weft_request_duration_ms_service=.=orders;.;route=.=orders-v2;.;', 'histogram');
    assert.equal(histogram?.value, 1n);
    assert.equal(histogram?.sum, 42);

    const lines = plugin.logs.filter((l) => l.level === 'info').map((l) => JSON.parse(l.message) as Record<string, unknown>);
    assert.equal(lines.length, 2);
    assert.deepEqual(
      { ...lines[0], request_id: typeof lines[0]!.request_id, trace_id: typeof lines[0]!.trace_id, span_id: typeof lines[0]!.span_id },
      {
        type: 'access', service: 'orders', request_id: 'string', method: 'POST', path: '/orders?x=1', route: 'orders-v2',
        status: 503, duration_ms: 42, upstream: '127.0.0.1:9001', peer: 'spiffe://weft.local/ns/default/sa/frontend',
        trace_id: 'string', span_id: 'string',
      },
    );
    assert.equal(lines[1]!.peer, null);
    await plugin.close();
  });

  it('escapes what the client controls in the access line, so it stays one JSON object with the same values', async () => {
    const plugin = await loadFilter('telemetry', { service: 'orders' });
    const path = '/a"b\\c\n{"type":"access","status":200}\r\u0000\u001b[31m\u001f\u007f\u2028é日😀';
    const rid = '"},{"forged":true,"x":"\t';
    await exchange(plugin, { 'x-request-id': rid }, { path, method: 'GET\u0001' });
    const info = plugin.logs.filter((l) => l.level === 'info');
    assert.equal(info.length, 1);
    assert.doesNotMatch(info[0]!.message, /[\u0000-\u001f]/, 'no raw control character in the line');
    const line = JSON.parse(info[0]!.message) as Record<string, unknown>;
    assert.equal(line.path, path);
    assert.equal(line.request_id, rid);
    assert.equal(line.method, 'GET\u0001');
    assert.equal(line.forged, undefined);
    await plugin.close();
  });

  it('writes no access log when disabled or when the host log level is above info', async () => {
    const off = await loadFilter('telemetry', { accessLog: false });
    await exchange(off, {});
    assert.equal(off.logs.length, 0);
    await off.close();
    const quiet = await loadFilter('telemetry', {}, { logLevel: 'warn' });
    await exchange(quiet, {});
    assert.equal(quiet.logs.length, 0);
    await quiet.close();
  });

  it('refuses an invalid configuration at configure time, naming the field', async () => {
    const logs: string[] = [];
    await assert.rejects(
      loadFilter('telemetry', { accessLog: 'yes', metricPrefix: 'Bad-Prefix', colour: 1 }, { onLog: (e) => logs.push(e.message) }),
      /proxy_on_configure/,
    );
    const message = logs.join('\n');
    assert.match(message, /accessLog: expected boolean, got string/);
    assert.match(message, /metricPrefix: only \[a-z0-9_\] allowed/);
    assert.match(message, /colour: unknown field/);
    await assert.rejects(loadFilter('telemetry', '{not json' as unknown), /proxy_on_configure/);
  });
});
