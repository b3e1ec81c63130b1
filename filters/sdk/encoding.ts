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

/**
 * UTF-8 text built in one buffer that is kept and reused (`reset()` per
 * line): no temporary strings and no encoding pass at the end. For output
 * made on every request, such as access-log lines (see `logUtf8`).
 */
export class Utf8Writer {
  data: ArrayBuffer;
  length: i32 = 0;

  constructor(capacity: i32 = 256) {
    this.data = new ArrayBuffer(capacity);
  }

  reset(): Utf8Writer {
    this.length = 0;
    return this;
  }

  get dataStart(): usize { return changetype<usize>(this.data); }

  /** Room for `n` more bytes. */
  reserve(n: i32): usize {
    const need = this.length + n;
    if (need > this.data.byteLength) {
      let cap = this.data.byteLength << 1;
      if (cap < need) cap = need;
      const next = new ArrayBuffer(cap);
      memory.copy(changetype<usize>(next), changetype<usize>(this.data), <usize>this.length);
      this.data = next;
    }
    return changetype<usize>(this.data) + <usize>this.length;
  }

  /** `s` as UTF-8 (String.UTF8.encode's bytes). */
  text(s: string): Utf8Writer {
    this.chars(changetype<usize>(s), s.length);
    return this;
  }

  /** `s` as a JSON string literal, quotes included (jsonString's text as UTF-8). */
  json(s: string): Utf8Writer {
    const len = s.length;
    let p = this.reserve(len * 3 + 2);
    store<u8>(p++, 34);
    this.length++;
    const base = changetype<usize>(s);
    let start = 0;
    for (let i = 0; i < len; i++) {
      const c = <i32>load<u16>(base + (<usize>i << 1));
      if (c == 34 || c == 92 || c < 32) {
        if (i > start) this.chars(base + (<usize>start << 1), i - start);
        p = this.reserve(6);
        store<u8>(p, 92);
        if (c == 34 || c == 92) {
          store<u8>(p + 1, <u8>c);
          this.length += 2;
        } else if (c == 10) {
          store<u8>(p + 1, 110);
          this.length += 2;
        } else {
          store<u8>(p + 1, 117); // \u00XX
          store<u8>(p + 2, 48);
          store<u8>(p + 3, 48);
          store<u8>(p + 4, hexDigit(<u8>(c >> 4)));
          store<u8>(p + 5, hexDigit(<u8>(c & 15)));
          this.length += 6;
        }
        start = i + 1;
      }
    }
    if (len > start) this.chars(base + (<usize>start << 1), len - start);
    p = this.reserve(1);
    store<u8>(p, 34);
    this.length++;
    return this;
  }

  /** Decimal, as i64#toString. */
  int(v: i64): Utf8Writer {
    if (v < 0) {
      store<u8>(this.reserve(1), 45);
      this.length++;
      return this.uint(<u64>(-v));
    }
    return this.uint(<u64>v);
  }

  /** Decimal, as u64#toString. */
  uint(v: u64): Utf8Writer {
    let digits = 1;
    for (let t = v; t >= 10; t /= 10) digits++;
    const p = this.reserve(digits);
    for (let i = digits - 1; i >= 0; i--) {
      store<u8>(p + <usize>i, <u8>(48 + v % 10));
      v /= 10;
    }
    this.length += digits;
    return this;
  }

  // UTF-16 units at `ptr` as UTF-8: ASCII byte by byte, other runs through
  // String.UTF8.encodeUnsafe (runs end at ASCII, so surrogate pairs stay whole).
  private chars(ptr: usize, n: i32): void {
    let p = this.reserve(n * 3);
    let i = 0;
    while (i < n) {
      const c = load<u16>(ptr + (<usize>i << 1));
      if (c < 0x80) {
        store<u8>(p++, <u8>c);
        i++;
        continue;
      }
      let j = i + 1;
      while (j < n && load<u16>(ptr + (<usize>j << 1)) >= 0x80) j++;
      p += String.UTF8.encodeUnsafe(ptr + (<usize>i << 1), j - i, p);
      i = j;
    }
    this.length = <i32>(p - changetype<usize>(this.data));
  }
}
