// Bounds-checked access to a module's exported linear memory. Every host
// function reads and writes guest memory only through this class, so an
// out-of-range pointer becomes a `false`/`undefined` the caller turns into
// INVALID_MEMORY_ACCESS instead of a host exception.

import type { WasmMemory } from './wasm-api.ts';

const utf8 = new TextEncoder();
const utf8Decoder = new TextDecoder();

export function encodeUtf8(text: string): Uint8Array {
  return utf8.encode(text);
}

export function decodeUtf8(bytes: Uint8Array): string {
  return utf8Decoder.decode(bytes);
}

/** A byte string (one character per byte, as node's HTTP parser gives headers) as its bytes; text past 0xff as UTF-8. */
export function encodeByteString(s: string): Uint8Array {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) > 0xff) return encodeUtf8(s);
  return Buffer.from(s, 'latin1');
}

export function decodeByteString(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('latin1');
}

const INTERN_SLOTS = 256;
const INTERN_MAX = 64;

/** Allocates `size` bytes inside the module (its `malloc` or `proxy_on_memory_allocate`). */
export type GuestAllocator = (size: number) => number;

export class GuestMemory {
  /**
   * Views over the current buffer, made once rather than per host call.
   * memory.grow() detaches the old ArrayBuffer (its byteLength becomes 0), so
   * a zero-length view means "look again".
   */
  #u8: Buffer = Buffer.alloc(0);
  #dv: DataView = new DataView(new ArrayBuffer(0));
  /** readString's remembered strings: a direct-mapped table by address. */
  readonly #internAt = new Int32Array(INTERN_SLOTS).fill(-1);
  readonly #interned: (string | undefined)[] = new Array<string | undefined>(INTERN_SLOTS).fill(undefined);

  constructor(
    private readonly memory: WasmMemory,
    private readonly allocate: GuestAllocator,
  ) {}

  #view(): Buffer {
    if (this.#u8.byteLength === 0) {
      const buffer = this.memory.buffer as ArrayBuffer;
      this.#u8 = Buffer.from(buffer, 0, buffer.byteLength);
      this.#dv = new DataView(buffer);
    }
    return this.#u8;
  }

  /** Current size in 64 KiB pages. */
  get pages(): number {
    return this.memory.buffer.byteLength / 65536;
  }

  private inBounds(ptr: number, size: number): boolean {
    return ptr >= 0 && size >= 0 && ptr + size <= this.#view().byteLength;
  }

  /** A copy of `size` bytes at `ptr`, or undefined when any byte is out of range. */
  read(ptr: number, size: number): Uint8Array | undefined {
    ptr >>>= 0;
    size >>>= 0;
    if (!this.inBounds(ptr, size)) return undefined;
    return new Uint8Array(this.#u8.subarray(ptr, ptr + size));
  }

  /**
   * Decoded in place (no intermediate copy): this runs for every header name
   * and property path a filter passes. Filters pass the same names from the
   * same addresses on every request (SDKs encode them once), so short ASCII
   * strings are remembered by address and reused while the bytes still match.
   */
  readString(ptr: number, size: number): string | undefined {
    ptr >>>= 0;
    size >>>= 0;
    if (!this.inBounds(ptr, size)) return undefined;
    if (size > INTERN_MAX || size === 0) return size === 0 ? '' : this.#u8.toString('utf8', ptr, ptr + size);
    const slot = (ptr >>> 2) & (INTERN_SLOTS - 1);
    const u8 = this.#u8;
    const known = this.#internAt[slot] === ptr ? this.#interned[slot] : undefined;
    if (known !== undefined && known.length === size) {
      let same = true;
      for (let i = 0; i < size; i++) {
        if (u8[ptr + i] !== known.charCodeAt(i)) {
          same = false;
          break;
        }
      }
      if (same) return known;
    }
    const text = u8.toString('utf8', ptr, ptr + size);
    if (text.length === size) {
      // Same length as the bytes: ASCII, so the byte comparison above is exact.
      this.#internAt[slot] = ptr;
      this.#interned[slot] = text;
    }
    return text;
  }

  /** The bytes at `ptr` as a byte string (one character per byte), for header names and values in byte mode. */
  readBytesString(ptr: number, size: number): string | undefined {
    ptr >>>= 0;
    size >>>= 0;
    if (!this.inBounds(ptr, size)) return undefined;
    if (size === 0) return '';
    // ASCII (the common case) is the same either way, and readString remembers names by address.
    for (let i = ptr, end = ptr + size, u8 = this.#u8; i < end; i++) if (u8[i]! > 0x7f) return u8.toString('latin1', ptr, end);
    return this.readString(ptr, size);
  }

  readU32(ptr: number): number | undefined {
    ptr >>>= 0;
    if (!this.inBounds(ptr, 4)) return undefined;
    return this.#dv.getUint32(ptr, true);
  }

  write(ptr: number, bytes: Uint8Array): boolean {
    ptr >>>= 0;
    if (!this.inBounds(ptr, bytes.length)) return false;
    this.#u8.set(bytes, ptr);
    return true;
  }

  writeU32(ptr: number, value: number): boolean {
    ptr >>>= 0;
    if (!this.inBounds(ptr, 4)) return false;
    this.#dv.setUint32(ptr, value >>> 0, true);
    return true;
  }

  writeU64(ptr: number, value: bigint): boolean {
    ptr >>>= 0;
    if (!this.inBounds(ptr, 8)) return false;
    this.#dv.setBigUint64(ptr, BigInt.asUintN(64, value), true);
    return true;
  }

  /**
   * copyOut for text (header values, string properties): written straight
   * into the module's allocation as UTF-8, without an encoded copy first.
   */
  copyOutString(text: string, ptrPtr: number, sizePtr: number): boolean {
    const length = text.length;
    for (let i = 0; i < length; i++) if (text.charCodeAt(i) > 0x7f) return this.copyOut(encodeUtf8(text), ptrPtr, sizePtr);
    let ptr = 0;
    if (length > 0) {
      ptr = this.allocate(length) >>> 0;
      if (ptr === 0 || !this.inBounds(ptr, length)) return false;
      // ASCII: one byte per character. Short strings are copied here (a
      // Buffer.write is a call into C++ that costs more than the loop).
      if (length > 64) this.#u8.write(text, ptr, length, 'latin1');
      else {
        const u8 = this.#u8;
        for (let i = 0; i < length; i++) u8[ptr + i] = text.charCodeAt(i);
      }
    }
    return this.writeU32(ptrPtr, ptr) && this.writeU32(sizePtr, length);
  }

  /**
   * copyOutString for a byte string (header values in byte mode): each
   * character is one byte. A character past 0xff (text a configuration put
   * in a header, never bytes from the wire) sends the whole value as UTF-8.
   */
  copyOutBytesString(text: string, ptrPtr: number, sizePtr: number): boolean {
    for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) > 0x7f) return this.copyOut(encodeByteString(text), ptrPtr, sizePtr);
    return this.copyOutString(text, ptrPtr, sizePtr);
  }

  /**
   * Hands bytes to the module the way proxy-wasm-cpp-host's copyToPointerSize
   * does: allocate inside the module, copy, then store pointer and size at the
   * two return addresses. Empty data is returned as (0, 0) without allocating.
   */
  copyOut(bytes: Uint8Array, ptrPtr: number, sizePtr: number): boolean {
    let ptr = 0;
    if (bytes.length > 0) {
      // The allocation may grow memory: write() looks at the buffer again.
      ptr = this.allocate(bytes.length) >>> 0;
      if (ptr === 0 || !this.write(ptr, bytes)) return false;
    }
    return this.writeU32(ptrPtr, ptr) && this.writeU32(sizePtr, bytes.length);
  }
}
