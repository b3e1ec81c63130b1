// Base64 (standard and URL-safe, padding optional), hex, and UTF-8 helpers.

/** Decodes base64 or base64url; null on any invalid character or length. */
export function base64Decode(s: string): Uint8Array | null {
  let len = s.length;
  while (len > 0 && s.charCodeAt(len - 1) == 61) len--;
  if (len % 4 == 1) return null;
  const out = new Uint8Array((len * 3) >> 2);
  let acc: u32 = 0;
  let bits = 0;
  let o = 0;
  for (let i = 0; i < len; i++) {
    const v = sextet(s.charCodeAt(i));
    if (v < 0) return null;
    acc = (acc << 6) | <u32>v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = <u8>(acc >> bits);
    }
  }
  return out;
}

function sextet(c: i32): i32 {
  if (c >= 65 && c <= 90) return c - 65;
  if (c >= 97 && c <= 122) return c - 71;
  if (c >= 48 && c <= 57) return c + 4;
  if (c == 43 || c == 45) return 62;
  if (c == 47 || c == 95) return 63;
  return -1;
}

/** Lowercase hex; one allocation for the text (ids are made per request). */
export function toHex(bytes: Uint8Array): string {
  const out = new Uint8Array(bytes.length * 2);
  for (let i = 0; i < bytes.length; i++) {
    out[i * 2] = hexDigit(bytes[i] >> 4);
    out[i * 2 + 1] = hexDigit(bytes[i] & 15);
  }
  return String.UTF8.decodeUnsafe(out.dataStart, <usize>out.length);
}

function hexDigit(n: u8): u8 {
  return n < 10 ? 48 + n : 87 + n;
}

export function utf8(s: string): Uint8Array {
  return Uint8Array.wrap(String.UTF8.encode(s));
}

export function fromUtf8(b: Uint8Array): string {
  return String.UTF8.decodeUnsafe(b.dataStart, <usize>b.length);
}

/** Constant-time comparison, so a secret's prefix cannot be timed. */
export function bytesEqual(a: Uint8Array, b: Uint8Array): bool {
  if (a.length != b.length) return false;
  let diff: u32 = 0;
  for (let i = 0; i < a.length; i++) diff |= <u32>(a[i] ^ b[i]);
  return diff == 0;
}
