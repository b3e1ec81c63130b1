// The stdout access logger's formats as the weft sidecar compiles them from a
// listener, checked line by line against what Envoy's formatter writes for the
// same request (docs: configuration/observability/access_log/usage; source:
// source/common/formatter/substitution_formatter.cc, stream_info_formatter.cc).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { test } from 'node:test';
import type { FilterContext } from '../../sidecar/access-log-filter.ts';
import type { TlsInfo } from '../../sidecar/tls-info.ts';
import type { AccessLogFormat, LogSource } from '../../sidecar/access-log-format.ts';
import type { HttpConnectionManagerConfig } from '../../sidecar/config.ts';
import { accept } from '../../sidecar/fidelity.ts';
import { Runtime } from '../../sidecar/runtime.ts';
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
    logResponseTrailers: undefined,
    requestDoneAt: STARTED + 2,
    upstreamSentAt: STARTED + 3,
    upstreamFirstRxAt: STARTED + 15,
    responseDoneAt: STARTED + 17,
    upstreamLocalAddress: '10.0.0.5:41234',
    logDownstreamTls: undefined,
    upstreamTls: undefined,
    upstreamObservabilityName: 'orders',
    logFilterState: undefined,
    logDynamicMetadata: undefined,
    healthCheck: false,
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
      '"response_code":200,"response_flags":"-","response_code_details":"via_upstream","route_name":"app","upstream_transport_failure_reason":null,"bytes_received":12,"bytes_sent":345,"duration_ms":17,"upstream_host":"10.0.0.7:8080",' +
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
  assert.deepEqual(errorsOf([stdout({ json_format: { n: { deep: ['x', '%UPSTREAM_FILTER_STATE(a.b)%'] } } })]).map((e) => e.path), [at('n.deep[1]')]);
  // A time format with a specifier the sidecar does not format names it (and the operator).
  assert.deepEqual(errorsOf([stdout({ json_format: { t: '%START_TIME(%Y %Q)%' } })]), [{ path: at('t'), message: '%START_TIME(%Y %Q)%: "%Y %Q": %Q at position 3 is not a time specifier the weft sidecar formats (strftime\'s in the C locale, Envoy\'s %s and %f, absl\'s %E forms are)' }]);
  assert.match(errorsOf([stdout({ json_format: { t: '%DOWNSTREAM_PEER_CERT_V_END(%Ec)%' } })])[0]!.message, /^%DOWNSTREAM_PEER_CERT_V_END\(%Ec\)%: .*%Ec at position 0 is not a time specifier/);
  assert.match(errorsOf([stdout({ json_format: { t: '%DOWNSTREAM_TLS_SESSION_ID%' } })])[0]!.message, /not supported/);
  assert.match(errorsOf([stdout({ json_format: { bad: 'a % b' } })])[0]!.message, /not a command operator/);
  assert.match(errorsOf([stdout({ json_format: { b: true } })])[0]!.path, /json_format\.b$/);
  assert.deepEqual(errorsOf([stdout({ text_format: '%DOWNSTREAM_PEER_CHAIN_SERIALS%' })]), [{ path: `${LOG_PATH}.log_format.text_format`, message: '%DOWNSTREAM_PEER_CHAIN_SERIALS% is not supported by the weft sidecar' }]);
  assert.deepEqual(errorsOf([stdout({ text_format_source: { filename: '/etc/fmt' } })]).map((e) => e.path), [`${LOG_PATH}.log_format.text_format_source.filename`, `${LOG_PATH}.log_format.text_format_source.inline_string`]);
  assert.equal(errorsOf([stdout({ json_format: { a: 'x' }, formatters: [{ name: 'x', typed_config: {} }] })])[0]!.path, `${LOG_PATH}.log_format.formatters`);
  // Another logger (file) is NACKed at its type.
  const file = { name: 'f', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog', path: '/dev/stdout' } };
  assert.equal(errorsOf([file])[0]!.path, `${LOG_PATH}.@type`);
});

test("%FILTER_STATE()% reads what a wasm filter stored with set_property (Envoy's wasm.<path> CelState): PLAIN the bytes, TYPED an Any of BytesValue, in json_format as an object", () => {
  const state = new Map([['user', new TextEncoder().encode('alice')]]);
  const stored = proxied({ logFilterState: state });
  const typed = '{"@type":"type.googleapis.com/google.protobuf.BytesValue","value":"YWxpY2U="}';
  // Text: TYPED (the default) is protobuf's JSON of the Any, a length limit cuts either form, and a key nothing was
  // stored under (or one that is not a wasm filter's) is -.
  const text = '%FILTER_STATE(wasm.user:PLAIN)% %FILTER_STATE(wasm.user)% %FILTER_STATE(wasm.user:TYPED):9% %FILTER_STATE(wasm.user:PLAIN):3% %FILTER_STATE(wasm.none:PLAIN)% %FILTER_STATE(user:PLAIN)%\n';
  assert.equal(compile({ text_format_source: { inline_string: text } }).format(stored), `alice ${typed} {"@type": ali - -`);
  // json_format: TYPED alone is the Any as an object (Envoy's formatValue), PLAIN a string, nothing null.
  const json = compile({ json_format: { u: '%FILTER_STATE(wasm.user)%', p: '%FILTER_STATE(wasm.user:PLAIN)%', n: '%FILTER_STATE(wasm.none)%', in: 'user=%FILTER_STATE(wasm.user:PLAIN)%' } });
  assert.equal(json.format(stored), `{"u":${typed},"p":"alice","n":null,"in":"user=alice"}`);
  assert.deepEqual(JSON.parse(json.format(stored)).u, { '@type': 'type.googleapis.com/google.protobuf.BytesValue', value: 'YWxpY2U=' });
  // A stream whose filters stored nothing (or that had no wasm filter).
  assert.equal(json.format(proxied()), '{"u":null,"p":null,"n":null,"in":"user=-"}');
  const at = (key: string) => `${LOG_PATH}.log_format.json_format.${key}`;
  for (const [op, message] of [
    ['%FILTER_STATE(wasm.user:FIELD:name)%', /FIELD is not supported/],
    ['%FILTER_STATE(wasm.user:RAW)%', /PLAIN or TYPED/],
    ['%FILTER_STATE()%', /needs a key/],
  ] as const) {
    const errors = errorsOf([stdout({ json_format: { f: op } })]);
    assert.equal(errors[0]?.path, at('f'), op);
    assert.match(errors[0]!.message, message);
  }
});

test("%DYNAMIC_METADATA()% reads the stream's dynamic metadata as Envoy's MetadataFormatter: a key's string, or the namespace as JSON (an object in json_format)", () => {
  const md = { 'envoy.filters.http.rbac': { shadow_engine_result: 'denied', shadow_effective_policy_id: 'default/no-debug/rules[0]' } };
  const s = proxied({ logDynamicMetadata: md });
  const whole = '{"shadow_effective_policy_id":"default/no-debug/rules[0]","shadow_engine_result":"denied"}';
  const text = '%DYNAMIC_METADATA(envoy.filters.http.rbac:shadow_engine_result)% %DYNAMIC_METADATA(envoy.filters.http.rbac:shadow_effective_policy_id):7% %DYNAMIC_METADATA(envoy.filters.http.rbac)% %DYNAMIC_METADATA(envoy.filters.http.rbac:nope)% %DYNAMIC_METADATA(other)% %DYNAMIC_METADATA(envoy.filters.http.rbac:shadow_engine_result:deeper)%\n';
  assert.equal(compile({ text_format_source: { inline_string: text } }).format(s), `denied default ${whole} - - -`);
  const json = compile({ json_format: { r: '%DYNAMIC_METADATA(envoy.filters.http.rbac:shadow_engine_result):3%', all: '%DYNAMIC_METADATA(envoy.filters.http.rbac)%', none: '%DYNAMIC_METADATA(other:k)%' } });
  assert.equal(json.format(s), `{"r":"den","all":${whole},"none":null}`);
  assert.equal(json.format(proxied()), '{"r":null,"all":null,"none":null}');
  assert.match(errorsOf([stdout({ json_format: { m: '%DYNAMIC_METADATA()%' } })])[0]!.message, /needs a namespace/);
  assert.match(errorsOf([stdout({ json_format: { m: '%DYNAMIC_METADATA(ns::k)%' } })])[0]!.message, /empty namespace or key/);
});

test('the timing operators: whole milliseconds from the start, RESPONSE_TX_DURATION from the first upstream byte, - when not reached', () => {
  const f = compile({
    json_format: {
      rq: '%REQUEST_DURATION%',
      rqtx: '%REQUEST_TX_DURATION%',
      rs: '%RESPONSE_DURATION%',
      rstx: '%RESPONSE_TX_DURATION%',
      d: '%DURATION%',
      local: '%UPSTREAM_LOCAL_ADDRESS%',
      ip: '%UPSTREAM_LOCAL_ADDRESS_WITHOUT_PORT%',
      port: '%UPSTREAM_LOCAL_PORT%',
      t: '%TRAILER(GRPC-STATUS)%/%TRAILER(X-NONE?GRPC-MESSAGE):2%',
    },
  });
  assert.equal(f.needsTimes, true, 'the stream records its timing points for this format');
  assert.deepEqual(JSON.parse(f.format(proxied({ logResponseTrailers: [['grpc-status', '0'], ['grpc-message', 'fine']] }))), { rq: 2, rqtx: 3, rs: 15, rstx: 2, d: 17, local: '10.0.0.5:41234', ip: '10.0.0.5', port: 41234, t: '0/fi' });
  // A local reply: nothing went upstream, so only the request's own time is known.
  const local = localReply();
  const none = { ...local, upstreamSentAt: 0, upstreamFirstRxAt: 0, upstreamLocalAddress: undefined };
  assert.deepEqual(JSON.parse(f.format(none)), { rq: 2, rqtx: null, rs: null, rstx: null, d: 17, local: null, ip: null, port: null, t: '-/-' });
  // The client left before its request ended and before any response: every timing point but the start is missing.
  assert.equal(compile({ text_format: '%REQUEST_DURATION% %RESPONSE_DURATION% %RESPONSE_TX_DURATION% %DURATION%' }).format({ ...none, requestDoneAt: 0, responseDoneAt: 0 }), '- - - 17');
  // IPv6 upstream local address.
  assert.equal(compile({ text_format: '%UPSTREAM_LOCAL_ADDRESS_WITHOUT_PORT% %UPSTREAM_LOCAL_PORT%' }).format(proxied({ upstreamLocalAddress: '[::1]:5000' })), '::1 5000');
  assert.equal(compile({ text_format: '%RESPONSE_CODE%' }).needsTimes, false, 'a format without them records nothing');
  // A TLS handshake to the upstream that failed: the router's 503 says why, and so does the operator.
  const why = 'TLS_error:ERR_TLS_CERT_ALTNAME_INVALID:server certificate SAN spiffe://weft.local/ns/default/sa/a is not spiffe://weft.local/ns/default/sa/b';
  const uf = localReply();
  const tlsFailed = { ...uf, replied: { status: 503, body: '', headers: [], flag: 'UF', transport: why } };
  // As Envoy's formatter writes it: spaces as '_'.
  assert.equal(compile({ text_format: '%UPSTREAM_TRANSPORT_FAILURE_REASON%' }).format(tlsFailed), why.replaceAll(' ', '_'));
  assert.equal(compile({ text_format: '%UPSTREAM_TRANSPORT_FAILURE_REASON%' }).format(uf), '-');
});

/** The listener's one access logger with `filter`. */
function filtered(filter: unknown, format: unknown = { text_format: '%RESPONSE_CODE%' }): AccessLogFormat {
  const f = formats([{ ...(stdout(format) as object), filter }]);
  assert.equal(f?.length, 1);
  assert.ok(f![0]!.filter, 'a filter was compiled');
  return f![0]!;
}

function filterErrors(filter: unknown): { path: string; message: string }[] {
  return errorsOf([{ ...(stdout({ text_format: 'x' }) as object), filter }]);
}

const FILTER_PATH = `${HCM_PATH}.access_log[0].filter`;
const noRuntime: FilterContext = { runtime: undefined, random: () => 0.5 };

/** A proxied request with these log fields changed. */
function withLog(log: Partial<LogSource['log']>, over: Partial<LogSource> = {}): LogSource {
  const s = proxied(over);
  Object.assign(s.log, log);
  return s;
}

test('status_code and duration filters compare as Envoy, the runtime key over the default value', () => {
  const errors = filtered({ status_code_filter: { comparison: { op: 'GE', value: { default_value: 500, runtime_key: 'access_log.min_status' } } } });
  assert.equal(errors.filter!(withLog({ response_code: 503 }), noRuntime), true);
  assert.equal(errors.filter!(withLog({ response_code: 404 }), noRuntime), false);
  const runtime = new Runtime([{ name: 'admin', kind: 'admin' }], '');
  const ctx: FilterContext = { runtime, random: () => 0.5 };
  assert.equal(errors.filter!(withLog({ response_code: 404 }), ctx), false);
  runtime.merge([['access_log.min_status', '400']]);
  assert.equal(errors.filter!(withLog({ response_code: 404 }), ctx), true, 'the runtime lowered the threshold');
  // EQ on 0: requests that got no response (the client left).
  const noResponse = filtered({ status_code_filter: { comparison: { op: 'EQ', value: { default_value: 0, runtime_key: 'k' } } } });
  assert.equal(noResponse.filter!(withLog({ response_code: 0 }), noRuntime), true);
  assert.equal(noResponse.filter!(withLog({ response_code: 200 }), noRuntime), false);
  const slow = filtered({ duration_filter: { comparison: { op: 'GE', value: { default_value: 100, runtime_key: 'k' } } } });
  assert.equal(slow.filter!(withLog({ duration_ms: 100 }), noRuntime), true);
  assert.equal(slow.filter!(withLog({ duration_ms: 99 }), noRuntime), false);
  const fast = filtered({ duration_filter: { comparison: { op: 'LE', value: { default_value: 10, runtime_key: 'k' } } } });
  assert.equal(fast.filter!(withLog({ duration_ms: 9 }), noRuntime), true);
  assert.equal(fast.filter!(withLog({ duration_ms: 11 }), noRuntime), false);
});

test('header, response flag, grpc status, not_health_check and log type filters; and/or nest', () => {
  const header = filtered({ header_filter: { header: { name: 'User-Agent', string_match: { prefix: 'curl/' } } } });
  assert.equal(header.filter!(proxied(), noRuntime), true);
  assert.equal(header.filter!(proxied({ logRequestHeaders: [['user-agent', 'wget']] }), noRuntime), false);
  const path = filtered({ header_filter: { header: { name: ':path', string_match: { prefix: '/items' } } } });
  assert.equal(path.filter!(proxied(), noRuntime), true, ':path as the router sent it');
  const absent = filtered({ header_filter: { header: { name: 'x-debug', present_match: true, invert_match: true } } });
  assert.equal(absent.filter!(proxied(), noRuntime), true);
  assert.equal(absent.filter!(proxied({ logRequestHeaders: [['x-debug', '1']] }), noRuntime), false);
  // A codec reply parsed no path: :path is absent, so even an inverted match fails (as Envoy's matchHeaders).
  const notHealth = filtered({ header_filter: { header: { name: ':path', string_match: { prefix: '/healthz' }, invert_match: true } } });
  assert.equal(notHealth.filter!(proxied(), noRuntime), true);
  assert.equal(notHealth.filter!(withLog({ path: '' }, { upstreamPath: undefined }), noRuntime), false);
  const host = filtered({ header_filter: { header: { name: 'host', string_match: { exact: 'orders' } } } });
  assert.equal(host.filter!(proxied(), noRuntime), true, 'host is :authority');

  const anyFlag = filtered({ response_flag_filter: {} });
  assert.equal(anyFlag.filter!(proxied(), noRuntime), false);
  assert.equal(anyFlag.filter!(withLog({ response_flags: 'UH' }), noRuntime), true);
  const ufOrUt = filtered({ response_flag_filter: { flags: ['UF', 'UT'] } });
  assert.equal(ufOrUt.filter!(withLog({ response_flags: 'UF,URX' }), noRuntime), true);
  assert.equal(ufOrUt.filter!(withLog({ response_flags: 'URX' }), noRuntime), false, 'URX is not UF');
  assert.equal(ufOrUt.filter!(withLog({ response_flags: 'UH' }), noRuntime), false);

  const grpc = filtered({ grpc_status_filter: { statuses: ['UNAVAILABLE', 'DEADLINE_EXCEEDED'] } });
  assert.equal(grpc.filter!(withLog({ response_code: 200 }, { logResponseTrailers: [['grpc-status', '14']] }), noRuntime), true);
  assert.equal(grpc.filter!(withLog({ response_code: 200 }, { logResponseHeaders: [['grpc-status', '4']] }), noRuntime), true, 'trailers-only');
  assert.equal(grpc.filter!(withLog({ response_code: 200 }, { logResponseTrailers: [['grpc-status', '0']] }), noRuntime), false);
  assert.equal(grpc.filter!(withLog({ response_code: 503 }), noRuntime), true, 'no grpc-status: 503 is UNAVAILABLE');
  assert.equal(grpc.filter!(withLog({ response_code: 200 }), noRuntime), false, 'no grpc-status: 200 is UNKNOWN');
  const notOk = filtered({ grpc_status_filter: { statuses: ['OK'], exclude: true } });
  assert.equal(notOk.filter!(withLog({}, { logResponseTrailers: [['grpc-status', '0']] }), noRuntime), false);
  assert.equal(notOk.filter!(withLog({}, { logResponseTrailers: [['grpc-status', '13']] }), noRuntime), true);

  assert.equal(filtered({ not_health_check_filter: {} }).filter!(proxied(), noRuntime), true, 'no health_check filter: no request is a health check');
  assert.equal(filtered({ log_type_filter: { types: ['DownstreamEnd'] } }).filter!(proxied(), noRuntime), true);
  assert.equal(filtered({ log_type_filter: { types: ['DownstreamStart'] } }).filter!(proxied(), noRuntime), false);
  assert.equal(filtered({ log_type_filter: { types: ['DownstreamEnd'], exclude: true } }).filter!(proxied(), noRuntime), false);

  // Errors (5xx) or slow (>= 1 s), but never those from curl.
  const nested = filtered({
    and_filter: {
      filters: [
        { or_filter: { filters: [{ status_code_filter: { comparison: { op: 'GE', value: { default_value: 500, runtime_key: 'a' } } } }, { duration_filter: { comparison: { op: 'GE', value: { default_value: 1000, runtime_key: 'b' } } } }] } },
        { header_filter: { header: { name: 'user-agent', string_match: { prefix: 'curl/' }, invert_match: true } } },
      ],
    },
  });
  const wget: Partial<LogSource> = { logRequestHeaders: [['user-agent', 'wget']] };
  assert.equal(nested.filter!(withLog({ response_code: 502 }, wget), noRuntime), true);
  assert.equal(nested.filter!(withLog({ duration_ms: 1500 }, wget), noRuntime), true);
  assert.equal(nested.filter!(withLog({ duration_ms: 15 }, wget), noRuntime), false);
  assert.equal(nested.filter!(withLog({ response_code: 502 }), noRuntime), false, 'curl is excluded');
});

test("runtime_filter samples on the x-request-id's first 8 hex digits (as every Envoy does), else at random", () => {
  const sampled = filtered({ runtime_filter: { runtime_key: 'access_log.sample', percent_sampled: { numerator: 30, denominator: 'HUNDRED' } } });
  const rid = (id: string) => proxied({ logRequestHeaders: [['x-request-id', id]] });
  // 0x0000001d = 29: 29 % 100 < 30; 0x0000001e = 30 is not.
  assert.equal(sampled.filter!(rid('0000001d-aaaa-4bbb-8ccc-dddddddddddd'), noRuntime), true);
  assert.equal(sampled.filter!(rid('0000001e-aaaa-4bbb-8ccc-dddddddddddd'), noRuntime), false);
  // No usable id: the random value decides (0.25 * 2^32 = 2^30, 24 % 100 < 30; 99 / 2^32 * 2^32 = 99 is not).
  assert.equal(sampled.filter!(rid('not-hex!'), { runtime: undefined, random: () => 0.25 }), true);
  assert.equal(sampled.filter!(rid('not-hex!'), { runtime: undefined, random: () => 99 / 2 ** 32 }), false);
  // use_independent_randomness ignores the id.
  const independent = filtered({ runtime_filter: { runtime_key: 'k', percent_sampled: { numerator: 30 }, use_independent_randomness: true } });
  assert.equal(independent.filter!(rid('0000001d-aaaa-4bbb-8ccc-dddddddddddd'), { runtime: undefined, random: () => 99 / 2 ** 32 }), false);
  // The runtime key's value replaces the numerator; TEN_THOUSAND buckets.
  const runtime = new Runtime([{ name: 'admin', kind: 'admin' }], '');
  const bp = filtered({ runtime_filter: { runtime_key: 'bp', percent_sampled: { numerator: 1, denominator: 'TEN_THOUSAND' } } });
  const id = rid('00000064-aaaa-4bbb-8ccc-dddddddddddd'); // 100
  assert.equal(bp.filter!(id, { runtime, random: () => 0 }), false);
  runtime.merge([['bp', '101']]);
  assert.equal(bp.filter!(id, { runtime, random: () => 0 }), true);
});

test('bad or unimplemented access log filters are NACKed naming the field path', () => {
  assert.deepEqual(filterErrors({ traceable_filter: {} }).map((e) => e.path), [`${FILTER_PATH}.traceable_filter`]);
  assert.deepEqual(filterErrors({ metadata_filter: { matcher: { filter: 'x' } } }).map((e) => e.path), [`${FILTER_PATH}.metadata_filter`]);
  assert.deepEqual(filterErrors({ extension_filter: { name: 'x' } }).map((e) => e.path), [`${FILTER_PATH}.extension_filter`]);
  assert.deepEqual(filterErrors({ response_flag_filter: { flags: ['UH', 'WF', 'nope'] } }).map((e) => e.path), [`${FILTER_PATH}.response_flag_filter.flags[1]`, `${FILTER_PATH}.response_flag_filter.flags[2]`]);
  assert.deepEqual(filterErrors({ and_filter: { filters: [{ not_health_check_filter: {} }] } }).map((e) => e.path), [`${FILTER_PATH}.and_filter.filters`]);
  assert.deepEqual(filterErrors({ or_filter: { filters: [{ not_health_check_filter: {} }, { traceable_filter: {} }] } }).map((e) => e.path), [`${FILTER_PATH}.or_filter.filters[1].traceable_filter`]);
  assert.deepEqual(filterErrors({ status_code_filter: {} }).map((e) => e.path), [`${FILTER_PATH}.status_code_filter.comparison`]);
  assert.deepEqual(filterErrors({ status_code_filter: { comparison: { op: 'GT', value: { default_value: 1, runtime_key: 'k' } } } }).map((e) => e.path), [`${FILTER_PATH}.status_code_filter.comparison.op`]);
  assert.deepEqual(filterErrors({ duration_filter: { comparison: { value: { default_value: 1 } } } }).map((e) => e.path), [`${FILTER_PATH}.duration_filter.comparison.value.runtime_key`]);
  assert.deepEqual(filterErrors({ runtime_filter: { percent_sampled: { numerator: 1 } } }).map((e) => e.path), [`${FILTER_PATH}.runtime_filter.runtime_key`]);
  assert.deepEqual(filterErrors({ grpc_status_filter: { statuses: ['OK', 'NOPE'] } }).map((e) => e.path), [`${FILTER_PATH}.grpc_status_filter.statuses[1]`]);
  assert.deepEqual(filterErrors({ header_filter: {} }).map((e) => e.path), [`${FILTER_PATH}.header_filter.header`]);
  assert.deepEqual(filterErrors({}).map((e) => e.path), [FILTER_PATH]);
  assert.deepEqual(filterErrors({ not_health_check_filter: {}, status_code_filter: { comparison: {} } }).map((e) => e.path), [`${FILTER_PATH}.not_health_check_filter`], 'one filter per AccessLogFilter');
  assert.deepEqual(filterErrors({ status_code_filter: { comparison: { value: { default_value: 1, runtime_key: 'k' } } }, bogus: 1 }).map((e) => e.path), [`${FILTER_PATH}.bogus`]);
});

/** Istio's default access log format (meshConfig.accessLogFormat unset), as istioctl installs it. */
const ISTIO_TEXT =
  '[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" %RESPONSE_CODE% %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS% %CONNECTION_TERMINATION_DETAILS% ' +
  '"%UPSTREAM_TRANSPORT_FAILURE_REASON%" %BYTES_RECEIVED% %BYTES_SENT% %DURATION% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%" "%REQ(X-REQUEST-ID)%" ' +
  '"%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%" %UPSTREAM_CLUSTER% %UPSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS% %REQUESTED_SERVER_NAME% %ROUTE_NAME%\n';

test("Istio's default text format is accepted and gives Envoy's line", () => {
  const f = compile({ text_format: ISTIO_TEXT });
  assert.equal(
    f.format(proxied()),
    '[2026-11-28T04:05:06.789Z] "GET /api/items?x=1 HTTP/1.1" 200 - via_upstream - "-" 12 345 17 15 "-" "curl/8.5.0" "rid-1" "orders" "10.0.0.7:8080" orders 10.0.0.5:41234 [::1]:15006 127.0.0.1:50123 - app',
  );
  // A TLS failure to the upstream: its reason with spaces as '_', as Envoy's formatter writes it.
  const failed = localReply() as { -readonly [K in keyof LogSource]: LogSource[K] };
  failed.replied = { status: 503, body: 'x', headers: [], flag: 'UF', details: 'upstream_reset_before_response_started{connection_failure}', transport: 'TLS_error:268435581:SSL routines:OPENSSL_internal:CERTIFICATE_VERIFY_FAILED: unknown ca' } as never;
  assert.match(f.format(failed), / "TLS_error:268435581:SSL_routines:OPENSSL_internal:CERTIFICATE_VERIFY_FAILED:_unknown_ca" /);
});

test('UPSTREAM_CLUSTER is the observability name (alt_stat_name), UPSTREAM_CLUSTER_RAW the name; remote address, long flags, ports', () => {
  const f = compile({
    json_format: {
      cluster: '%UPSTREAM_CLUSTER%',
      raw: '%UPSTREAM_CLUSTER_RAW%',
      remote: '%UPSTREAM_REMOTE_ADDRESS%',
      remote_ip: '%UPSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%',
      remote_port: '%UPSTREAM_REMOTE_PORT%',
      flags: '%RESPONSE_FLAGS_LONG%',
      client_port: '%DOWNSTREAM_REMOTE_PORT%',
      direct_local: '%DOWNSTREAM_DIRECT_LOCAL_ADDRESS%',
      direct_local_port: '%DOWNSTREAM_DIRECT_LOCAL_PORT%',
      termination: '%CONNECTION_TERMINATION_DETAILS%',
    },
  });
  assert.deepEqual(JSON.parse(f.format(proxied({ upstreamObservabilityName: 'orders-stats' }))), {
    cluster: 'orders-stats',
    raw: 'orders',
    remote: '10.0.0.7:8080',
    remote_ip: '10.0.0.7',
    remote_port: 8080,
    flags: '-',
    client_port: 50123,
    direct_local: '[::1]:15006',
    direct_local_port: 15006,
    termination: null,
  });
  const local = localReply();
  local.log.response_flags = 'UF,URX';
  const line = JSON.parse(f.format(local));
  assert.equal(line.flags, 'UpstreamConnectionFailure,UpstreamRetryLimitExceeded');
  assert.equal(line.remote, null);
});

test('TLS operators read the connection as Envoy\'s Ssl::ConnectionInfo: none on plaintext, none for an empty value', () => {
  const tls: TlsInfo = {
    version: 'TLSv1.3',
    cipher: 'TLS_AES_128_GCM_SHA256',
    peerUriSan: 'spiffe://weft.local/ns/default/sa/web',
    peerDnsSan: '',
    peerIpSan: '',
    peerEmailSan: '',
    peerSubject: 'CN=web,O=weft',
    peerIssuer: 'CN=weft-ca',
    peerSerial: '0a1b',
    peerSha256: 'ab'.repeat(32),
    peerSha1: 'cd'.repeat(20),
    peerCertEncoded: '-----BEGIN%20CERTIFICATE-----%0AMIIB%2Fw%3D%3D%0A-----END%20CERTIFICATE-----%0A',
    peerValidFrom: Date.UTC(2026, 10, 28),
    peerValidTo: Date.UTC(2026, 10, 29),
    localUriSan: 'spiffe://weft.local/ns/default/sa/orders',
    localDnsSan: '',
    localIpSan: '',
    localEmailSan: '',
    localSubject: 'CN=orders,O=weft',
  };
  const f = compile({
    json_format: {
      peer: '%DOWNSTREAM_PEER_URI_SAN%',
      dns: '%DOWNSTREAM_PEER_DNS_SAN%',
      local: '%DOWNSTREAM_LOCAL_URI_SAN%',
      subject: '%DOWNSTREAM_PEER_SUBJECT%',
      issuer: '%DOWNSTREAM_PEER_ISSUER%',
      version: '%DOWNSTREAM_TLS_VERSION%',
      cipher: '%DOWNSTREAM_TLS_CIPHER%',
      sha256: '%DOWNSTREAM_PEER_FINGERPRINT_256%',
      serial: '%DOWNSTREAM_PEER_SERIAL%',
      from: '%DOWNSTREAM_PEER_CERT_V_START%',
      to: '%DOWNSTREAM_PEER_CERT_V_END%',
      to_day: '%DOWNSTREAM_PEER_CERT_V_END(%d %b %Y)%',
      pem: '%DOWNSTREAM_PEER_CERT%',
      upstream: '%UPSTREAM_PEER_URI_SAN%',
      upstream_pem: '%UPSTREAM_PEER_CERT%',
      upstream_to: '%UPSTREAM_PEER_CERT_V_END(%s)%',
      upstream_version: '%UPSTREAM_TLS_VERSION%',
    },
  });
  assert.equal(f.needsDownstreamTls, true);
  assert.equal(f.needsUpstreamTls, true);
  assert.equal(f.needsTimes, true, 'the upstream connection is read as the request is sent');
  assert.deepEqual(JSON.parse(f.format(proxied({ logDownstreamTls: tls, upstreamTls: { ...tls, peerUriSan: 'spiffe://weft.local/ns/default/sa/inventory' } }))), {
    peer: 'spiffe://weft.local/ns/default/sa/web',
    dns: null,
    local: 'spiffe://weft.local/ns/default/sa/orders',
    subject: 'CN=web,O=weft',
    issuer: 'CN=weft-ca',
    version: 'TLSv1.3',
    cipher: 'TLS_AES_128_GCM_SHA256',
    sha256: 'ab'.repeat(32),
    serial: '0a1b',
    from: '2026-11-28T00:00:00.000Z',
    to: '2026-11-29T00:00:00.000Z',
    to_day: '29 Nov 2026',
    pem: '-----BEGIN%20CERTIFICATE-----%0AMIIB%2Fw%3D%3D%0A-----END%20CERTIFICATE-----%0A',
    upstream: 'spiffe://weft.local/ns/default/sa/inventory',
    upstream_pem: '-----BEGIN%20CERTIFICATE-----%0AMIIB%2Fw%3D%3D%0A-----END%20CERTIFICATE-----%0A',
    upstream_to: String(Date.UTC(2026, 10, 29) / 1000),
    upstream_version: 'TLSv1.3',
  });
  const plain = JSON.parse(f.format(proxied()));
  for (const v of Object.values(plain)) assert.equal(v, null);
  // A format without TLS operators asks for nothing.
  const none = compile({ text_format: '%RESPONSE_CODE%' });
  assert.equal(none.needsDownstreamTls, false);
  assert.equal(none.needsUpstreamTls, false);
});

test('%START_TIME(format)% formats the start as Envoy\'s DateFormatter: strftime in UTC with %s, %f and absl\'s %E forms', () => {
  // STARTED is 2026-11-28T04:05:06.789Z, a Saturday, day 332 of the year.
  const f = compile({
    json_format: {
      envoy_default: '%START_TIME%',
      empty: '%START_TIME()%',
      seconds: '%START_TIME(%s)%',
      millis: '%START_TIME(%s.%3f)%',
      micros: '%START_TIME(%s.%6f)%',
      nanos: '%START_TIME(%f)%',
      one: '%START_TIME(%1f)%',
      docs: '%START_TIME(%Y/%m/%dT%H:%M:%S%z %s)%',
      absl: '%START_TIME(%Y-%m-%dT%H:%M:%E3SZ)%',
      star_s: '%START_TIME(%E*S)%',
      star_f: '%START_TIME(%E*f)%',
      rfc3339: '%START_TIME(%FT%T%Ez)%',
      zone: '%START_TIME(%E*z %Z)%',
      names: '%START_TIME(%a %A %b %B %h %p %P)%',
      c_locale: '%START_TIME(%c|%x|%X|%D|%r|%R)%',
      weeks: '%START_TIME(%j %U %W %V %G %g %u %w)%',
      padded: '%START_TIME(%e|%k|%l|%I|%C|%y|%E4Y)%',
      literal: '%START_TIME(100%% at %H)%',
      text: 'at %START_TIME(%H:%M)% done',
    },
  });
  assert.deepEqual(JSON.parse(f.format(proxied())), {
    envoy_default: '2026-11-28T04:05:06.789Z',
    empty: '2026-11-28T04:05:06.789Z',
    seconds: String(Math.floor(STARTED / 1000)),
    millis: `${Math.floor(STARTED / 1000)}.789`,
    micros: `${Math.floor(STARTED / 1000)}.789000`,
    nanos: '789000000',
    one: '7',
    docs: `2026/11/28T04:05:06+0000 ${Math.floor(STARTED / 1000)}`,
    absl: '2026-11-28T04:05:06.789Z',
    star_s: '06.789',
    star_f: '789',
    rfc3339: '2026-11-28T04:05:06+00:00',
    zone: '+00:00:00 UTC',
    names: 'Sat Saturday Nov November Nov AM am',
    c_locale: 'Sat Nov 28 04:05:06 2026|11/28/26|04:05:06|11/28/26|04:05:06 AM|04:05',
    weeks: '332 47 47 48 2026 26 6 6',
    padded: '28| 4| 4|04|20|26|2026',
    literal: '100% at 04',
    text: 'at 04:05 done',
  });
  // On a whole second %E*S has no fraction and %E*f is 0; %E0S none either.
  const whole = compile({ json_format: { s: '%START_TIME(%E*S|%E*f|%E0S|%E2S)%' } });
  assert.equal(JSON.parse(whole.format(proxied({ started: Date.UTC(2027, 0, 1, 0, 0, 0) }))).s, '00|0|00|00.00');
});

test('time formats agree with the C library where both define them (date(1) in UTC)', { skip: process.platform === 'win32' ? 'no date(1)' : false }, async () => {
  const { execFileSync } = await import('node:child_process');
  const { compileTimeFormat } = await import('../../sidecar/time-format.ts');
  const format = '%a %A %b %B %c %C %d %D %e %F %g %G %h %H %I %j %k %l %m %M %p %r %R %s %S %T %u %U %V %w %W %x %X %y %Y %z %Z';
  // Days around year ends and a leap day, where the week numbers and the ISO year differ.
  for (const iso of ['2026-11-28T04:05:06Z', '2027-01-01T23:59:59Z', '2026-12-31T12:00:00Z', '2024-02-29T00:00:00Z', '2021-01-03T13:14:15Z', '2020-12-31T00:00:00Z']) {
    const ms = Date.parse(iso);
    const expected = execFileSync('date', ['-u', '-d', `@${ms / 1000}`, `+${format}`], { env: { ...process.env, LC_ALL: 'C', TZ: 'UTC' }, encoding: 'utf8' }).trimEnd();
    const f = compileTimeFormat(format);
    assert.equal(typeof f, 'function');
    assert.equal((f as (ms: number) => string)(ms), expected, iso);
  }
});
