// Identifiers for requests and traces. A splitmix64 generator seeded from
// the host clock: no extra import (Envoy's WASI random_get would do, but not
// every host provides it), unique enough for ids, not for secrets.

import { nowNanos } from './host';
import { toHex } from './encoding';

let state: u64 = 0;

export function randomU64(): u64 {
  if (state == 0) state = nowNanos() ^ 0x9e3779b97f4a7c15;
  state += 0x9e3779b97f4a7c15;
  let z = state;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9;
  z = (z ^ (z >> 27)) * 0x94d049bb133111eb;
  return z ^ (z >> 31);
}

/** `n` random bytes as lowercase hex, never all zeros (W3C forbids zero ids). */
export function randomHex(n: i32): string {
  const bytes = new Uint8Array(n);
  for (let i = 0; i < n; i += 8) {
    const r = randomU64();
    for (let j = 0; j < 8 && i + j < n; j++) bytes[i + j] = <u8>(r >> (<u64>j * 8));
  }
  bytes[n - 1] |= 1;
  return toHex(bytes);
}

/** RFC 4122 version 4 UUID. */
export function uuid4(): string {
  const h = randomHex(16);
  const variant = '89ab'.charAt(<i32>(randomU64() & 3));
  return h.substr(0, 8) + '-' + h.substr(8, 4) + '-4' + h.substr(13, 3) + '-' + variant + h.substr(17, 3) + '-' + h.substr(20, 12);
}
