// Root and HTTP contexts as classes. A filter subclasses both and registers a
// root factory with `registerRoot`; the root creates one HTTP context per
// stream. The SDK's exports (exports.ts) route every host callback to the
// right instance by context id.

import { proxy_http_call } from './imports';
import { serializePairs, HeaderPair } from './headers';
import { Action, WasmResult } from './status';

export class RootContext {
  constructor(public readonly id: u32) {}
  /** VM-wide configuration; rarely used by filters. */
  onVmStart(vmConfiguration: string): bool { return true; }
  /** Plugin configuration (JSON for weft's filters). Return false to refuse it. */
  onConfigure(configuration: string): bool { return true; }
  onTick(): void {}
  onDone(): bool { return true; }
  onDelete(): void {}
  /** Returns the stream's context; null lets the stream pass untouched. */
  createHttpContext(id: u32): HttpContext | null { return null; }
  /** Response to an http call the root itself made. */
  onHttpCallResponse(token: u32, numHeaders: u32, bodySize: usize, numTrailers: u32): void {}
}

export class HttpContext {
  constructor(public readonly id: u32, public readonly root: RootContext) {}
  onRequestHeaders(numHeaders: u32, endOfStream: bool): Action { return Action.Continue; }
  onRequestBody(bodySize: usize, endOfStream: bool): Action { return Action.Continue; }
  onRequestTrailers(numTrailers: u32): Action { return Action.Continue; }
  onResponseHeaders(numHeaders: u32, endOfStream: bool): Action { return Action.Continue; }
  onResponseBody(bodySize: usize, endOfStream: bool): Action { return Action.Continue; }
  onResponseTrailers(numTrailers: u32): Action { return Action.Continue; }
  /**
   * Response to `httpCall` made from this stream. The SDK has already made
   * this stream the effective context, so header/body calls act on it.
   */
  onHttpCallResponse(token: u32, numHeaders: u32, bodySize: usize, numTrailers: u32): void {}
  onLog(): void {}
  onDone(): bool { return true; }
  onDelete(): void {}

  /**
   * Calls `upstream` (a cluster name). Returns the call token, or 0 with the
   * host's refusal in `lastHttpCallResult`.
   */
  httpCall(upstream: string, headers: HeaderPair[], body: string, timeoutMs: u32): u32 {
    const token = dispatchHttpCall(upstream, headers, body, timeoutMs);
    if (token != 0) pendingCalls.set(token, this);
    return token;
  }
}

export let lastHttpCallResult: WasmResult = WasmResult.Ok;
/** token -> the stream that made the call (keyed like the streams, so one Map instantiation serves both). */
export const pendingCalls = new Map<u32, HttpContext>();
const TOKEN_SLOT: usize = memory.data(4);

export function dispatchHttpCall(upstream: string, headers: HeaderPair[], body: string, timeoutMs: u32): u32 {
  const u = String.UTF8.encode(upstream);
  const h = serializePairs(headers);
  const b = String.UTF8.encode(body);
  const t = serializePairs([]);
  store<u32>(TOKEN_SLOT, 0);
  lastHttpCallResult = <WasmResult>proxy_http_call(changetype<usize>(u), <usize>u.byteLength, h.dataStart, <usize>h.length,
    changetype<usize>(b), <usize>b.byteLength, t.dataStart, <usize>t.length, timeoutMs, TOKEN_SLOT);
  if (lastHttpCallResult != WasmResult.Ok) return 0;
  return load<u32>(TOKEN_SLOT);
}

function noRoot(id: u32): RootContext { return new RootContext(id); }

export let rootFactory: (id: u32) => RootContext = noRoot;

/** Called once from the filter's top level. */
export function registerRoot(factory: (id: u32) => RootContext): void {
  rootFactory = factory;
}
