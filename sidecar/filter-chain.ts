// The HTTP filters before the router, per request: the fault filter (native)
// and wasm filters (inline or ECDS) run through the proxy-wasm host. Request
// phases run in chain order, response phases in reverse, as in Envoy. A local
// reply sent before the response started (a filter's, RBAC's, the router's)
// goes through the response phases of the wasm filters whose request headers
// ran, as Envoy encodes it through its filter chain (localReplyHeaders).

import type { FaultConfig, HeaderMatcherConfig, HttpFilterConfig, PercentParts, RouteEntry, WasmPluginConfig } from './config.ts';
import { headerValueMatches } from './router.ts';
import { rbacDecide, type RbacRequest } from './rbac.ts';
import { NO_RUNTIME, type Runtime } from './runtime.ts';
import type { PeerCertificate } from './peer-identity.ts';
import type { LocalReply } from './local-reply.ts';
import { localReplies } from './local-reply.ts';
import type { SidecarStats } from './stats.ts';
import { responseFlagBits } from './stream-attributes.ts';
import type { HeaderPairs } from './upstream.ts';
import { getHeader } from './headers.ts';
import type { BodyOutcome, HttpStream, LocalReply as WasmLocalReply, StreamOutcome, StreamProperties, WasmPlugin } from './wasm/index.ts';
import { filterStateIfSet } from './wasm/index.ts';

/** What the filters may ask of the stream's route: the cluster it sends to (none for no route, a direct response or a redirect). */
export interface RouteTarget {
  routeCluster(): string | undefined;
}

export interface FilterResolver {
  /** The extension config an ECDS filter currently points at. */
  extension(name: string): WasmPluginConfig | undefined;
  /** A plugin that is already loaded (the request path never waits on a module fetch). */
  plugin(config: WasmPluginConfig): WasmPlugin | undefined;
}

/** `watching`: bits (1 request, 2 response) of a body stop whose continue is awaited (watchBodyStop). */
type WasmActive = { kind: 'wasm'; name: string; stream: HttpStream | undefined; failOpen: boolean; watching: number };
type Active = { kind: 'fault'; fault: FaultConfig } | { kind: 'rbac'; filter: Extract<HttpFilterConfig, { kind: 'rbac' }> } | WasmActive;

/** The dynamic metadata namespace Envoy's RBAC HTTP filter writes its shadow result under. */
export const RBAC_METADATA_NAMESPACE = 'envoy.filters.http.rbac';

/** The request as it stands between filters (a filter may replace its headers and buffered body). */
interface RequestState {
  headers: HeaderPairs;
  body: Buffer | null;
}

/**
 * Trailers a wasm filter added in its last body call (end_of_stream) of a
 * stream that had none: as Envoy's wasm host (context.cc getMap: the trailer
 * map is made by addDecodedTrailers / addEncodedTrailers when a filter
 * changes it in the last body call), they now end the stream. Nothing is
 * allocated when it added none.
 */
function addedTrailers(a: WasmActive, direction: 'request' | 'response'): HeaderPairs | undefined {
  return direction === 'request' ? a.stream!.requestTrailers : a.stream!.responseTrailers;
}

/** The response headers a filter left: its own copy once it changed them, else the same array. */
function responseHeadersAfter(a: WasmActive, given: HeaderPairs): HeaderPairs {
  return a.stream!.headersModified('response') ? a.stream!.responseHeaders! : given;
}

export type PhaseResult = { kind: 'continue' } | { kind: 'reply'; reply: LocalReply };

/** The request after its headers (and buffered body) went through the filters. */
export type RequestOutcome = PhaseResult & { headers: HeaderPairs; body: Buffer | null; trailers?: HeaderPairs };

/** A wait for a filter to continue the stream it stopped, given up (see RequestFilters.cancelHeld). */
type Cancelled = { action: 'cancelled'; reply: LocalReply };

/** After the response headers: send them and stream the body, or (a filter holds them) read the body while it does. */
export type ResponseStart = { kind: 'reply'; reply: LocalReply } | { kind: 'stream'; headers: HeaderPairs } | { kind: 'buffer'; headers: HeaderPairs; from: number };

/**
 * A streamed chunk after the filters (empty while one of them buffers), a
 * filter's local reply, the stream must be reset, or a filter holds more than
 * the buffer limit (Envoy: 413 on the request path; 500, or a reset once the
 * headers are out, on the response path). `full`: a filter that stopped with
 * StopIterationAndWatermark holds more than the limit: the caller reads no
 * more of that body until `released` hands it the bytes the filter lets go
 * of (Envoy's watermark backpressure). `trailers`: the last chunk ended the
 * body and a filter added trailers in its last body call (Envoy's
 * addDecodedTrailers / addEncodedTrailers): they end the stream after it.
 */
export type DataResult = { kind: 'data'; data: Buffer; full?: true; trailers?: HeaderPairs } | { kind: 'reply'; reply: LocalReply } | { kind: 'reset' } | { kind: 'too_large' };

const EMPTY = Buffer.alloc(0);
const TOO_LARGE: DataResult = Object.freeze({ kind: 'too_large' });
const FULL: DataResult = Object.freeze({ kind: 'data', data: EMPTY, full: true });

/** The trailers after the filters, with the body bytes filters held until them; or, as for a chunk, a reply, a reset or too much held. */
export type TrailersResult = { kind: 'trailers'; data: Buffer; trailers: HeaderPairs } | Exclude<DataResult, { kind: 'data' }>;

function fromWasm(r: WasmLocalReply): LocalReply {
  // The filter's grpc_status travels beside the headers: a plain HTTP caller never sees it (a fail-closed 503 carried grpc-status: 14).
  // No response flag, as Envoy's wasm host (Context::sendLocalResponse) sets none: the filter's details say why.
  const reply: LocalReply = { status: r.status, body: Buffer.from(r.body).toString(), headers: [...r.headers], flag: '-', details: r.details };
  if (r.grpcStatus !== undefined) reply.grpcStatus = r.grpcStatus;
  return reply;
}

/** The filter's bytes as a Buffer without copying them (the stream handed them over). */
function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** The longest a Node timer waits (a longer one fires at once): a delay header's larger value waits this long. */
const MAX_TIMER_MS = 2 ** 31 - 1;
const MAX_UINT64 = 2 ** 64 - 1;
const MAX_UINT32 = 2 ** 32 - 1;

/**
 * A request header's first value as absl::SimpleAtoi reads an unsigned integer of at most `max` (whitespace around,
 * an optional '+', decimal digits); undefined when absent or not such a number (Envoy's fault headers, fault_config.cc).
 */
function headerUint(headers: HeaderPairs, name: string, max: number): number | undefined {
  const v = getHeader(headers, name);
  if (v === undefined) return undefined;
  const m = /^\s*\+?(\d+)\s*$/.exec(v);
  if (!m) return undefined;
  const n = Number(m[1]);
  return n <= max ? n : undefined;
}

/**
 * Envoy's HeaderPercentageProvider: the percentage header's numerator (uint32) over the configured denominator, no
 * more than the configured numerator; the configured share without a valid header.
 */
function headerShare(headers: HeaderPairs, name: string, percent: PercentParts, fraction: number): number {
  const n = headerUint(headers, name, MAX_UINT32);
  return n === undefined ? fraction : Math.min(1, Math.min(n, percent.numerator) / percent.scale);
}

/** The fault filter's `headers`: each matcher on the request header's values joined with ',' (router.ts), all must match. */
function faultHeadersMatch(matchers: readonly HeaderMatcherConfig[], headers: HeaderPairs): boolean {
  for (const h of matchers) {
    const name = h.name === 'host' ? ':authority' : h.name;
    let v: string | undefined;
    for (const [k, x] of headers) if (k === name) v = v === undefined ? x : `${v},${x}`;
    if (!headerValueMatches(h, v)) return false;
  }
  return true;
}

/** What the filters read of the route when the request matched none: no per-route config (Envoy's filters run before the router finds out). */
export const NO_ROUTE: Pick<RouteEntry, 'disabledFilters' | 'fault'> = { disabledFilters: new Set(), fault: undefined };

export class RequestFilters {
  /** The fault filter's response_rate_limit for this stream (KiB/s): its response body is paced (proxy.ts, rate-limiter.ts). */
  responseRateKbps: number | undefined = undefined;
  /** The fault filter delayed the request: Envoy's response flag DI. */
  delayInjected = false;
  readonly #active: Active[] = [];
  readonly #stats: SidecarStats;
  readonly #random: () => number;
  /** Envoy's runtime: the fault filter's keys. */
  readonly #runtime: Runtime;
  /** The stream's route target: the fault filter's upstream_cluster is compared with its cluster. */
  readonly #target: RouteTarget | undefined;
  /** The connection manager's stat_prefix: the fault filter's active faults are counted per connection manager, as Envoy's gauge. */
  readonly #statPrefix: string;
  #hcmLabelValues: { envoy_http_conn_manager_prefix: string } | undefined;
  /** This stream counts in the active faults until it ends (Envoy's fault_active_, given back in onDestroy). */
  #faultActive = false;
  /** The fault's delay timer while it runs. */
  #delayTimer: NodeJS.Timeout | undefined;
  #ended = false;
  /** A filter whose plugin is missing or failed to load: answered before anything else runs. */
  #broken: LocalReply | undefined;
  /** The caller's verified client certificate, for RBAC principals. */
  readonly #peer: PeerCertificate | undefined;
  /** What one filter may hold of a streamed body (the connection manager's buffer limit). */
  readonly #bufferLimit: number;
  /** Waits for a stopped filter to continue the stream (cancelHeld ends them). */
  #waits: Set<(reply: LocalReply) => void> | undefined;
  /** Set by abandon(): the stream is over, and a filter that stops now is not waited for. */
  #abandoned: LocalReply | undefined;
  /**
   * The last filter whose request phase ran (-1: none). Envoy's wasm filter
   * skips its response callbacks until its request headers ran
   * (`http_request_started_`), so a local reply sent by filter N, or before
   * the filters (a missing filter config), reaches only filters 0..N.
   */
  #reached = -1;
  /** The stream attributes the filters read (shared by their streams): the response as sent is added for on_log (ended). */
  readonly #properties: StreamProperties;

  /** The stream's dynamic metadata (what the RBAC filter's shadow rules decided), by namespace; undefined when none was set. */
  dynamicMetadata: Record<string, Record<string, string>> | undefined = undefined;

  /** What the wasm filters stored with proxy_set_property (the stream's filter state); undefined when nothing. */
  get filterState(): ReadonlyMap<string, Uint8Array> | undefined {
    return filterStateIfSet(this.#properties);
  }

  constructor(chain: readonly HttpFilterConfig[], route: Pick<RouteEntry, 'disabledFilters' | 'fault'>, resolver: FilterResolver, properties: StreamProperties, stats: SidecarStats, random: () => number, bufferLimit: number, peer?: PeerCertificate, runtime: Runtime = NO_RUNTIME, statPrefix = '', target?: RouteTarget) {
    this.#target = target;
    this.#stats = stats;
    this.#bufferLimit = bufferLimit;
    this.#properties = properties;
    this.#peer = peer;
    this.#random = random;
    this.#runtime = runtime;
    this.#statPrefix = statPrefix;
    // Envoy's stream info has its response flags from the start (none yet): response.flags is 0, not NOT_FOUND.
    properties['response.flags'] = 0;
    for (const f of chain) {
      if (route.disabledFilters.has(f.name)) continue;
      if (f.kind === 'rbac') {
        this.#active.push({ kind: 'rbac', filter: f });
      } else if (f.kind === 'fault') {
        // A route's typed_per_filter_config replaces the filter-level config.
        const fault = route.fault ?? f.fault;
        if (fault) this.#active.push({ kind: 'fault', fault });
      } else if (f.kind === 'wasm' || f.kind === 'ecds') {
        if (f.disabled) continue;
        const config = f.kind === 'wasm' ? f.plugin : resolver.extension(f.resourceName) ?? f.defaultPlugin;
        if (!config) {
          this.#broken ??= localReplies.filterMissing(f.name);
          continue;
        }
        const plugin = resolver.plugin(config);
        if (!plugin) {
          stats.wasmFailures.inc({ filter: f.name });
          if (!config.failOpen) this.#broken ??= localReplies.filterFailed();
          continue;
        }
        this.#active.push({ kind: 'wasm', name: f.name, stream: plugin.newHttpStream(properties), failOpen: config.failOpen, watching: 0 });
      }
    }
  }

  /**
   * Called as a wasm filter starts to hold the request headers (see
   * heldHeaders): the caller reads the body into its buffer meanwhile, as
   * Envoy's filter manager does (up to the buffer limit with
   * StopAllIterationAndWatermark; past it, 413 with StopAllIterationAndBuffer).
   */
  requestHeld: (() => void) | undefined;

  /**
   * Where body bytes go that a filter stopped mid-stream and later continued
   * itself (proxy_continue_stream from a tick, an http_call's answer): they
   * go on then, through the filters after it, as Envoy's commonContinue sends
   * the buffered data on (doData) when the filter continues; a reply or a
   * reset the filter chose meanwhile comes the same way. Set by whoever
   * streams that direction's body (requestData / responseData).
   */
  readonly released: { request?: (r: DataResult | Promise<DataResult>) => void; response?: (r: DataResult | Promise<DataResult>) => void } = {};
  /** complete() ran: nothing more goes through. */
  #completed = false;

  /** How a wasm filter holds the request (or response) headers now, if one does (HttpStream.heldHeaders). */
  heldHeaders(direction: 'request' | 'response'): 'buffer' | 'watermark' | undefined {
    for (const a of this.#active) {
      if (a.kind !== 'wasm' || !a.stream) continue;
      const held = a.stream.heldHeaders(direction);
      if (held !== undefined) return held;
    }
    return undefined;
  }

  get hasFilters(): boolean {
    return this.#active.length > 0 || this.#broken !== undefined;
  }

  get hasWasm(): boolean {
    return this.#active.some((a) => a.kind === 'wasm');
  }

  /** Whether a local reply sent now has wasm filters to go through (one whose request headers ran). */
  get encodesLocalReply(): boolean {
    for (let i = this.#reached; i >= 0; i--) {
      const a = this.#active[i]!;
      if (a.kind === 'wasm' && a.stream) return true;
    }
    return false;
  }

  /**
   * Request headers through every filter, in chain order, as they arrive:
   * before any of the body is read (Envoy's decodeHeaders), so a filter that
   * answers from the headers (a 401, an RBAC 403) does so without waiting for
   * an upload. `endOfStream`: the request has no body. A wasm filter that
   * stops its headers is held as Envoy's host holds it (StopIteration from a
   * headers callback is StopAllIterationAndWatermark there): nothing of the
   * request goes on (the caller reads the body into its buffer meanwhile:
   * requestHeld), until the filter continues the stream itself (from an http_call's answer or a tick), or until the stream
   * ends otherwise: also a stop that nothing could continue (no http_call in
   * flight, no tick period), as Envoy holds it until its idle timeout. The
   * promise of a held request settles on cancelHeld (the client left, a
   * timeout answered). The body follows: requestBody when it was read whole,
   * requestData chunk by chunk when it streams (gRPC, past the buffer limit).
   */
  requestHeaders(headers: HeaderPairs, endOfStream: boolean): RequestOutcome | Promise<RequestOutcome> {
    return this.#requestFrom(0, { headers, body: endOfStream ? EMPTY : null });
  }

  /**
   * A request body read whole (within the buffer limit) through every wasm
   * filter's body phase with end_of_stream, in chain order, after every
   * filter's headers phase (Envoy's decodeData: an empty body of a chunked
   * request too). A filter may rewrite it, answer, or stop at the end and
   * continue later with what it held. Header changes made here go upstream,
   * but the route was chosen after the headers phase, as Envoy's router does.
   */
  requestBody(headers: HeaderPairs, body: Buffer): RequestOutcome | Promise<RequestOutcome> {
    return this.#requestBodyFrom(0, { headers, body });
  }

  /**
   * A request read whole (within the buffer limit) that ended with trailers
   * (HTTP/2), through every wasm filter in chain order as Envoy's filter
   * manager decodes it: the body (if it had any data: an HTTP/2 request of
   * trailers alone gets no body call) without end_of_stream, then
   * proxy_on_request_trailers, where a filter may read, change or add
   * trailers. A filter that held body bytes hands them over when it
   * continues the trailers; a stop at the trailers holds the request until
   * the filter continues it itself (or the stream ends otherwise).
   */
  async requestBodyAndTrailers(headers: HeaderPairs, body: Buffer, trailers: HeaderPairs, from = 0): Promise<RequestOutcome & { trailers: HeaderPairs }> {
    const stop = (r: PhaseResult) => ({ ...r, headers, body, trailers });
    for (let i = from; i < this.#active.length; i++) {
      const a = this.#active[i]!;
      if (a.kind !== 'wasm' || !a.stream) continue;
      if (body.length > 0) {
        const b = await a.stream.requestBodyNow(body, false);
        if (b.action === 'continue') body = asBuffer(b.body);
        // Held: handed over as the filter continues the trailers.
        else if (b.action === 'pause') body = EMPTY;
        else {
          const rb = this.#outcome(a, b);
          if (rb) return stop(rb);
        }
      }
      let t: StreamOutcome | Cancelled = await a.stream.requestTrailersNow(trailers);
      if (this.#holds(t)) t = await this.#continued(a, 'request');
      if (t.action === 'cancelled') return stop({ kind: 'reply', reply: t.reply });
      const rt = this.#outcome(a, t);
      if (rt) return stop(rt);
      trailers = a.stream.requestTrailers ?? trailers;
      const held = asBuffer(a.stream.takeBody('request'));
      if (held.length > 0) body = body.length === 0 ? held : Buffer.concat([body, held]);
      // Headers still held may change in the body and trailers phases.
      if (a.stream.headersModified('request')) headers = a.stream.requestHeaders!;
    }
    return { kind: 'continue', headers, body, trailers };
  }

  /**
   * The trailers of a streamed request (an HTTP/2 call whose body went
   * through requestData chunk by chunk) through the wasm filters in chain
   * order: they end the request, so no body call had end_of_stream. A filter
   * that continues hands over the body bytes it held; they go through the
   * filters after it as data, ahead of the trailers, as Envoy's filter
   * manager sends a buffered body before the trailers. A stop the filter may
   * continue itself is waited for (the stream is held, as in Envoy).
   */
  async requestTrailers(trailers: HeaderPairs, from = 0): Promise<TrailersResult> {
    const out: Buffer[] = [];
    for (let i = from; i < this.#active.length; i++) {
      const a = this.#active[i]!;
      if (a.kind !== 'wasm' || !a.stream) continue;
      let t: StreamOutcome | Cancelled = await a.stream.requestTrailersNow(trailers);
      if (this.#holds(t)) t = await this.#continued(a, 'request');
      if (t.action === 'cancelled') return { kind: 'reset' };
      if (t.action === 'local_reply') return { kind: 'reply', reply: fromWasm(t.reply) };
      if (t.action !== 'continue') {
        this.#stats.wasmFailures.inc({ filter: a.name });
        if (a.failOpen) continue;
        return { kind: 'reply', reply: localReplies.filterFailed() };
      }
      trailers = a.stream.requestTrailers ?? trailers;
      const held = a.stream.takeBody('request');
      if (held.length === 0) continue;
      let r = this.#dataFrom('request', i + 1, asBuffer(held), false);
      if (r instanceof Promise) r = await r;
      if (r.kind !== 'data') return r;
      if (r.data.length > 0) out.push(r.data);
    }
    return { kind: 'trailers', data: out.length === 1 ? out[0]! : Buffer.concat(out), trailers };
  }

  #requestBodyFrom(from: number, s: RequestState): RequestOutcome | Promise<RequestOutcome> {
    for (let i = from; i < this.#active.length; i++) {
      const a = this.#active[i]!;
      if (a.kind !== 'wasm' || !a.stream) continue;
      const b = a.stream.requestBodyNow(s.body!, true);
      const r = b instanceof Promise ? b.then((o) => this.#afterRequestBody(a, o, s)) : this.#afterRequestBody(a, b, s);
      if (r === undefined) {
        const added = addedTrailers(a, 'request');
        if (added !== undefined) return this.requestBodyAndTrailers(s.headers, s.body!, added, i + 1);
        continue;
      }
      if (r instanceof Promise) {
        return r.then((o) => {
          if (o !== undefined) return o;
          const added = addedTrailers(a, 'request');
          return added !== undefined ? this.requestBodyAndTrailers(s.headers, s.body!, added, i + 1) : this.#requestBodyFrom(i + 1, s);
        });
      }
      return r;
    }
    return { kind: 'continue', headers: s.headers, body: s.body };
  }

  /**
   * The filters from `from` on, in chain order. Answers without a promise
   * when every filter decides at once (as the ...Now phases do): a fault
   * delay or a filter waiting on an http_call continues from a promise.
   */
  #requestFrom(from: number, s: RequestState): RequestOutcome | Promise<RequestOutcome> {
    if (this.#broken) return { kind: 'reply', reply: this.#broken, headers: s.headers, body: s.body };
    for (let i = from; i < this.#active.length; i++) {
      const r = this.#requestAt(i, s);
      if (r === undefined) continue;
      if (r instanceof Promise) return r.then((o) => o ?? this.#requestFrom(i + 1, s));
      return r;
    }
    return { kind: 'continue', headers: s.headers, body: s.body };
  }

  /** One filter's request phases: undefined to go on to the next filter, or the request's outcome. */
  #requestAt(i: number, s: RequestState): RequestOutcome | undefined | Promise<RequestOutcome | undefined> {
    const a = this.#active[i]!;
    if (i > this.#reached) this.#reached = i;
    if (a.kind === 'rbac') {
      const headers = s.headers;
      // Headers as they stand after the filters before it (e.g. claims the auth filter forwarded).
      const pseudo = (n: string) => headers.find(([k]) => k === n)?.[1] ?? '';
      const req: RbacRequest = {
        authority: pseudo(':authority'),
        path: pseudo(':path'),
        method: pseudo(':method'),
        peer: this.#peer,
        header: (n) => {
          const values = headers.filter(([k]) => k === n).map(([, v]) => v);
          return values.length === 0 ? undefined : values.join(',');
        },
      };
      const f = a.filter;
      const labels = (this.#hcmLabelValues ??= { envoy_http_conn_manager_prefix: this.#statPrefix });
      // As Envoy's RBACFilter::decodeHeaders: the shadow rules first, counted and written to the stream's dynamic
      // metadata (<prefix>shadow_engine_result, and <prefix>shadow_effective_policy_id when a policy matched), then
      // the enforced ones.
      if (f.shadow) {
        const { allowed, matched } = rbacDecide(f.shadow, req);
        this.#stats.rbac(f.shadowRulesStatPrefix, allowed ? 'shadow_allowed' : 'shadow_denied').inc(labels);
        const fields = ((this.dynamicMetadata ??= {})[RBAC_METADATA_NAMESPACE] ??= {});
        if (matched !== undefined) fields[`${f.shadowRulesStatPrefix}shadow_effective_policy_id`] = matched;
        fields[`${f.shadowRulesStatPrefix}shadow_engine_result`] = allowed ? 'allowed' : 'denied';
      }
      // The denial's details name the DENY policy that matched, `none` for an ALLOW no policy matched (rbac_filter.cc).
      const { allowed, matched } = rbacDecide(f.rbac, req);
      // Without rules Envoy has no enforcing engine: nothing is counted.
      if (f.enforced) this.#stats.rbac(f.rulesStatPrefix, allowed ? 'allowed' : 'denied').inc(labels);
      if (allowed) return undefined;
      return { kind: 'reply', reply: localReplies.rbacDenied(f.rbac.action === 'ALLOW' ? undefined : matched), headers, body: s.body };
    }
    if (a.kind === 'fault') {
      const fault = a.fault;
      // As Envoy's FaultFilter::decodeHeaders: upstream_cluster against the route's cluster, downstream_nodes
      // against x-envoy-downstream-service-node, then `headers` (HeaderUtility::matchHeaders: all must match); a
      // request that is not the fault's target passes untouched.
      if (fault.upstreamCluster !== undefined && this.#target?.routeCluster() !== fault.upstreamCluster) return undefined;
      if (fault.downstreamNodes !== undefined) {
        const node = getHeader(s.headers, 'x-envoy-downstream-service-node');
        if (node === undefined || !fault.downstreamNodes.has(node)) return undefined;
      }
      if (fault.headers !== undefined && !faultHeadersMatch(fault.headers, s.headers)) return undefined;
      // With x-envoy-downstream-service-cluster (even empty), Envoy reads fault.http.<that cluster>.* keys.
      const downstream = getHeader(s.headers, 'x-envoy-downstream-service-cluster');
      // response_rate_limit first, as Envoy's maybeSetupResponseRateLimit (before the delay and the abort): the
      // percentage (x-envoy-fault-throughput-response-percentage lowering it with header_limit) under the runtime's
      // key (no per-downstream-cluster key, as in Envoy), then the rate (header_limit: x-envoy-fault-throughput-response,
      // none without a valid non-zero one), then an active fault. The response body is then paced (proxy.ts).
      const rl = fault.responseRateLimit;
      if (rl !== undefined) {
        const share = rl.kbps === undefined ? headerShare(s.headers, 'x-envoy-fault-throughput-response-percentage', rl.percent, rl.fraction) : rl.fraction;
        if (this.#random() < this.#runtime.fraction(fault.runtime.responseRateLimitPercent, share)) {
          const kbps = rl.kbps ?? headerUint(s.headers, 'x-envoy-fault-throughput-response', MAX_UINT64);
          if (kbps !== undefined && kbps > 0 && this.#tryIncActiveFaults(fault)) {
            this.#stats.faultResponseRlInjected.inc(this.#faultLabels());
            this.responseRateKbps = kbps;
          }
        }
      }
      // As Envoy's FaultFilter: the runtime's percent and duration (keys in fault.runtime) over the configured ones,
      // read per request; a delay of 0 ms is no delay. A downstream cluster's percent key replaces the filter's,
      // its duration key is read over the filter's (isDelayEnabled, delayDuration). header_delay: the duration is
      // x-envoy-fault-delay-request's (none without a valid one), its percentage lowered by
      // x-envoy-fault-delay-request-percentage (filters/common/fault/fault_config.cc HeaderDelayProvider).
      const delay = fault.delay;
      const delayShare = delay === undefined ? 0 : delay.ms === undefined ? headerShare(s.headers, 'x-envoy-fault-delay-request-percentage', delay.percent, delay.fraction) : delay.fraction;
      if (delay && this.#random() < this.#runtime.fraction(downstream === undefined ? fault.runtime.delayPercent : `fault.http.${downstream}.delay.fixed_delay_percent`, delayShare)) {
        const configured = delay.ms ?? headerUint(s.headers, 'x-envoy-fault-delay-request', MAX_UINT64);
        if (configured !== undefined) {
          let ms = this.#runtime.getInteger(fault.runtime.delayDuration, configured);
          if (downstream !== undefined) ms = this.#runtime.getInteger(`fault.http.${downstream}.delay.fixed_duration_ms`, ms);
          if (ms !== 0 && this.#tryIncActiveFaults(fault)) {
            this.#stats.faultDelaysInjected.inc(this.#faultLabels());
            if (downstream && !fault.disableDownstreamClusterStats) this.#stats.faultDelaysInjected.inc(this.#faultLabels(downstream));
            this.delayInjected = true;
            this.#properties['response.flags'] = responseFlagBits('DI');
            return this.#faultDelay(ms).then((ended) => (ended ? { kind: 'reply', reply: ended, headers: s.headers, body: s.body } : this.#faultAbort(fault, s, downstream)));
          }
        }
      }
      return this.#faultAbort(fault, s, downstream);
    }
    if (!a.stream) return undefined;
    // The body (if any) follows the headers phase: requestBody or requestData.
    const out = a.stream.requestHeadersNow(s.headers, s.body !== null);
    // The ...Now phases are promises only while a filter waits on an http_call.
    if (out instanceof Promise) return out.then((o) => this.#afterRequestHeaders(i, a, o, s));
    return this.#afterRequestHeaders(i, a, out, s);
  }

  /**
   * The connection manager's labels for the fault filter's stats (http.<stat_prefix>.fault.*), made on first use; with
   * a downstream cluster, its own counters' (http.<stat_prefix>.fault.<downstream cluster>.*, Envoy's tag
   * envoy.fault_downstream_cluster), made for the fault that counts there.
   */
  #faultLabels(downstream?: string): { envoy_http_conn_manager_prefix: string; envoy_fault_downstream_cluster?: string } {
    if (downstream !== undefined) return { envoy_http_conn_manager_prefix: this.#statPrefix, envoy_fault_downstream_cluster: downstream };
    return (this.#hcmLabelValues ??= { envoy_http_conn_manager_prefix: this.#statPrefix });
  }

  /**
   * The fault's delay: undefined once it ran out, or the reply that ended it first (the client left, a timeout
   * answered: cancelHeld), as Envoy's onDestroy disables the delay timer.
   */
  #faultDelay(ms: number): Promise<LocalReply | undefined> {
    if (this.#abandoned) return Promise.resolve(this.#abandoned);
    return new Promise((resolve) => {
      const cancel = (reply: LocalReply) => {
        clearTimeout(this.#delayTimer);
        this.#delayTimer = undefined;
        resolve(reply);
      };
      (this.#waits ??= new Set()).add(cancel);
      this.#delayTimer = setTimeout(() => {
        this.#delayTimer = undefined;
        this.#waits?.delete(cancel);
        resolve(undefined);
      }, Math.min(ms, MAX_TIMER_MS));
    });
  }

  /**
   * Envoy's FaultFilter::tryIncActiveFaults: one active fault per stream; a new one only while fewer are active in the
   * connection manager than the runtime's max_active_faults key (or the config's max_active_faults) allows, else
   * faults_overflow and no fault.
   */
  #tryIncActiveFaults(fault: FaultConfig): boolean {
    if (this.#faultActive) return true;
    // Ended while delayed (the client left): no fault to count, as Envoy's onDestroy cancels the delay's abort.
    if (this.#ended) return false;
    const labels = this.#faultLabels();
    const max = this.#runtime.getInteger(fault.runtime.maxActiveFaults, fault.maxActiveFaults ?? Infinity);
    if (this.#stats.faultActive.get(labels) >= max) {
      this.#stats.faultsOverflow.inc(labels);
      return false;
    }
    this.#stats.faultActive.inc(labels);
    this.#faultActive = true;
    return true;
  }

  /**
   * Envoy's isAbortEnabled and abortStatus: with a downstream cluster, its keys replace the filter's, each over the
   * configured value. An HTTP status (http_status, or header_abort's x-envoy-fault-abort-request in [200, 600)) is
   * sent as such; else a gRPC status (grpc_status, or header_abort's x-envoy-fault-abort-grpc-request) makes the
   * abort an HTTP 200 whose local reply carries it: to a gRPC caller a trailers-only response with that grpc-status
   * and grpc-message `fault filter abort` (fault_filter.cc abortWithStatus, Envoy's sendLocalReply).
   */
  #faultAbort(fault: FaultConfig, s: RequestState, downstream: string | undefined): RequestOutcome | undefined {
    const abort = fault.abort;
    if (!abort) return undefined;
    const share = abort.header ? headerShare(s.headers, 'x-envoy-fault-abort-request-percentage', abort.percent, abort.fraction) : abort.fraction;
    if (!(this.#random() < this.#runtime.fraction(downstream === undefined ? fault.runtime.abortPercent : `fault.http.${downstream}.abort.abort_percent`, share))) return undefined;
    let configured = abort.status;
    if (abort.header) {
      const h = headerUint(s.headers, 'x-envoy-fault-abort-request', MAX_UINT64);
      if (h !== undefined && h >= 200 && h < 600) configured = h;
    }
    let reply: LocalReply;
    if (configured !== undefined) {
      // Envoy sends the runtime's status whatever it is (abortHttpStatus casts it to Http::Code; its HTTP/1 codec writes
      // "<status> Unknown" for one it has no name for). The sidecar does for 200..599, and on HTTP/1 for 600..999;
      // else it sends the configured one (Node's HTTP/2 refuses a :status outside 200..599, and a 1xx or a status of
      // more than three digits is no final response a client reads).
      const status = this.#runtime.getInteger(downstream === undefined ? fault.runtime.abortHttpStatus : `fault.http.${downstream}.abort.http_status`, configured);
      const sendable = status >= 200 && (status < 600 || (status <= 999 && this.#properties['request.protocol'] !== 'HTTP/2'));
      reply = localReplies.faultAbort(sendable ? status : configured);
    } else {
      const grpc = abort.grpcStatus ?? (abort.header ? headerUint(s.headers, 'x-envoy-fault-abort-grpc-request', MAX_UINT64) : undefined);
      if (grpc === undefined) return undefined;
      const status = this.#runtime.getInteger(downstream === undefined ? fault.runtime.abortGrpcStatus : `fault.http.${downstream}.abort.grpc_status`, grpc);
      reply = localReplies.faultAbort(200, status);
    }
    if (!this.#tryIncActiveFaults(fault)) return undefined;
    this.#stats.faultAbortsInjected.inc(this.#faultLabels());
    if (downstream && !fault.disableDownstreamClusterStats) this.#stats.faultAbortsInjected.inc(this.#faultLabels(downstream));
    return { kind: 'reply', reply, headers: s.headers, body: s.body };
  }

  #afterRequestHeaders(i: number, a: WasmActive, out: StreamOutcome, s: RequestState): RequestOutcome | undefined | Promise<RequestOutcome | undefined> {
    // Untouched headers stay the same array: the caller chooses the route again only after a change.
    if (a.stream!.headersModified('request')) s.headers = a.stream!.requestHeaders!;
    if (this.#holds(out)) {
      const held = this.#continued(a, 'request');
      this.requestHeld?.();
      return held.then((o) => (o.action === 'cancelled' ? { kind: 'reply', reply: o.reply, headers: s.headers, body: s.body } : this.#afterRequestHeaders(i, a, o, s)));
    }
    const r = this.#outcome(a, out);
    return r ? { ...r, headers: s.headers, body: s.body } : undefined;
  }

  #afterRequestBody(a: WasmActive, b: BodyOutcome, s: RequestState): RequestOutcome | undefined | Promise<RequestOutcome | undefined> {
    // Stopped at the end of the body: only the filter itself can continue it now (with what it held).
    if (this.#holds(b)) return this.#continued(a, 'request').then((o) => (o.action === 'cancelled' ? { kind: 'reply', reply: o.reply, headers: s.headers, body: s.body } : this.#afterRequestBody(a, this.#withBody(a, 'request', o), s)));
    if (b.action === 'continue') s.body = asBuffer(b.body);
    else {
      const rb = this.#outcome(a, b);
      if (rb) return { ...rb, headers: s.headers, body: s.body };
    }
    // Headers still held may change in the body phase.
    if (a.stream!.headersModified('request')) s.headers = a.stream!.requestHeaders!;
    return undefined;
  }

  /**
   * The waits for stopped filters give up (the client went away, a timeout
   * answered): a held request ends with `reply`, a held response or body
   * with it or a reset.
   */
  cancelHeld(reply: LocalReply): void {
    const waits = this.#waits;
    this.#waits = undefined;
    if (waits) for (const cancel of waits) cancel(reply);
  }

  /** The stream is over: waits end with `reply`, and no later stop is waited for. */
  abandon(reply: LocalReply): void {
    this.#abandoned = reply;
    this.cancelHeld(reply);
  }

  /**
   * A filter stopped: the stream is held until it continues (an http_call's
   * answer, a tick, a queue callback) or until the stream ends otherwise (a
   * timeout, the client leaving: cancelHeld), as Envoy holds it; also when
   * nothing could continue it, where Envoy hangs until its stream idle
   * timeout (the stream logs a warning once).
   */
  #holds(out: { action: string }): boolean {
    return out.action === 'pause';
  }

  /** Waits for a filter that stopped `direction` to continue it (or reply, reset, fail), as Envoy holds the stream until then. */
  #continued(a: WasmActive, direction: 'request' | 'response'): Promise<StreamOutcome | Cancelled> {
    if (this.#abandoned) return Promise.resolve({ action: 'cancelled', reply: this.#abandoned });
    return new Promise((resolve) => {
      const cancel = (reply: LocalReply) => resolve({ action: 'cancelled', reply });
      (this.#waits ??= new Set()).add(cancel);
      a.stream!.resumed(direction).then((o) => {
        this.#waits?.delete(cancel);
        resolve(o);
      });
    });
  }

  /** A body phase's outcome once its filter continued: the bytes it held go on. */
  #withBody(a: WasmActive, direction: 'request' | 'response', o: StreamOutcome): BodyOutcome {
    return o.action === 'continue' ? { action: 'continue', body: a.stream!.takeBody(direction) } : o;
  }

  /**
   * Response headers through the wasm filters, in reverse chain order. Every
   * filter continued: send the headers and stream the body through
   * responseData. A filter stopped them and may continue them itself (an
   * http_call in flight, a tick): `buffer`, and responseContinued waits for
   * it, as Envoy holds the response until then.
   */
  responseHeaders(headers: HeaderPairs, endOfStream: boolean): ResponseStart | Promise<ResponseStart> {
    return this.#responseHeadersFrom(this.#active.length - 1, headers, endOfStream);
  }

  /**
   * A local reply sent before the response started, as Envoy's
   * sendLocalReplyViaFilterChain encodes it: its headers through the response
   * phase of every wasm filter whose request headers ran, in reverse chain
   * order (the filter that sent it included), then its body through
   * localReplyData, or responseBuffered when a filter stopped the headers.
   */
  localReplyHeaders(headers: HeaderPairs, endOfStream: boolean): ResponseStart | Promise<ResponseStart> {
    return this.#responseHeadersFrom(this.#reached, headers, endOfStream);
  }

  /** A local reply's body (the whole of it, end_of_stream) through the same filters as its headers. */
  localReplyData(body: Buffer): DataResult | Promise<DataResult> {
    return this.#dataFrom('response', this.#reached, body, true);
  }

  /**
   * The response is about to go through the filters: `response.flags` and
   * `response.code_details` as Envoy's stream info has them at that point
   * (the router's via_upstream on an upstream's headers; a local reply's
   * flag and details).
   */
  responding(flags: string, details: string | undefined): void {
    this.#properties['response.flags'] = responseFlagBits(flags);
    if (details !== undefined) this.#properties['response.code_details'] = details;
  }

  /**
   * The response as sent, for the filters' on_log, as Envoy's stream info:
   * `response.code` (when there was one), `response.size`, `response.flags`
   * (the access log's flags as Envoy's bitmask) and `response.code_details`
   * (when the sidecar knows Envoy's; see stream-attributes.ts).
   */
  ended(status: number, bytesSent: number, flags: string, details: string | undefined): void {
    this.#ended = true;
    if (this.#delayTimer !== undefined) {
      // Ended while delayed: the delay is not waited out (the request it held is over).
      clearTimeout(this.#delayTimer);
      this.#delayTimer = undefined;
    }
    if (this.#faultActive) {
      this.#faultActive = false;
      this.#stats.faultActive.dec(this.#faultLabels());
    }
    const properties = this.#properties;
    if (status > 0) properties['response.code'] = status;
    properties['response.size'] = bytesSent;
    properties['response.flags'] = responseFlagBits(flags);
    if (details !== undefined) properties['response.code_details'] = details;
  }

  #responseHeadersFrom(from: number, headers: HeaderPairs, endOfStream: boolean): ResponseStart | Promise<ResponseStart> {
    for (let i = from; i >= 0; i--) {
      const a = this.#active[i]!;
      if (a.kind !== 'wasm' || !a.stream) continue;
      const given = headers;
      const out = a.stream.responseHeadersNow(given, endOfStream);
      if (out instanceof Promise) {
        return out.then((o) => this.#afterResponseHeaders(i, a, o, given) ?? this.#responseHeadersFrom(i - 1, responseHeadersAfter(a, given), endOfStream));
      }
      const r = this.#afterResponseHeaders(i, a, out, given);
      if (r !== undefined) return r;
      headers = responseHeadersAfter(a, given);
    }
    return { kind: 'stream', headers };
  }

  /**
   * A filter's response headers decision: undefined to go on to the next
   * filter (in reverse chain order). A stop it may continue itself holds the
   * response (`buffer`: responseBuffered waits for it, then gives it the body).
   */
  #afterResponseHeaders(i: number, a: WasmActive, out: StreamOutcome, given: HeaderPairs): ResponseStart | undefined {
    if (this.#holds(out)) return { kind: 'buffer', headers: responseHeadersAfter(a, given), from: i };
    const r = this.#outcome(a, out);
    return r?.kind === 'reply' ? r : undefined;
  }

  /**
   * An upstream response whose headers filter `from` holds, once it
   * continues them itself (a tick, an http_call): the headers go on through
   * the filters before it (one may hold them again: `buffer` once more), as
   * Envoy's filter manager sends them on as the filter continues; its body
   * then goes through every filter (responseData): what the caller buffered
   * meanwhile first, in one call. A reply: the filter's own, or `cancelHeld`'s
   * (the caller's 500 when a filter holding with 3 has too much buffered).
   */
  async responseContinued(from: number, headers: HeaderPairs, endOfStream: boolean): Promise<ResponseStart> {
    const a = this.#active[from] as WasmActive;
    const o = await this.#continued(a, 'response');
    if (o.action === 'cancelled') return { kind: 'reply', reply: o.reply };
    if (a.stream!.headersModified('response')) headers = a.stream!.responseHeaders!;
    const r = this.#outcome(a, o);
    if (r?.kind === 'reply') return r;
    return this.#responseHeadersFrom(from - 1, headers, endOfStream);
  }

  /**
   * The rest of a held local reply: filter `from` stopped its headers, and once
   * it continues them itself the whole body (and the trailers, if any) goes
   * through it, then headers, body and trailers through the ones after it.
   * With trailers the body call is not the end of the stream: a filter may
   * hold the body there and hands it over when it continues the trailers, as
   * in Envoy. A stop at the end that the filter may still continue is waited
   * for, as is one nothing could continue (until the stream ends otherwise).
   */
  async responseBuffered(headers: HeaderPairs, from: number, body: Buffer, trailers: HeaderPairs = []): Promise<PhaseResult & { headers: HeaderPairs; body: Buffer; trailers: HeaderPairs }> {
    let withTrailers = trailers.length > 0;
    const stop = (r: PhaseResult) => ({ ...r, headers, body, trailers });
    for (let i = from; i >= 0; i--) {
      const a = this.#active[i]!;
      if (a.kind !== 'wasm' || !a.stream) continue;
      const hasBody = body.length > 0;
      let out: StreamOutcome | Cancelled = { action: 'pause' };
      if (i !== from) out = await a.stream.responseHeadersNow(headers, !hasBody && !withTrailers);
      if (this.#holds(out)) out = await this.#continued(a, 'response');
      if (out.action === 'cancelled') return stop({ kind: 'reply', reply: out.reply });
      // The headers as the filter let them go.
      if (a.stream.headersModified('response')) headers = a.stream.responseHeaders!;
      const r = this.#outcome(a, out);
      if (r) return stop(r);
      if (hasBody) {
        let b: BodyOutcome | Cancelled = await a.stream.responseBodyNow(body, !withTrailers);
        if (!withTrailers && this.#holds(b)) {
          const o = await this.#continued(a, 'response');
          b = o.action === 'cancelled' ? o : this.#withBody(a, 'response', o);
        }
        if (b.action === 'cancelled') return stop({ kind: 'reply', reply: b.reply });
        if (b.action === 'continue') body = asBuffer(b.body);
        else if (b.action === 'pause' && withTrailers) body = EMPTY; // held; handed over at the trailers
        else {
          const rb = this.#outcome(a, b);
          if (rb) return stop(rb);
        }
        if (!withTrailers) {
          // Trailers it added in this last body call end the response: the filters after it see them (not this one).
          const added = addedTrailers(a, 'response');
          if (added !== undefined) {
            trailers = added;
            withTrailers = true;
            continue;
          }
        }
      }
      if (withTrailers) {
        let t: StreamOutcome | Cancelled = await a.stream.responseTrailersNow(trailers);
        if (this.#holds(t)) t = await this.#continued(a, 'response');
        if (t.action === 'cancelled') return stop({ kind: 'reply', reply: t.reply });
        const rt = this.#outcome(a, t);
        if (rt) return stop(rt);
        trailers = a.stream.responseTrailers ?? trailers;
        const held = asBuffer(a.stream.takeBody('response'));
        if (held.length > 0) body = body.length === 0 ? held : Buffer.concat([body, held]);
      }
      // What the filter does to the headers in its body and trailers phases is lost: Envoy sends them on as it continues them.
    }
    return { kind: 'continue', headers, body, trailers };
  }

  /**
   * The trailers of a streamed response through the wasm filters, in reverse
   * chain order (they end the stream: no body call gets end_of_stream). A
   * filter that continues hands over the body bytes it held; they go through
   * the filters after it as data, ahead of the trailers, as Envoy's filter
   * manager sends a buffered body before the trailers. A stop the filter may
   * continue itself is waited for; after the headers are out any other stop,
   * a local reply or a reset can only reset the stream.
   */
  async responseTrailers(trailers: HeaderPairs, from = this.#active.length - 1): Promise<TrailersResult> {
    const out: Buffer[] = [];
    for (let i = from; i >= 0; i--) {
      const a = this.#active[i]!;
      if (a.kind !== 'wasm' || !a.stream) continue;
      let t: StreamOutcome | Cancelled = await a.stream.responseTrailersNow(trailers);
      if (this.#holds(t)) t = await this.#continued(a, 'response');
      if (t.action === 'cancelled') return { kind: 'reset' };
      if (t.action === 'local_reply') return { kind: 'reply', reply: fromWasm(t.reply) };
      if (t.action !== 'continue') {
        this.#stats.wasmFailures.inc({ filter: a.name });
        return { kind: 'reset' };
      }
      trailers = a.stream.responseTrailers ?? trailers;
      const held = a.stream.takeBody('response');
      if (held.length === 0) continue;
      let r = this.#dataFrom('response', i - 1, asBuffer(held), false);
      if (r instanceof Promise) r = await r;
      if (r.kind !== 'data') return r;
      if (r.data.length > 0) out.push(r.data);
    }
    return { kind: 'trailers', data: out.length === 1 ? out[0]! : Buffer.concat(out), trailers };
  }

  /**
   * One chunk of a streamed response through the wasm filters. A filter that
   * stops iteration keeps the bytes (they come out when it continues: with
   * the next chunk it lets through, or, continued by itself between chunks,
   * through `released`); the chunk's `data` is then empty. After the headers are
   * out a local reply, a reset or a stop at the end can only reset the stream.
   */
  responseData(chunk: Buffer, endOfStream: boolean): DataResult | Promise<DataResult> {
    return this.#dataFrom('response', this.#active.length - 1, chunk, endOfStream);
  }

  /** One chunk of a streamed request body (gRPC streaming) through the wasm filters, in chain order; as responseData. */
  requestData(chunk: Buffer, endOfStream: boolean): DataResult | Promise<DataResult> {
    return this.#dataFrom('request', 0, chunk, endOfStream);
  }

  #dataFrom(direction: 'request' | 'response', from: number, data: Buffer, endOfStream: boolean): DataResult | Promise<DataResult> {
    const step = direction === 'request' ? 1 : -1;
    for (let i = from; i >= 0 && i < this.#active.length; i += step) {
      const a = this.#active[i]!;
      if (a.kind !== 'wasm' || !a.stream) continue;
      if (data.length === 0 && !endOfStream) break;
      const out = direction === 'request' ? a.stream.requestBodyNow(data, endOfStream) : a.stream.responseBodyNow(data, endOfStream);
      if (out instanceof Promise || (endOfStream && this.#holds(out))) return this.#dataAfter(direction, a, i, out, endOfStream);
      const next = this.#dataStep(direction, a, out, endOfStream, i);
      if (next.kind !== 'data' || next.full) return next;
      data = next.data;
      if (endOfStream) {
        const added = addedTrailers(a, direction);
        if (added !== undefined) return this.#endWithTrailers(direction, i, data, added);
      }
    }
    return { kind: 'data', data };
  }

  /**
   * Filter `i` added trailers in its last body call: as Envoy's filter
   * manager (decodeData / encodeData with trailers_added_entry), the filters
   * after it get the chunk without end_of_stream, then the trailers phase
   * (not the filter that added them).
   */
  async #endWithTrailers(direction: 'request' | 'response', i: number, data: Buffer, trailers: HeaderPairs): Promise<DataResult> {
    const step = direction === 'request' ? 1 : -1;
    let r = data.length > 0 ? this.#dataFrom(direction, i + step, data, false) : ({ kind: 'data', data } as DataResult);
    if (r instanceof Promise) r = await r;
    if (r.kind !== 'data') return r;
    const t = direction === 'request' ? await this.requestTrailers(trailers, i + 1) : await this.responseTrailers(trailers, i - 1);
    if (t.kind !== 'trailers') return t;
    return { kind: 'data', data: t.data.length === 0 ? r.data : r.data.length === 0 ? t.data : Buffer.concat([r.data, t.data]), trailers: t.trailers };
  }

  /** A chunk's outcome that waits: an http_call, or a stop at the end of the body that the filter may continue itself. */
  async #dataAfter(direction: 'request' | 'response', a: WasmActive, i: number, pending: BodyOutcome | Promise<BodyOutcome>, endOfStream: boolean): Promise<DataResult> {
    let out = await pending;
    if (endOfStream && this.#holds(out)) {
      const o = await this.#continued(a, direction);
      // The stream is over (the client left): nothing more goes through.
      if (o.action === 'cancelled') return { kind: 'reset' };
      out = this.#withBody(a, direction, o);
    }
    const next = this.#dataStep(direction, a, out, endOfStream, i);
    if (next.kind !== 'data' || next.full) return next;
    if (endOfStream) {
      const added = addedTrailers(a, direction);
      if (added !== undefined) return this.#endWithTrailers(direction, i, next.data, added);
    }
    return this.#dataFrom(direction, i + (direction === 'request' ? 1 : -1), next.data, endOfStream);
  }

  /**
   * Filter `i` stopped a chunk mid-stream and may continue itself: when it
   * does, the bytes it held go on through the filters after it to
   * `released` (see there) without waiting for the next chunk.
   */
  #watchBodyStop(direction: 'request' | 'response', a: WasmActive, i: number): void {
    const bit = direction === 'request' ? 1 : 2;
    if ((a.watching & bit) !== 0) return;
    a.watching |= bit;
    void this.#continued(a, direction).then((o) => {
      a.watching &= ~bit;
      const deliver = this.released[direction];
      if (o.action === 'cancelled' || this.#completed || deliver === undefined) return;
      if (o.action !== 'continue') return deliver(this.#dataStep(direction, a, o as BodyOutcome, false));
      const held = a.stream!.takeBody(direction);
      if (held.length > 0) deliver(this.#dataFrom(direction, i + (direction === 'request' ? 1 : -1), asBuffer(held), false));
    });
  }

  #dataStep(direction: 'request' | 'response', a: WasmActive, out: BodyOutcome, endOfStream: boolean, i = -1): DataResult {
    if (out.action === 'continue') return { kind: 'data', data: asBuffer(out.body) };
    if (out.action === 'pause' && !endOfStream) {
      if (i >= 0) this.#watchBodyStop(direction, a, i);
      // Past the limit: 413 / 500 / a reset for StopIterationAndBuffer; backpressure for StopIterationAndWatermark
      // (filter_manager.cc: buffer_was_streaming picks onDecoderFilterAboveWriteBufferHighWatermark over requestDataTooLarge).
      if (a.stream!.bufferedBytes(direction) > this.#bufferLimit) return out.watermark ? FULL : TOO_LARGE;
      return { kind: 'data', data: EMPTY };
    }
    if (out.action === 'local_reply') return { kind: 'reply', reply: fromWasm(out.reply) };
    this.#stats.wasmFailures.inc({ filter: a.name });
    return { kind: 'reset' };
  }

  #outcome(a: WasmActive, out: { action: string; reply?: WasmLocalReply }): PhaseResult | undefined {
    if (out.action === 'continue') return undefined;
    if (out.action === 'local_reply' && out.reply) return { kind: 'reply', reply: fromWasm(out.reply) };
    // close (proxy_close_stream), or a failed VM's reset: the failure policy decides.
    this.#stats.wasmFailures.inc({ filter: a.name });
    if (a.failOpen) return undefined;
    return { kind: 'reply', reply: localReplies.filterFailed() };
  }

  complete(): void {
    this.#completed = true;
    // Envoy's on_log reads the access log's maps, the same for every filter: the request
    // headers as the last filter left them, the response as the first (the last encoder) did.
    let request: HttpStream | undefined;
    let response: HttpStream | undefined;
    for (const a of this.#active) {
      if (a.kind !== 'wasm' || !a.stream) continue;
      if (a.stream.sawHeaders('request')) request = a.stream;
      if (response === undefined && a.stream.sawHeaders('response')) response = a.stream;
    }
    const logged = { request, response };
    for (const a of this.#active) {
      if (a.kind !== 'wasm' || !a.stream) continue;
      // A stream its failure policy decided (a trapped VM's 503 wasm_fail_stream, or fail_open's bypass) is a
      // failure of the filter, once per stream: until 2026-11-29 only load failures and resets were counted, so a
      // trapped fail_closed filter refusing every request left envoy_wasm_filter_failures at nothing.
      if (a.stream.failed) this.#stats.wasmFailures.inc({ filter: a.name });
      a.stream.complete(logged);
    }
  }
}
