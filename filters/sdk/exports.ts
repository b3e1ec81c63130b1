// The module's proxy-wasm exports. A filter's entry file re-exports this
// module (`export * from '../sdk/exports'`); the host calls these, and they
// dispatch to the registered RootContext / HttpContext instances.

import { proxy_set_effective_context } from './imports';
import { HttpContext, pendingCalls, RootContext, rootFactory } from './context';
import { getBufferString } from './host';
import { refreshLogLevel } from './log';
import { Action, BufferType } from './status';

export { malloc, proxy_on_memory_allocate } from './memory';

const roots = new Map<u32, RootContext>();
// The module is built with the "minimal" runtime: no shadow stack (a third
// of the module's size with "incremental"), so collection runs only where no
// managed reference lives in a Wasm local: at the end of a host callback.
const COLLECT_EVERY: u32 = 8;
let deletedSinceCollect: u32 = 0;
const streams = new Map<u32, HttpContext>();

/** Envoy picks the ABI from this export's name. */
export function proxy_abi_version_0_2_1(): void {}

export function proxy_on_context_create(id: u32, parentId: u32): void {
  if (parentId == 0) {
    roots.set(id, rootFactory(id));
    return;
  }
  if (!roots.has(parentId)) return;
  // One host call per stream: a level changed while the filter runs (the sidecar's POST /logging?wasm=)
  // reaches logEnabled from the next request on, so a filter skips, or starts, building its lines.
  refreshLogLevel();
  const ctx = roots.get(parentId).createHttpContext(id);
  if (ctx !== null) streams.set(id, ctx);
}

export function proxy_on_vm_start(id: u32, size: usize): bool {
  refreshLogLevel();
  if (!roots.has(id)) return true;
  return roots.get(id).onVmStart(getBufferString(BufferType.VmConfiguration, size));
}

export function proxy_on_configure(id: u32, size: usize): bool {
  refreshLogLevel();
  if (!roots.has(id)) return false;
  const ok = roots.get(id).onConfigure(getBufferString(BufferType.PluginConfiguration, size));
  __collect();
  return ok;
}

export function proxy_on_tick(id: u32): void {
  refreshLogLevel();
  if (roots.has(id)) roots.get(id).onTick();
}

export function proxy_on_request_headers(id: u32, numHeaders: u32, endOfStream: bool): Action {
  return streams.has(id) ? streams.get(id).onRequestHeaders(numHeaders, endOfStream) : Action.Continue;
}

export function proxy_on_request_body(id: u32, size: usize, endOfStream: bool): Action {
  return streams.has(id) ? streams.get(id).onRequestBody(size, endOfStream) : Action.Continue;
}

export function proxy_on_request_trailers(id: u32, numTrailers: u32): Action {
  return streams.has(id) ? streams.get(id).onRequestTrailers(numTrailers) : Action.Continue;
}

export function proxy_on_response_headers(id: u32, numHeaders: u32, endOfStream: bool): Action {
  return streams.has(id) ? streams.get(id).onResponseHeaders(numHeaders, endOfStream) : Action.Continue;
}

export function proxy_on_response_body(id: u32, size: usize, endOfStream: bool): Action {
  return streams.has(id) ? streams.get(id).onResponseBody(size, endOfStream) : Action.Continue;
}

export function proxy_on_response_trailers(id: u32, numTrailers: u32): Action {
  return streams.has(id) ? streams.get(id).onResponseTrailers(numTrailers) : Action.Continue;
}

/**
 * The host reports every callout on the root context. A call made by a
 * stream goes back to that stream, made effective first so its header and
 * body calls act on it; a call whose stream has ended is dropped.
 */
export function proxy_on_http_call_response(rootId: u32, token: u32, numHeaders: u32, bodySize: usize, numTrailers: u32): void {
  if (pendingCalls.has(token)) {
    const stream = pendingCalls.get(token);
    pendingCalls.delete(token);
    if (!streams.has(stream.id)) return;
    proxy_set_effective_context(stream.id);
    stream.onHttpCallResponse(token, numHeaders, bodySize, numTrailers);
    return;
  }
  if (roots.has(rootId)) roots.get(rootId).onHttpCallResponse(token, numHeaders, bodySize, numTrailers);
}

export function proxy_on_log(id: u32): void {
  if (streams.has(id)) streams.get(id).onLog();
}

export function proxy_on_done(id: u32): bool {
  if (streams.has(id)) return streams.get(id).onDone();
  if (roots.has(id)) return roots.get(id).onDone();
  return true;
}

export function proxy_on_delete(id: u32): void {
  if (streams.has(id)) {
    streams.get(id).onDelete();
    streams.delete(id);
    if (++deletedSinceCollect >= COLLECT_EVERY) {
      deletedSinceCollect = 0;
      __collect();
    }
    return;
  }
  if (roots.has(id)) {
    roots.get(id).onDelete();
    roots.delete(id);
  }
}
