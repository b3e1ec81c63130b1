// One instance of a module: its contexts, the host functions bound to it,
// calls into its exports, and http_call / queue delivery. A throw out of any
// call (a trap, proc_exit, a host bug) marks the VM failed; the plugin then
// applies its failure policy and builds a fresh VM for later streams.

import { LogLevel, WasmResult, type AbiVersion, type WasmResultCode } from './abi.ts';
import { checkImports, detectAbiVersion, WasmLoadError } from './abi-version.ts';
import { HostBuffer } from './buffer.ts';
import type { DeliveredGrpcCall, DeliveredHttpCall, GrpcStreamDispatcher, GrpcStreamEvents, GrpcStreamHandle, HostContext, HttpCallDispatcher, HttpCallResponse, LocalReply, VmServices } from './context.ts';
import { grpcFrame, grpcHeaders, grpcOutcome, grpcRequest, grpcTarget, GrpcStreamReader } from './grpc.ts';
import { HeaderMap, type HeaderPairs } from './headers.ts';
import { proxyImports, providedEnvImports } from './imports.ts';
import { GuestMemory, decodeUtf8, encodeUtf8 } from './memory.ts';
import type { MetricStore } from './metrics.ts';
import type { PropertySources, StreamProperties } from './properties.ts';
import type { SharedState } from './shared.ts';
import { builtinForeignFunctions } from './foreign.ts';
import { wasiImports } from './wasi.ts';
import { wasmApi, type WasmModule } from './wasm-api.ts';

export interface VmOptions {
  plugin: { name: string; rootId: string; vmId: string };
  vmConfiguration: Uint8Array;
  pluginConfiguration: Uint8Array;
  environment: [string, string][];
  metrics: MetricStore;
  shared: SharedState;
  /** Messages below `level` are dropped; a cell the plugin shares with every VM it makes, so a change reaches the running one. 6 drops all. */
  logThreshold: { level: number };
  log(level: number, message: string, contextId: number): void;
  nowNs(): bigint;
  /** Runs `fn` after `ms` of the host's clock; returns its cancel. Default: a real timer (the test kit's runs on its fake clock). */
  setTimer?: (ms: number, fn: () => void) => () => void;
  httpCall?: HttpCallDispatcher;
  /** Carries proxy_grpc_stream; without it every stream is refused as to an unknown cluster. */
  grpcStream?: GrpcStreamDispatcher;
  hasCluster?: (name: string) => boolean;
  foreignFunctions?: Record<string, (args: Uint8Array) => Uint8Array | undefined>;
  /** HostEnv.headerBytes. */
  headerBytes?: boolean;
  rootProperties: StreamProperties;
  onTickPeriod(ms: number): void;
  onFailure(error: Error, callback: string): void;
}

const wasiNames = new Set(Object.keys(wasiImports(null as never)));
const envNames = providedEnvImports();

function realTimer(ms: number, fn: () => void): () => void {
  const t = setTimeout(fn, ms);
  return () => clearTimeout(t);
}

export class VmFailure extends Error {}

/** An http_call or grpc_call on its way; cancel(false) abandons it without telling the module. */
interface InFlightCall {
  abort: AbortController;
  stopTimer?: () => void;
  cancel: (notify?: boolean) => void;
}

/**
 * A gRPC stream the module opened, as Envoy's GrpcStreamClientHandler keeps
 * it: `halfClosed` once the request side ended (a send with end_stream, or
 * proxy_grpc_close), `localClosed` once proxy_grpc_close was called,
 * `remoteClosed` once proxy_on_grpc_close was delivered. The token stays
 * known (grpc_send / _close / _cancel answer OK) until both sides are
 * closed or the module cancels it.
 */
interface OpenGrpcStream {
  handle: GrpcStreamHandle | undefined;
  halfClosed: boolean;
  localClosed: boolean;
  remoteClosed: boolean;
}

type WasmExport = (...args: (number | undefined)[]) => unknown;

/** Callout kinds, the low two bits of their tokens (Envoy's CalloutType: http 4n, grpc call 4n+1, grpc stream 4n+2). */
const Callout = { Http: 0, GrpcCall: 1, GrpcStream: 2 } as const;
const calloutOf = (token: number): number => token & 3;

export class WasmVm implements VmServices {
  readonly memory: GuestMemory;
  readonly headerBytes: boolean;
  readonly metrics: MetricStore;
  readonly shared: SharedState;
  readonly vmId: string;
  readonly root: RootContext;
  failure: Error | undefined;
  closed = false;
  private readonly exports: Record<string, unknown>;
  private readonly functions = new Map<string, WasmExport>();
  private readonly contexts = new Map<number, HostContext>();
  private nextContextId = 1;
  private current: HostContext;
  private effectiveId = 0;
  /** The last token of each callout kind: as Envoy numbers them (wasm.h CalloutType), the low two bits say which kind a token is. */
  private readonly lastToken: number[] = [Callout.Http, Callout.GrpcCall, Callout.GrpcStream];
  private readonly inFlight = new Map<number, InFlightCall>();
  private readonly grpcStreams = new Map<number, OpenGrpcStream>();
  /** Calls into the module in progress: stream events that arrive during one wait for it to return. */
  private depth = 0;
  private deliveringResponse: DeliveredHttpCall | undefined;
  private deliveringGrpc: DeliveredGrpcCall | undefined;
  private rootDone: (() => void) | undefined;

  /** Instantiates and runs the root lifecycle; throws WasmLoadError when the module cannot run here. */
  static create(module: WasmModule, options: VmOptions): WasmVm {
    const abiVersion = detectAbiVersion(module);
    checkImports(module, { env: envNames, wasi_snapshot_preview1: wasiNames, wasi_unstable: wasiNames });
    const vm = new WasmVm(module, options, abiVersion);
    vm.start();
    return vm;
  }

  private constructor(
    module: WasmModule,
    private readonly options: VmOptions,
    readonly abiVersion: AbiVersion,
  ) {
    this.metrics = options.metrics;
    this.shared = options.shared;
    this.vmId = options.plugin.vmId;
    this.headerBytes = options.headerBytes === true;
    this.root = new RootContext(this.allocContextId(), this, options);
    this.current = this.root;
    let memory: GuestMemory | undefined;
    const wasi = wasiImports({
      memory: () => memory!,
      log: (level, message) => this.log(level, message),
      realtimeNs: () => options.nowNs(),
      monotonicNs: () => process.hrtime.bigint(),
      environment: options.environment,
    });
    const env = proxyImports(this);
    const instance = new wasmApi.Instance(module, { env, wasi_snapshot_preview1: wasi, wasi_unstable: wasi });
    this.exports = instance.exports as Record<string, unknown>;
    for (const [name, value] of Object.entries(this.exports)) if (typeof value === 'function') this.functions.set(name, value as WasmExport);
    const exportedMemory = this.exports['memory'];
    if (!(exportedMemory instanceof wasmApi.Memory)) throw new WasmLoadError('exports.memory', 'module does not export its linear memory as "memory"');
    // The spec prefers proxy_on_memory_allocate; malloc is the deprecated fallback.
    const allocate = (this.exports['proxy_on_memory_allocate'] ?? this.exports['malloc']) as ((size: number) => number) | undefined;
    if (typeof allocate !== 'function') throw new WasmLoadError('exports.malloc', 'module exports neither malloc nor proxy_on_memory_allocate, so the host cannot return data to it');
    memory = new GuestMemory(exportedMemory, (size) => allocate(size));
    this.memory = memory;
  }

  private start(): void {
    const init = this.exports['_initialize'] !== undefined ? '_initialize' : this.exports['_start'] !== undefined ? '_start' : undefined;
    if (init !== undefined) this.startStep(init, this.call(init, this.root));
    if (init === '_initialize' && this.has('main')) this.startStep('main', this.call('main', this.root, 0, 0));
    this.contexts.set(this.root.id, this.root);
    this.startStep('proxy_on_context_create', this.call('proxy_on_context_create', this.root, this.root.id, 0));
    const started = this.call('proxy_on_vm_start', this.root, this.root.id, this.options.vmConfiguration.length);
    this.startStep('proxy_on_vm_start', started, 'VM start refused');
    this.root.configuring = true;
    const configured = this.call('proxy_on_configure', this.root, this.root.id, this.options.pluginConfiguration.length);
    this.root.configuring = false;
    this.startStep('proxy_on_configure', configured, 'plugin configuration rejected');
  }

  private startStep(callback: string, result: number | undefined, refusal?: string): void {
    const failure = this.failure;
    if (failure !== undefined) throw new WasmLoadError(callback, `module trapped: ${failure.message}`);
    if (refusal !== undefined && result === 0) throw new WasmLoadError(callback, `module returned false (${refusal})`);
  }

  allocContextId(): number {
    return this.nextContextId++;
  }

  has(callback: string): boolean {
    return this.functions.has(callback);
  }

  /**
   * Calls an export as `context`. Returns its i32 result, undefined when the
   * export is absent or the call threw (then `failure` is set).
   */
  call(callback: string, context: HostContext, a?: number, b?: number, c?: number, d?: number, e?: number): number | undefined {
    if (this.failure !== undefined) return undefined;
    // A Map by name, not exports[callback]: that keyed load sees every callback name and went megamorphic.
    const fn = this.functions.get(callback);
    if (fn === undefined) return undefined;
    const savedCurrent = this.current;
    const savedEffective = this.effectiveId;
    this.current = context;
    this.effectiveId = 0;
    this.depth++;
    try {
      // Fixed arity, no rest/spread on every call: arguments a callback does
      // not declare are ignored, and an omitted one reaches the module as 0.
      const result = fn(a, b, c, d, e);
      return typeof result === 'number' ? result : typeof result === 'bigint' ? Number(result) : undefined;
    } catch (error) {
      this.fail(error instanceof Error ? error : new Error(String(error)), callback);
      return undefined;
    } finally {
      this.depth--;
      this.current = savedCurrent;
      this.effectiveId = savedEffective;
    }
  }

  private fail(error: Error, callback: string): void {
    if (this.failure !== undefined) return;
    this.failure = error;
    this.log(5, `wasm VM failed in ${callback}: ${error.message}`);
    this.cancelHttpCalls();
    for (const context of [...this.contexts.values()]) context.vmFailed();
    this.options.onFailure(error, callback);
  }

  addContext(context: HostContext): void {
    this.contexts.set(context.id, context);
    this.call('proxy_on_context_create', context, context.id, this.root.id);
  }

  removeContext(context: HostContext): void {
    this.contexts.delete(context.id);
  }

  /** Contexts open besides the root one: streams. */
  get streamContexts(): number {
    return this.contexts.size - 1;
  }

  // --- VmServices -----------------------------------------------------------

  logLevel(): number {
    // Off (6) is no level of the ABI's: a filter is told critical, and its critical lines are dropped too.
    return Math.min(this.options.logThreshold.level, LogLevel.critical);
  }

  log(level: number, message: string): void {
    if (level < this.options.logThreshold.level) return;
    this.options.log(level, message, this.active().id);
  }

  nowNs(): bigint {
    return this.options.nowNs();
  }

  setTickPeriod(ms: number): void {
    this.options.onTickPeriod(ms);
  }

  active(): HostContext {
    if (this.effectiveId !== 0) {
      const effective = this.contexts.get(this.effectiveId);
      if (effective !== undefined) return effective;
    }
    return this.current;
  }

  setEffectiveContext(id: number): boolean {
    if (!this.contexts.has(id)) return false;
    this.effectiveId = id;
    return true;
  }

  done(context: HostContext): WasmResultCode {
    if (context !== this.root || this.rootDone === undefined) return WasmResult.NotFound;
    const resolve = this.rootDone;
    this.rootDone = undefined;
    resolve();
    return WasmResult.Ok;
  }

  httpCallResponse() {
    return this.deliveringResponse;
  }

  registerQueue(name: string): number {
    return this.shared.registerQueue(this.vmId, name, (token) => {
      if (!this.closed) this.call('proxy_on_queue_ready', this.root, this.root.id, token);
    });
  }

  callForeign(name: string, args: Uint8Array): { result: WasmResultCode; value?: Uint8Array } {
    const fn = this.options.foreignFunctions?.[name];
    if (fn !== undefined) return { result: WasmResult.Ok, value: fn(args) ?? new Uint8Array(0) };
    const builtin = Object.hasOwn(builtinForeignFunctions, name) ? builtinForeignFunctions[name] : undefined;
    return builtin === undefined ? { result: WasmResult.NotFound } : builtin(args);
  }

  startHttpCall(from: HostContext, cluster: string, headers: HeaderPairs, body: Uint8Array, trailers: HeaderPairs, timeoutMs: number): { result: WasmResultCode; token: number } {
    if (!this.knowsCluster(cluster)) return { result: WasmResult.BadArgument, token: 0 };
    const required = new HeaderMap(headers);
    // Envoy refuses a callout without these, before sending anything.
    if (!required.has(':method') || !required.has(':path') || !required.has(':authority')) return { result: WasmResult.BadArgument, token: 0 };
    // Envoy's async client answers a timed-out callout itself, as its router does.
    const timedOut: HttpCallResponse = { headers: [[':status', '504'], ['content-length', '24'], ['content-type', 'text/plain']], body: 'upstream request timeout' };
    const token = this.startCall(from, { cluster, headers, body, trailers, timeoutMs }, false, timedOut, (t, response) => this.deliverHttpCallResponse(t, response));
    return { result: WasmResult.Ok, token };
  }

  /**
   * proxy_grpc_call: a unary call (Envoy's gRPC async client over the
   * cluster), answered with proxy_on_grpc_receive (the response message) or
   * proxy_on_grpc_close (a gRPC status, its message through proxy_get_status).
   */
  startGrpcCall(from: HostContext, service: Uint8Array, serviceName: string, method: string, metadata: HeaderPairs, message: Uint8Array, timeoutMs: number): { result: WasmResultCode; token: number } {
    const target = grpcTarget(service, decodeUtf8);
    // As Envoy: an unknown cluster name is PARSE_FAILURE (it was not a GrpcService either), a GrpcService it cannot use BAD_ARGUMENT.
    if (target === 'bad') return { result: WasmResult.BadArgument, token: 0 };
    if (!this.knowsCluster(target.cluster)) return { result: WasmResult.ParseFailure, token: 0 };
    const request = grpcRequest(target, serviceName, method, metadata, message, timeoutMs);
    // The router's own timeout reply to a gRPC request: trailers-only, UNAVAILABLE (httpToGrpcStatus(504)).
    const timedOut: HttpCallResponse = { headers: [[':status', '200'], ['content-type', 'application/grpc'], ['grpc-status', '14'], ['grpc-message', 'upstream request timeout']], details: 'response_timeout' };
    const token = this.startCall(from, { cluster: target.cluster, headers: request.headers, body: request.body, trailers: [], timeoutMs }, true, timedOut, (t, response) => this.deliverGrpcOutcome(t, response));
    return { result: WasmResult.Ok, token };
  }

  /**
   * proxy_grpc_cancel: a call, or a stream (reset upstream, as Envoy's
   * grpcCancel resets it), is abandoned, and the module hears nothing more of it.
   */
  cancelGrpcCall(token: number): WasmResultCode {
    // As Envoy: the token's kind decides; an http_call's is BAD_ARGUMENT.
    if (calloutOf(token) === Callout.GrpcStream) {
      const stream = this.grpcStreams.get(token);
      if (stream === undefined) return WasmResult.NotFound;
      this.grpcStreams.delete(token);
      if (!stream.remoteClosed) stream.handle?.reset();
      return WasmResult.Ok;
    }
    if (calloutOf(token) !== Callout.GrpcCall) return WasmResult.BadArgument;
    const entry = this.inFlight.get(token);
    if (entry === undefined) return WasmResult.NotFound;
    entry.cancel(false);
    return WasmResult.Ok;
  }

  /**
   * proxy_grpc_close, as Envoy's grpcClose: a call is cancelled; a stream's
   * request side is half-closed (an empty DATA frame with END_STREAM, Envoy's
   * AsyncStreamImpl::closeStream) while the server's answer keeps coming to
   * the module, and the token is forgotten once the server has closed too.
   */
  closeGrpc(token: number): WasmResultCode {
    if (calloutOf(token) !== Callout.GrpcStream) return this.cancelGrpcCall(token);
    const stream = this.grpcStreams.get(token);
    if (stream === undefined) return WasmResult.NotFound;
    if (!stream.halfClosed && !stream.remoteClosed) {
      stream.halfClosed = true;
      stream.handle?.write(new Uint8Array(0), true);
    }
    if (stream.remoteClosed) this.grpcStreams.delete(token);
    else stream.localClosed = true;
    return WasmResult.Ok;
  }

  /**
   * proxy_grpc_stream: opens a stream on the cluster (Envoy's gRPC async
   * client startRaw), the same target checks as a call. Its events go to the
   * root context, as cpp-host's grpc_stream is made from the root context
   * whichever context asks (src/exports.cc): proxy_on_grpc_receive_initial_metadata,
   * proxy_on_grpc_receive per message, proxy_on_grpc_receive_trailing_metadata,
   * then proxy_on_grpc_close.
   */
  startGrpcStream(service: Uint8Array, serviceName: string, method: string, metadata: HeaderPairs): { result: WasmResultCode; token: number } {
    const target = grpcTarget(service, decodeUtf8);
    if (target === 'bad') return { result: WasmResult.BadArgument, token: 0 };
    const dispatch = this.options.grpcStream;
    if (dispatch === undefined || !(this.options.hasCluster?.(target.cluster) ?? true)) return { result: WasmResult.ParseFailure, token: 0 };
    const token = this.nextToken(Callout.GrpcStream);
    const stream: OpenGrpcStream = { handle: undefined, halfClosed: false, localClosed: false, remoteClosed: false };
    this.grpcStreams.set(token, stream);
    const live = () => this.grpcStreams.get(token) === stream && !this.closed && this.failure === undefined;
    const reader = new GrpcStreamReader({
      initialMetadata: (headers) => {
        if (live()) this.deliverGrpcStreamEvent('proxy_on_grpc_receive_initial_metadata', token, { buffer: undefined, status: { code: WasmResult.Ok, message: '' }, initialMetadata: new HeaderMap(headers) });
      },
      message: (message) => {
        if (live()) this.deliverGrpcStreamEvent('proxy_on_grpc_receive', token, { buffer: new HostBuffer(message, false), status: { code: WasmResult.Ok, message: '' } });
      },
      trailingMetadata: (trailers) => {
        if (live()) this.deliverGrpcStreamEvent('proxy_on_grpc_receive_trailing_metadata', token, { buffer: undefined, status: { code: WasmResult.Ok, message: '' }, trailingMetadata: new HeaderMap(trailers) });
      },
      close: (code, message) => {
        if (!live()) return;
        stream.remoteClosed = true;
        this.deliverGrpcStreamEvent('proxy_on_grpc_close', token, { buffer: undefined, status: { code, message } }, code);
        // As Envoy's onGrpcCloseWrapper after the callback: a stream the module had closed is forgotten; another waits for its grpc_close.
        if (stream.localClosed && this.grpcStreams.get(token) === stream) this.grpcStreams.delete(token);
      },
      resetUpstream: () => stream.handle?.reset(),
    });
    // Events that come while the module runs (a dispatcher answering at once) wait until it returns, as Envoy defers them.
    const later = (fn: () => void) => (this.depth > 0 ? queueMicrotask(() => later(fn)) : fn());
    const events: GrpcStreamEvents = {
      headers: (headers, endStream, details) => later(() => reader.headers(headers, endStream, details)),
      data: (chunk) => later(() => reader.data(chunk)),
      end: (trailers) => later(() => reader.end(trailers)),
      reset: () => later(() => reader.reset()),
    };
    stream.handle = dispatch({ cluster: target.cluster, headers: grpcHeaders(target, serviceName, method, metadata) }, events);
    return { result: WasmResult.Ok, token };
  }

  /** proxy_grpc_send: one message, as a gRPC frame; `endStream` half-closes the request. */
  sendGrpcStream(token: number, message: Uint8Array, endStream: boolean): WasmResultCode {
    if (calloutOf(token) !== Callout.GrpcStream) return WasmResult.BadArgument;
    const stream = this.grpcStreams.get(token);
    if (stream === undefined) return WasmResult.NotFound;
    // Once either side is closed there is nowhere for it to go; the token is still the module's, so OK.
    if (stream.halfClosed || stream.remoteClosed) return WasmResult.Ok;
    if (endStream) stream.halfClosed = true;
    stream.handle?.write(grpcFrame(message), endStream);
    return WasmResult.Ok;
  }

  private deliverGrpcStreamEvent(callback: string, token: number, delivered: DeliveredGrpcCall, arg?: number): void {
    this.deliveringGrpc = delivered;
    try {
      const size = arg ?? delivered.buffer?.length ?? delivered.initialMetadata?.count ?? delivered.trailingMetadata?.count ?? 0;
      this.call(callback, this.root, this.root.id, token, size);
    } finally {
      this.deliveringGrpc = undefined;
    }
  }

  grpcCallResponse(): DeliveredGrpcCall | undefined {
    return this.deliveringGrpc;
  }

  private knowsCluster(cluster: string): boolean {
    const dispatch = this.options.httpCall;
    return dispatch !== undefined && (this.options.hasCluster?.(cluster) ?? true);
  }

  /** Dispatches a callout; `deliver` hands its answer (undefined: it failed) to the module, once, unless the VM is gone. */
  /** The next token of a kind (Envoy's nextHttpCallId / nextGrpcCallId / nextGrpcStreamId: += 4), 0 skipped on wrap-around. */
  private nextToken(kind: number): number {
    let token = (this.lastToken[kind]! + 4) >>> 0;
    if (token === 0) token = 4;
    this.lastToken[kind] = token;
    return token;
  }

  private startCall(from: HostContext, call: Omit<Parameters<HttpCallDispatcher>[0], 'signal'>, grpc: boolean, timedOut: HttpCallResponse, deliver: (token: number, response: HttpCallResponse | undefined) => void): number {
    const dispatch = this.options.httpCall!;
    const token = this.nextToken(grpc ? Callout.GrpcCall : Callout.Http);
    const abort = new AbortController();
    let settled = false;
    const finish = (response: HttpCallResponse | undefined, notify = true): void => {
      if (settled) return;
      settled = true;
      entry.stopTimer?.();
      const live = this.inFlight.delete(token) && !this.closed && this.failure === undefined;
      if (live && notify) deliver(token, response);
      from.httpCallFinished(token);
    };
    const entry: InFlightCall = {
      abort,
      cancel: (notify = true) => {
        this.inFlight.delete(token);
        abort.abort();
        finish(undefined, notify);
      },
    };
    this.inFlight.set(token, entry);
    from.httpCallStarted(token);
    if (call.timeoutMs > 0) {
      const onTimeout = () => {
        abort.abort();
        finish(timedOut);
      };
      entry.stopTimer = this.options.setTimer?.(call.timeoutMs, onTimeout) ?? realTimer(call.timeoutMs, onTimeout);
    }
    Promise.resolve()
      .then(() => dispatch({ ...call, signal: abort.signal }))
      .then(finish, () => finish(undefined));
    return token;
  }

  private deliverGrpcOutcome(token: number, response: HttpCallResponse | undefined): void {
    const outcome = grpcOutcome(response === undefined ? undefined : { headers: response.headers, body: typeof response.body === 'string' ? encodeUtf8(response.body) : (response.body ?? new Uint8Array(0)), trailers: response.trailers, details: response.details });
    this.deliveringGrpc =
      outcome.response !== undefined ? { buffer: new HostBuffer(outcome.response.slice(), false), status: { code: WasmResult.Ok, message: '' } } : { buffer: undefined, status: { code: outcome.code, message: outcome.message } };
    try {
      // To the root context, as cpp-host's grpc_call is made from it.
      if (outcome.response !== undefined) this.call('proxy_on_grpc_receive', this.root, this.root.id, token, outcome.response.length);
      else this.call('proxy_on_grpc_close', this.root, this.root.id, token, outcome.code);
    } finally {
      this.deliveringGrpc = undefined;
    }
  }

  private deliverHttpCallResponse(token: number, response: { headers: HeaderPairs; body?: Uint8Array | string; trailers?: HeaderPairs } | undefined): void {
    const body = typeof response?.body === 'string' ? encodeUtf8(response.body) : (response?.body ?? new Uint8Array(0));
    const trailers = response?.trailers;
    const delivered: DeliveredHttpCall =
      response === undefined
        ? // A callout that failed (no response at all) reads as Envoy's onHttpCallFailure: BROKEN_CONNECTION, "reset", nothing else.
          { headers: undefined, body: undefined, trailers: undefined, status: { code: WasmResult.BrokenConnection, message: 'reset' } }
        : {
            headers: new HeaderMap(response.headers),
            body: new HostBuffer(body, false),
            trailers: trailers === undefined || trailers.length === 0 ? undefined : new HeaderMap(trailers),
            status: { code: WasmResult.Ok, message: '' },
          };
    this.deliveringResponse = delivered;
    try {
      // Delivered to the root context, as proxy-wasm-cpp-host does; SDKs route
      // it to the calling stream with proxy_set_effective_context.
      this.call('proxy_on_http_call_response', this.root, this.root.id, token, delivered.headers?.count ?? 0, delivered.body?.length ?? 0, delivered.trailers?.count ?? 0);
    } finally {
      this.deliveringResponse = undefined;
    }
  }

  get pendingHttpCalls(): number {
    return this.inFlight.size;
  }

  /** Root on_done; if the module answers false, waits for proxy_done (bounded), then on_delete. */
  async shutdown(timeoutMs: number): Promise<void> {
    if (this.closed) return;
    const done = this.call('proxy_on_done', this.root, this.root.id);
    if (done === 0 && this.failure === undefined) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, timeoutMs);
        this.rootDone = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    this.call('proxy_on_delete', this.root, this.root.id);
    this.closed = true;
    this.cancelHttpCalls();
  }

  /** Aborts every callout and resets every gRPC stream (Envoy's ~Context); waiting streams are woken and see the VM failed or closed. */
  private cancelHttpCalls(): void {
    for (const { cancel } of [...this.inFlight.values()]) cancel();
    const streams = [...this.grpcStreams.values()];
    this.grpcStreams.clear();
    for (const stream of streams) if (!stream.remoteClosed) stream.handle?.reset();
  }

  /** gRPC streams whose token the module still holds. */
  get openGrpcStreams(): number {
    return this.grpcStreams.size;
  }
}

/** The plugin's root context: configuration buffers and plugin-level properties, no HTTP maps. */
export class RootContext implements HostContext {
  readonly isRoot = true;
  /** In proxy_on_configure, the one callback the plugin configuration is there for (Envoy's temp_plugin_). */
  configuring = false;
  readonly vmConfiguration: HostBuffer;
  private readonly pluginConfiguration: HostBuffer;
  private readonly sources: PropertySources;

  constructor(
    readonly id: number,
    _vm: WasmVm,
    options: VmOptions,
  ) {
    this.vmConfiguration = new HostBuffer(options.vmConfiguration, false);
    this.pluginConfiguration = new HostBuffer(options.pluginConfiguration, false);
    this.sources = { plugin: options.plugin, given: options.rootProperties };
  }

  headerMap(): HeaderMap | undefined {
    return undefined;
  }

  readableMap(): WasmResultCode {
    return WasmResult.BadArgument;
  }

  buffer(type: number): HostBuffer | undefined {
    if (type === 6) return this.vmConfiguration;
    if (type === 7 && this.configuring) return this.pluginConfiguration;
    return undefined;
  }

  properties(): PropertySources {
    return this.sources;
  }

  // A root context has no stream: Envoy's Context does nothing and answers OK
  // (UNIMPLEMENTED only for continuing the upstream connection).
  sendLocalResponse(_reply: LocalReply): WasmResultCode {
    return WasmResult.Ok;
  }

  continueStream(streamType: number): WasmResultCode {
    return streamType === 3 ? WasmResult.Unimplemented : WasmResult.Ok;
  }

  closeStream(): WasmResultCode {
    return WasmResult.Ok;
  }

  httpCallStarted(): void {}
  httpCallFinished(): void {}
  vmFailed(): void {}
}
