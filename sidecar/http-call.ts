// proxy_http_call in the sidecar: a wasm filter's callout goes to a cluster by
// name through the same cluster manager as proxied requests (load balancing,
// health, outlier detection, circuit breakers), as Envoy's async client does:
// one attempt, the call's own timeout, the response read whole. A grpc_call
// comes this way too, as the HTTP/2 request the host made of it; a gRPC
// stream (proxy_grpc_stream) takes the same path with a request body that
// streams and a response handed on as it comes.

import { PassThrough } from 'node:stream';
import type { ClusterManager } from './clusters.ts';
import { Downstream, forward } from './forward.ts';
import { removeHeader, setHeader, withoutPseudo } from './headers.ts';
import { isGrpc, localReplies, renderLocalReply, type LocalReply } from './local-reply.ts';
import type { SidecarStats } from './stats.ts';
import { responseCodeDetails } from './stream-attributes.ts';
import { VIA_UPSTREAM } from './wasm/grpc.ts';
import type { GrpcStreamDispatcher, HttpCallDispatcher } from './wasm/index.ts';

export function httpCallDispatcher(clusters: ClusterManager, stats: SidecarStats): HttpCallDispatcher {
  return async (call) => {
    const pseudo = (name: string) => call.headers.find(([k]) => k === name)?.[1] ?? '';
    const authority = pseudo(':authority');
    const headers = withoutPseudo(call.headers);
    setHeader(headers, 'host', authority);
    const body = Buffer.from(call.body.buffer, call.body.byteOffset, call.body.byteLength);
    removeHeader(headers, 'content-length');
    if (body.length > 0) headers.push(['content-length', String(body.length)]);
    const downstream = new Downstream();
    // The host aborts the call when its timeout fires or the plugin closes.
    call.signal.addEventListener('abort', () => downstream.abort(), { once: true });
    const result = await forward(clusters, call.cluster, { method: pseudo(':method'), path: pseudo(':path'), authority, headers, body, timeoutMs: call.timeoutMs, downstream }, stats);
    if (result.kind !== 'response') {
      // No host, overflow, connect failure: the filter gets the local reply Envoy's async client would produce.
      // Abandoned: the host stopped the call (its timeout fired, or the plugin closed), so it is the timeout.
      if (result.kind === 'abandoned') stats.upstreamRqTimeout.inc(stats.clusterLabel(call.cluster));
      // A gRPC call (grpc_call) gets it as a gRPC answer: trailers-only, with Envoy's grpc-status for it.
      const local = result.kind === 'local' ? result.reply : localReplies.timeout();
      const reply = renderLocalReply(local, isGrpc(headers.find(([k]) => k === 'content-type')?.[1]));
      return { headers: [[':status', String(reply.status)], ...reply.headers], body: reply.body, details: routerDetails(local) };
    }
    const { body: responseBody, trailers } = await result.response.body.collect().finally(result.finish);
    return { headers: [[':status', String(result.response.status)], ...result.response.headers], body: responseBody, trailers, details: VIA_UPSTREAM };
  };
}

/**
 * The response code details Envoy's router gives its own reply to an async
 * client's request: the same ones as on the main request path (the reply's
 * own, local-reply.ts: `upstream_reset_before_response_started{reason}`,
 * `no_healthy_upstream`, ...). A gRPC callout's close message carries them
 * (enhancedGrpcMessage). The callout makes one attempt, so a timeout is the
 * route's: response_timeout.
 */
export function routerDetails(reply: LocalReply): string {
  return responseCodeDetails(reply.status, reply.flag, reply) ?? '';
}

/**
 * proxy_grpc_stream in the sidecar: the stream's HTTP/2 request goes to the
 * cluster as a proxied gRPC stream does (no timeout, one attempt, the body
 * written as the module sends), and its response is handed to the host as
 * it arrives. A request the cluster cannot take (no host, overflow, connect
 * failure) gets the trailers-only gRPC local reply Envoy's router answers the
 * async client with. Reset: before the response, the request is given up;
 * after it, the upstream stream is reset (RST_STREAM CANCEL).
 */
export function grpcStreamDispatcher(clusters: ClusterManager, stats: SidecarStats): GrpcStreamDispatcher {
  return (call, events) => {
    const pseudo = (name: string) => call.headers.find(([k]) => k === name)?.[1] ?? '';
    const authority = pseudo(':authority');
    const headers = withoutPseudo(call.headers);
    setHeader(headers, 'host', authority);
    const body = new PassThrough();
    const downstream = new Downstream();
    let stopped = false;
    let stopResponse: (() => void) | undefined;
    void forward(clusters, call.cluster, { method: pseudo(':method'), path: pseudo(':path'), authority, headers, body, timeoutMs: 0, downstream }, stats).then(
      (result) => {
        if (result.kind !== 'response') {
          if (result.kind === 'abandoned' || stopped) return;
          const reply = renderLocalReply(result.reply, true);
          events.headers([[':status', String(reply.status)], ...reply.headers], true, routerDetails(result.reply));
          return;
        }
        const response = result.response;
        if (stopped) {
          response.body.destroy();
          result.finish();
          return;
        }
        stopResponse = () => response.body.abort(new Error('gRPC stream cancelled'));
        events.headers([[':status', String(response.status)], ...response.headers], response.endStream === true, VIA_UPSTREAM);
        response.body.pipe({
          data(chunk) {
            if (!stopped) events.data(chunk);
            return true;
          },
          end(trailers) {
            result.finish();
            if (!stopped) events.end(trailers);
          },
          error() {
            result.finish();
            if (!stopped) events.reset();
          },
        });
      },
      () => {
        if (!stopped) events.reset();
      },
    );
    return {
      write(data, endStream) {
        if (stopped || body.writableEnded) return;
        if (data.length > 0) body.write(Buffer.from(data.buffer, data.byteOffset, data.byteLength));
        if (endStream) body.end();
      },
      reset() {
        if (stopped) return;
        stopped = true;
        if (stopResponse !== undefined) stopResponse();
        else downstream.abort();
      },
    };
  };
}
