// Telemetry filter: per-request metrics by service, route and status class,
// a duration histogram, one JSON access-log line per request, W3C
// traceparent and x-request-id on every request.

export * from '../sdk/exports';
import {
  Action, ConfigErrors, getHeader, getPropertyI64, getPropertyString, HeaderMapType, HttpContext, incrementCounter,
  jsonString, logEnabled, logError, LogLevel, parseDecimal, logInfo, nowNanos, recordHistogram, registerRoot, replaceHeader, RootContext, uuid4,
} from '../sdk/index';
import { parseTelemetryConfig, TelemetryConfig } from './config';
import { nextTraceParent, parseTraceParent } from './trace';

class TelemetryRoot extends RootContext {
  config: TelemetryConfig = new TelemetryConfig();

  onConfigure(configuration: string): bool {
    const errors = new ConfigErrors();
    const config = parseTelemetryConfig(configuration, errors);
    if (!errors.ok) {
      logError('telemetry: invalid configuration: ' + errors.toString());
      return false;
    }
    if (config.service.length == 0) {
      // Envoy's node.cluster is the service a proxy belongs to (DESIGN.md).
      const cluster = getPropertyString(['node', 'cluster']);
      config.service = cluster === null || cluster.length == 0 ? 'unknown' : cluster;
    }
    this.config = config;
    return true;
  }

  createHttpContext(id: u32): HttpContext | null {
    return new TelemetryStream(id, this);
  }
}

class TelemetryStream extends HttpContext {
  startNanos: u64 = 0;
  method: string = '';
  path: string = '';
  requestId: string = '';
  traceId: string = '';
  spanId: string = '';
  status: i64 = 0;

  get config(): TelemetryConfig { return (this.root as TelemetryRoot).config; }

  onRequestHeaders(numHeaders: u32, endOfStream: bool): Action {
    const config = this.config;
    this.startNanos = nowNanos();
    const method = getHeader(HeaderMapType.RequestHeaders, ':method');
    const path = getHeader(HeaderMapType.RequestHeaders, ':path');
    this.method = method === null ? '' : method;
    this.path = path === null ? '' : path;

    const rid = getHeader(HeaderMapType.RequestHeaders, config.requestIdHeader);
    if (rid === null || rid.length == 0) {
      this.requestId = uuid4();
      replaceHeader(HeaderMapType.RequestHeaders, config.requestIdHeader, this.requestId);
    } else {
      this.requestId = rid;
    }

    if (config.traceContext) {
      const incoming = getHeader(HeaderMapType.RequestHeaders, 'traceparent');
      const next = nextTraceParent(incoming === null ? null : parseTraceParent(incoming));
      this.traceId = next.traceId;
      this.spanId = next.parentId;
      replaceHeader(HeaderMapType.RequestHeaders, 'traceparent', next.toString());
    }
    return Action.Continue;
  }

  onResponseHeaders(numHeaders: u32, endOfStream: bool): Action {
    const status = getHeader(HeaderMapType.ResponseHeaders, ':status');
    if (status !== null) this.status = max<i64>(parseDecimal(status), 0);
    if (this.requestId.length > 0) replaceHeader(HeaderMapType.ResponseHeaders, this.config.requestIdHeader, this.requestId);
    return Action.Continue;
  }

  onLog(): void {
    const config = this.config;
    // response.code covers local replies that never passed response headers.
    const code = getPropertyI64(['response', 'code']);
    if (code > 0) this.status = code;
    const end = nowNanos();
    const durationMs = this.startNanos > 0 && end >= this.startNanos ? (end - this.startNanos) / 1000000 : 0;
    const routeName = getPropertyString(['route_name']);
    const route = routeName === null || routeName.length == 0 ? 'default' : routeName;
    const statusClass = this.status >= 100 && this.status < 600 ? (this.status / 100).toString() + 'xx' : 'unknown';

    incrementCounter(config.metricPrefix + 'requests_total', ['service', config.service, 'route', route, 'status_class', statusClass]);
    recordHistogram(config.metricPrefix + 'request_duration_ms', ['service', config.service, 'route', route], durationMs);

    if (!config.accessLog || !logEnabled(LogLevel.Info)) return;
    const upstream = getPropertyString(['upstream', 'address']);
    const peer = getPropertyString(['connection', 'uri_san_peer_certificate']);
    // One join instead of a chain of concatenations: this runs per request.
    logInfo([
      '{"type":"access","service":', jsonString(config.service),
      ',"request_id":', jsonString(this.requestId),
      ',"method":', jsonString(this.method),
      ',"path":', jsonString(this.path),
      ',"route":', jsonString(route),
      ',"status":', this.status.toString(),
      ',"duration_ms":', durationMs.toString(),
      ',"upstream":', upstream === null ? 'null' : jsonString(upstream),
      ',"peer":', peer === null ? 'null' : jsonString(peer),
      ',"trace_id":', jsonString(this.traceId),
      ',"span_id":', jsonString(this.spanId), '}',
    ].join(''));
  }
}

registerRoot((id: u32): RootContext => new TelemetryRoot(id));
