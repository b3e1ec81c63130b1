// Identifiers for requests and traces. A splitmix64 generator seeded from
// the host clock: no extra import (Envoy's WASI random_get would do, but not
// every host provides it), unique enough for ids, not for secrets.

import { nowNanos } from './host';

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
  // Written straight into the string: ids are made per request.
  const out = changetype<string>(__new(<usize>n << 2, idof<string>()));
  const p = changetype<usize>(out);
  for (let i = 0; i < n; i += 8) {
    const r = randomU64();
    for (let j = 0; j < 8 && i + j < n; j++) {
      let b = <u32>(<u8>(r >> (<u64>j * 8)));
      if (i + j == n - 1) b |= 1;
      const q = p + (<usize>(i + j) << 2);
      store<u16>(q, hexChar(b >> 4));
      store<u16>(q, hexChar(b & 15), 2);
    }
  }
  return out;
}

/** RFC 4122 version 4 UUID. */
export function uuid4(): string {
  // The same draws as randomHex(16) then the variant, written in one string.
  const a = randomU64();
  const b = randomU64() | (<u64>1 << 56); // randomHex: the last byte is odd
  const variant = load<u16>(changetype<usize>('89ab') + (<usize>(randomU64() & 3) << 1));
  const out = changetype<string>(__new(72, idof<string>()));
  let o = changetype<usize>(out);
  for (let i = 0; i < 32; i++) {
    if (i == 8 || i == 12 || i == 16 || i == 20) {
      store<u16>(o, 45);
      o += 2;
    }
    let c: u16;
    if (i == 12) c = 52;
    else if (i == 16) c = variant;
    else {
      const byte = <u32>(<u8>((i < 16 ? a : b) >> (<u64>((i & 15) >> 1) * 8)));
      c = hexChar(i & 1 ? byte & 15 : byte >> 4);
    }
    store<u16>(o, c);
    o += 2;
  }
  return out;
}

function hexChar(n: u32): u16 {
  return <u16>(n < 10 ? 48 + n : 87 + n);
}
