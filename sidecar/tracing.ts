// Tracing as Envoy's HTTP connection manager does it with the OpenTelemetry
// tracer (envoy.tracers.opentelemetry): one span per request per proxy,
// continued from an incoming W3C traceparent (the parent's sampled flag
// decides) or started by the connection manager's sampling percentages; the
// span's own context goes upstream in traceparent (and tracestate), replacing
// what came in, and sampled spans are exported over OTLP/gRPC to the
// bootstrap cluster the config names (weft sidecar --otel-collector declares
// weft_otel), five at a time or every five seconds.

import { randomBytes } from 'node:crypto';
import { NO_RUNTIME, type Runtime } from './runtime.ts';
import http2 from 'node:http2';
import type { IncomingHttpHeaders } from 'node:http';
import type { TracingConfig } from './config.ts';
import { setHeader } from './headers.ts';
import type { AccessLogEntry } from './proxy.ts';
import type { SidecarStats } from './stats.ts';
import type { CounterSeries } from './metrics.ts';
import type { HeaderPairs } from './upstream.ts';

/** Envoy's runtime defaults: tracing.opentelemetry.min_flush_spans and flush_interval_ms. */
export const MIN_FLUSH_SPANS = 5;
export const FLUSH_INTERVAL_MS = 5000;
const EXPORT_PATH = '/opentelemetry.proto.collector.trace.v1.TraceService/Export';
/** Exports waiting for an answer at most; past it a batch is dropped. */
const MAX_INFLIGHT_EXPORTS = 16;
/** How long shutdown waits for exports in flight. */
const CLOSE_WAIT_MS = 1000;
// OTLP SpanKind and StatusCode.
const KIND_SERVER = 2;
const KIND_CLIENT = 3;
const STATUS_ERROR = 2;

/** A W3C traceparent Envoy accepts: version 00 (exactly 55 characters), non-zero ids. */
const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;
const ZERO_TRACE = '0'.repeat(32);
const ZERO_SPAN = '0'.repeat(16);

export class Span {
  /** Attributes as key, value, key, value (Envoy's tags are strings). */
  readonly tags: string[] = [];
  endMs = 0;
  error = false;
  /** Set by startSpan. */
  request!: SpanRequest;
  tracer!: Tracer;

  constructor(
    readonly traceId: string,
    readonly spanId: string,
    /** The incoming span, empty for a new trace. */
    readonly parentId: string,
    /** Unset by a health_check filter that took the request for a health check: then neither exported nor sampled upstream. */
    public sampled: boolean,
    readonly tracestate: string,
    readonly name: string,
    readonly kind: number,
    /** performance.now() at the start (wall clock = performance.timeOrigin + this). */
    readonly startMs: number,
  ) {}

  get traceparent(): string {
    return `00-${this.traceId}-${this.spanId}-${this.sampled ? '01' : '00'}`;
  }

  /** As Envoy's router: the upstream request carries this span as its parent. */
  inject(headers: HeaderPairs): void {
    setHeader(headers, 'traceparent', this.traceparent);
    if (this.tracestate) setHeader(headers, 'tracestate', this.tracestate);
  }

  tag(key: string, value: string): void {
    this.tags.push(key, value);
  }
}

/** The request facts a span's tags need beyond the access log entry. */
export interface SpanRequest {
  headers: IncomingHttpHeaders;
  authority: string;
  path: string;
  peerAddress: string;
  grpc: boolean;
}

/** The HCM's tracing stats (http.<stat_prefix>.tracing.*), per stat prefix. */
export interface TracingSeries {
  randomSampling: CounterSeries;
  clientEnabled: CounterSeries;
  notTraceable: CounterSeries;
}

function header(h: IncomingHttpHeaders, name: string): string | undefined {
  const v = h[name];
  return Array.isArray(v) ? v.join(',') : v;
}

/**
 * The connection manager's span for a request, or undefined when it makes
 * none (a malformed traceparent: Envoy's tracer returns a null span, and the
 * header goes on unchanged). Without a traceparent the sampling percentages
 * decide: client_sampling for requests with x-client-trace-id, random_sampling
 * for the rest, then overall_sampling.
 */
export function startSpan(config: TracingConfig, tracer: Tracer, series: TracingSeries, nodeId: string, request: SpanRequest, random: () => number, runtime: Runtime = NO_RUNTIME): Span | undefined {
  const h = request.headers;
  let traced: boolean;
  // Each percentage as Envoy's ConnectionManagerUtility reads it: the runtime's tracing.client_enabled,
  // tracing.random_sampling and tracing.global_enabled over the configured value.
  if (header(h, 'x-client-trace-id') && random() < runtime.fraction('tracing.client_enabled', config.clientSampling / 100)) {
    series.clientEnabled.value++;
    traced = true;
  } else if (random() < runtime.fraction('tracing.random_sampling', config.randomSampling / 100)) {
    series.randomSampling.value++;
    traced = true;
  } else {
    series.notTraceable.value++;
    traced = false;
  }
  if (traced && !(random() < runtime.fraction('tracing.global_enabled', config.overallSampling / 100))) traced = false;

  const name = config.operation === 'egress' ? `egress ${request.authority}` : 'ingress';
  const kind = config.operation === 'egress' ? KIND_CLIENT : KIND_SERVER;
  const incoming = header(h, 'traceparent');
  let span: Span;
  if (incoming !== undefined) {
    const m = TRACEPARENT.exec(incoming);
    if (!m || m[1] === 'ff' || m[2] === ZERO_TRACE || m[3] === ZERO_SPAN) return undefined;
    const sampled = (parseInt(m[4]!, 16) & 1) === 1;
    span = new Span(m[2]!, randomBytes(8).toString('hex'), m[3]!, sampled, header(h, 'tracestate') ?? '', name, kind, performance.now());
  } else {
    span = new Span(randomBytes(16).toString('hex'), randomBytes(8).toString('hex'), '', traced, '', name, kind, performance.now());
  }
  span.request = request;
  span.tracer = tracer;
  span.tag('node_id', nodeId);
  return span;
}

/**
 * Envoy's tags for a downstream span (HttpTracerUtility::finalizeDownstreamSpan
 * and TracerUtility::finalizeSpan), from what the access log recorded.
 */
export function finishSpan(span: Span, config: TracingConfig, log: AccessLogEntry): void {
  span.endMs = performance.now();
  const request = span.request;
  const h = request.headers;
  const scheme = header(h, 'x-forwarded-proto') ?? 'http';
  const path = header(h, 'x-envoy-original-path') ?? request.path;
  span.tag('guid:x-request-id', log.request_id);
  span.tag('http.url', `${scheme}://${request.authority}${path}`.slice(0, scheme.length + 3 + request.authority.length + config.maxPathTagLength));
  span.tag('http.method', log.method);
  span.tag('downstream_cluster', header(h, 'x-envoy-downstream-service-cluster') ?? '-');
  span.tag('user_agent', header(h, 'user-agent') ?? '-');
  span.tag('http.protocol', log.protocol);
  span.tag('request_size', String(log.bytes_received));
  if (request.grpc) {
    span.tag('grpc.path', request.path);
    span.tag('grpc.authority', request.authority);
    span.tag('grpc.content_type', header(h, 'content-type') ?? '');
    const timeout = header(h, 'grpc-timeout');
    if (timeout) span.tag('grpc.timeout', timeout);
  }
  span.tag('response_size', String(log.bytes_sent));
  if (log.response_code > 0) span.tag('http.status_code', String(log.response_code));
  if (log.response_code === 0 || log.response_code >= 500) {
    span.tag('error', 'true');
    span.error = true;
  }
  span.tag('component', 'proxy');
  span.tag('response_flags', log.response_flags);
  span.tag('peer.address', request.peerAddress);
  if (log.upstream_cluster) {
    span.tag('upstream_cluster', log.upstream_cluster);
    // The observability name: alt_stat_name when the cluster has one.
    span.tag('upstream_cluster.name', span.tracer.stats.clusterLabel(log.upstream_cluster).envoy_cluster_name);
  }
  if (log.upstream_host) span.tag('upstream_address', log.upstream_host);
  span.tracer.send(span);
}

/** A protobuf writer for the few OTLP messages the exporter sends. */
class ProtoWriter {
  #buf = Buffer.allocUnsafe(1024);
  #len = 0;
  /** Start offsets of the length-delimited fields being written. */
  readonly #open: number[] = [];

  #room(n: number): void {
    if (this.#len + n <= this.#buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.#buf.length * 2, this.#len + n));
    this.#buf.copy(next, 0, 0, this.#len);
    this.#buf = next;
  }

  #varint(v: number): void {
    this.#room(10);
    while (v > 0x7f) {
      this.#buf[this.#len++] = (v & 0x7f) | 0x80;
      v = Math.floor(v / 128);
    }
    this.#buf[this.#len++] = v;
  }

  #tag(field: number, wire: number): void {
    this.#varint(field * 8 + wire);
  }

  bytes(field: number, b: Buffer): this {
    this.#tag(field, 2);
    this.#varint(b.length);
    this.#room(b.length);
    b.copy(this.#buf, this.#len);
    this.#len += b.length;
    return this;
  }

  string(field: number, s: string): this {
    return this.bytes(field, Buffer.from(s, 'utf8'));
  }

  uint(field: number, v: number): this {
    this.#tag(field, 0);
    this.#varint(v);
    return this;
  }

  fixed64(field: number, v: bigint): this {
    this.#tag(field, 1);
    this.#room(8);
    this.#buf.writeBigUInt64LE(v, this.#len);
    this.#len += 8;
    return this;
  }

  /** A nested message: fields written until end() go inside it. */
  begin(field: number): this {
    this.#tag(field, 2);
    // Room for a 5-byte length, shrunk at end().
    this.#room(5);
    this.#open.push(this.#len);
    this.#len += 5;
    return this;
  }

  end(): this {
    const at = this.#open.pop()!;
    const size = this.#len - at - 5;
    const len: number[] = [];
    let v = size;
    while (v > 0x7f) {
      len.push((v & 0x7f) | 0x80);
      v >>>= 7;
    }
    len.push(v);
    this.#buf.copy(this.#buf, at + len.length, at + 5, this.#len);
    for (let i = 0; i < len.length; i++) this.#buf[at + i] = len[i]!;
    this.#len -= 5 - len.length;
    return this;
  }

  finish(): Buffer {
    return Buffer.from(this.#buf.subarray(0, this.#len));
  }
}

function unixNanos(perfMs: number): bigint {
  return BigInt(Math.round((performance.timeOrigin + perfMs) * 1000)) * 1000n;
}

function attribute(w: ProtoWriter, field: number, key: string, value: string): void {
  // KeyValue { key = 1; AnyValue value = 2 { string_value = 1 } }
  w.begin(field).string(1, key).begin(2).string(1, value).end().end();
}

/** opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest: one resource (the service), one scope, the spans. */
export function encodeExport(serviceName: string, spans: readonly Span[]): Buffer {
  const w = new ProtoWriter();
  w.begin(1); // resource_spans
  w.begin(1); // resource
  attribute(w, 1, 'service.name', serviceName);
  attribute(w, 1, 'telemetry.sdk.name', 'weft-sidecar');
  w.end();
  w.begin(2); // scope_spans
  for (const s of spans) {
    w.begin(2); // spans
    w.bytes(1, Buffer.from(s.traceId, 'hex')).bytes(2, Buffer.from(s.spanId, 'hex'));
    if (s.tracestate) w.string(3, s.tracestate);
    if (s.parentId) w.bytes(4, Buffer.from(s.parentId, 'hex'));
    w.string(5, s.name).uint(6, s.kind);
    w.fixed64(7, unixNanos(s.startMs)).fixed64(8, unixNanos(s.endMs));
    for (let i = 0; i < s.tags.length; i += 2) attribute(w, 9, s.tags[i]!, s.tags[i + 1]!);
    if (s.error) w.begin(15).uint(3, STATUS_ERROR).end(); // status { code = 3 }
    w.end();
  }
  w.end();
  w.end();
  return w.finish();
}

export interface Collector {
  host: string;
  port: number;
}

/**
 * One OpenTelemetry tracer: sampled spans are buffered and exported as one
 * OTLP/gRPC Export call when five are waiting or every five seconds (Envoy's
 * runtime defaults); an export that fails is dropped, as Envoy drops it, and
 * logged (once until an export succeeds again).
 */
/**
 * A collector's grpc-message as gRPC's spec says to read one: each %XX
 * decoded, anything malformed kept as it came (the spec: never fail on a bad
 * value), the bytes read as UTF-8. decodeURIComponent threw on `100%` or
 * `%E9`, inside an HTTP/2 stream's 'close' listener, where nothing caught it
 * and the sidecar process died.
 */
function percentDecoded(value: string): string {
  if (!value.includes('%')) return value;
  const bytes: number[] = [];
  for (let i = 0; i < value.length; i++) {
    const hex = value.charCodeAt(i) === 0x25 ? value.slice(i + 1, i + 3) : '';
    if (hex.length === 2 && /^[0-9a-fA-F]{2}$/.test(hex)) {
      bytes.push(parseInt(hex, 16));
      i += 2;
    } else for (const b of Buffer.from(value[i]!, 'utf8')) bytes.push(b);
  }
  return Buffer.from(bytes).toString('utf8');
}

export class Tracer {
  #buffer: Span[] = [];
  #session: http2.ClientHttp2Session | undefined;
  readonly #timer: NodeJS.Timeout;
  #failing = false;
  #closed = false;
  /** Exports in flight (close() waits for them). */
  readonly #inflight = new Set<Promise<void>>();

  constructor(
    readonly serviceName: string,
    readonly collector: Collector,
    readonly exportTimeoutMs: number,
    readonly stats: SidecarStats,
    readonly log: (line: string) => void,
  ) {
    this.#timer = setInterval(() => {
      this.stats.tracingTimerFlushed.inc({});
      this.flush();
    }, FLUSH_INTERVAL_MS);
    this.#timer.unref();
  }

  /** A finished span: exported if sampled. */
  send(span: Span): void {
    if (!span.sampled || this.#closed) return;
    this.#buffer.push(span);
    if (this.#buffer.length >= MIN_FLUSH_SPANS) this.flush();
  }

  flush(): void {
    if (this.#buffer.length === 0) return;
    const spans = this.#buffer;
    this.#buffer = [];
    // A collector that accepts and never answers (no grpc_service.timeout) must not make exports pile up.
    if (this.#inflight.size >= MAX_INFLIGHT_EXPORTS) {
      if (!this.#failing) this.log(JSON.stringify({ level: 'warn', source: 'tracing', msg: `OTLP export: ${MAX_INFLIGHT_EXPORTS} exports unanswered, spans dropped`, collector: `${this.collector.host}:${this.collector.port}` }));
      this.#failing = true;
      return;
    }
    this.stats.tracingSpansSent.inc({}, spans.length);
    const p = this.#export(encodeExport(this.serviceName, spans)).then(
      () => {
        if (this.#failing) this.log(JSON.stringify({ level: 'info', source: 'tracing', msg: 'OTLP export to the collector succeeds again', collector: `${this.collector.host}:${this.collector.port}` }));
        this.#failing = false;
      },
      (err: Error) => {
        if (!this.#failing) this.log(JSON.stringify({ level: 'warn', source: 'tracing', msg: 'OTLP export failed: spans dropped', collector: `${this.collector.host}:${this.collector.port}`, error: err.message }));
        this.#failing = true;
      },
    );
    this.#inflight.add(p);
    void p.finally(() => this.#inflight.delete(p));
  }

  #connect(): http2.ClientHttp2Session {
    let s = this.#session;
    if (s && !s.closed && !s.destroyed) return s;
    s = http2.connect(`http://${this.collector.host.includes(':') ? `[${this.collector.host}]` : this.collector.host}:${this.collector.port}`);
    s.on('error', () => undefined);
    s.on('close', () => {
      if (this.#session === s) this.#session = undefined;
    });
    s.unref();
    this.#session = s;
    return s;
  }

  /** One unary gRPC call: a 5-byte frame header and the message; grpc-status 0 is success. */
  #export(message: Buffer): Promise<void> {
    return new Promise((resolve, reject) => {
      const session = this.#connect();
      const headers: http2.OutgoingHttpHeaders = {
        ':method': 'POST',
        ':path': EXPORT_PATH,
        'content-type': 'application/grpc',
        te: 'trailers',
      };
      if (this.exportTimeoutMs > 0) headers['grpc-timeout'] = `${this.exportTimeoutMs}m`;
      let req: http2.ClientHttp2Stream;
      try {
        req = session.request(headers);
      } catch (e) {
        return reject(e as Error);
      }
      let status: string | undefined;
      let grpcMessage = '';
      let timer: NodeJS.Timeout | undefined;
      const settle = (err?: Error): void => {
        clearTimeout(timer);
        if (err) reject(err);
        else resolve();
      };
      if (this.exportTimeoutMs > 0) {
        timer = setTimeout(() => {
          req.close(http2.constants.NGHTTP2_CANCEL);
          settle(new Error(`no answer within ${this.exportTimeoutMs} ms (grpc_service.timeout)`));
        }, this.exportTimeoutMs);
      }
      const take = (h: http2.IncomingHttpHeaders): void => {
        if (h['grpc-status'] !== undefined) {
          status = String(h['grpc-status']);
          grpcMessage = String(h['grpc-message'] ?? '');
        }
      };
      req.on('response', (h) => {
        if (h[':status'] !== 200) return settle(new Error(`HTTP status ${String(h[':status'])}`));
        take(h);
      });
      req.on('trailers', take);
      req.on('data', () => undefined);
      req.on('error', (e) => settle(e));
      req.on('close', () => {
        if (status === undefined) return settle(new Error('stream closed without grpc-status'));
        if (status !== '0') return settle(new Error(`grpc-status ${status}${grpcMessage ? `: ${percentDecoded(grpcMessage)}` : ''}`));
        settle();
      });
      const frame = Buffer.allocUnsafe(5);
      frame[0] = 0;
      frame.writeUInt32BE(message.length, 1);
      req.end(Buffer.concat([frame, message]));
    });
  }

  /** Exports what is buffered and waits for the exports in flight, a second at most (the sidecar's shutdown). */
  async close(): Promise<void> {
    clearInterval(this.#timer);
    this.flush();
    this.#closed = true;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.allSettled([...this.#inflight]), new Promise<void>((r) => (timer = setTimeout(r, CLOSE_WAIT_MS)))]);
    clearTimeout(timer);
    this.#session?.destroy();
  }
}
