// The `env` host functions of proxy-wasm ABI 0.2.x (plus the 0.1.0 names
// proxy-wasm-cpp-host still registers). Each validates enum arguments, reads
// guest memory through bounds checks (INVALID_MEMORY_ACCESS, never a host
// crash), then acts on the active context. Status codes and their order of
// checks follow proxy-wasm-cpp-host src/exports.cc.

import { BUFFER_TYPE_MAX, LogLevel, MAP_TYPE_MAX, STREAM_TYPE_MAX, WasmResult, type WasmResultCode } from './abi.ts';
import type { VmServices } from './context.ts';
import { deserializePairs, serializePairs, type HeaderMap, type HeaderPairs } from './headers.ts';
import { filterStateOf, lookupProperty, type EncodedProperty } from './properties.ts';

const R = WasmResult;
type HostFn = (...args: never[]) => number;

export function proxyImports(vm: VmServices): Record<string, HostFn> {
  const mem = () => vm.memory;
  const str = (ptr: number, size: number) => mem().readString(ptr, size);
  // Header names and values: bytes as they are in byte mode (the sidecar), UTF-8 text otherwise (the test kit).
  const hstr = vm.headerBytes ? (ptr: number, size: number) => mem().readBytesString(ptr, size) : str;
  const hcopyOut = (value: string, ptrPtr: number, sizePtr: number): WasmResultCode =>
    (vm.headerBytes ? mem().copyOutBytesString(value, ptrPtr, sizePtr) : mem().copyOutString(value, ptrPtr, sizePtr)) ? R.Ok : R.InvalidMemoryAccess;
  const bytes = (ptr: number, size: number) => mem().read(ptr, size);
  const pairsAt = (ptr: number, size: number): HeaderPairs | undefined | 'bad' => {
    const raw = bytes(ptr, size);
    if (raw === undefined) return undefined;
    return deserializePairs(raw, vm.headerBytes) ?? 'bad';
  };
  const copyOut = (data: Uint8Array | string, ptrPtr: number, sizePtr: number): WasmResultCode =>
    (typeof data === 'string' ? mem().copyOutString(data, ptrPtr, sizePtr) : mem().copyOut(data, ptrPtr, sizePtr)) ? R.Ok : R.InvalidMemoryAccess;
  /**
   * A map to read (Envoy's getConstMap), or the code a value lookup answers without one: an http_call
   * response's maps (6, 7) and a gRPC stream's initial and trailing metadata (4, 5) only while delivered.
   */
  const readableMap = (type: number): HeaderMap | WasmResultCode =>
    type >= 6
      ? (vm.httpCallResponse()?.[type === 6 ? 'headers' : 'trailers'] ?? R.BadArgument)
      : type >= 4
        ? (vm.grpcCallResponse()?.[type === 4 ? 'initialMetadata' : 'trailingMetadata'] ?? R.BadArgument)
        : vm.active().readableMap(type);
  const bufferOf = (type: number) => (type === 4 ? vm.httpCallResponse()?.body : type === 5 ? vm.grpcCallResponse()?.buffer : vm.active().buffer(type));

  const fns: Record<string, HostFn> = {
    // --- logging, time, lifecycle -----------------------------------------
    proxy_log(level: number, ptr: number, size: number): number {
      if (level >>> 0 > LogLevel.critical) return R.BadArgument;
      const message = str(ptr, size);
      if (message === undefined) return R.InvalidMemoryAccess;
      vm.log(level, message);
      return R.Ok;
    },
    proxy_get_log_level(levelPtr: number): number {
      return mem().writeU32(levelPtr, vm.logLevel()) ? R.Ok : R.InvalidMemoryAccess;
    },
    proxy_get_current_time_nanoseconds(timePtr: number): number {
      return mem().writeU64(timePtr, vm.nowNs()) ? R.Ok : R.InvalidMemoryAccess;
    },
    proxy_set_tick_period_milliseconds(period: number): number {
      vm.setTickPeriod(period >>> 0);
      return R.Ok;
    },
    proxy_set_effective_context(contextId: number): number {
      return vm.setEffectiveContext(contextId >>> 0) ? R.Ok : R.BadArgument;
    },
    proxy_done(): number {
      return vm.done(vm.active());
    },
    proxy_call_foreign_function(namePtr: number, nameSize: number, argsPtr: number, argsSize: number, retPtrPtr: number, retSizePtr: number): number {
      const name = str(namePtr, nameSize);
      const args = bytes(argsPtr, argsSize);
      if (name === undefined || args === undefined) return R.InvalidMemoryAccess;
      const { result, value } = vm.callForeign(name, args);
      if (result !== R.Ok) return result;
      return copyOut(value ?? new Uint8Array(0), retPtrPtr, retSizePtr);
    },

    // --- properties and status ----------------------------------------------
    proxy_get_property(pathPtr: number, pathSize: number, retPtrPtr: number, retSizePtr: number): number {
      const path = str(pathPtr, pathSize);
      if (path === undefined) return R.InvalidMemoryAccess;
      const value = lookup(vm, path);
      if (value === undefined) return R.NotFound;
      return copyOut(value, retPtrPtr, retSizePtr);
    },
    proxy_set_property(pathPtr: number, pathSize: number, valuePtr: number, valueSize: number): number {
      const path = str(pathPtr, pathSize);
      const value = bytes(valuePtr, valueSize);
      if (path === undefined || value === undefined) return R.InvalidMemoryAccess;
      if (path.length === 0) return R.BadArgument;
      // Envoy keeps them in the stream's filter state: a root context has none.
      if (vm.active().isRoot) return R.NotFound;
      const sources = vm.active().properties();
      (sources.filterState ?? filterStateOf(sources.given)).set(path, value.slice());
      return R.Ok;
    },
    proxy_get_status(codePtr: number, msgPtrPtr: number, msgSizePtr: number): number {
      // The status of the http_call being delivered (BROKEN_CONNECTION "reset" when it failed), or the gRPC
      // status a grpc_call closed with (in proxy_on_grpc_close); OK otherwise.
      const status = vm.httpCallResponse()?.status ?? vm.grpcCallResponse()?.status ?? { code: R.Ok, message: '' };
      if (!mem().writeU32(codePtr, status.code)) return R.InvalidMemoryAccess;
      return copyOut(status.message, msgPtrPtr, msgSizePtr);
    },
    proxy_get_configuration(retPtrPtr: number, retSizePtr: number): number {
      // Envoy's getConfiguration: the plugin's in proxy_on_configure, the VM's otherwise.
      const config = vm.active().buffer(7) ?? vm.active().buffer(6);
      return copyOut(config?.bytes() ?? new Uint8Array(0), retPtrPtr, retSizePtr);
    },

    // --- stream control -----------------------------------------------------
    proxy_continue_stream(type: number): number {
      if (type >>> 0 > STREAM_TYPE_MAX) return R.BadArgument;
      return vm.active().continueStream(type);
    },
    proxy_close_stream(type: number): number {
      if (type >>> 0 > STREAM_TYPE_MAX) return R.BadArgument;
      return vm.active().closeStream(type);
    },
    proxy_continue_request: () => vm.active().continueStream(0),
    proxy_continue_response: () => vm.active().continueStream(1),
    proxy_clear_route_cache: () => R.Ok,
    proxy_send_local_response(status: number, detailsPtr: number, detailsSize: number, bodyPtr: number, bodySize: number, headersPtr: number, headersSize: number, grpcStatus: number): number {
      const details = str(detailsPtr, detailsSize);
      const body = bytes(bodyPtr, bodySize);
      const headers = pairsAt(headersPtr, headersSize);
      if (details === undefined || body === undefined || headers === undefined) return R.InvalidMemoryAccess;
      if (headers === 'bad') return R.BadArgument;
      // As Envoy: a gRPC status outside OK..UNAUTHENTICATED is none (the -1 SDKs pass, or a
      // bad one), and the details have their whitespace turned into '_' (StringUtil::replaceAllEmptySpace).
      return vm.active().sendLocalResponse({
        status: status >>> 0,
        body,
        headers,
        grpcStatus: grpcStatus >= 0 && grpcStatus <= 16 ? grpcStatus : undefined,
        details: details.replace(/[ \t\f\v\n\r]/g, '_'),
      });
    },

    // --- header maps --------------------------------------------------------
    proxy_get_header_map_value(type: number, keyPtr: number, keySize: number, retPtrPtr: number, retSizePtr: number): number {
      if (type >>> 0 > MAP_TYPE_MAX) return R.BadArgument;
      const key = hstr(keyPtr, keySize);
      if (key === undefined) return R.InvalidMemoryAccess;
      const map = readableMap(type);
      if (typeof map === 'number') return map;
      const value = map.get(key);
      if (value === undefined) return R.NotFound;
      return hcopyOut(value, retPtrPtr, retSizePtr);
    },
    proxy_add_header_map_value(type: number, keyPtr: number, keySize: number, valuePtr: number, valueSize: number): number {
      return setHeaderValue(type, keyPtr, keySize, valuePtr, valueSize, false);
    },
    proxy_replace_header_map_value(type: number, keyPtr: number, keySize: number, valuePtr: number, valueSize: number): number {
      return setHeaderValue(type, keyPtr, keySize, valuePtr, valueSize, true);
    },
    proxy_remove_header_map_value(type: number, keyPtr: number, keySize: number): number {
      if (type >>> 0 > MAP_TYPE_MAX) return R.BadArgument;
      const key = hstr(keyPtr, keySize);
      if (key === undefined) return R.InvalidMemoryAccess;
      const map = writableMap(type);
      if (map === undefined) return R.BadArgument;
      map.remove(key);
      return R.Ok;
    },
    proxy_get_header_map_pairs(type: number, retPtrPtr: number, retSizePtr: number): number {
      if (type >>> 0 > MAP_TYPE_MAX) return R.BadArgument;
      const map = readableMap(type);
      // Envoy lists a map that is not there (another phase's) as empty, OK,
      // and cpp-host hands an empty map back as (0, 0) rather than a zero-count record.
      return copyOut(typeof map === 'number' || map.count === 0 ? new Uint8Array(0) : serializePairs(map.pairs(), vm.headerBytes), retPtrPtr, retSizePtr);
    },
    proxy_set_header_map_pairs(type: number, ptr: number, size: number): number {
      if (type >>> 0 > MAP_TYPE_MAX) return R.BadArgument;
      const pairs = pairsAt(ptr, size);
      if (pairs === undefined) return R.InvalidMemoryAccess;
      if (pairs === 'bad') return R.BadArgument;
      const map = writableMap(type);
      if (map === undefined) return R.BadArgument;
      map.setAll(pairs);
      return R.Ok;
    },
    proxy_get_header_map_size(type: number, sizePtr: number): number {
      if (type >>> 0 > MAP_TYPE_MAX) return R.BadArgument;
      // Envoy sizes only a map the stream could change (getMap): never an http_call response's.
      const map = writableMap(type);
      if (map === undefined) return R.BadArgument;
      return mem().writeU32(sizePtr, map.byteSize) ? R.Ok : R.InvalidMemoryAccess;
    },

    // --- buffers ------------------------------------------------------------
    proxy_get_buffer_bytes(type: number, start: number, length: number, retPtrPtr: number, retSizePtr: number): number {
      if (type >>> 0 > BUFFER_TYPE_MAX) return R.BadArgument;
      const buffer = bufferOf(type);
      if (buffer === undefined) return R.NotFound;
      start >>>= 0;
      length >>>= 0;
      // cpp-host adds them as 64-bit words, so two u32s never overflow: a length past the end is cut there.
      if (start + length > buffer.length) length = Math.max(0, buffer.length - start);
      if (length === 0) return R.Ok;
      return copyOut(buffer.slice(start, length), retPtrPtr, retSizePtr);
    },
    proxy_get_buffer_status(type: number, lengthPtr: number, flagsPtr: number): number {
      if (type >>> 0 > BUFFER_TYPE_MAX) return R.BadArgument;
      const buffer = bufferOf(type);
      if (buffer === undefined) return R.NotFound;
      return mem().writeU32(lengthPtr, buffer.length) && mem().writeU32(flagsPtr, 0) ? R.Ok : R.InvalidMemoryAccess;
    },
    proxy_set_buffer_bytes(type: number, start: number, length: number, dataPtr: number, dataSize: number): number {
      if (type >>> 0 > BUFFER_TYPE_MAX) return R.BadArgument;
      const buffer = bufferOf(type);
      if (buffer === undefined) return R.NotFound;
      const data = bytes(dataPtr, dataSize);
      if (data === undefined) return R.InvalidMemoryAccess;
      return buffer.copyFrom(start >>> 0, length >>> 0, data);
    },

    // --- shared data and queues ---------------------------------------------
    proxy_get_shared_data(keyPtr: number, keySize: number, retPtrPtr: number, retSizePtr: number, casPtr: number): number {
      const key = str(keyPtr, keySize);
      if (key === undefined) return R.InvalidMemoryAccess;
      const entry = vm.shared.getData(vm.vmId, key);
      if (entry === undefined) return R.NotFound;
      const result = copyOut(entry.value, retPtrPtr, retSizePtr);
      if (result !== R.Ok) return result;
      return mem().writeU32(casPtr, entry.cas) ? R.Ok : R.InvalidMemoryAccess;
    },
    proxy_set_shared_data(keyPtr: number, keySize: number, valuePtr: number, valueSize: number, cas: number): number {
      const key = str(keyPtr, keySize);
      const value = bytes(valuePtr, valueSize);
      if (key === undefined || value === undefined) return R.InvalidMemoryAccess;
      return vm.shared.setData(vm.vmId, key, value, cas >>> 0);
    },
    proxy_register_shared_queue(namePtr: number, nameSize: number, tokenPtr: number): number {
      const name = str(namePtr, nameSize);
      if (name === undefined) return R.InvalidMemoryAccess;
      return mem().writeU32(tokenPtr, vm.registerQueue(name)) ? R.Ok : R.InvalidMemoryAccess;
    },
    proxy_resolve_shared_queue(vmIdPtr: number, vmIdSize: number, namePtr: number, nameSize: number, tokenPtr: number): number {
      const vmId = str(vmIdPtr, vmIdSize);
      const name = str(namePtr, nameSize);
      if (vmId === undefined || name === undefined) return R.InvalidMemoryAccess;
      // An empty vm_id names the caller's own VM (cpp-host lookupSharedQueue).
      const token = vm.shared.resolveQueue(vmId === '' ? vm.vmId : vmId, name);
      if (token === undefined) return R.NotFound;
      return mem().writeU32(tokenPtr, token) ? R.Ok : R.InvalidMemoryAccess;
    },
    proxy_dequeue_shared_queue(token: number, retPtrPtr: number, retSizePtr: number): number {
      const { result, value } = vm.shared.dequeue(token >>> 0);
      if (result !== R.Ok) return result;
      return copyOut(value!, retPtrPtr, retSizePtr);
    },
    proxy_enqueue_shared_queue(token: number, valuePtr: number, valueSize: number): number {
      const value = bytes(valuePtr, valueSize);
      if (value === undefined) return R.InvalidMemoryAccess;
      return vm.shared.enqueue(token >>> 0, value);
    },

    // --- metrics ------------------------------------------------------------
    proxy_define_metric(type: number, namePtr: number, nameSize: number, idPtr: number): number {
      const name = str(namePtr, nameSize);
      if (name === undefined) return R.InvalidMemoryAccess;
      const { result, id } = vm.metrics.define(type >>> 0, name);
      if (result !== R.Ok) return result;
      return mem().writeU32(idPtr, id) ? R.Ok : R.InvalidMemoryAccess;
    },
    proxy_increment_metric(id: number, offset: bigint): number {
      return vm.metrics.increment(id >>> 0, BigInt.asIntN(64, offset));
    },
    proxy_record_metric(id: number, value: bigint): number {
      return vm.metrics.record(id >>> 0, BigInt.asUintN(64, value));
    },
    proxy_get_metric(id: number, valuePtr: number): number {
      const { result, value } = vm.metrics.get(id >>> 0);
      if (result !== R.Ok) return result;
      return mem().writeU64(valuePtr, value) ? R.Ok : R.InvalidMemoryAccess;
    },

    // --- callouts -----------------------------------------------------------
    proxy_http_call(upstreamPtr: number, upstreamSize: number, headersPtr: number, headersSize: number, bodyPtr: number, bodySize: number, trailersPtr: number, trailersSize: number, timeoutMs: number, tokenPtr: number): number {
      const cluster = str(upstreamPtr, upstreamSize);
      const body = bytes(bodyPtr, bodySize);
      const headers = pairsAt(headersPtr, headersSize);
      const trailers = pairsAt(trailersPtr, trailersSize);
      if (cluster === undefined || body === undefined || headers === undefined || trailers === undefined) return R.InvalidMemoryAccess;
      // Check the token address before starting anything asynchronous, as cpp-host does.
      if (!mem().writeU32(tokenPtr, 0)) return R.InvalidMemoryAccess;
      if (headers === 'bad' || trailers === 'bad') return R.BadArgument;
      // Envoy reads the timeout as a signed int: 2^31 ms and above (0xffffffff meant as "none") is BAD_ARGUMENT.
      if (timeoutMs < 0) return R.BadArgument;
      const { result, token } = vm.startHttpCall(vm.active(), cluster, headers, body, trailers, timeoutMs);
      mem().writeU32(tokenPtr, token);
      return result;
    },
    proxy_grpc_call(servicePtr: number, serviceSize: number, serviceNamePtr: number, serviceNameSize: number, methodPtr: number, methodSize: number, metadataPtr: number, metadataSize: number, messagePtr: number, messageSize: number, timeoutMs: number, tokenPtr: number): number {
      const service = bytes(servicePtr, serviceSize);
      const serviceName = str(serviceNamePtr, serviceNameSize);
      const method = str(methodPtr, methodSize);
      const metadata = pairsAt(metadataPtr, metadataSize);
      const message = bytes(messagePtr, messageSize);
      if (service === undefined || serviceName === undefined || method === undefined || metadata === undefined || message === undefined) return R.InvalidMemoryAccess;
      if (metadata === 'bad') return R.BadArgument;
      // cpp-host writes the token after the call started: a bad address fails then (the call goes on).
      const { result, token } = vm.startGrpcCall(vm.active(), service, serviceName, method, metadata, message, timeoutMs >>> 0);
      if (result !== R.Ok) return result;
      return mem().writeU32(tokenPtr, token) ? R.Ok : R.InvalidMemoryAccess;
    },
    proxy_grpc_cancel: (token: number) => vm.cancelGrpcCall(token >>> 0),
    proxy_grpc_close: (token: number) => vm.closeGrpc(token >>> 0),
    proxy_grpc_stream(servicePtr: number, serviceSize: number, serviceNamePtr: number, serviceNameSize: number, methodPtr: number, methodSize: number, metadataPtr: number, metadataSize: number, tokenPtr: number): number {
      const service = bytes(servicePtr, serviceSize);
      const serviceName = str(serviceNamePtr, serviceNameSize);
      const method = str(methodPtr, methodSize);
      const metadata = pairsAt(metadataPtr, metadataSize);
      if (service === undefined || serviceName === undefined || method === undefined || metadata === undefined) return R.InvalidMemoryAccess;
      if (metadata === 'bad') return R.BadArgument;
      // As grpc_call: cpp-host writes the token once the stream is open, so a bad address fails then (the stream stays open).
      const { result, token } = vm.startGrpcStream(service, serviceName, method, metadata);
      if (result !== R.Ok) return result;
      return mem().writeU32(tokenPtr, token) ? R.Ok : R.InvalidMemoryAccess;
    },
    proxy_grpc_send(token: number, messagePtr: number, messageSize: number, endStream: number): number {
      const message = bytes(messagePtr, messageSize);
      if (message === undefined) return R.InvalidMemoryAccess;
      return vm.sendGrpcStream(token >>> 0, message.slice(), endStream !== 0);
    },
  };

  /** proxy_add_header_map_value (a new entry) or proxy_replace_header_map_value (the first entry, repeats dropped). */
  function setHeaderValue(type: number, keyPtr: number, keySize: number, valuePtr: number, valueSize: number, replace: boolean): number {
    if (type >>> 0 > MAP_TYPE_MAX) return R.BadArgument;
    const key = hstr(keyPtr, keySize);
    const value = hstr(valuePtr, valueSize);
    if (key === undefined || value === undefined) return R.InvalidMemoryAccess;
    const map = writableMap(type);
    if (map === undefined) return R.BadArgument;
    if (replace) map.replace(key, value);
    else map.add(key, value);
    return R.Ok;
  }

  function writableMap(type: number) {
    // Http-call response maps are read-only views of a finished response.
    if (type >= 6) return undefined;
    return vm.active().headerMap(type);
  }

  return fns;
}

function lookup(vm: VmServices, path: string): EncodedProperty | undefined {
  return lookupProperty(path, vm.active().properties());
}

/** Names of every `env` import this host provides; anything else is refused at load. */
export function providedEnvImports(): Set<string> {
  const names = Object.keys(proxyImports(nullServices));
  return new Set(names);
}

const nullServices = new Proxy({}, { get: () => undefined }) as unknown as VmServices;
