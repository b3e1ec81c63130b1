// The stdout access logger's formats as the weft sidecar compiles them from a
// listener, checked line by line against what Envoy's formatter writes for the
// same request (docs: configuration/observability/access_log/usage; source:
// source/common/formatter/substitution_formatter.cc, stream_info_formatter.cc).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { test } from 'node:test';
import type { AccessLogFormat, LogSource } from '../../sidecar/access-log-format.ts';
import type { HttpConnectionManagerConfig } from '../../sidecar/config.ts';
import { accept } from '../../sidecar/fidelity.ts';
import { DEFAULT_ACCESS_LOG_FIELDS } from '../../control/translate/features/hcm-access-log.ts';

const golden = JSON.parse(readFileSync(new URL('../golden/observability-access-log/listeners.json', import.meta.url), 'utf8')) as { name: string; value: any }[];
const HCM_PATH = 'filter_chains[0].filters[0].typed_config';
const LOG_PATH = `${HCM_PATH}.access_log[0].typed_config`;

/** The golden inbound listener with `accessLog` as its HCM's access_log (undefined: none). */
function listenerWith(accessLog: unknown[] | undefined): any {
  const l = structuredClone(golden.find((r) => r.name === 'inbound')!.value);
  const hcm = l.filter_chains[0].filters[0].typed_config;
  if (accessLog === undefined) delete hcm.access_log;
  else hcm.access_log = accessLog;
  return l;
}

function stdout(logFormat: unknown): unknown {
  return { name: 'envoy.access_loggers.stdout', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog', ...(logFormat === undefined ? {} : { log_format: logFormat }) } };
}

function formats(accessLog: unknown[] | undefined): AccessLogFormat[] | undefined {
  const r = accept('listener', listenerWith(accessLog));
  assert.ok(r.ok, JSON.stringify(r.ok ? '' : r.errors));
  return (r.value.chain as HttpConnectionManagerConfig).accessLogs;
}

function compile(logFormat: unknown): AccessLogFormat {
  const f = formats([stdout(logFormat)]);
  assert.equal(f?.length, 1);
  return f![0]!;
}

function errorsOf(accessLog: unknown[]): { path: string; message: string }[] {
  const r = accept('listener', listenerWith(accessLog));
  assert.equal(r.ok, false, 'NACKed');
  return r.ok ? [] : r.errors;
}

const STARTED = Date.UTC(2026, 10, 28, 4, 5, 6, 789);

/** A proxied request: GET /api/items?x=1 rewritten to /items?x=1, answered 200 by 10.0.0.7:8080 of cluster orders. */
function proxied(over: Partial<LogSource> = {}): LogSource {
  return {
    log: {
      start_time: '',
      listener: 'inbound',
      method: 'GET',
      path: '/api/items?x=1',
      authority: 'orders',
      protocol: 'HTTP/1.1',
      response_code: 200,
      response_flags: '-',
      route_name: 'app',
      upstream_cluster: 'orders',
      upstream_host: '10.0.0.7:8080',
      attempts: 1,
      bytes_received: 12,
      bytes_sent: 345,
      duration_ms: 17,
      request_id: 'rid-1',
    },
    started: STARTED,
    logRequestHeaders: [['user-agent', 'curl/8.5.0'], ['x-request-id', 'rid-1'], ['x-multi', 'a'], ['x-multi', 'b']],
    upstreamPath: '/items?x=1',
    upstreamAuthority: 'orders',
    logResponseHeaders: [['content-type', 'application/json'], ['x-envoy-upstream-service-time', '15']],
    logConnection: { 'source.address': '127.0.0.1:50123', 'destination.address': '[::1]:15006', 'destination.port': 15006, 'connection.id': 42, 'connection.requested_server_name': '' },
    replied: undefined,
    endFlag: '-',
    endDetails: undefined,
    suppressEnvoyHeaders: false,
    ...over,
  };
}

/** The sidecar's own 503 (no healthy upstream): no response from upstream, no upstream host, no connection known. */
function localReply(): LogSource {
  const s = proxied({ upstreamPath: undefined, upstreamAuthority: undefined, logConnection: undefined, logResponseHeaders: [['content-length', '19']], endFlag: 'UH' });
  s.log.response_code = 503;
  s.log.response_flags = 'UH';
  s.log.upstream_host = '';
  s.log.route_name = '';
  s.log.attempts = 0;
  return s;
}


test("the translator's default fields: exactly its keys, in its order; numbers stay numbers, a missing value is null", () => {
  const f = compile({ json_format: { ...DEFAULT_ACCESS_LOG_FIELDS, weft_service: 'web.default', weft_direction: 'inbound' } });
  assert.equal(
    f.format(proxied()),
    '{"start_time":"2026-11-28T04:05:06.789Z","method":"GET","path":"/api/items?x=1","protocol":"HTTP/1.1","authority":"orders",' +
      '"response_code":200,"response_flags":"-","bytes_received":12,"bytes_sent":345,"duration_ms":17,"upstream_host":"10.0.0.7:8080",' +
      '"upstream_cluster":"orders","request_id":"rid-1","user_agent":"curl/8.5.0","weft_service":"web.default","weft_direction":"inbound"}',
  );
  const local = JSON.parse(f.format(localReply()));
  assert.equal(local.response_code, 503);
  assert.equal(local.response_flags, 'UH');
  assert.equal(local.upstream_host, null);
  // No rewrite happened: x-envoy-original-path is absent and :path is the path as it came.
  assert.equal(local.path, '/api/items?x=1');
  assert.equal(f.needsConnection, false);
});

test("REQ and RESP: pseudo-headers, the alternative header, truncation, a repeated header's first value, missing null", () => {
  const f = compile({
    json_format: {
      path: '%REQ(:PATH)%',
      original: '%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%',
      ua5: '%REQ(USER-AGENT):5%',
      alt: '%REQ(X-NOPE?USER-AGENT):4%',
      multi: '%REQ(x-multi)%',
      missing: '%REQ(X-NOPE)%',
      type: '%RESP(CONTENT-TYPE)%',
      service_time: '%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)%',
      status: '%RESP(:STATUS)%',
    },
  });
  assert.deepEqual(JSON.parse(f.format(proxied())), {
    // The router rewrote :path; Envoy keeps the path as it came in x-envoy-original-path.
    path: '/items?x=1',
    original: '/api/items?x=1',
    ua5: 'curl/',
    alt: 'curl',
    multi: 'a',
    missing: null,
    type: 'application/json',
    service_time: '15',
    status: '200',
  });
  // suppress_envoy_headers: the router sets no x-envoy-original-path, so the alternative (the rewritten :path) is logged.
  assert.equal(JSON.parse(f.format(proxied({ suppressEnvoyHeaders: true }))).original, '/items?x=1');
});

test('text around operators makes a string with - for a missing value; omit_empty_values drops nulls and empties the -', () => {
  const format = { json_format: { line: '%REQ(:METHOD)% %REQ(X-NOPE)% %RESPONSE_CODE%', code: '%RESPONSE_CODE%', host: '%UPSTREAM_HOST%', pct: '100%% sure', n: 7 } };
  assert.equal(compile(format).format(localReply()), '{"line":"GET - 503","code":503,"host":null,"pct":"100% sure","n":7}');
  assert.equal(compile({ ...format, omit_empty_values: true }).format(localReply()), '{"line":"GET  503","code":503,"pct":"100% sure","n":7}');
});

test('nested objects and lists are formatted as Envoy does; sort_properties sorts the keys at every level', () => {
  const format = { json_format: { z: '%RESPONSE_CODE%', a: { y: '%REQ(:METHOD)%', b: ['%BYTES_SENT%', 'lit', { k: '%UPSTREAM_HOST%' }] } } };
  assert.equal(compile(format).format(proxied()), '{"z":200,"a":{"y":"GET","b":[345,"lit",{"k":"10.0.0.7:8080"}]}}');
  assert.equal(compile({ ...format, json_format_options: { sort_properties: true } }).format(proxied()), '{"a":{"b":[345,"lit",{"k":"10.0.0.7:8080"}],"y":"GET"},"z":200}');
});

test('the other operators: details, addresses, route, attempts, connection id, hostname', () => {
  const f = compile({
    json_format: {
      details: '%RESPONSE_CODE_DETAILS%',
      remote: '%DOWNSTREAM_REMOTE_ADDRESS%',
      remote_ip: '%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%',
      local: '%DOWNSTREAM_LOCAL_ADDRESS%',
      local_ip: '%DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT%',
      route: '%ROUTE_NAME%',
      attempts: '%UPSTREAM_REQUEST_ATTEMPT_COUNT%',
      connection: '%CONNECTION_ID%',
      host: '%HOSTNAME%',
    },
  });
  assert.equal(f.needsConnection, true);
  assert.deepEqual(JSON.parse(f.format(proxied())), {
    details: 'via_upstream',
    remote: '127.0.0.1:50123',
    remote_ip: '127.0.0.1',
    local: '[::1]:15006',
    local_ip: '::1',
    route: 'app',
    attempts: 1,
    connection: 42,
    host: hostname(),
  });
  // A stream that ended after its response started logs the details it ended with, as on_log reads them.
  const cut = proxied({ endFlag: 'UC', endDetails: 'upstream_reset_after_response_started{connection_termination}' });
  assert.equal(JSON.parse(f.format(cut)).details, 'upstream_reset_after_response_started{connection_termination}');
  const local = JSON.parse(f.format(localReply()));
  assert.equal(local.route, null);
  assert.equal(local.attempts, 0);
});

test('text_format and text_format_source: the line as Envoy writes it; no log_format is Envoy\'s default format', () => {
  const text = '%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %RESPONSE_CODE% %UPSTREAM_HOST% %BYTES_SENT%\n';
  assert.equal(compile({ text_format_source: { inline_string: text } }).format(localReply()), 'GET /api/items?x=1 503 - 345');
  assert.equal(compile({ text_format: text }).format(proxied()), 'GET /api/items?x=1 200 10.0.0.7:8080 345');
  assert.equal(
    compile(undefined).format(proxied()),
    '[2026-11-28T04:05:06.789Z] "GET /api/items?x=1 HTTP/1.1" 200 - 12 345 17 15 "-" "curl/8.5.0" "rid-1" "orders" "10.0.0.7:8080"',
  );
});

test('a connection manager without access_log has no access logger; two loggers log two lines', () => {
  assert.equal(formats(undefined), undefined);
  assert.equal(formats([stdout({ json_format: { a: '%RESPONSE_CODE%' } }), stdout({ text_format: 'x' })])?.length, 2);
});

test('what the sidecar does not implement is NACKed naming the field path', () => {
  const at = (key: string) => `${LOG_PATH}.log_format.json_format.${key}`;
  assert.deepEqual(errorsOf([stdout({ json_format: { ok: '%RESPONSE_CODE%', foo: '%FOO%' } })]), [{ path: at('foo'), message: '%FOO% is not supported by the weft sidecar' }]);
  assert.deepEqual(errorsOf([stdout({ json_format: { n: { deep: ['x', '%DYNAMIC_METADATA(a:b)%'] } } })]).map((e) => e.path), [at('n.deep[1]')]);
  assert.match(errorsOf([stdout({ json_format: { t: '%START_TIME(%s)%' } })])[0]!.message, /START_TIME.* not supported/);
  assert.match(errorsOf([stdout({ json_format: { bad: 'a % b' } })])[0]!.message, /not a command operator/);
  assert.match(errorsOf([stdout({ json_format: { b: true } })])[0]!.path, /json_format\.b$/);
  assert.deepEqual(errorsOf([stdout({ text_format: '%UPSTREAM_TRANSPORT_FAILURE_REASON%' })]), [{ path: `${LOG_PATH}.log_format.text_format`, message: '%UPSTREAM_TRANSPORT_FAILURE_REASON% is not supported by the weft sidecar' }]);
  assert.deepEqual(errorsOf([stdout({ text_format_source: { filename: '/etc/fmt' } })]).map((e) => e.path), [`${LOG_PATH}.log_format.text_format_source.filename`, `${LOG_PATH}.log_format.text_format_source.inline_string`]);
  assert.equal(errorsOf([stdout({ json_format: { a: 'x' }, formatters: [{ name: 'x', typed_config: {} }] })])[0]!.path, `${LOG_PATH}.log_format.formatters`);
  // Access log filters are not implemented: NACKed, not ignored (every request would be logged).
  const filtered = { ...(stdout({ json_format: { a: 'x' } }) as object), filter: { status_code_filter: { comparison: { op: 'GE', value: { default_value: 500, runtime_key: 'k' } } } } };
  assert.equal(errorsOf([filtered])[0]!.path, `${HCM_PATH}.access_log[0].filter`);
  // Another logger (file) is NACKed at its type.
  const file = { name: 'f', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog', path: '/dev/stdout' } };
  assert.equal(errorsOf([file])[0]!.path, `${LOG_PATH}.@type`);
});
