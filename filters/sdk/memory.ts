// Memory the host writes into, and how host-returned buffers come back.
// The host allocates through `malloc` (Envoy looks for `malloc`, then
// `proxy_on_memory_allocate`); those blocks are outside the GC and freed here
// once copied into managed strings/bytes.

import { proxy_log } from './imports';
import { decimal } from './ascii';

// Scratch slots for host out-parameters: (data pointer, size). Calls are never
// re-entrant from the host's side, so one pair is enough.
export const RETURN_DATA: usize = memory.data(8);
export const RETURN_SIZE: usize = memory.data(8);

export function malloc(size: usize): usize {
  return heap.alloc(size);
}

export function proxy_on_memory_allocate(size: usize): usize {
  return heap.alloc(size);
}

/** Copies the host-returned block into a string and frees it. */
export function takeString(): string {
  const ptr = load<usize>(RETURN_DATA);
  const size = load<usize>(RETURN_SIZE);
  if (ptr == 0) return '';
  const s = String.UTF8.decodeUnsafe(ptr, size);
  heap.free(ptr);
  return s;
}

/** Copies the host-returned block into bytes and frees it. */
export function takeBytes(): Uint8Array {
  const ptr = load<usize>(RETURN_DATA);
  const size = load<usize>(RETURN_SIZE);
  const out = new Uint8Array(<i32>size);
  if (ptr == 0) return out;
  memory.copy(out.dataStart, ptr, size);
  heap.free(ptr);
  return out;
}

export function clearReturn(): void {
  store<usize>(RETURN_DATA, 0);
  store<usize>(RETURN_SIZE, 0);
}

/**
 * Replaces AssemblyScript's `env.abort` import (build flag `--use abort=`):
 * the reason goes to the proxy log at critical level, then the module traps,
 * which the host turns into its failure policy.
 */
export function abortHandler(message: string | null, fileName: string | null, line: u32, column: u32): void {
  let text = 'wasm abort: ';
  if (message !== null) text += message;
  if (fileName !== null) text += ' at ' + fileName + ':' + decimal(line) + ':' + decimal(column);
  const buf = String.UTF8.encode(text);
  proxy_log(5, changetype<usize>(buf), <usize>buf.byteLength);
  unreachable();
}
