// Properties, buffers, clock, ticks, shared data and local responses. Each
// call returns the host's status as a value (null / WasmResult), never traps.

import {
  proxy_get_buffer_bytes, proxy_get_current_time_nanoseconds, proxy_get_property, proxy_get_shared_data,
  proxy_send_local_response, proxy_set_buffer_bytes, proxy_set_property, proxy_set_shared_data,
  proxy_set_tick_period_milliseconds, proxy_continue_stream, proxy_get_status,
} from './imports';
import { clearReturn, RETURN_DATA, RETURN_SIZE, takeBytes, takeString } from './memory';
import { serializePairs, HeaderPair } from './headers';
import { BufferType, StreamType, WasmResult } from './status';

/** Envoy encodes a property path as its segments joined by NUL bytes. */
export function encodePropertyPath(path: string[]): Uint8Array {
  let size = 0;
  const parts = new Array<ArrayBuffer>(path.length);
  for (let i = 0; i < path.length; i++) {
    parts[i] = String.UTF8.encode(path[i]);
    size += parts[i].byteLength + (i > 0 ? 1 : 0);
  }
  const out = new Uint8Array(size);
  let p = out.dataStart;
  for (let i = 0; i < parts.length; i++) {
    if (i > 0) store<u8>(p++, 0);
    memory.copy(p, changetype<usize>(parts[i]), parts[i].byteLength);
    p += parts[i].byteLength;
  }
  return out;
}

/** Raw property bytes, or null when the host has no such property. */
export function getProperty(path: string[]): Uint8Array | null {
  const encoded = encodePropertyPath(path);
  clearReturn();
  const r = proxy_get_property(encoded.dataStart, <usize>encoded.length, RETURN_DATA, RETURN_SIZE);
  if (r != WasmResult.Ok) return null;
  return takeBytes();
}

/** A string property (Envoy's raw string encoding), or null. */
export function getPropertyString(path: string[]): string | null {
  const bytes = getProperty(path);
  if (bytes === null) return null;
  return String.UTF8.decodeUnsafe(bytes.dataStart, <usize>bytes.length);
}

/** An integer property (8 bytes little-endian), or -1 when absent or malformed. */
export function getPropertyI64(path: string[]): i64 {
  const bytes = getProperty(path);
  if (bytes === null || bytes.length != 8) return -1;
  return load<i64>(bytes.dataStart);
}

/**
 * A property path encoded once (at construction, e.g. as a module-level
 * constant), so a per-request read sends the stored bytes without building or
 * encoding the path again. Same results as getProperty / getPropertyString /
 * getPropertyI64.
 */
export class Property {
  encoded: Uint8Array;

  constructor(public path: string[]) {
    this.encoded = encodePropertyPath(path);
  }

  private fetch(): bool {
    clearReturn();
    return proxy_get_property(this.encoded.dataStart, <usize>this.encoded.length, RETURN_DATA, RETURN_SIZE) == WasmResult.Ok;
  }

  /** Raw bytes, or null when the host has no such property. */
  bytes(): Uint8Array | null {
    return this.fetch() ? takeBytes() : null;
  }

  /** The string value, or null. */
  string(): string | null {
    return this.fetch() ? takeString() : null;
  }

  /** The integer value (8 bytes little-endian), or -1 when absent or malformed. */
  i64(): i64 {
    if (!this.fetch()) return -1;
    const ptr = load<usize>(RETURN_DATA);
    if (ptr == 0) return -1;
    const v = load<usize>(RETURN_SIZE) == 8 ? load<i64>(ptr) : -1;
    heap.free(ptr);
    return v;
  }
}

export function setProperty(path: string[], value: string): WasmResult {
  const encoded = encodePropertyPath(path);
  const v = String.UTF8.encode(value);
  return <WasmResult>proxy_set_property(encoded.dataStart, <usize>encoded.length, changetype<usize>(v), <usize>v.byteLength);
}

export function getBuffer(type: BufferType, start: usize, maxSize: usize): Uint8Array | null {
  clearReturn();
  if (proxy_get_buffer_bytes(type, start, maxSize, RETURN_DATA, RETURN_SIZE) != WasmResult.Ok) return null;
  return takeBytes();
}

export function getBufferString(type: BufferType, size: usize): string {
  const bytes = getBuffer(type, 0, size);
  if (bytes === null) return '';
  return String.UTF8.decodeUnsafe(bytes.dataStart, <usize>bytes.length);
}

/** Replaces `size` bytes from `start` of the buffer with `data`. */
export function setBuffer(type: BufferType, start: usize, size: usize, data: Uint8Array): WasmResult {
  return <WasmResult>proxy_set_buffer_bytes(type, start, size, data.dataStart, <usize>data.length);
}

const TIME_SLOT: usize = memory.data(8);

/** Host wall clock in nanoseconds since the epoch; 0 if the host refuses. */
export function nowNanos(): u64 {
  if (proxy_get_current_time_nanoseconds(TIME_SLOT) != WasmResult.Ok) return 0;
  return load<u64>(TIME_SLOT);
}

export function nowSeconds(): i64 {
  return <i64>(nowNanos() / 1000000000);
}

export function setTickPeriod(ms: u32): WasmResult {
  return <WasmResult>proxy_set_tick_period_milliseconds(ms);
}

export function continueStream(stream: StreamType): WasmResult {
  return <WasmResult>proxy_continue_stream(stream);
}

/**
 * Answers the request from the filter. The caller returns Action.Pause from the
 * current callback; the host stops iteration and never forwards the request.
 */
export function sendLocalResponse(status: u32, details: string, body: string, headers: HeaderPair[]): WasmResult {
  const d = String.UTF8.encode(details);
  const b = String.UTF8.encode(body);
  const h = serializePairs(headers);
  return <WasmResult>proxy_send_local_response(status, changetype<usize>(d), <usize>d.byteLength,
    changetype<usize>(b), <usize>b.byteLength, h.dataStart, <usize>h.length, -1);
}

export class SharedValue {
  constructor(public value: Uint8Array, public cas: u32) {}
}

const CAS_SLOT: usize = memory.data(4);

/** The shared value and its CAS token, or null when the key is unknown. */
export function getSharedData(key: string): SharedValue | null {
  const k = String.UTF8.encode(key);
  clearReturn();
  store<u32>(CAS_SLOT, 0);
  const r = proxy_get_shared_data(changetype<usize>(k), <usize>k.byteLength, RETURN_DATA, RETURN_SIZE, CAS_SLOT);
  if (r != WasmResult.Ok) return null;
  return new SharedValue(takeBytes(), load<u32>(CAS_SLOT));
}

/** Stores a value; cas 0 overwrites, otherwise CasMismatch if it changed since read. */
export function setSharedData(key: string, value: Uint8Array, cas: u32): WasmResult {
  const k = String.UTF8.encode(key);
  return <WasmResult>proxy_set_shared_data(changetype<usize>(k), <usize>k.byteLength, value.dataStart, <usize>value.length, cas);
}

/** A host status: a WasmResult code and its message. */
export class HostStatus {
  constructor(public code: WasmResult, public message: string) {}
}

/**
 * In onHttpCallResponse: how the call ended. `WasmResult.Ok` when a response
 * arrived (even a 5xx); when the call failed without one (numHeaders is 0:
 * the connection failed or was reset) Envoy reports BrokenConnection with a
 * reason (`reset`). Outside a call response: Ok, empty.
 */
export function getStatus(): HostStatus {
  clearReturn();
  // The code comes back in the CAS return slot (any 4 free bytes; no static data of its own, so
  // filters that never call this build to the same bytes as before it existed).
  store<u32>(CAS_SLOT, 0);
  const r = proxy_get_status(CAS_SLOT, RETURN_DATA, RETURN_SIZE);
  if (r != WasmResult.Ok) return new HostStatus(<WasmResult>r, '');
  return new HostStatus(<WasmResult>load<u32>(CAS_SLOT), takeString());
}
