// Header maps as Envoy presents them to a filter: names lowercased, order
// kept, a name may repeat. Also the proxy-wasm pair serialization
// (u32 count, then u32 name/value sizes, then NUL-terminated strings).

import { decodeByteString, decodeUtf8, encodeByteString, encodeUtf8 } from './memory.ts';

export type HeaderPairs = [string, string][];

export class HeaderMap {
  // Pairs are never changed in place (a change replaces the pair), so the
  // constructor may keep the caller's pairs and only copy the array.
  private entries: HeaderPairs;
  /** A filter added, replaced or removed something (Envoy then clears the route cache). */
  modified = false;

  constructor(pairs: Iterable<readonly [string, string]> = []) {
    if (Array.isArray(pairs) && allLowercase(pairs as HeaderPairs)) {
      // The common case (the sidecar lowercases names as it parses them): one array, no new pairs.
      this.entries = (pairs as HeaderPairs).slice();
      return;
    }
    this.entries = [];
    for (const [name, value] of pairs) this.entries.push([name.toLowerCase(), value]);
  }

  /** First value of `name` (Envoy returns only the first of repeated headers). */
  get(name: string): string | undefined {
    const i = this.indexOf(name.toLowerCase());
    return i < 0 ? undefined : this.entries[i]![1];
  }

  private indexOf(key: string): number {
    const entries = this.entries;
    for (let i = 0; i < entries.length; i++) if (entries[i]![0] === key) return i;
    return -1;
  }

  getAll(name: string): string[] {
    const key = name.toLowerCase();
    return this.entries.filter(([n]) => n === key).map(([, v]) => v);
  }

  has(name: string): boolean {
    return this.get(name) !== undefined;
  }

  add(name: string, value: string): void {
    this.modified = true;
    this.entries.push([name.toLowerCase(), value]);
  }

  /** Replaces the first value in place and drops any repeats; adds when absent. */
  replace(name: string, value: string): void {
    this.modified = true;
    const key = name.toLowerCase();
    const first = this.indexOf(key);
    if (first < 0) {
      this.entries.push([key, value]);
      return;
    }
    this.entries[first] = [key, value];
    for (let i = this.entries.length - 1; i > first; i--) if (this.entries[i]![0] === key) this.entries.splice(i, 1);
  }

  remove(name: string): void {
    const key = name.toLowerCase();
    this.modified = true;
    for (let i = this.entries.length - 1; i >= 0; i--) if (this.entries[i]![0] === key) this.entries.splice(i, 1);
  }

  setAll(pairs: Iterable<readonly [string, string]>): void {
    this.modified = true;
    this.entries = [];
    for (const [name, value] of pairs) this.add(name, value);
  }

  pairs(): HeaderPairs {
    return this.entries.map(([n, v]) => [n, v]);
  }

  get count(): number {
    return this.entries.length;
  }

  /** Envoy's HeaderMap::byteSize(): the sum of name and value lengths. */
  get byteSize(): number {
    let size = 0;
    for (const [n, v] of this.entries) size += Buffer.byteLength(n) + Buffer.byteLength(v);
    return size;
  }
}

/** toLowerCase returns its receiver when nothing changes, so this allocates nothing. */
function allLowercase(pairs: HeaderPairs): boolean {
  for (let i = 0; i < pairs.length; i++) {
    const name = pairs[i]![0];
    if (name.toLowerCase() !== name) return false;
  }
  return true;
}

export function serializePairs(pairs: readonly (readonly [string, string])[], byteStrings = false): Uint8Array {
  const encode = byteStrings ? encodeByteString : encodeUtf8;
  const encoded = pairs.map(([n, v]) => [encode(n), encode(v)] as const);
  let size = 4 + encoded.length * 8;
  for (const [n, v] of encoded) size += n.length + v.length + 2;
  const out = new Uint8Array(size);
  const view = new DataView(out.buffer);
  view.setUint32(0, encoded.length, true);
  let sizeAt = 4;
  let dataAt = 4 + encoded.length * 8;
  for (const [n, v] of encoded) {
    view.setUint32(sizeAt, n.length, true);
    view.setUint32(sizeAt + 4, v.length, true);
    sizeAt += 8;
    out.set(n, dataAt);
    dataAt += n.length + 1;
    out.set(v, dataAt);
    dataAt += v.length + 1;
  }
  return out;
}

/**
 * Parses the pair format. Like proxy-wasm-cpp-host's toPairs, a buffer too
 * short for its declared count yields no pairs; undefined is returned only for
 * data whose strings run past the end, which the host reports as BAD_ARGUMENT.
 */
export function deserializePairs(bytes: Uint8Array, byteStrings = false): HeaderPairs | undefined {
  const decode = byteStrings ? decodeByteString : decodeUtf8;
  if (bytes.length < 4) return [];
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const count = view.getUint32(0, true);
  if (4 + count * 8 > bytes.length) return [];
  const sizes: [number, number][] = [];
  for (let i = 0; i < count; i++) sizes.push([view.getUint32(4 + i * 8, true), view.getUint32(8 + i * 8, true)]);
  const pairs: HeaderPairs = [];
  let at = 4 + count * 8;
  for (const [nameSize, valueSize] of sizes) {
    if (at + nameSize + valueSize + 2 > bytes.length) return undefined;
    const name = decode(bytes.subarray(at, at + nameSize));
    at += nameSize + 1;
    const value = decode(bytes.subarray(at, at + valueSize));
    at += valueSize + 1;
    pairs.push([name, value]);
  }
  return pairs;
}
