// The filter test kit (`weft/testing`): run a proxy-wasm module the way the
// weft sidecar and Envoy would, without either. Load a .wasm with its
// configuration, send a request, answer it as the upstream, then assert on
// what was forwarded, local replies, metrics, logs and http calls.
//
//   const filter = await loadFilter('dist/auth.wasm', { configuration: '{}' });
//   const res = await filter.request({ path: '/admin', properties: { 'connection.uri_san_peer_certificate': 'spiffe://weft/ns/default/sa/web' } });
//   assert.equal(res.localReply?.status, 403);

import { readFile } from 'node:fs/promises';
import { LogLevel, type LogLevelName } from './abi.ts';
import { WasmLoadError } from './abi-version.ts';
import { concat } from './buffer.ts';
import type { GrpcStreamEvents, GrpcStreamHandle, GrpcStreamRequest, HttpCallRequest, LocalReply } from './context.ts';
import { encodeGrpcMessage, GrpcFrameReader } from './grpc.ts';
import { HeaderMap, type HeaderPairs } from './headers.ts';
import { decodeUtf8, encodeUtf8 } from './memory.ts';
import { WasmPlugin, type HostEnv, type LogEntry, type PluginConfig } from './plugin.ts';
import type { StreamProperties } from './properties.ts';
import { SharedState } from './shared.ts';
import type { BodyOutcome, HttpStream, StreamOutcome } from './stream.ts';
import type { WasmBytes } from './wasm-api.ts';

export type Headers = HeaderPairs | Record<string, string>;
type Body = string | Uint8Array;

export interface MockResponse {
  status?: number;
  headers?: Headers;
  body?: Body;
  trailers?: Headers;
}

/** A mocked cluster: a fixed response, a function of the request, or 'timeout' (never answers). */
export type MockCluster = MockResponse | 'timeout' | ((call: RecordedHttpCall) => MockResponse | 'timeout' | Promise<MockResponse | 'timeout'>);

export interface FilterOptions extends Partial<PluginConfig> {
  /** Mocked upstream clusters for http_call; calls to any other cluster get BAD_ARGUMENT. */
  httpCalls?: Record<string, MockCluster>;
  /**
   * Mocked gRPC stream servers by cluster name, for proxy_grpc_stream: each
   * stream the filter opens on that cluster is handed to the function as a
   * MockGrpcStream, which sees the filter's messages and answers with
   * metadata, messages, trailers and a status. A stream to any other cluster
   * is refused (PARSE_FAILURE, as Envoy refuses an unknown cluster).
   */
  grpcStreams?: Record<string, MockGrpcStreamServer>;
  /** Default "trace": the kit records every log line. */
  logLevel?: LogLevelName;
  /** Plugin-level properties (xds.*, node, ...). */
  properties?: StreamProperties;
  /** Start of the fake clock; default 2026-01-01T00:00:00Z. */
  startTime?: Date;
  shared?: SharedState;
  foreignFunctions?: HostEnv['foreignFunctions'];
  /**
   * What the filter may hold of a body (it stopped iteration on it), as the
   * sidecar and Envoy allow: the listener's per_connection_buffer_limit_bytes,
   * 1 MiB by default. Past it the request gets 413 `Payload Too Large`, a
   * response is reset (its headers went on before its body reached the
   * filter, even when the filter held them: Envoy's flow control, not a 500).
   * Headers held with 3 (StopAllIterationAndBuffer) and a body past it: 413
   * for a request, 500 `Internal Server Error` for a response, at once. A
   * body held with 2 (StopIterationAndWatermark) past it waits for the
   * filter to let go (backpressure), `stalled` if it never does.
   */
  bufferLimitBytes?: number;
  /**
   * How long (fake clock) a filter that stopped may take to continue the
   * stream itself, from a tick or an http_call's answer, before the kit
   * reports the request `stalled`: Envoy's default stream_idle_timeout, 5 min.
   */
  stallAfterMs?: number;
}

export interface TestRequest {
  method?: string;
  path?: string;
  authority?: string;
  scheme?: string;
  headers?: Headers;
  /** One body, or the chunks it arrives in. */
  body?: Body | Body[];
  trailers?: Headers;
  /** Stream attributes, e.g. `connection.uri_san_peer_certificate`, `source.address`. */
  properties?: StreamProperties;
}

export type Upstream = MockResponse | ((forwarded: Message) => MockResponse | Promise<MockResponse>);

export interface Message {
  headers: HeaderPairs;
  body: string;
  bodyBytes: Uint8Array;
  trailers: HeaderPairs | undefined;
  /** First value of a header (names are case-insensitive). */
  header(name: string): string | undefined;
}

export interface RequestResult {
  /** What reached the upstream; undefined when the filter replied, reset or held the request. */
  forwarded: Message | undefined;
  /** What the client received: the upstream response after response filters, or the local reply. */
  response: (Message & { status: number }) | undefined;
  localReply: (LocalReply & { bodyText: string }) | undefined;
  /** The filter reset the stream. */
  closed: boolean;
  /**
   * The filter stopped iteration and did not continue it: nothing could (no
   * http_call in flight, no tick period), or it did not within stallAfterMs of
   * fake time. Envoy would hold the stream until a timeout.
   */
  stalled: boolean;
  /** Each phase and what the filter decided, in order. */
  phases: { phase: string; outcome: StreamOutcome['action'] }[];
  stream: HttpStream;
}

export interface RecordedHttpCall {
  cluster: string;
  headers: HeaderPairs;
  body: string;
  bodyBytes: Uint8Array;
  trailers: HeaderPairs;
  timeoutMs: number;
  header(name: string): string | undefined;
  /** A proxy_grpc_call (sent as its HTTP/2 request): the service, the method and the request message. */
  grpc?: { service: string; method: string; message: Uint8Array };
}

/**
 * A mocked gRPC server's answer to a grpc_call: OK with `message` (the
 * serialized response), or with `status` non-zero a failure the filter's
 * proxy_on_grpc_close gets, with `statusMessage` through proxy_get_status.
 */
export function grpcAnswer(message: Uint8Array | string, status = 0, statusMessage = ''): MockResponse {
  if (status !== 0) {
    // Trailers-only, as a gRPC server answers a call it fails.
    // grpc-message percent-encoded as gRPC servers encode it (spaces stay): the filter reads it as it came, as in Envoy.
    return { status: 200, headers: { 'content-type': 'application/grpc', 'grpc-status': String(status), ...(statusMessage === '' ? {} : { 'grpc-message': encodeGrpcMessage(statusMessage) }) } };
  }
  const bytes = toBytes(message);
  const body = new Uint8Array(5 + bytes.length);
  new DataView(body.buffer).setUint32(1, bytes.length);
  body.set(bytes, 5);
  return { status: 200, headers: { 'content-type': 'application/grpc' }, body, trailers: { 'grpc-status': '0' } };
}

/** A mocked gRPC stream server: gets each stream the filter opens on its cluster. */
export type MockGrpcStreamServer = (stream: MockGrpcStream) => void | Promise<void>;

/**
 * One gRPC stream a filter opened (proxy_grpc_stream), as the mocked server
 * sees it and answers it. What the filter sends lands in `received` (and
 * `onMessage`); `halfClosed` once it ended its side (end_stream, or
 * proxy_grpc_close), `cancelled` once it cancelled the stream (or its VM
 * closed). The answers reach the filter as a server's would: initial
 * metadata, messages, then close() with a status (trailers; trailers-only
 * when nothing was sent before), or reset() (INTERNAL for the filter). The
 * callbacks run after the host call that caused them has returned, as a
 * real server's answer would come.
 */
export class MockGrpcStream {
  /** Fully qualified service name and method, from the request's :path. */
  readonly service: string;
  readonly method: string;
  /** The messages the filter sent, in order. */
  readonly received: Uint8Array[] = [];
  halfClosed = false;
  cancelled = false;
  /** The server has closed (close() or reset()): nothing more goes to the filter. */
  closed = false;
  onMessage: ((message: Uint8Array, stream: MockGrpcStream) => void) | undefined;
  onHalfClose: ((stream: MockGrpcStream) => void) | undefined;
  onCancel: ((stream: MockGrpcStream) => void) | undefined;
  private headersSent = false;
  private readonly frames = new GrpcFrameReader();
  /** What the callbacks have been told: they start once the server function has run. */
  private started = false;
  private told = { messages: 0, halfClose: false, cancel: false };

  constructor(
    readonly cluster: string,
    /** The stream's request headers: :method, :path, :authority, content-type, te, then the filter's metadata. */
    readonly headers: HeaderPairs,
    private readonly events: GrpcStreamEvents,
  ) {
    const [, service = '', method = ''] = /^\/([^/]*)\/(.*)$/.exec(this.header(':path') ?? '') ?? [];
    this.service = service;
    this.method = method;
  }

  /** A request header or metadata value (the first). */
  header(name: string): string | undefined {
    return new HeaderMap(this.headers).get(name);
  }

  /** The messages the filter sent, as text. */
  get texts(): string[] {
    return this.received.map((m) => decodeUtf8(m));
  }

  /** Sends the response headers (:status 200, content-type application/grpc) with `metadata`: proxy_on_grpc_receive_initial_metadata. */
  sendInitialMetadata(metadata: Headers = {}): void {
    if (this.closed || this.cancelled || this.headersSent) return;
    this.headersSent = true;
    this.events.headers([[':status', '200'], ['content-type', 'application/grpc'], ...toPairs(metadata)], false);
  }

  /** Sends one message (initial metadata first, if not sent yet): proxy_on_grpc_receive. */
  send(message: string | Uint8Array): void {
    if (this.closed || this.cancelled) return;
    this.sendInitialMetadata();
    const bytes = toBytes(message);
    const frame = new Uint8Array(5 + bytes.length);
    new DataView(frame.buffer).setUint32(1, bytes.length);
    frame.set(bytes, 5);
    this.events.data(frame);
  }

  /**
   * Closes the stream with a gRPC status (0 OK), its message and trailing
   * metadata: proxy_on_grpc_receive_trailing_metadata then proxy_on_grpc_close.
   * Before anything else was sent it is a trailers-only answer.
   */
  close(status = 0, statusMessage = '', trailers: Headers = {}): void {
    if (this.closed || this.cancelled) return;
    this.closed = true;
    // grpc-message percent-encoded as gRPC servers encode it (spaces stay): the filter reads it as it came, as in Envoy.
    const closing: HeaderPairs = [['grpc-status', String(status)], ...(statusMessage === '' ? [] : ([['grpc-message', encodeGrpcMessage(statusMessage)]] as HeaderPairs)), ...toPairs(trailers)];
    if (this.headersSent) this.events.end(closing);
    else this.events.headers([[':status', '200'], ['content-type', 'application/grpc'], ...closing], true);
  }

  /**
   * Resets the stream, as a server or connection that goes away: once it
   * answered, the filter gets INTERNAL (`via_upstream`); before that the
   * router answers the reset itself, as the sidecar's and Envoy's do:
   * UNAVAILABLE, `upstream connect error or disconnect/reset before headers.
   * reset reason: remote reset{upstream_reset_before_response_started{remote_reset}}`.
   */
  reset(): void {
    if (this.closed || this.cancelled) return;
    this.closed = true;
    if (this.headersSent) return this.events.reset();
    const message = 'upstream connect error or disconnect/reset before headers. reset reason: remote reset';
    this.events.headers([[':status', '200'], ['content-type', 'application/grpc'], ['grpc-status', '14'], ['grpc-message', encodeGrpcMessage(message)]], true, 'upstream_reset_before_response_started{remote_reset}');
  }

  /** @internal Runs the server function, then tells its callbacks what the filter did meanwhile. */
  start(server: MockGrpcStreamServer): void | Promise<void> {
    this.started = true;
    const running = server(this);
    this.tell();
    return running;
  }

  /** @internal The host's side: what the filter wrote. */
  write(data: Uint8Array, endStream: boolean): void {
    if (this.cancelled) return;
    const messages = this.frames.push(data);
    if (messages !== 'bad') this.received.push(...messages);
    if (endStream) this.halfClosed = true;
    queueMicrotask(() => this.tell());
  }

  /** @internal The host reset the stream (proxy_grpc_cancel, the VM closing). */
  cancel(): void {
    if (this.cancelled || this.closed) return;
    this.cancelled = true;
    queueMicrotask(() => this.tell());
  }

  /** Each message, the half-close and the cancel reach the callbacks once, in order. */
  private tell(): void {
    if (!this.started) return;
    while (this.told.messages < this.received.length && !this.cancelled) {
      const message = this.received[this.told.messages++]!;
      this.onMessage?.(message, this);
    }
    if (this.halfClosed && !this.told.halfClose) {
      this.told.halfClose = true;
      this.onHalfClose?.(this);
    }
    if (this.cancelled && !this.told.cancel) {
      this.told.cancel = true;
      this.onCancel?.(this);
    }
  }
}

/** The service, method and message of a grpc_call's HTTP/2 request; undefined for a plain http_call. */
function grpcOf(call: HttpCallRequest): RecordedHttpCall['grpc'] {
  const map = new HeaderMap(call.headers);
  if (!map.get('content-type')?.startsWith('application/grpc')) return undefined;
  const [, service = '', method = ''] = /^\/([^/]*)\/(.*)$/.exec(map.get(':path') ?? '') ?? [];
  return { service, method, message: call.body.subarray(5) };
}

const toPairs = (headers: Headers | undefined): HeaderPairs =>
  headers === undefined ? [] : Array.isArray(headers) ? headers.map(([n, v]) => [n, v]) : Object.entries(headers);
const toBytes = (body: Body | undefined): Uint8Array => (body === undefined ? new Uint8Array(0) : typeof body === 'string' ? encodeUtf8(body) : body);

function message(headers: HeaderPairs, body: Uint8Array, trailers: HeaderPairs | undefined): Message {
  const map = new HeaderMap(headers);
  return { headers, body: decodeUtf8(body), bodyBytes: body, trailers, header: (name) => map.get(name) };
}

/**
 * The kit's fake clock: the time the module reads, and the host's timers
 * (http_call timeouts), which fire only as advance() moves it past them.
 */
export class FakeClock {
  ns: bigint;
  /** Milliseconds advanced since the start. */
  elapsedMs = 0;
  /** Mocks still computing an answer (async ones): while any is, a waiting phase does not jump the clock. */
  private answering = 0;
  private idle: (() => void)[] = [];

  /** Runs a mock's answer; the clock does not jump while it works. */
  async answer<T>(work: () => T | Promise<T>): Promise<T> {
    this.answering++;
    try {
      return await work();
    } finally {
      if (--this.answering === 0) for (const wake of this.idle.splice(0)) wake();
    }
  }

  get busy(): boolean {
    return this.answering > 0;
  }

  /** Resolves once no mock is working on an answer. */
  mocksIdle(): Promise<void> {
    return this.answering === 0 ? Promise.resolve() : new Promise((r) => this.idle.push(r));
  }
  private timers: { at: number; seq: number; fn: () => void }[] = [];
  private seq = 0;

  constructor(start: Date) {
    this.ns = BigInt(start.getTime()) * 1_000_000n;
  }

  readonly setTimer = (ms: number, fn: () => void): (() => void) => {
    const timer = { at: this.elapsedMs + Math.max(0, ms), seq: this.seq++, fn };
    this.timers.push(timer);
    return () => {
      this.timers = this.timers.filter((t) => t !== timer);
    };
  };

  /** When the next timer is due, in ms since the start (Infinity: none). */
  nextTimerAt(): number {
    return this.timers.reduce((at, t) => Math.min(at, t.at), Infinity);
  }

  moveTo(elapsedMs: number): void {
    this.ns += BigInt(Math.round((elapsedMs - this.elapsedMs) * 1e6));
    this.elapsedMs = elapsedMs;
  }

  /** Fires the timers due by now, earliest (then first set) first. */
  fireDue(): void {
    for (;;) {
      const due = this.timers.filter((t) => t.at <= this.elapsedMs).sort((a, b) => a.at - b.at || a.seq - b.seq)[0];
      if (!due) return;
      this.timers = this.timers.filter((t) => t !== due);
      due.fn();
    }
  }
}

const PAUSED: StreamOutcome = Object.freeze({ action: 'pause' });

export class FilterHarness {
  readonly httpCalls: RecordedHttpCall[] = [];
  /** The gRPC streams the filter opened, in order. */
  readonly grpcStreams: MockGrpcStream[] = [];
  private sinceTickMs = 0;

  constructor(
    readonly plugin: WasmPlugin,
    private readonly clock: FakeClock,
    /** See FilterOptions.bufferLimitBytes. */
    readonly bufferLimitBytes = 1024 * 1024,
    /** See FilterOptions.stallAfterMs. */
    readonly stallAfterMs = 300_000,
  ) {}

  /** The fake wall clock the module reads, in nanoseconds since the epoch. */
  get nowNs(): bigint {
    return this.clock.ns;
  }

  get logs(): LogEntry[] {
    return this.plugin.logs;
  }

  /** Log messages, optionally only those at `level`. */
  logMessages(level?: LogLevelName): string[] {
    return this.plugin.logs.filter((l) => level === undefined || l.level === level).map((l) => l.message);
  }

  /**
   * Counter or gauge value (histograms: sample count) of the metric the module
   * defined as `name`, or by base name and tags: `metric('requests', { result: 'denied' })`.
   */
  metric(name: string, tags?: Record<string, string>): number | undefined {
    const found = this.plugin.metrics.find(name, tags);
    return found === undefined ? undefined : Number(found.value);
  }

  prometheus(): string {
    return this.plugin.prometheus();
  }

  /**
   * Lets what is on its way happen: the mocks' answers (gRPC stream
   * messages, async http_call answers) reach the filter, until the event
   * loop runs dry. For streams a filter opens outside a request (from a tick,
   * from proxy_on_configure), whose answers no request waits for.
   */
  async flush(): Promise<void> {
    do {
      await new Promise<void>((r) => setImmediate(r));
      await this.clock.mocksIdle();
    } while (this.clock.busy);
  }

  /** Runs proxy_on_tick `times` times. */
  tick(times = 1): void {
    for (let i = 0; i < times; i++) this.plugin.tick();
  }

  /**
   * Moves the fake clock forward by `ms`, in steps: each tick the module's
   * period says would have happened runs with the clock at its own time, and
   * each host timer due on the way (an http_call timeout) fires at its time,
   * in order. Pending http_call timeouts run on this clock, never on real time.
   */
  advance(ms: number): void {
    const end = this.clock.elapsedMs + ms;
    for (;;) {
      const period = this.plugin.tickPeriodMs;
      const tickAt = period > 0 ? this.clock.elapsedMs + (period - this.sinceTickMs) : Infinity;
      const timerAt = this.clock.nextTimerAt();
      const at = Math.min(tickAt, timerAt);
      if (at > end) break;
      if (period > 0) this.sinceTickMs += at - this.clock.elapsedMs;
      this.clock.moveTo(at);
      if (at === timerAt) this.clock.fireDue();
      if (at === tickAt && this.plugin.tickPeriodMs === period) {
        this.sinceTickMs = 0;
        this.plugin.tick();
      }
    }
    if (this.plugin.tickPeriodMs > 0) this.sinceTickMs += end - this.clock.elapsedMs;
    this.clock.moveTo(end);
  }

  /**
   * Waits for a phase. A phase held up by an http_call whose answer can only
   * come from the clock (a 'timeout' mock) would wait forever on the fake
   * clock, so when nothing else is left to happen (the event loop has run
   * dry) and a host timer is pending, the clock jumps to it, as a simulated
   * clock does. A filter that measures the call sees its timeout pass.
   */
  private async settle<T>(phase: Promise<T>): Promise<T> {
    let done = false;
    const settled = phase.finally(() => {
      done = true;
    });
    for (;;) {
      await Promise.race([settled, new Promise<void>((r) => setImmediate(r))]);
      if (done) return settled;
      if (this.clock.busy) {
        await this.clock.mocksIdle(); // an answer on its way (an async mock) comes first, then the loop runs dry again
        continue;
      }
      const next = this.clock.nextTimerAt();
      if (next === Infinity) return settled; // nothing the clock can bring: the phase waits as it would
      this.advance(next - this.clock.elapsedMs);
    }
  }

  /**
   * Waits for a filter that stopped `direction` to continue it itself (from a
   * tick, an http_call's answer, a queue), as Envoy holds the stream until
   * then: the fake clock moves on to each tick and host timer in turn while
   * nothing else is left to happen, up to stallAfterMs. `pause` if the filter
   * did not continue by then, or nothing could make it.
   */
  private async resume(stream: HttpStream, direction: 'request' | 'response'): Promise<StreamOutcome> {
    let done = false;
    const resumed = stream.resumed(direction).finally(() => {
      done = true;
    });
    const limit = this.clock.elapsedMs + this.stallAfterMs;
    for (;;) {
      await Promise.race([resumed, new Promise<void>((r) => setImmediate(r))]);
      if (done) return resumed;
      if (this.clock.busy) {
        await this.clock.mocksIdle();
        continue;
      }
      const period = this.plugin.tickPeriodMs;
      const next = Math.min(this.clock.nextTimerAt(), period > 0 ? this.clock.elapsedMs + (period - this.sinceTickMs) : Infinity);
      if (next > limit || !stream.resumable) return PAUSED;
      this.advance(next - this.clock.elapsedMs);
    }
  }

  /** A raw stream, for driving phases by hand. */
  stream(properties?: StreamProperties): HttpStream {
    return this.plugin.newHttpStream(properties);
  }

  /** Sends one request through the filter, answers it with `upstream`, and completes the stream. */
  async request(req: TestRequest = {}, upstream: Upstream = { status: 200 }): Promise<RequestResult> {
    const stream = this.plugin.newHttpStream(req.properties);
    const phases: RequestResult['phases'] = [];
    const result: RequestResult = { forwarded: undefined, response: undefined, localReply: undefined, closed: false, stalled: false, phases, stream };
    const note = <T extends StreamOutcome | BodyOutcome>(phase: string, outcome: T): T => {
      phases.push({ phase, outcome: outcome.action });
      return outcome;
    };
    const finish = async (outcome: StreamOutcome | BodyOutcome): Promise<RequestResult> => {
      if (outcome.action === 'close') result.closed = true;
      if (outcome.action === 'local_reply') await this.sendLocalReply(stream, outcome.reply, result, note);
      if (outcome.action === 'pause') result.stalled = true;
      stream.complete();
      return result;
    };

    const headers: HeaderPairs = [
      [':method', req.method ?? 'GET'],
      [':path', req.path ?? '/'],
      [':authority', req.authority ?? 'service'],
      [':scheme', req.scheme ?? 'http'],
      ...toPairs(req.headers),
    ];
    const chunks = (Array.isArray(req.body) ? req.body : req.body === undefined ? [] : [req.body]).map(toBytes);
    const trailers = req.trailers === undefined ? undefined : toPairs(req.trailers);
    let outcome: StreamOutcome | BodyOutcome = note('request_headers', await this.settle(stream.onRequestHeaders(headers, chunks.length === 0 && trailers === undefined)));
    let forwardedBody: Uint8Array = new Uint8Array(0);
    if (outcome.action === 'pause') {
      // StopAllIterationAndBuffer (3): Envoy buffers the body while the headers are held and answers 413 as soon as
      // it passes the limit (filter_manager.cc handleDataIfStopAll / requestDataTooLarge), without the filter.
      if (stream.heldHeaders('request') === 'buffer' && chunks.reduce((n, c) => n + c.length, 0) > this.bufferLimitBytes) return this.tooLarge(stream, result, note, 'request');
      // Envoy holds the whole request (StopAllIterationAndWatermark) until the filter continues it; the body that
      // came meanwhile (all of it, here) reaches it in one call after that.
      outcome = note('request_continued', await this.resume(stream, 'request'));
      if (outcome.action === 'continue' && chunks.length > 1) chunks.splice(0, chunks.length, chunks.reduce(concat));
    }
    if (outcome.action !== 'continue') return finish(outcome);
    for (const [i, chunk] of chunks.entries()) {
      const body = note('request_body', await this.settle(stream.onRequestBody(chunk, i === chunks.length - 1 && trailers === undefined)));
      if (body.action === 'continue') forwardedBody = concat(forwardedBody, body.body);
      else if (body.action !== 'pause') return finish(body);
      else if (stream.bufferedBytes('request') > this.bufferLimitBytes) {
        if (body.watermark !== true) return this.tooLarge(stream, result, note, 'request');
        // StopIterationAndWatermark (2) past the limit: backpressure, as the sidecar and Envoy; no more of the body
        // until the filter lets go of what it holds.
        const released = note('request_continued', await this.resume(stream, 'request'));
        if (released.action !== 'continue') return finish(released);
        forwardedBody = concat(forwardedBody, stream.takeBody('request'));
        outcome = released;
        continue;
      }
      outcome = body;
    }
    if (trailers !== undefined) {
      outcome = note('request_trailers', await this.settle(stream.onRequestTrailers(trailers)));
      if (outcome.action !== 'continue' && outcome.action !== 'pause') return finish(outcome);
      // Body bytes the filter held until the trailers go on ahead of them.
      if (outcome.action === 'continue') forwardedBody = concat(forwardedBody, stream.takeBody('request'));
    }
    if (outcome.action === 'pause') {
      // Stopped at the end (last body chunk or trailers): only the filter itself can continue now.
      outcome = note('request_continued', await this.resume(stream, 'request'));
      if (outcome.action !== 'continue') return finish(outcome);
      forwardedBody = concat(forwardedBody, stream.takeBody('request'));
    }

    result.forwarded = message(stream.requestHeaders ?? [], forwardedBody, stream.requestTrailers);
    const answer = typeof upstream === 'function' ? await upstream(result.forwarded) : upstream;
    return this.respond(stream, answer, result, note, finish);
  }

  private async respond(
    stream: HttpStream,
    answer: MockResponse,
    result: RequestResult,
    note: <T extends StreamOutcome | BodyOutcome>(phase: string, outcome: T) => T,
    finish: (outcome: StreamOutcome | BodyOutcome) => Promise<RequestResult>,
  ): Promise<RequestResult> {
    const body = toBytes(answer.body);
    const trailers = answer.trailers === undefined ? undefined : toPairs(answer.trailers);
    const headers: HeaderPairs = [[':status', String(answer.status ?? 200)], ...toPairs(answer.headers)];
    let outcome: StreamOutcome | BodyOutcome = note('response_headers', await this.settle(stream.onResponseHeaders(headers, body.length === 0 && trailers === undefined)));
    // Held until the filter continues the response itself; then the body (whole, here) as one call.
    const headersHeld = outcome.action === 'pause';
    // StopAllIterationAndBuffer (3) on the response headers, and more body than the limit: Envoy answers 500 itself,
    // not through the filters (filter_manager.cc responseDataTooLarge: the headers were never sent).
    if (headersHeld && stream.heldHeaders('response') === 'buffer' && body.length > this.bufferLimitBytes) return this.responseTooLarge(stream, result);
    if (headersHeld) outcome = note('response_continued', await this.resume(stream, 'response'));
    if (outcome.action !== 'continue') return finish(outcome);
    // The headers go on as the filter continues them (Envoy sends them then): later changes to the map are lost.
    const final = stream.responseHeaders ?? [];
    let sent: Uint8Array = new Uint8Array(0);
    if (body.length > 0) {
      const out = note('response_body', await this.settle(stream.onResponseBody(body, trailers === undefined)));
      if (out.action === 'continue') sent = out.body;
      else if (out.action !== 'pause') return finish(out);
      else if (stream.bufferedBytes('response') > this.bufferLimitBytes) {
        // Past the limit once the headers went on (a held filter continued them first, as Envoy's filter manager does): a reset.
        if (out.watermark !== true) return this.tooLarge(stream, result, note, 'reset');
        // StopIterationAndWatermark (2): backpressure on the upstream until the filter lets go of what it holds.
        const released = note('response_continued', await this.resume(stream, 'response'));
        if (released.action !== 'continue') return finish(released);
        sent = stream.takeBody('response');
        outcome = released;
      } else outcome = out;
    }
    if (trailers !== undefined) {
      outcome = note('response_trailers', await this.settle(stream.onResponseTrailers(trailers)));
      if (outcome.action !== 'continue' && outcome.action !== 'pause') return finish(outcome);
      if (outcome.action === 'continue') sent = concat(sent, stream.takeBody('response'));
    }
    if (outcome.action === 'pause') {
      outcome = note('response_continued', await this.resume(stream, 'response'));
      if (outcome.action !== 'continue') return finish(outcome);
      sent = concat(sent, stream.takeBody('response'));
    }
    result.response = { ...message(final, sent, stream.responseTrailers), status: Number(new HeaderMap(final).get(':status') ?? 0) };
    stream.complete();
    return result;
  }

  /**
   * The filter held more of a body than the buffer limit: 413 for a request
   * (a local reply through its response callbacks), a reset for a response
   * (its headers went on before the body reached the filter).
   */
  private async tooLarge(stream: HttpStream, result: RequestResult, note: <T extends StreamOutcome | BodyOutcome>(phase: string, outcome: T) => T, what: 'request' | 'reset'): Promise<RequestResult> {
    if (what === 'reset') result.closed = true;
    else await this.sendLocalReply(stream, { status: 413, body: encodeUtf8('Payload Too Large'), headers: [], grpcStatus: undefined, details: 'request_payload_too_large' }, result, note);
    stream.complete();
    return result;
  }

  /** The 500 Envoy sends for a held response past the buffer limit: straight to the client, not through the filter. */
  private responseTooLarge(stream: HttpStream, result: RequestResult): RequestResult {
    // The sidecar's localReplies.responsePayloadTooLarge (Envoy's Http::Code::InternalServerError, response_payload_too_large).
    const text = 'Internal Server Error';
    const body = encodeUtf8(text);
    result.localReply = { status: 500, body, bodyText: text, headers: [], grpcStatus: undefined, details: 'response_payload_too_large' };
    result.response = { ...message([[':status', '500'], ['content-length', String(body.length)], ['content-type', 'text/plain']], body, undefined), status: 500 };
    stream.complete();
    return result;
  }

  /** As in Envoy, a local reply sent while handling the request passes through the filter's response callbacks. */
  private async sendLocalReply(stream: HttpStream, reply: LocalReply, result: RequestResult, note: <T extends StreamOutcome | BodyOutcome>(phase: string, outcome: T) => T): Promise<void> {
    result.localReply = { ...reply, bodyText: decodeUtf8(reply.body) };
    const headers: HeaderPairs = [[':status', String(reply.status)], ...reply.headers];
    if (reply.body.length > 0) headers.push(['content-length', String(reply.body.length)], ['content-type', 'text/plain']);
    let body = reply.body;
    let out = note('response_headers', await this.settle(stream.onResponseHeaders(headers, reply.body.length === 0)));
    // A filter that holds the reply's headers holds it until it continues them, as any response.
    if (out.action === 'pause') out = note('response_continued', await this.resume(stream, 'response'));
    const final = stream.responseHeaders ?? headers;
    if (out.action === 'continue' && reply.body.length > 0) {
      let b = note('response_body', await this.settle(stream.onResponseBody(reply.body, true)));
      if (b.action === 'pause') {
        const o = note('response_continued', await this.resume(stream, 'response'));
        b = o.action === 'continue' ? { action: 'continue', body: stream.takeBody('response') } : o;
      }
      if (b.action === 'continue') body = b.body;
      else if (b.action === 'pause') result.stalled = true;
    } else if (out.action === 'pause') result.stalled = true;
    result.response = { ...message(final, body, undefined), status: Number(new HeaderMap(final).get(':status') ?? reply.status) };
  }
}

/** Loads a filter from a path or bytes, with mocked clusters and a fake clock. */
export async function loadFilter(source: string | URL | WasmBytes, options: FilterOptions = {}): Promise<FilterHarness> {
  const bytes = typeof source === 'string' || source instanceof URL ? await readFile(source) : source;
  const clock = new FakeClock(options.startTime ?? new Date('2026-01-01T00:00:00Z'));
  let harness: FilterHarness | undefined;
  const mocks = options.httpCalls ?? {};
  const streamServers = options.grpcStreams ?? {};
  // What the module logged while it started: a refused configuration is explained there, and the error says it.
  const startLog: LogEntry[] = [];
  let starting = true;
  const plugin = await WasmPlugin.load(
    bytes,
    {
      name: options.name ?? 'filter-under-test',
      rootId: options.rootId,
      vmId: options.vmId,
      configuration: options.configuration,
      vmConfiguration: options.vmConfiguration,
      failurePolicy: options.failurePolicy,
      environment: options.environment,
    },
    {
      logLevel: options.logLevel ?? 'trace',
      maxLogEntries: 100_000,
      now: () => clock.ns,
      setTimer: clock.setTimer,
      shared: options.shared ?? new SharedState(),
      properties: options.properties,
      foreignFunctions: options.foreignFunctions,
      hasCluster: (name) => Object.hasOwn(mocks, name) || Object.hasOwn(streamServers, name),
      onLog: (entry) => {
        if (starting) startLog.push(entry);
      },
      httpCall: async (call: HttpCallRequest) => {
        const recorded: RecordedHttpCall = {
          cluster: call.cluster,
          headers: call.headers,
          body: decodeUtf8(call.body),
          bodyBytes: call.body,
          trailers: call.trailers,
          timeoutMs: call.timeoutMs,
          header: (name) => new HeaderMap(call.headers).get(name),
          grpc: grpcOf(call),
        };
        harness?.httpCalls.push(recorded);
        const mock = Object.hasOwn(mocks, call.cluster) ? mocks[call.cluster]! : { status: 503, body: `no httpCalls mock for cluster ${call.cluster} (only a grpcStreams one)` };
        const answer = typeof mock === 'function' ? await clock.answer(() => mock(recorded)) : mock;
        if (answer === 'timeout') return new Promise<never>(() => {});
        return {
          headers: [[':status', String(answer.status ?? 200)], ...toPairs(answer.headers)],
          body: toBytes(answer.body),
          trailers: toPairs(answer.trailers),
        };
      },
      grpcStream: (call: GrpcStreamRequest, events: GrpcStreamEvents): GrpcStreamHandle => {
        const stream = new MockGrpcStream(call.cluster, call.headers, events);
        harness?.grpcStreams.push(stream);
        const server = Object.hasOwn(streamServers, call.cluster) ? streamServers[call.cluster] : undefined;
        // The server starts once the host call that opened the stream has returned.
        queueMicrotask(() => {
          // The kit's own answer, not a server's: no response code details after its message.
          if (server === undefined) {
            const said = encodeGrpcMessage(`no grpcStreams mock for cluster ${call.cluster} (only an httpCalls one)`);
            stream.closed = true;
            events.headers([[':status', '200'], ['content-type', 'application/grpc'], ['grpc-status', '12'], ['grpc-message', said]], true, '');
          } else void clock.answer(() => stream.start(server));
        });
        return { write: (data, endStream) => stream.write(data, endStream), reset: () => stream.cancel() };
      },
    },
  ).catch((err: unknown) => {
    if (!(err instanceof WasmLoadError)) throw err;
    const said = startLog.filter((l) => LogLevel[l.level] >= LogLevel.warn).map((l) => `${l.level}: ${l.message}`);
    throw Object.assign(new WasmLoadError(err.path, `${err.message.slice(err.path.length + 2)}${said.length ? `; the module logged: ${said.join(' | ')}` : ''}`), { logs: startLog });
  });
  starting = false;
  harness = new FilterHarness(plugin, clock, options.bufferLimitBytes, options.stallAfterMs);
  return harness;
}

export { WasmPlugin, SharedState };
export type { LocalReply, HttpStream, StreamOutcome, StreamProperties, LogEntry };
