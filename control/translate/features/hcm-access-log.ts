// JSON access logs on stdout (Envoy's stdout access logger), one line per
// request, in every sidecar HTTP connection manager, when the control plane is
// started with access logs on. stdout, because `docker compose logs` and every
// container runtime already collect it; JSON, so a log pipeline needs no parser.
// Off by default: the translator's output stays what the golden files pin.

import { registerHcmFeature } from '../registry.ts';

const STDOUT_LOG_TYPE = 'type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog';

/** The default fields: Envoy format operators, named as in Envoy's own examples. */
export const DEFAULT_ACCESS_LOG_FIELDS: Readonly<Record<string, string>> = {
  start_time: '%START_TIME%',
  method: '%REQ(:METHOD)%',
  path: '%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%',
  protocol: '%PROTOCOL%',
  authority: '%REQ(:AUTHORITY)%',
  response_code: '%RESPONSE_CODE%',
  response_flags: '%RESPONSE_FLAGS%',
  // Why the proxy answered as it did (no_healthy_upstream, wasm_fail_stream, direct_response, via_upstream), the
  // route that matched, and why an upstream connection failed: Istio's default JSON format has all three, and
  // without them a 503 with no flag (a trapped fail_closed wasm filter's, as Envoy's) said nothing of its cause.
  response_code_details: '%RESPONSE_CODE_DETAILS%',
  route_name: '%ROUTE_NAME%',
  upstream_transport_failure_reason: '%UPSTREAM_TRANSPORT_FAILURE_REASON%',
  bytes_received: '%BYTES_RECEIVED%',
  bytes_sent: '%BYTES_SENT%',
  duration_ms: '%DURATION%',
  upstream_host: '%UPSTREAM_HOST%',
  upstream_cluster: '%UPSTREAM_CLUSTER%',
  request_id: '%REQ(X-REQUEST-ID)%',
  user_agent: '%REQ(USER-AGENT)%',
};

// A command operator: %NAME%, %NAME(args)% or %NAME(args):maxlen%. Envoy
// refuses a format with a stray or malformed one at load time, so the
// translator refuses it first. Which names exist is Envoy's to say (the list
// grows each release), so only the syntax is checked here.
const OPERATOR = /%[A-Z][A-Z0-9_]*(\([^()%]*\))?(:\d+)?%/g;

function malformedOperator(format: string): boolean {
  return format.replace(OPERATOR, '').includes('%');
}

registerHcmFeature('access-log', (hcm, target, ctx) => {
  const options = ctx.options.accessLog;
  // gRPC libraries have no access logger.
  if (!options || target.kind === 'proxyless') return;
  const fields = options.fields ?? DEFAULT_ACCESS_LOG_FIELDS;
  let valid = true;
  if (Object.keys(fields).length === 0) {
    ctx.errors.push({ path: 'options.accessLog.fields', message: 'must name at least one field (omit it for the defaults)' });
    valid = false;
  }
  for (const [key, value] of Object.entries(fields)) {
    if (key.length === 0 || typeof value !== 'string' || value.length === 0) {
      ctx.errors.push({ path: `options.accessLog.fields.${key}`, message: 'must be a non-empty key with a non-empty format string' });
      valid = false;
    } else if (malformedOperator(value)) {
      ctx.errors.push({ path: `options.accessLog.fields.${key}`, message: `${JSON.stringify(value)}: a command operator is %NAME%, %NAME(arg)% or %NAME(arg):N%` });
      valid = false;
    }
  }
  if (!valid) return;
  hcm.access_log = [{
    name: 'envoy.access_loggers.stdout',
    // Callers' active health checks stay out of the inbound log (options.accessLog.healthChecks keeps them): a
    // service probed by three clusters every 2 s, as the demo's orders, wrote 1.5 lines a second per sidecar,
    // drowning the requests. The inbound health_check filter marks them (http-filter-health-check.ts).
    ...(target.kind === 'inbound' && !options.healthChecks ? { filter: { not_health_check_filter: {} } } : {}),
    typed_config: {
      '@type': STDOUT_LOG_TYPE,
      // Literal values name the proxy and side, so interleaved logs from one container stay attributable.
      log_format: { json_format: { ...fields, weft_service: `${ctx.proxy.service}.${ctx.proxy.namespace}`, weft_direction: target.kind } },
    },
  }];
});
