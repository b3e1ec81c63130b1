// Header maps: lowercase names, multi-valued. `get` tells a missing header
// (null) from an empty one (""). Serialization of pairs follows the ABI:
// u32 count, then (u32 key size, u32 value size) per pair, then each key and
// value followed by a NUL byte.

import {
  proxy_add_header_map_value, proxy_get_header_map_pairs, proxy_get_header_map_value,
  proxy_remove_header_map_value, proxy_replace_header_map_value, proxy_set_header_map_pairs,
} from './imports';
import { clearReturn, RETURN_DATA, RETURN_SIZE, takeBytes, takeString } from './memory';
import { HeaderMapType, WasmResult } from './status';
import { asciiLower } from './ascii';

export class HeaderPair {
  constructor(public name: string, public value: string) {}
}

/** The value of `name`, or null when the header is absent. */
export function getHeader(map: HeaderMapType, name: string): string | null {
  const key = String.UTF8.encode(name);
  clearReturn();
  const r = proxy_get_header_map_value(map, changetype<usize>(key), <usize>key.byteLength, RETURN_DATA, RETURN_SIZE);
  if (r != WasmResult.Ok) return null;
  return takeString();
}

/**
 * A header name encoded once (at construction, e.g. as a module-level
 * constant or when the configuration is read), so per-request calls send the
 * stored bytes. Same results as getHeader / replaceHeader / removeHeader.
 */
export class HeaderName {
  encoded: ArrayBuffer;

  constructor(public name: string) {
    this.encoded = String.UTF8.encode(name);
  }

  /** The value, or null when the header is absent. */
  get(map: HeaderMapType): string | null {
    clearReturn();
    const r = proxy_get_header_map_value(map, changetype<usize>(this.encoded), <usize>this.encoded.byteLength, RETURN_DATA, RETURN_SIZE);
    if (r != WasmResult.Ok) return null;
    return takeString();
  }

  /** Sets the header to exactly one value, adding it when absent. */
  replace(map: HeaderMapType, value: string): WasmResult {
    const v = String.UTF8.encode(value);
    return <WasmResult>proxy_replace_header_map_value(map, changetype<usize>(this.encoded), <usize>this.encoded.byteLength,
      changetype<usize>(v), <usize>v.byteLength);
  }

  remove(map: HeaderMapType): WasmResult {
    return <WasmResult>proxy_remove_header_map_value(map, changetype<usize>(this.encoded), <usize>this.encoded.byteLength);
  }
}

/** Every value of `name`, in order (a header may repeat). */
export function getHeaderValues(map: HeaderMapType, name: string): string[] {
  const lower = asciiLower(name);
  const all = getHeaders(map);
  const out = new Array<string>();
  for (let i = 0; i < all.length; i++) if (all[i].name == lower) out.push(all[i].value);
  return out;
}

export function getHeaders(map: HeaderMapType): HeaderPair[] {
  clearReturn();
  if (proxy_get_header_map_pairs(map, RETURN_DATA, RETURN_SIZE) != WasmResult.Ok) return [];
  return deserializePairs(takeBytes());
}

export function setHeaders(map: HeaderMapType, pairs: HeaderPair[]): WasmResult {
  const buf = serializePairs(pairs);
  return <WasmResult>proxy_set_header_map_pairs(map, buf.dataStart, <usize>buf.length);
}

/** Appends a value; existing values of the same name stay. */
export function addHeader(map: HeaderMapType, name: string, value: string): WasmResult {
  const k = String.UTF8.encode(name);
  const v = String.UTF8.encode(value);
  return <WasmResult>proxy_add_header_map_value(map, changetype<usize>(k), <usize>k.byteLength, changetype<usize>(v), <usize>v.byteLength);
}

/** Sets the header to exactly one value, adding it when absent. */
export function replaceHeader(map: HeaderMapType, name: string, value: string): WasmResult {
  const k = String.UTF8.encode(name);
  const v = String.UTF8.encode(value);
  return <WasmResult>proxy_replace_header_map_value(map, changetype<usize>(k), <usize>k.byteLength, changetype<usize>(v), <usize>v.byteLength);
}

export function removeHeader(map: HeaderMapType, name: string): WasmResult {
  const k = String.UTF8.encode(name);
  return <WasmResult>proxy_remove_header_map_value(map, changetype<usize>(k), <usize>k.byteLength);
}

export function serializePairs(pairs: HeaderPair[]): Uint8Array {
  // Strings in wire order: name 0, value 0, name 1, ...; their sizes are in
  // the same order after the count.
  const n = pairs.length << 1;
  const strings = new Array<ArrayBuffer>(n);
  let size = 4;
  for (let i = 0; i < n; i++) {
    const pair = pairs[i >> 1];
    const b = String.UTF8.encode(i & 1 ? pair.value : pair.name);
    strings[i] = b;
    size += 4 + b.byteLength + 1;
  }
  const out = new Uint8Array(size);
  const base = out.dataStart;
  store<u32>(base, pairs.length);
  let p = base + 4 + (<usize>n << 2);
  for (let i = 0; i < n; i++) {
    const b = strings[i];
    store<u32>(base + 4 + (<usize>i << 2), b.byteLength);
    memory.copy(p, changetype<usize>(b), b.byteLength);
    p += b.byteLength;
    store<u8>(p++, 0);
  }
  return out;
}

export function deserializePairs(buf: Uint8Array): HeaderPair[] {
  const out = new Array<HeaderPair>();
  if (buf.length < 4) return out;
  const base = buf.dataStart;
  const count = load<u32>(base);
  if (<usize>4 + <usize>count * 8 > <usize>buf.length) return out;
  let p = base + 4 + count * 8;
  const end = base + buf.length;
  for (let i: u32 = 0; i < count; i++) {
    const ks = load<u32>(base + 4 + i * 8);
    const vs = load<u32>(base + 8 + i * 8);
    if (p + ks + vs + 2 > end) break;
    const name = String.UTF8.decodeUnsafe(p, ks);
    p += ks + 1;
    const value = String.UTF8.decodeUnsafe(p, vs);
    p += vs + 1;
    out.push(new HeaderPair(name, value));
  }
  return out;
}
