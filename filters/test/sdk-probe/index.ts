// A filter that exercises the SDK surface the built-in filters do not:
// header semantics, bodies, http calls answered on the originating stream,
// shared data with CAS, ticks, gauges, log-level gating. Built by
// test/wasm/filters/sdk.test.ts with the same flags as the built-ins. Lives
// under filters/ so tsc leaves it alone; filters/test/ is never shipped.

export * from '../../sdk/exports';
// Serves unary calls' answers and gRPC streams' callbacks both.
export * from '../../sdk/exports-grpc-stream';
import {
  Action, addHeader, BufferType, ConfigErrors, configRoot, continueStream, getBufferString, getHeader, getHeaderValues,
  getPropertyString, getSharedData, getStatus, HeaderMapType, HeaderPair, HttpContext, logDebug, logEnabled, logInfo, LogLevel,
  parseDecimal, registerRoot, removeHeader, replaceHeader, RootContext, sendLocalResponse, setBuffer, setGauge,
  setSharedData, setTickPeriod, utf8, WasmResult, lastHttpCallResult,
  HeaderName, jsonString, logUtf8, Metric, MetricType, Property, Utf8Writer,
} from '../../sdk/index';
// gRPC calls are opt-in (their own module), so filters that make none carry none of it.
import { GrpcHttpContext, lastGrpcCallResult } from '../../sdk/grpc';
import { GrpcStream, lastGrpcStreamResult, openGrpcStream } from '../../sdk/grpc-stream';

// Pre-encoded names and paths (path /encoded).
const X_MULTI = new HeaderName('x-multi');
const X_MISSING = new HeaderName('x-missing');
const X_ENCODED = new HeaderName('x-encoded');
const X_REMOVE_ME = new HeaderName('x-remove-me');
const PEER = new Property(['connection', 'uri_san_peer_certificate']);
const RESPONSE_CODE = new Property(['response', 'code']);
const NO_SUCH = new Property(['no', 'such']);
const writer = new Utf8Writer(8);

class ProbeRoot extends RootContext {
  ticks: u64 = 0;

  onConfigure(configuration: string): bool {
    const errors = new ConfigErrors();
    const root = configRoot(configuration, errors);
    if (root === null) return false;
    const tickMs = root.int('tickMs', 0, 0, 60000);
    if (!errors.ok) return false;
    if (tickMs > 0) setTickPeriod(<u32>tickMs);
    return true;
  }

  onTick(): void {
    this.ticks++;
    setGauge('probe_ticks', ['root', 'main'], this.ticks);
    if (logEnabled(LogLevel.Debug)) logDebug('tick ' + this.ticks.toString());
  }

  createHttpContext(id: u32): HttpContext | null {
    return new ProbeStream(id, this);
  }
}

function describe(v: string | null): string {
  return v === null ? 'missing' : '"' + v + '"';
}

/**
 * A bidi chat on a gRPC stream for path /stream (or /stream-cancel): what it
 * hears is written to the request's x-stream header at the close, and the
 * request continues then (/stream-cancel: it cancels on the first message,
 * writes what it heard so far and continues).
 */
class ProbeChat extends GrpcStream {
  heard: string[] = [];
  cancelOnMessage: bool = false;

  onInitialMetadata(numHeaders: u32): void {
    const server = getHeader(HeaderMapType.GrpcReceiveInitialMetadata, 'x-server');
    this.heard.push('initial ' + numHeaders.toString() + ' ' + describe(server));
  }

  onMessage(size: usize): void {
    this.heard.push('message ' + getBufferString(BufferType.GrpcReceiveBuffer, size));
    if (this.cancelOnMessage) {
      this.heard.push('cancel ' + (<i32>this.cancel()).toString());
      this.done();
    }
  }

  onTrailingMetadata(numTrailers: u32): void {
    this.heard.push('trailing ' + numTrailers.toString() + ' ' + describe(getHeader(HeaderMapType.GrpcReceiveTrailingMetadata, 'x-trailer')));
  }

  onClose(status: u32): void {
    this.heard.push('close ' + status.toString() + ' ' + getStatus().message);
    this.done();
  }

  private done(): void {
    // The owner (the request that opened the stream) is the effective context here.
    if (this.owner === null) return;
    replaceHeader(HeaderMapType.RequestHeaders, 'x-stream', this.heard.join('; '));
    continueStream(0);
  }
}

class ProbeStream extends GrpcHttpContext {
  onRequestHeaders(numHeaders: u32, endOfStream: bool): Action {
    const path = getHeader(HeaderMapType.RequestHeaders, ':path');
    replaceHeader(HeaderMapType.RequestHeaders, 'x-report',
      describe(getHeader(HeaderMapType.RequestHeaders, 'x-missing')) + '|' +
      describe(getHeader(HeaderMapType.RequestHeaders, 'x-empty')) + '|' +
      getHeaderValues(HeaderMapType.RequestHeaders, 'X-Multi').join(','));
    addHeader(HeaderMapType.RequestHeaders, 'x-added', '1');
    addHeader(HeaderMapType.RequestHeaders, 'x-added', '2');
    replaceHeader(HeaderMapType.RequestHeaders, 'x-replace', 'new');
    removeHeader(HeaderMapType.RequestHeaders, 'x-remove-me');
    const peer = getPropertyString(['connection', 'uri_san_peer_certificate']);
    replaceHeader(HeaderMapType.RequestHeaders, 'x-peer', peer === null ? 'none' : peer);
    const method = getPropertyString(['request', 'method']);
    replaceHeader(HeaderMapType.RequestHeaders, 'x-method-property', method === null ? 'none' : method);
    logInfo('request ' + (path === null ? '' : path));
    if (logEnabled(LogLevel.Debug)) logDebug('debug detail');

    if (path == '/stream' || path == '/stream-cancel' || path == '/stream-missing-cluster') {
      const chat = new ProbeChat(this);
      chat.cancelOnMessage = path == '/stream-cancel';
      if (!openGrpcStream(path == '/stream-missing-cluster' ? 'nowhere' : 'chat', 'weft.test.Chat', 'Talk', chat, [new HeaderPair('x-probe', '1')])) {
        sendLocalResponse(500, 'probe_stream_failed', 'grpc_stream refused: ' + (<i32>lastGrpcStreamResult).toString(), []);
        return Action.Pause;
      }
      chat.send(utf8('one'));
      chat.send(utf8('two'));
      chat.close();
      return Action.Pause;
    }
    if (path == '/grpc' || path == '/grpc-missing-cluster') {
      const message = Uint8Array.wrap(String.UTF8.encode('probe'));
      const token = this.grpcCall(path == '/grpc' ? 'authz' : 'nowhere', 'weft.test.Authz', 'Check', message, 1000, [new HeaderPair('x-probe', '1')]);
      if (token == 0) sendLocalResponse(500, 'probe_grpc_failed', 'grpc_call refused: ' + (<i32>lastGrpcCallResult).toString(), []);
      return Action.Pause;
    }
    if (path == '/call' || path == '/call-missing-cluster') {
      const cluster = path == '/call' ? 'authz' : 'nowhere';
      const token = this.httpCall(cluster, [
        new HeaderPair(':method', 'POST'), new HeaderPair(':path', '/check'), new HeaderPair(':authority', 'authz'),
      ], 'who=' + (peer === null ? 'none' : peer), 1000);
      if (token == 0) {
        sendLocalResponse(500, 'probe_call_failed', 'http_call refused: ' + (<i32>lastHttpCallResult).toString(), []);
        return Action.Pause;
      }
      return Action.Pause;
    }
    if (path == '/abort') {
      // An out-of-range index: AssemblyScript calls abort, redirected by the build.
      const empty = new Array<string>();
      replaceHeader(HeaderMapType.RequestHeaders, 'x-never', empty[numHeaders]);
    }
    if (path == '/encoded') {
      const multi = X_MULTI.get(HeaderMapType.RequestHeaders);
      const peerProp = PEER.string();
      const peerBytes = PEER.bytes();
      X_ENCODED.replace(HeaderMapType.RequestHeaders, describe(multi) + '|' + describe(X_MISSING.get(HeaderMapType.RequestHeaders)) + '|' +
        describe(peerProp) + '|' + (peerBytes === null ? 'null' : peerBytes.length.toString()) + '|' +
        RESPONSE_CODE.i64().toString() + '|' + PEER.i64().toString() + '|' + (NO_SUCH.bytes() === null ? 'null' : 'bytes'));
      X_REMOVE_ME.remove(HeaderMapType.RequestHeaders);
      const counter = new Metric(MetricType.Counter, 'probe_encoded', ['k', 'v;w']);
      counter.increment(2);
      counter.increment();
      new Metric(MetricType.Histogram, 'probe_encoded_ms').record(7);
      const text = 'q"\\\n\t\u0001é日😀';
      for (let i = 0; i < 2; i++) {
        writer.reset().text('{"s":').json(text).text(',"n":').int(-42).text(',"z":').int(0).text(',"u":').uint(u64.MAX_VALUE).text(',"t":"é"}');
        logUtf8(LogLevel.Info, writer);
      }
      logInfo('{"s":' + jsonString(text) + ',"n":-42,"z":0,"u":' + u64.MAX_VALUE.toString() + ',"t":"é"}');
    }
    if (path == '/reply') {
      sendLocalResponse(418, 'probe_teapot', '{"teapot":true}', [new HeaderPair('x-probe', 'yes')]);
      return Action.Pause;
    }
    if (path == '/count') {
      // Read-modify-write with CAS, retried on conflict.
      for (let attempt = 0; attempt < 5; attempt++) {
        const current = getSharedData('probe-counter');
        const n: i64 = current === null ? 0 : parseDecimal(String.UTF8.decodeUnsafe(current.value.dataStart, <usize>current.value.length));
        const r = setSharedData('probe-counter', utf8((n + 1).toString()), current === null ? 0 : current.cas);
        if (r == WasmResult.Ok) {
          replaceHeader(HeaderMapType.RequestHeaders, 'x-count', (n + 1).toString());
          break;
        }
      }
    }
    return Action.Continue;
  }

  onRequestBody(bodySize: usize, endOfStream: bool): Action {
    if (!endOfStream) return Action.Pause;
    const body = getBufferString(BufferType.HttpRequestBody, bodySize);
    setBuffer(BufferType.HttpRequestBody, 0, bodySize, utf8('[' + body + ']'));
    return Action.Continue;
  }

  onGrpcReceive(token: u32, size: usize): void {
    replaceHeader(HeaderMapType.RequestHeaders, 'x-grpc', getBufferString(BufferType.GrpcReceiveBuffer, size));
    continueStream(0);
  }

  onGrpcClose(token: u32, status: u32): void {
    sendLocalResponse(403, 'probe_grpc_denied', 'grpc ' + status.toString() + ': ' + getStatus().message, []);
  }

  onHttpCallResponse(token: u32, numHeaders: u32, bodySize: usize, numTrailers: u32): void {
    const status = getHeader(HeaderMapType.HttpCallResponseHeaders, ':status');
    if (status == '200') {
      replaceHeader(HeaderMapType.RequestHeaders, 'x-authz', getBufferString(BufferType.HttpCallResponseBody, bodySize));
      continueStream(0);
      return;
    }
    if (status === null) {
      // No response at all: the host says why (Envoy: BrokenConnection, "reset").
      const why = getStatus();
      sendLocalResponse(503, 'probe_call_failed', 'authz call failed: ' + (<i32>why.code).toString() + ' ' + why.message, []);
      return;
    }
    sendLocalResponse(403, 'probe_denied', 'denied by authz: ' + status, []);
  }
}

registerRoot((id: u32): RootContext => new ProbeRoot(id));
