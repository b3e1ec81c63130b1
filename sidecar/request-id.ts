// x-request-id values: random (version 4) UUIDs, as Envoy generates them.
// crypto.randomUUID builds its string from twenty short concatenations
// (about 600 bytes of garbage per call, per the sampling heap profiler);
// here the hex digits go into one scratch buffer and come out as one string.

import { randomFillSync } from 'node:crypto';

const pool = Buffer.allocUnsafe(16 * 256);
let offset = pool.length;
const scratch = Buffer.allocUnsafe(36);
const HEX = Buffer.from('0123456789abcdef', 'latin1');

export function requestId(): string {
  if (offset === pool.length) {
    randomFillSync(pool);
    offset = 0;
  }
  let o = 0;
  for (let i = 0; i < 16; i++) {
    let b = pool[offset + i]!;
    if (i === 6) b = (b & 0x0f) | 0x40; // version 4
    else if (i === 8) b = (b & 0x3f) | 0x80; // RFC 9562 variant
    scratch[o++] = HEX[b >> 4]!;
    scratch[o++] = HEX[b & 15]!;
    if (i === 3 || i === 5 || i === 7 || i === 9) scratch[o++] = 45; // '-'
  }
  offset += 16;
  return scratch.toString('latin1', 0, 36);
}
