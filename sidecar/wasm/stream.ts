// One HTTP stream through a plugin: the per-stream context the module sees
// (header maps, bodies, properties) and the async interface the sidecar and
// the test kit drive. A phase method resolves once the filter has decided:
// continue, pause, local reply or close. While the filter has an http_call
// in flight and the stream is paused, the promise waits for the response, so
// a filter can pause, call out, and resume with continue_stream or reply.
// The `...Now` forms answer without a promise when the filter decided at
// once (almost always): the sidecar runs them on every request.

import { DataStatus, HeadersStatus, StreamType, WasmResult, type WasmResultCode } from './abi.ts';
import { HostBuffer } from './buffer.ts';
import type { HostContext, LocalReply } from './context.ts';
import { HeaderMap, type HeaderPairs } from './headers.ts';
import { encodeUtf8 } from './memory.ts';
import type { PropertySources, StreamProperties } from './properties.ts';
import type { WasmVm } from './vm.ts';

export type StreamOutcome =
  | { action: 'continue' }
  /** The filter stopped iteration and nothing this host knows of will resume it. */
  | { action: 'pause' }
  | { action: 'local_reply'; reply: LocalReply }
  /** The filter reset the stream (proxy_close_stream). */
  | { action: 'close' };

/**
 * For body phases `continue` carries the bytes to forward (everything
 * buffered so far). `pause` with `watermark`: the filter returned
 * StopIterationAndWatermark (2), so what it holds past the buffer limit
 * calls for backpressure, not 413 / 500 (Envoy's buffer_was_streaming).
 */
export type BodyOutcome = Exclude<StreamOutcome, { action: 'continue' | 'pause' }> | { action: 'pause'; watermark?: true } | { action: 'continue'; body: Uint8Array };

const CONTINUE: StreamOutcome = Object.freeze({ action: 'continue' });
const PAUSE: StreamOutcome = Object.freeze({ action: 'pause' });
const PAUSE_WATERMARK: BodyOutcome = Object.freeze({ action: 'pause', watermark: true });
const CLOSE: StreamOutcome = Object.freeze({ action: 'close' });
/** A body the module cannot reach now: Envoy still hands out a buffer, empty and not writable. */
const NO_BODY = new HostBuffer(new Uint8Array(0), false);

export interface HttpStream {
  readonly contextId: number;
  onRequestHeaders(headers: HeaderPairs, endOfStream: boolean): Promise<StreamOutcome>;
  onRequestBody(chunk: Uint8Array | string, endOfStream: boolean): Promise<BodyOutcome>;
  onRequestTrailers(trailers: HeaderPairs): Promise<StreamOutcome>;
  onResponseHeaders(headers: HeaderPairs, endOfStream: boolean): Promise<StreamOutcome>;
  onResponseBody(chunk: Uint8Array | string, endOfStream: boolean): Promise<BodyOutcome>;
  onResponseTrailers(trailers: HeaderPairs): Promise<StreamOutcome>;
  /** The phases above, answered without a promise when the filter decided at once. */
  requestHeadersNow(headers: HeaderPairs, endOfStream: boolean): StreamOutcome | Promise<StreamOutcome>;
  requestBodyNow(chunk: Uint8Array | string, endOfStream: boolean): BodyOutcome | Promise<BodyOutcome>;
  responseHeadersNow(headers: HeaderPairs, endOfStream: boolean): StreamOutcome | Promise<StreamOutcome>;
  responseBodyNow(chunk: Uint8Array | string, endOfStream: boolean): BodyOutcome | Promise<BodyOutcome>;
  responseTrailersNow(trailers: HeaderPairs): StreamOutcome | Promise<StreamOutcome>;
  requestTrailersNow(trailers: HeaderPairs): StreamOutcome | Promise<StreamOutcome>;
  /** The body bytes the filter held, handed over (it continued at the trailers, so they go on before them). */
  takeBody(direction: 'request' | 'response'): Uint8Array;
  /**
   * How the filter holds this direction's headers now, if it does: `buffer`
   * (it returned 3, StopAllIterationAndBuffer: Envoy reads the body into its
   * buffer meanwhile and answers 413 / 500 past the buffer limit) or
   * `watermark` (1 or 4: Envoy reads up to the limit, then applies
   * backpressure).
   */
  heldHeaders(direction: 'request' | 'response'): 'buffer' | 'watermark' | undefined;
  /**
   * Resolves once a paused direction is decided later (continue_stream from a
   * tick, an http_call's answer or a queue callback, a local reply, a reset, a
   * VM failure), or the stream completes. Pair it with your own timeout: a
   * filter may never resume, as in Envoy. A direction whose headers the
   * filter stopped takes no body or trailers callback until then: Envoy's
   * host turns StopIteration from a headers callback into
   * StopAllIterationAndWatermark, so body calls made meanwhile only buffer
   * their bytes (outcome `pause`); the next body call after the filter
   * continued hands it everything buffered.
   */
  resumed(direction: 'request' | 'response'): Promise<StreamOutcome>;
  /**
   * proxy_on_done, proxy_on_log, proxy_on_delete, in that order (once).
   * `logged`: the streams (other filters of the same request) whose maps are
   * the request and the response as the access log has them, which Envoy's
   * on_log reads: the last filter's request headers, the response as the
   * first filter (the last encoder) left it. Default: this stream's own.
   */
  complete(logged?: LoggedStreams): void;
  /** Headers and trailers as the filter left them (what is forwarded). */
  readonly requestHeaders: HeaderPairs | undefined;
  /** Body bytes the filter holds (it stopped iteration on them) in one direction. */
  bufferedBytes(direction: 'request' | 'response'): number;
  /** Whether this stream's request (or response) headers phase ran. */
  sawHeaders(direction: 'request' | 'response'): boolean;
  /** Whether the filter changed the request (or response) headers at all. */
  headersModified(direction: 'request' | 'response'): boolean;
  readonly requestTrailers: HeaderPairs | undefined;
  readonly responseHeaders: HeaderPairs | undefined;
  readonly responseTrailers: HeaderPairs | undefined;
  readonly localReply: LocalReply | undefined;
  /** True while the filter holds the request (or response) back. */
  readonly paused: { request: boolean; response: boolean };
  /**
   * Whether anything could still continue a stopped stream: an http_call in
   * flight, or a tick period (proxy_on_tick may continue it). False: a
   * stopped direction waits for good, as it would in Envoy.
   */
  readonly resumable: boolean;
  readonly pendingHttpCalls: number;
  readonly closed: boolean;
  /** Whether the filter's failure policy decided the stream: its VM had failed (a trap, before or during it). */
  readonly failed: boolean;
}

type Direction = 'request' | 'response';

export interface LoggedStreams {
  request?: HttpStream;
  response?: HttpStream;
}

export interface StreamOwner {
  failurePolicy: 'fail_closed' | 'fail_open' | 'fail_reload';
  plugin: { name: string; rootId: string; vmId: string };
  /** A warning the plugin logs once (the first time `key` comes up), not per stream. */
  warnOnce?(key: string, message: string): void;
  /** Whether something outside a stream's own callbacks could still continue it: the module has a tick period. */
  canResume?(): boolean;
}

export class HttpStreamContext implements HttpStream, HostContext {
  readonly isRoot = false;
  readonly id: number;
  // Plain fields rather than small objects, and the sets below made on first
  // use: a stream is made per request per filter.
  private req: HeaderMap | undefined;
  private reqTrailers: HeaderMap | undefined;
  private resp: HeaderMap | undefined;
  private respTrailers: HeaderMap | undefined;
  private requestBody: HostBuffer | undefined;
  private responseBody: HostBuffer | undefined;
  private readonly sources: PropertySources;
  private reply: { reply: LocalReply; direction: Direction } | undefined;
  private reset = false;
  private bypass = false;
  failed = false;
  private phase: Direction = 'request';
  private resumedRequest = false;
  private resumedResponse = false;
  readonly paused = { request: false, response: false };
  /**
   * Directions (bit 1 request, 2 response) whose headers callback stopped and
   * that the filter has not continued since: Envoy's StopAllIterationAndWatermark,
   * under which no body or trailers callback of that direction runs.
   */
  private heldAll = 0;
  /** Of heldAll, the directions whose headers callback returned 3: StopAllIterationAndBuffer, under which Envoy reads and buffers the body meanwhile. */
  private heldBuffering = 0;
  private calls: Set<number> | undefined;
  private waiters: (() => void)[] | undefined;
  private completed = false;
  /**
   * The maps the module reaches now, a bit per MapType 0..3. As in Envoy's
   * wasm Context, a map is there from its phase until the filter continues
   * past it (its callback returns Continue, or continue_stream); the host's
   * own copy (what is forwarded) stays.
   */
  private live = 0;
  /** In proxy_on_log, where the maps read are those of the log. */
  private logging = false;
  /** Request body bytes received so far (Envoy's bytesReceived, behind `request.size`). */
  private requestReceived = 0;
  /** The body callback running now, whose chunk the module may read and change. */
  private bodyCall: Direction | undefined;
  /**
   * In a last body call of a stream without trailers: the trailer map the
   * module may make. As Envoy's Context, only a change makes it (getMap:
   * addDecodedTrailers / addEncodedTrailers); until then a read finds no map
   * (getConstMap: BAD_ARGUMENT).
   */
  private unmadeTrailers: HeaderMap | undefined;
  /** In proxy_on_log: the streams holding the logged request and response, and their maps once read. */
  private loggedFrom: LoggedStreams | undefined;
  private loggedMaps: (HeaderMap | undefined)[] | undefined;

  constructor(
    private readonly vm: WasmVm,
    private readonly owner: StreamOwner,
    given: StreamProperties,
    defaults?: StreamProperties,
    startMs?: number,
  ) {
    this.id = vm.allocContextId();
    this.sources = { plugin: owner.plugin, given, defaults, startMs };
    if (vm.failure === undefined) vm.addContext(this);
  }

  get contextId(): number {
    return this.id;
  }

  // --- driving the stream ---------------------------------------------------

  async onRequestHeaders(headers: HeaderPairs, endOfStream: boolean): Promise<StreamOutcome> {
    return this.requestHeadersNow(headers, endOfStream);
  }

  async onRequestBody(chunk: Uint8Array | string, endOfStream: boolean): Promise<BodyOutcome> {
    return this.requestBodyNow(chunk, endOfStream);
  }

  async onRequestTrailers(trailers: HeaderPairs): Promise<StreamOutcome> {
    return this.requestTrailersNow(trailers);
  }

  async onResponseHeaders(headers: HeaderPairs, endOfStream: boolean): Promise<StreamOutcome> {
    return this.responseHeadersNow(headers, endOfStream);
  }

  async onResponseBody(chunk: Uint8Array | string, endOfStream: boolean): Promise<BodyOutcome> {
    return this.responseBodyNow(chunk, endOfStream);
  }

  async onResponseTrailers(trailers: HeaderPairs): Promise<StreamOutcome> {
    return this.responseTrailersNow(trailers);
  }

  requestHeadersNow(headers: HeaderPairs, endOfStream: boolean): StreamOutcome | Promise<StreamOutcome> {
    this.req = new HeaderMap(headers);
    return this.runHeaders('request', 'proxy_on_request_headers', this.req.count, endOfStream);
  }

  requestBodyNow(chunk: Uint8Array | string, endOfStream: boolean): BodyOutcome | Promise<BodyOutcome> {
    return this.runBody('request', 'proxy_on_request_body', chunk, endOfStream);
  }

  responseHeadersNow(headers: HeaderPairs, endOfStream: boolean): StreamOutcome | Promise<StreamOutcome> {
    this.resp = new HeaderMap(headers);
    return this.runHeaders('response', 'proxy_on_response_headers', this.resp.count, endOfStream);
  }

  responseBodyNow(chunk: Uint8Array | string, endOfStream: boolean): BodyOutcome | Promise<BodyOutcome> {
    return this.runBody('response', 'proxy_on_response_body', chunk, endOfStream);
  }

  requestTrailersNow(trailers: HeaderPairs): StreamOutcome | Promise<StreamOutcome> {
    this.reqTrailers = new HeaderMap(trailers);
    return this.runHeaders('request', 'proxy_on_request_trailers', this.reqTrailers.count);
  }

  responseTrailersNow(trailers: HeaderPairs): StreamOutcome | Promise<StreamOutcome> {
    this.respTrailers = new HeaderMap(trailers);
    return this.runHeaders('response', 'proxy_on_response_trailers', this.respTrailers.count);
  }

  takeBody(direction: Direction): Uint8Array {
    return this.drain(direction);
  }

  heldHeaders(direction: Direction): 'buffer' | 'watermark' | undefined {
    const held = direction === 'request' ? 1 : 2;
    if ((this.heldAll & held) === 0 || !this.paused[direction]) return undefined;
    return (this.heldBuffering & held) !== 0 ? 'buffer' : 'watermark';
  }

  complete(logged?: LoggedStreams): void {
    if (this.completed) return;
    this.completed = true;
    if (!this.bypass) {
      this.vm.call('proxy_on_done', this, this.id);
      this.logging = true;
      this.loggedFrom = logged;
      this.vm.call('proxy_on_log', this, this.id);
      this.logging = false;
      this.loggedFrom = undefined;
      this.loggedMaps = undefined;
      this.vm.call('proxy_on_delete', this, this.id);
    }
    this.vm.removeContext(this);
    // Whoever waits on resumed() hears that nothing will continue the stream now.
    this.notify();
  }

  private runHeaders(direction: Direction, callback: string, count: number, endOfStream?: boolean): StreamOutcome | Promise<StreamOutcome> {
    const early = this.before(direction);
    if (early !== undefined) return early;
    const held = direction === 'request' ? 1 : 2;
    // Trailers while the filter holds this direction's headers: no callback until it continues.
    if (endOfStream === undefined && (this.heldAll & held) !== 0) return PAUSE;
    // Headers (count of 2 arguments) or trailers: the map this phase hands the module.
    const bit = 1 << ((direction === 'request' ? 0 : 2) + (endOfStream === undefined ? 1 : 0));
    this.live |= bit;
    const status = endOfStream === undefined ? this.vm.call(callback, this, this.id, count) : this.vm.call(callback, this, this.id, count, endOfStream ? 1 : 0);
    // cpp-host's conversion: headers stop on 1, 3, 4 and anything above; trailers on any non-zero (2 included).
    const stopped = status !== undefined && (endOfStream === undefined ? status !== 0 : status !== HeadersStatus.Continue && status !== HeadersStatus.ContinueAndEndStream);
    if (!stopped) this.live &= ~bit;
    // A headers stop is StopAllIterationAndWatermark in Envoy's host: nothing more of this direction until the filter continues.
    else if (endOfStream !== undefined && !(direction === 'request' ? this.resumedRequest : this.resumedResponse)) {
      this.heldAll |= held;
      if (status === HeadersStatus.StopAllIterationAndBuffer) this.heldBuffering |= held;
    }
    const outcome = this.after(direction, stopped);
    if (endOfStream !== undefined && outcome === PAUSE) this.warnStalled(direction, callback);
    return outcome;
  }

  /** A headers callback stopped with nothing that could continue it: said once, as the stream hangs (here as in Envoy) until a timeout ends it. */
  private warnStalled(direction: Direction, callback: string): void {
    if (this.resumable) return;
    this.owner.warnOnce?.(
      `${direction}-headers-stalled`,
      `${callback} stopped the ${direction} with no http_call in flight, no gRPC stream open and no tick period, so nothing can continue it: Envoy calls no body callback until the filter continues the stream itself (it turns StopIteration from a headers callback into StopAllIterationAndWatermark), so this ${direction} is held, as Envoy holds it, until a timeout ends the stream (stream_idle_timeout: 504, or 408 while the request is incomplete); continue the headers and return StopIterationAndBuffer from the body callback to see the body first (docs/writing-filters.md)`,
    );
  }

  private runBody(direction: Direction, callback: string, chunk: Uint8Array | string, endOfStream: boolean): BodyOutcome | Promise<BodyOutcome> {
    const buffer = direction === 'request' ? (this.requestBody ??= new HostBuffer()) : (this.responseBody ??= new HostBuffer());
    const bytes = typeof chunk === 'string' ? encodeUtf8(chunk) : chunk;
    if (direction === 'request') this.requestReceived += bytes.length;
    const heldBefore = buffer.length;
    buffer.append(bytes);
    const early = this.before(direction);
    if (early !== undefined) return early.action === 'continue' ? { action: 'continue', body: this.drain(direction) } : early;
    // The filter holds this direction's headers (StopAllIterationAndWatermark): the bytes wait in the buffer for it.
    if ((this.heldAll & (direction === 'request' ? 1 : 2)) !== 0) return PAUSE as BodyOutcome;
    // With the last chunk and no trailers yet, the filter may add trailers (the spec allows it here).
    const request = direction === 'request';
    const addedTrailers = endOfStream && (request ? this.reqTrailers : this.respTrailers) === undefined ? new HeaderMap() : undefined;
    const trailersBit = request ? 2 : 8;
    if (addedTrailers !== undefined) {
      if (request) this.reqTrailers = addedTrailers;
      else this.respTrailers = addedTrailers;
      this.live |= trailersBit;
      this.unmadeTrailers = addedTrailers;
    }
    this.bodyCall = direction;
    const status = this.vm.call(callback, this, this.id, buffer.length, endOfStream ? 1 : 0);
    this.bodyCall = undefined;
    this.unmadeTrailers = undefined;
    if (addedTrailers !== undefined && addedTrailers.count === 0) {
      if (request) this.reqTrailers = undefined;
      else this.respTrailers = undefined;
      this.live &= ~trailersBit;
    }
    const stopped = status !== undefined && status !== DataStatus.Continue;
    // StopIterationNoBuffer (3, and anything above: cpp-host's convertVmCallResultToFilterDataStatus): Envoy's
    // filter manager keeps no copy of this chunk (commonHandleAfterDataCallback), so its bytes go no further;
    // what was buffered before it stays.
    if (stopped && status >= DataStatus.StopIterationNoBuffer && this.vm.failure === undefined) buffer.replaceAll(buffer.slice(0, Math.min(heldBefore, buffer.length)));
    const watermark = status === DataStatus.StopIterationAndWatermark;
    const outcome = this.after(direction, stopped);
    if (outcome instanceof Promise) return outcome.then((o) => this.bodyOutcome(direction, o, watermark));
    return this.bodyOutcome(direction, outcome, watermark);
  }

  private bodyOutcome(direction: Direction, outcome: StreamOutcome, watermark = false): BodyOutcome {
    if (outcome.action === 'continue') return { action: 'continue', body: this.drain(direction) };
    return watermark && outcome === PAUSE ? PAUSE_WATERMARK : (outcome as BodyOutcome);
  }

  private drain(direction: Direction): Uint8Array {
    const buffer = direction === 'request' ? this.requestBody : this.responseBody;
    if (buffer === undefined) return new Uint8Array(0);
    const bytes = buffer.bytes();
    buffer.clear();
    return bytes;
  }

  private setResumed(direction: Direction, value: boolean): void {
    if (direction === 'request') this.resumedRequest = value;
    else this.resumedResponse = value;
  }

  /** Decides a phase without calling the module: earlier reply, reset, failed VM or fail-open bypass. */
  private before(direction: Direction): StreamOutcome | undefined {
    this.phase = direction;
    this.setResumed(direction, false);
    if (this.reset) return CLOSE;
    if (this.reply !== undefined && (direction === 'request' || this.reply.direction === 'response')) return { action: 'local_reply', reply: this.reply.reply };
    if (this.bypass) return CONTINUE;
    if (this.vm.failure !== undefined) return this.failurePolicy();
    return undefined;
  }

  /** The phase's outcome once the module returned; a promise only while a paused filter waits on an http_call. */
  private after(direction: Direction, stopped: boolean): StreamOutcome | Promise<StreamOutcome> {
    if (this.vm.failure !== undefined) return this.failurePolicy();
    if (stopped && !(direction === 'request' ? this.resumedRequest : this.resumedResponse)) {
      this.paused[direction] = true;
      if (this.waiting(direction)) return this.waitThenSettle(direction);
    } else {
      this.paused[direction] = false;
    }
    return this.settle(direction);
  }

  private waiting(direction: Direction): boolean {
    return this.paused[direction] && this.pendingHttpCalls > 0 && !this.decided(direction);
  }

  /** Something other than the filter continuing has decided this direction: a reset, a reply it carries, a failed VM. */
  private decided(direction: Direction): boolean {
    // A reply sent while handling the request still goes out through the response phases, which may hold it.
    return this.reset || (this.reply !== undefined && (direction === 'request' || this.reply.direction === 'response')) || this.vm.failure !== undefined;
  }

  private async waitThenSettle(direction: Direction): Promise<StreamOutcome> {
    while (this.waiting(direction)) await this.changed();
    return this.settle(direction);
  }

  private settle(direction: Direction): StreamOutcome {
    if (this.vm.failure !== undefined) return this.failurePolicy();
    if (this.reset) return CLOSE;
    if (this.reply !== undefined && (direction === 'request' || this.reply.direction === 'response')) return { action: 'local_reply', reply: this.reply.reply };
    return this.paused[direction] ? PAUSE : CONTINUE;
  }

  async resumed(direction: Direction): Promise<StreamOutcome> {
    while (this.paused[direction] && !this.decided(direction) && !this.completed) await this.changed();
    return this.after(direction, false);
  }

  get resumable(): boolean {
    return this.pendingHttpCalls > 0 || this.owner.canResume?.() === true;
  }

  private changed(): Promise<void> {
    return new Promise<void>((resolve) => (this.waiters ??= []).push(resolve));
  }

  private failurePolicy(): StreamOutcome {
    this.failed = true;
    if (this.owner.failurePolicy === 'fail_open') {
      this.bypass = true;
      this.heldAll = this.heldBuffering = 0;
      this.paused.request = this.paused.response = false;
      return CONTINUE;
    }
    if (this.reply === undefined) {
      this.reply = {
        direction: this.phase,
        reply: { status: 503, body: new Uint8Array(0), headers: [], grpcStatus: 14, details: 'wasm_fail_stream' },
      };
    }
    return { action: 'local_reply', reply: this.reply.reply };
  }

  private notify(): void {
    const waiters = this.waiters;
    if (waiters === undefined) return;
    this.waiters = undefined;
    for (const wake of waiters) wake();
  }

  vmFailed(): void {
    this.notify();
  }

  // --- state seen by the sidecar / test kit ---------------------------------

  bufferedBytes(direction: Direction): number {
    return (direction === 'request' ? this.requestBody : this.responseBody)?.length ?? 0;
  }

  sawHeaders(direction: Direction): boolean {
    return (direction === 'request' ? this.req : this.resp) !== undefined;
  }

  headersModified(direction: Direction): boolean {
    return (direction === 'request' ? this.req : this.resp)?.modified === true;
  }

  get requestHeaders(): HeaderPairs | undefined {
    return this.req?.pairs();
  }
  get requestTrailers(): HeaderPairs | undefined {
    return this.reqTrailers?.pairs();
  }
  get responseHeaders(): HeaderPairs | undefined {
    return this.resp?.pairs();
  }
  get responseTrailers(): HeaderPairs | undefined {
    return this.respTrailers?.pairs();
  }
  get localReply(): LocalReply | undefined {
    return this.reply?.reply;
  }
  get pendingHttpCalls(): number {
    return this.calls === undefined ? 0 : this.calls.size;
  }
  get closed(): boolean {
    return this.reset;
  }

  // --- HostContext ----------------------------------------------------------

  headerMap(type: number): HeaderMap | undefined {
    return (this.live & (1 << type)) === 0 ? undefined : this.map(type);
  }

  readableMap(type: number): HeaderMap | WasmResultCode {
    // Envoy's log phase reads the logged maps, which carry no request trailers.
    const map = this.logging ? (type === 1 ? undefined : this.loggedMap(type)) : this.headerMap(type);
    if (map !== undefined && map === this.unmadeTrailers && !map.modified) return WasmResult.BadArgument;
    return map ?? (this.logging ? WasmResult.NotFound : WasmResult.BadArgument);
  }

  private loggedMap(type: number): HeaderMap | undefined {
    const from = type === 0 ? this.loggedFrom?.request : this.loggedFrom?.response;
    if (from === undefined || from === this) return this.map(type);
    const maps = (this.loggedMaps ??= []);
    if (!(type in maps)) {
      const pairs = type === 0 ? from.requestHeaders : type === 2 ? from.responseHeaders : from.responseTrailers;
      maps[type] = pairs === undefined ? undefined : new HeaderMap(pairs);
    }
    return maps[type];
  }

  private map(type: number): HeaderMap | undefined {
    switch (type) {
      case 0:
        return this.req;
      case 1:
        return this.reqTrailers;
      case 2:
        return this.resp;
      case 3:
        return this.respTrailers;
      default:
        return undefined;
    }
  }

  buffer(type: number): HostBuffer | undefined {
    // As Envoy's getBuffer: a body is the module's in its body callback and while it
    // holds bytes of it; otherwise an empty buffer (reads OK, writes BAD_ARGUMENT).
    if (type === 0) return this.bodyBuffer('request', this.requestBody);
    if (type === 1) return this.bodyBuffer('response', this.responseBody);
    // Envoy serves the VM configuration in every context (Context::getBuffer).
    if (type === 6) return this.vm.root.vmConfiguration;
    return undefined;
  }

  private bodyBuffer(direction: Direction, buffer: HostBuffer | undefined): HostBuffer {
    return buffer !== undefined && (this.bodyCall === direction || buffer.length > 0) ? buffer : NO_BODY;
  }

  properties(): PropertySources {
    const sources = this.sources;
    // The header-derived attributes (request.path, response.headers, ...) read
    // the maps the module reaches now, as Envoy's StreamActivation does; the
    // response code is the stream's, whatever the phase.
    sources.requestHeaders = this.visibleMap(0);
    sources.requestTrailers = this.visibleMap(1);
    sources.responseHeaders = this.visibleMap(2);
    sources.responseTrailers = this.visibleMap(3);
    sources.responseStatus = this.resp?.get(':status');
    sources.requestBytesReceived = this.requestReceived;
    // Envoy's request.duration exists once the request is complete: in proxy_on_log.
    sources.durationMs = this.logging && sources.startMs !== undefined ? Math.max(0, Number(this.vm.nowNs() / 1_000_000n) - sources.startMs) : undefined;
    sources.responseBodySize = this.responseBody?.length;
    return sources;
  }

  private visibleMap(type: number): HeaderMap | undefined {
    const map = this.readableMap(type);
    return typeof map === 'number' ? undefined : map;
  }

  sendLocalResponse(reply: LocalReply): WasmResultCode {
    // The first reply wins; a filter cannot replace a response already being sent.
    if (this.reply === undefined || (this.reply.direction === 'request' && this.phase === 'response')) {
      this.reply = { reply, direction: this.phase };
    }
    this.notify();
    return WasmResult.Ok;
  }

  continueStream(streamType: number): WasmResultCode {
    const direction: Direction | undefined = streamType === StreamType.Request ? 'request' : streamType === StreamType.Response ? 'response' : undefined;
    // Envoy's HTTP context: the downstream connection is no stream of its own (OK, nothing
    // to do), the upstream one cannot be continued (UNIMPLEMENTED).
    if (direction === undefined) return streamType === StreamType.Downstream ? WasmResult.Ok : WasmResult.Unimplemented;
    // Envoy lets go of the request's maps on either (Context::continueStream).
    this.live &= ~3;
    this.setResumed(direction, true);
    this.paused[direction] = false;
    this.heldAll &= direction === 'request' ? ~1 : ~2;
    this.heldBuffering &= this.heldAll;
    this.notify();
    return WasmResult.Ok;
  }

  closeStream(streamType: number): WasmResultCode {
    // The connections of a network filter: an HTTP stream has none to close (Envoy: OK, nothing done).
    if (streamType !== StreamType.Request && streamType !== StreamType.Response) return WasmResult.Ok;
    this.reset = true;
    this.notify();
    return WasmResult.Ok;
  }

  httpCallStarted(token: number): void {
    (this.calls ??= new Set()).add(token);
  }

  httpCallFinished(token: number): void {
    this.calls?.delete(token);
    this.notify();
  }
}
