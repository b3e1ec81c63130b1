// Telemetry filter: per-request metrics by service, route and status class,
// a duration histogram, one JSON access-log line per request, W3C
// traceparent and x-request-id on every request.

export * from '../sdk/exports';
import {
  Action, ConfigErrors, getPropertyString, HeaderMapType, HeaderName, HttpContext, logEnabled, logError, LogLevel, logUtf8,
  Metric, MetricType, nowNanos, parseDecimal, Property, registerRoot, RootContext, Utf8Writer, uuid4,
} from '../sdk/index';
import { parseTelemetryConfig, TelemetryConfig } from './config';
import { nextTraceParent, parseTraceParent, TraceParent } from './trace';

// Names and property paths are encoded once, not per request.
const METHOD = new HeaderName(':method');
const PATH = new HeaderName(':path');
const STATUS = new HeaderName(':status');
const TRACEPARENT = new HeaderName('traceparent');
const TRACESTATE = new HeaderName('tracestate');
const RESPONSE_CODE = new Property(['response', 'code']);
const ROUTE_NAME = new Property(['route_name']);
const UPSTREAM_ADDRESS = new Property(['upstream', 'address']);
const PEER = new Property(['connection', 'uri_san_peer_certificate']);

// Index = status / 100 for 100..599, else 0.
const STATUS_CLASSES: string[] = ['unknown', '1xx', '2xx', '3xx', '4xx', '5xx'];

// The access-log line is written into one reused buffer.
const line = new Utf8Writer(512);

/** A route's metrics, each defined on its first use (same order as before). */
class RouteMetrics {
  requests: StaticArray<Metric | null> = new StaticArray<Metric | null>(6);
  duration: Metric | null = null;

  constructor(public route: string) {}

  requestsFor(config: TelemetryConfig, statusClass: i32): Metric {
    let m = this.requests[statusClass];
    if (m === null) {
      m = new Metric(MetricType.Counter, config.metricPrefix + 'requests_total',
        ['service', config.service, 'route', this.route, 'status_class', STATUS_CLASSES[statusClass]]);
      this.requests[statusClass] = m;
    }
    return m;
  }

  durationFor(config: TelemetryConfig): Metric {
    let m = this.duration;
    if (m === null) {
      m = new Metric(MetricType.Histogram, config.metricPrefix + 'request_duration_ms', ['service', config.service, 'route', this.route]);
      this.duration = m;
    }
    return m;
  }
}

class TelemetryRoot extends RootContext {
  config: TelemetryConfig = new TelemetryConfig();
  requestIdHeader: HeaderName = new HeaderName(this.config.requestIdHeader);
  // Metrics by route, reset with the configuration (names carry its prefix and service).
  routes: Map<string, RouteMetrics> = new Map<string, RouteMetrics>();
  lastRoute: RouteMetrics | null = null;

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
    this.requestIdHeader = new HeaderName(config.requestIdHeader);
    this.routes = new Map<string, RouteMetrics>();
    this.lastRoute = null;
    return true;
  }

  routeMetrics(route: string): RouteMetrics {
    const last = this.lastRoute;
    if (last !== null && last.route == route) return last;
    let m: RouteMetrics;
    if (this.routes.has(route)) {
      m = this.routes.get(route);
    } else {
      m = new RouteMetrics(route);
      this.routes.set(route, m);
    }
    this.lastRoute = m;
    return m;
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

  // Only TelemetryRoot makes these streams.
  get telemetry(): TelemetryRoot { return changetype<TelemetryRoot>(this.root); }

  onRequestHeaders(numHeaders: u32, endOfStream: bool): Action {
    const root = this.telemetry;
    this.startNanos = nowNanos();
    const method = METHOD.get(HeaderMapType.RequestHeaders);
    const path = PATH.get(HeaderMapType.RequestHeaders);
    this.method = method === null ? '' : method;
    this.path = path === null ? '' : path;

    const rid = root.requestIdHeader.get(HeaderMapType.RequestHeaders);
    if (rid === null || rid.length == 0) {
      this.requestId = uuid4();
      root.requestIdHeader.replace(HeaderMapType.RequestHeaders, this.requestId);
    } else {
      this.requestId = rid;
    }

    if (root.config.traceContext) {
      const incoming = TRACEPARENT.get(HeaderMapType.RequestHeaders);
      const parent: TraceParent | null = incoming === null ? null : parseTraceParent(incoming);
      // A restarted trace drops the old trace's vendor state (W3C Trace Context, "Restart trace").
      if (parent === null) TRACESTATE.remove(HeaderMapType.RequestHeaders);
      const next = nextTraceParent(parent);
      this.traceId = next.traceId;
      this.spanId = next.parentId;
      TRACEPARENT.replace(HeaderMapType.RequestHeaders, next.toString());
    }
    return Action.Continue;
  }

  onResponseHeaders(numHeaders: u32, endOfStream: bool): Action {
    const status = STATUS.get(HeaderMapType.ResponseHeaders);
    if (status !== null) this.status = max<i64>(parseDecimal(status), 0);
    if (this.requestId.length > 0) this.telemetry.requestIdHeader.replace(HeaderMapType.ResponseHeaders, this.requestId);
    return Action.Continue;
  }

  onLog(): void {
    const root = this.telemetry;
    const config = root.config;
    // response.code covers local replies that never passed response headers.
    const code = RESPONSE_CODE.i64();
    if (code > 0) this.status = code;
    const end = nowNanos();
    const durationMs = this.startNanos > 0 && end >= this.startNanos ? (end - this.startNanos) / 1000000 : 0;
    const routeName = ROUTE_NAME.string();
    const route = routeName === null || routeName.length == 0 ? 'default' : routeName;
    const statusClass = this.status >= 100 && this.status < 600 ? <i32>(this.status / 100) : 0;

    const metrics = root.routeMetrics(route);
    metrics.requestsFor(config, statusClass).increment();
    metrics.durationFor(config).record(durationMs);

    if (!config.accessLog || !logEnabled(LogLevel.Info)) return;
    const upstream = UPSTREAM_ADDRESS.string();
    const peer = PEER.string();
    const w = line.reset();
    w.text('{"type":"access","service":').json(config.service);
    w.text(',"request_id":').json(this.requestId);
    w.text(',"method":').json(this.method);
    w.text(',"path":').json(this.path);
    w.text(',"route":').json(route);
    w.text(',"status":').int(this.status);
    w.text(',"duration_ms":').uint(durationMs);
    w.text(',"upstream":');
    if (upstream === null) w.text('null'); else w.json(upstream);
    w.text(',"peer":');
    if (peer === null) w.text('null'); else w.json(peer);
    w.text(',"trace_id":').json(this.traceId);
    w.text(',"span_id":').json(this.spanId).text('}');
    logUtf8(LogLevel.Info, w);
  }
}

registerRoot((id: u32): RootContext => new TelemetryRoot(id));
