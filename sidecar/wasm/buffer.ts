// Buffers a filter reads and writes (bodies, configuration, http-call
// responses) with Envoy's set semantics: start 0 and size 0 prepends, start 0
// and size >= length replaces everything, start >= length appends, anything
// else (a splice in the middle) is BAD_ARGUMENT.

import { WasmResult, type WasmResultCode } from './abi.ts';

export class HostBuffer {
  private data: Uint8Array;

  constructor(
    initial: Uint8Array = new Uint8Array(0),
    /** Configuration and http-call response buffers cannot be written (BAD_ARGUMENT), as in proxy-wasm-cpp-host. */
    readonly writable = true,
  ) {
    this.data = initial;
  }

  get length(): number {
    return this.data.length;
  }

  bytes(): Uint8Array {
    return this.data;
  }

  slice(start: number, length: number): Uint8Array {
    return this.data.subarray(start, start + length);
  }

  append(chunk: Uint8Array): void {
    if (chunk.length === 0) return;
    // Nothing here changes bytes in place (every write makes a new array), so a first chunk is kept as given.
    this.data = this.data.length === 0 ? chunk : concat(this.data, chunk);
  }

  replaceAll(data: Uint8Array): void {
    this.data = data;
  }

  clear(): void {
    this.data = new Uint8Array(0);
  }

  copyFrom(start: number, length: number, value: Uint8Array): WasmResultCode {
    // cpp-host's BufferBase::copyFrom and Envoy's const buffers refuse it with BAD_ARGUMENT.
    if (!this.writable) return WasmResult.BadArgument;
    if (start === 0) {
      if (length === 0) {
        this.data = concat(value, this.data);
        return WasmResult.Ok;
      }
      if (length >= this.data.length) {
        this.data = value.slice();
        return WasmResult.Ok;
      }
      return WasmResult.BadArgument;
    }
    if (start >= this.data.length) {
      this.data = concat(this.data, value);
      return WasmResult.Ok;
    }
    return WasmResult.BadArgument;
  }
}

export function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}
