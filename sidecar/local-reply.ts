// Replies the sidecar makes itself, worded as Envoy words them so tooling and
// people that know Envoy recognise them; for gRPC callers, a trailers-only
// response with the grpc-status Envoy maps the HTTP status to.

import type { HeaderPairs } from './upstream.ts';
import { encodeGrpcMessage, grpcStatusOf } from './wasm/grpc.ts';

export interface LocalReply {
  status: number;
  body: string;
  headers: HeaderPairs;
  /** Envoy response flag for the access log (UH, UT, UO, NR, UF, FI, ...). */
  flag: string;
  /** Envoy's response code details (response.code_details, %RESPONSE_CODE_DETAILS%): a wasm filter's own, `direct_response`, the router's, RBAC's. */
  details?: string;
  /** The gRPC status a filter asked for (proxy_send_local_reply's grpc_status): sent to gRPC callers only, as in Envoy. */
  grpcStatus?: number;
  /** The router's reply to an upstream connection whose transport failed (a TLS handshake): why (%UPSTREAM_TRANSPORT_FAILURE_REASON%). */
  transport?: string;
}

/**
 * Envoy's router details for an upstream reset (router.cc onUpstreamReset):
 * `upstream_reset_before_response_started{reason}`, or `..._after_...` once
 * the response started, the transport failure reason after a `|` inside the
 * braces, every whitespace character as `_` (StringUtil::replaceAllEmptySpace).
 */
export function upstreamResetDetails(reason: string, transport: string | undefined, started: boolean): string {
  const basic = started ? 'upstream_reset_after_response_started' : 'upstream_reset_before_response_started';
  return `${basic}{${reason}${transport ? `|${transport}` : ''}}`.replace(/\s/g, '_');
}

/** Envoy's RBAC filter details (filters/common/rbac/utility.cc responseDetail): the matched policy, `none` for an ALLOW no policy matched. */
export function rbacDeniedDetails(policy: string | undefined): string {
  return `rbac_access_denied_matched_policy[${policy ? policy.replace(/\s/g, '_') : 'none'}]`;
}

// Each reply carries Envoy's response code details (ResponseCodeDetailValues in envoy/stream_info/stream_info.h, and
// the router's, RBAC's and the fault filter's own), set where the reply is made: response.code_details and the
// access log read them from here.
export const localReplies = {
  noRoute: (): LocalReply => ({ status: 404, body: '', headers: [], flag: 'NR', details: 'route_not_found' }),
  clusterNotFound: (): LocalReply => ({ status: 503, body: '', headers: [], flag: 'NC', details: 'cluster_not_found' }),
  noHealthyUpstream: (): LocalReply => ({ status: 503, body: 'no healthy upstream', headers: [], flag: 'UH', details: 'no_healthy_upstream' }),
  /** The router's timeout: the route's (response_timeout, onResponseTimeout) or the last try's (upstream_per_try_timeout, onPerTryTimeout). */
  timeout: (perTry = false): LocalReply => ({ status: 504, body: 'upstream request timeout', headers: [], flag: 'UT', details: perTry ? 'upstream_per_try_timeout' : 'response_timeout' }),
  // The circuit breaker's pool overflow reaches Envoy's router as a reset with reason overflow (onPoolFailure).
  overflow: (): LocalReply => ({
    status: 503,
    body: 'upstream connect error or disconnect/reset before headers. reset reason: overflow',
    headers: [['x-envoy-overloaded', 'true']],
    flag: 'UO',
    details: 'upstream_reset_before_response_started{overflow}',
  }),
  // As Envoy's router: 502 for an upstream protocol error, 503 for any other reset before the response.
  reset: (reason: string, transport?: string): LocalReply => ({
    status: reason === 'protocol_error' ? 502 : 503,
    body: `upstream connect error or disconnect/reset before headers. reset reason: ${reason.replace(/_/g, ' ')}${transport ? `, transport failure reason: ${transport}` : ''}`,
    headers: [],
    flag: resetFlag(reason),
    details: upstreamResetDetails(reason, transport, false),
    ...(transport ? { transport } : {}),
  }),
  /** The fault filter's abort; with a gRPC status (grpc_status, x-envoy-fault-abort-grpc-request), an HTTP 200 that a gRPC caller gets it in. */
  faultAbort: (status: number, grpcStatus?: number): LocalReply => ({ status, body: 'fault filter abort', headers: [], flag: 'FI', details: 'fault_filter_abort', ...(grpcStatus !== undefined ? { grpcStatus } : {}) }),
  /** Envoy's RBAC filter reply, word for word; `policy` is the DENY policy that matched (none for an ALLOW miss). */
  rbacDenied: (policy?: string): LocalReply => ({ status: 403, body: 'RBAC: access denied', headers: [], flag: 'RBAC', details: rbacDeniedDetails(policy) }),
  /** A filter buffered more of the request body than the buffer limit (Envoy's FilterManager requestDataTooLarge). */
  payloadTooLarge: (): LocalReply => ({ status: 413, body: 'Payload Too Large', headers: [], flag: '-', details: 'request_payload_too_large' }),
  /** A filter held the response headers with StopAllIterationAndBuffer and the body outgrew the buffer limit (Envoy's responseDataTooLarge). */
  responsePayloadTooLarge: (): LocalReply => ({ status: 500, body: 'Internal Server Error', headers: [], flag: '-', details: 'response_payload_too_large' }),
  /** The overload manager's stop_accepting_requests (Envoy's connection manager, response flag OM). */
  overloaded: (): LocalReply => ({ status: 503, body: 'envoy overloaded', headers: [], flag: 'OM', details: 'overload' }),
  filterFailed: (): LocalReply => ({ status: 503, body: 'wasm filter failed', headers: [], flag: 'WF' }),
  filterMissing: (name: string): LocalReply => ({ status: 500, body: `filter config not found: ${name}`, headers: [], flag: 'NFCF' }),
};

/** Envoy's Grpc::Utility::httpToGrpcStatus (the wasm host's grpc_call reads answers with it too). */
export { grpcStatusOf };

export function isGrpc(contentType: string | undefined): boolean {
  return contentType !== undefined && contentType.startsWith('application/grpc');
}

/**
 * The response flag of an upstream reset, before or after the response started, as Envoy's
 * streamResetReasonToResponseFlag: a connect failure UF, the connection closed UC, a stream reset by the peer UR,
 * a protocol error UPE.
 */
export function resetFlag(reason: string): string {
  return reason === 'connection_failure' ? 'UF' : reason === 'protocol_error' ? 'UPE' : reason === 'remote_reset' || reason === 'remote_refused_stream_reset' ? 'UR' : 'UC';
}

/**
 * Status, headers and body as sent downstream, as Envoy's Utility::prepareLocalReply makes them from the reply's own
 * headers (a wasm filter's, the router's): with a body, content-length is the body's (one a filter set is replaced)
 * and content-type text/plain only where the reply names none (until 2026-11-29 text/plain was added beside a
 * filter's own, so a JSON local reply went out with two content-types); without one, neither. To a gRPC caller:
 * HTTP 200, content-type application/grpc (replacing any), the grpc-status the headers carry, else the filter's
 * grpc_status, else the HTTP status mapped; grpc-message the body (replacing any, with a body only); no
 * content-length (trailers-only).
 */
export function renderLocalReply(r: LocalReply, grpc: boolean): { status: number; headers: HeaderPairs; body: string } {
  if (grpc) {
    const named = r.headers.find(([k]) => k === 'grpc-status')?.[1] ?? (r.grpcStatus !== undefined ? String(r.grpcStatus) : undefined);
    // As Envoy: grpc-message only for a reply with a body (a 404 without one has none).
    const headers: HeaderPairs = [['content-type', 'application/grpc'], ['grpc-status', named ?? String(grpcStatusOf(r.status))]];
    if (r.body) headers.push(['grpc-message', encodeGrpcMessage(r.body)]);
    for (const h of r.headers) {
      const k = h[0];
      if (k === 'content-type' || k === 'grpc-status' || k === 'content-length' || (k === 'grpc-message' && r.body)) continue;
      headers.push(h);
    }
    return { status: 200, headers, body: '' };
  }
  const headers: HeaderPairs = [];
  let typed = false;
  for (const h of r.headers) {
    const k = h[0];
    if (k === 'content-length') continue;
    if (k === 'content-type') {
      if (!r.body) continue;
      typed = true;
    }
    headers.push(h);
  }
  if (r.body) {
    if (!typed) headers.push(['content-type', 'text/plain']);
    headers.push(['content-length', String(Buffer.byteLength(r.body))]);
  } else headers.push(['content-length', '0']);
  return { status: r.status, headers, body: r.body };
}
