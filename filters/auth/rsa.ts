// RSASSA-PKCS1-v1_5 verification with SHA-256 (RFC 8017 §8.2.2), for RS256.
// Big integers are little-endian u32 limbs; exponentiation uses Montgomery
// multiplication (CIOS), so no division is ever needed. Everything that
// depends only on the key (R^2 mod n, -n^-1 mod 2^32) is computed once when
// the configuration is loaded.

import { sha256 } from '../sdk/index';

const MIN_BITS = 2048;
const MAX_BITS = 8192;

export class RsaKey {
  /** Limb count of n. */
  k: i32;
  byteLength: i32;
  n: StaticArray<u32>;
  r2: StaticArray<u32>;
  n0inv: u32;
  e: Uint8Array;

  constructor(nBytes: Uint8Array, eBytes: Uint8Array) {
    // A JWK's n may carry leading zero bytes; signatures are as long as n's value.
    nBytes = nBytes.subarray(nBytes.length - ((bitLength(nBytes) + 7) >> 3));
    const k = (nBytes.length + 3) >> 2;
    const n = fromBigEndian(nBytes, k);
    // -n^-1 mod 2^32 by Newton iteration (n is odd).
    const n0 = n[0];
    let x: u32 = n0;
    for (let i = 0; i < 5; i++) x *= 2 - n0 * x;
    this.byteLength = nBytes.length;
    this.k = k;
    this.n = n;
    this.e = eBytes;
    this.n0inv = -x;
    this.r2 = rSquared(n, k);
  }
}

/** Bits of a big-endian unsigned integer (leading zero bytes allowed). */
function bitLength(b: Uint8Array): i32 {
  let i = 0;
  while (i < b.length && b[i] == 0) i++;
  return i < b.length ? (b.length - i) * 8 - (clz<u32>(<u32>b[i]) - 24) : 0;
}

/**
 * Why a JWK's n/e cannot be used, or "" when the key is acceptable. The
 * exponent bounds are BoringSSL's (what Envoy verifies with): odd, at least
 * 3 (e = 1 would make every padded message its own signature) and at most
 * 33 bits.
 */
export function rsaKeyProblem(n: Uint8Array, e: Uint8Array): string {
  const bits = bitLength(n);
  if (bits < MIN_BITS) return 'modulus must be at least 2048 bits';
  if (bits > MAX_BITS) return 'modulus larger than 8192 bits';
  if ((n[n.length - 1] & 1) == 0) return 'modulus must be odd';
  const eBits = bitLength(e);
  if (eBits < 2 || eBits > 33 || (e[e.length - 1] & 1) == 0) return 'must be odd, 3 to 33 bits';
  return '';
}

function fromBigEndian(bytes: Uint8Array, k: i32): StaticArray<u32> {
  const out = new StaticArray<u32>(k);
  const len = bytes.length;
  for (let i = 0; i < len; i++) {
    const b = <u32>bytes[len - 1 - i];
    out[i >> 2] |= b << (<u32>(i & 3) * 8);
  }
  return out;
}

function compare(a: StaticArray<u32>, b: StaticArray<u32>, k: i32): i32 {
  for (let i = k - 1; i >= 0; i--) {
    if (a[i] != b[i]) return a[i] > b[i] ? 1 : -1;
  }
  return 0;
}

function subtractInPlace(a: StaticArray<u32>, b: StaticArray<u32>, k: i32): void {
  let borrow: i64 = 0;
  for (let i = 0; i < k; i++) {
    const d = <i64>a[i] - <i64>b[i] - borrow;
    a[i] = <u32>d;
    borrow = d < 0 ? 1 : 0;
  }
}

/** R^2 mod n with R = 2^(32k), by doubling 1 modulo n 64k times. */
function rSquared(n: StaticArray<u32>, k: i32): StaticArray<u32> {
  const r = new StaticArray<u32>(k);
  r[0] = 1;
  const steps = 64 * k;
  for (let s = 0; s < steps; s++) {
    let carry: u32 = 0;
    for (let i = 0; i < k; i++) {
      const v = r[i];
      r[i] = (v << 1) | carry;
      carry = v >> 31;
    }
    if (carry != 0 || compare(r, n, k) >= 0) subtractInPlace(r, n, k);
  }
  return r;
}

/**
 * out = a * b * R^-1 mod n (CIOS). `t` is scratch of k + 2 limbs. The limbs
 * are read through raw pointers: this loop is the whole cost of an RS256
 * verification, and checked StaticArray accessors made it ~20x slower.
 */
function montMul(a: StaticArray<u32>, b: StaticArray<u32>, key: RsaKey, t: StaticArray<u32>, out: StaticArray<u32>): void {
  const k = key.k;
  const pa = changetype<usize>(a);
  const pb = changetype<usize>(b);
  const pn = changetype<usize>(key.n);
  const pt = changetype<usize>(t);
  const n0inv = key.n0inv;
  memory.fill(pt, 0, <usize>(k + 2) << 2);
  for (let i = 0; i < k; i++) {
    const ai = <u64>load<u32>(pa + (<usize>i << 2));
    let c: u64 = 0;
    for (let j = 0; j < k; j++) {
      const pj = pt + (<usize>j << 2);
      const s = <u64>load<u32>(pj) + ai * <u64>load<u32>(pb + (<usize>j << 2)) + c;
      store<u32>(pj, <u32>s);
      c = s >> 32;
    }
    const pk = pt + (<usize>k << 2);
    let s = <u64>load<u32>(pk) + c;
    store<u32>(pk, <u32>s);
    store<u32>(pk + 4, <u32>(s >> 32));
    // Must wrap to 32 bits: written as one expression, asc would widen the
    // loads to u64 and keep the full product.
    const m32: u32 = load<u32>(pt) * n0inv;
    const m = <u64>m32;
    s = <u64>load<u32>(pt) + m * <u64>load<u32>(pn);
    c = s >> 32;
    for (let j = 1; j < k; j++) {
      const pj = pt + (<usize>j << 2);
      s = <u64>load<u32>(pj) + m * <u64>load<u32>(pn + (<usize>j << 2)) + c;
      store<u32>(pj - 4, <u32>s);
      c = s >> 32;
    }
    s = <u64>load<u32>(pk) + c;
    store<u32>(pk - 4, <u32>s);
    store<u32>(pk, load<u32>(pk + 4) + <u32>(s >> 32));
  }
  // t < 2n: one subtraction of n at most (linear, so the checked helpers do).
  if (load<u32>(pt + (<usize>k << 2)) != 0 || compare(t, key.n, k) >= 0) subtractInPlace(t, key.n, k);
  memory.copy(changetype<usize>(out), pt, <usize>k << 2);
}

/** s^e mod n, as big-endian bytes of the modulus' length. */
function modPow(key: RsaKey, s: StaticArray<u32>): Uint8Array {
  const k = key.k;
  const t = new StaticArray<u32>(k + 2);
  const base = new StaticArray<u32>(k);
  const acc = new StaticArray<u32>(k);
  const one = new StaticArray<u32>(k);
  one[0] = 1;
  montMul(s, key.r2, key, t, base); // base = s*R mod n
  montMul(one, key.r2, key, t, acc); // acc = R mod n (1 in Montgomery form)
  let started = false;
  for (let i = 0; i < key.e.length; i++) {
    for (let bit = 7; bit >= 0; bit--) {
      if (started) montMul(acc, acc, key, t, acc);
      if ((key.e[i] >> <u8>bit) & 1) {
        montMul(acc, base, key, t, acc);
        started = true;
      }
    }
  }
  montMul(acc, one, key, t, acc);
  const out = new Uint8Array(key.byteLength);
  for (let i = 0; i < key.byteLength; i++) out[key.byteLength - 1 - i] = <u8>(acc[i >> 2] >> (<u32>(i & 3) * 8));
  return out;
}

// DER DigestInfo prefix for SHA-256 (RFC 8017 §9.2 note 1).
const DIGEST_INFO: StaticArray<u8> = [0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20];

export function verifyRs256(key: RsaKey, message: Uint8Array, signature: Uint8Array): bool {
  if (signature.length != key.byteLength) return false;
  const s = fromBigEndian(signature, key.k);
  if (compare(s, key.n, key.k) >= 0) return false;
  const em = modPow(key, s);
  const digest = sha256(message);
  // EM = 0x00 || 0x01 || PS (0xff...) || 0x00 || DigestInfo || digest
  const tail = DIGEST_INFO.length + 32;
  const psEnd = em.length - tail - 1;
  if (psEnd < 10) return false;
  let diff: u32 = <u32>em[0] | (<u32>em[1] ^ 1) | <u32>em[psEnd];
  for (let i = 2; i < psEnd; i++) diff |= <u32>em[i] ^ 0xff;
  for (let i = 0; i < DIGEST_INFO.length; i++) diff |= <u32>(em[psEnd + 1 + i] ^ DIGEST_INFO[i]);
  for (let i = 0; i < 32; i++) diff |= <u32>(em[em.length - 32 + i] ^ digest[i]);
  return diff == 0;
}
