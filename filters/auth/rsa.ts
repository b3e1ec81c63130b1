// RSASSA-PKCS1-v1_5 verification with SHA-256 (RFC 8017 §8.2.2), for RS256,
// and the modular arithmetic ES256 (p256.ts) shares with it.
// Big integers are little-endian u32 limbs; exponentiation uses Montgomery
// multiplication (CIOS), so no division is ever needed. Everything that
// depends only on the modulus (R^2 mod n, -n^-1 mod 2^32) is computed once,
// when the configuration is loaded (RSA) or the module starts (P-256).

import { sha256 } from '../sdk/index';

const MIN_BITS = 2048;
const MAX_BITS = 8192;

/** A modulus with its Montgomery constants (R = 2^(32k)); odd, as RSA and P-256's p and n are. */
export class Modulus {
  /** Limb count. */
  k: i32;
  n: StaticArray<u32>;
  n0inv: u32;
  r2: StaticArray<u32>;
  /** 1, for leaving the Montgomery form. */
  one: StaticArray<u32>;

  constructor(n: StaticArray<u32>) {
    const k = n.length;
    // -n^-1 mod 2^32 by Newton iteration (n is odd).
    const n0 = n[0];
    let x: u32 = n0;
    for (let i = 0; i < 5; i++) x *= 2 - n0 * x;
    this.k = k;
    this.n = n;
    this.n0inv = -x;
    this.r2 = rSquared(n, k);
    const one = new StaticArray<u32>(k);
    one[0] = 1;
    this.one = one;
  }
}

export class RsaKey {
  m: Modulus;
  byteLength: i32;
  e: StaticArray<u32>;

  constructor(nBytes: Uint8Array, eBytes: Uint8Array) {
    // A JWK's n may carry leading zero bytes; signatures are as long as n's value.
    nBytes = nBytes.subarray(nBytes.length - ((bitLength(nBytes) + 7) >> 3));
    this.byteLength = nBytes.length;
    this.m = new Modulus(fromBigEndian(nBytes, (nBytes.length + 3) >> 2));
    this.e = fromBigEndian(eBytes, (eBytes.length + 3) >> 2);
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

export function fromBigEndian(bytes: Uint8Array, k: i32): StaticArray<u32> {
  const out = new StaticArray<u32>(k);
  const len = bytes.length;
  for (let i = 0; i < len; i++) {
    const b = <u32>bytes[len - 1 - i];
    out[i >> 2] |= b << (<u32>(i & 3) * 8);
  }
  return out;
}

// The helpers below take raw pointers to k limbs, so P-256 (p256.ts) can
// name field elements inside one scratch array.

export function compare(a: usize, b: usize, k: i32): i32 {
  for (let i = k - 1; i >= 0; i--) {
    const x = load<u32>(a + (<usize>i << 2));
    const y = load<u32>(b + (<usize>i << 2));
    if (x != y) return x > y ? 1 : -1;
  }
  return 0;
}

/** out = a - b mod 2^(32k) (out may be a or b); returns the borrow. */
export function subtract(out: usize, a: usize, b: usize, k: i32): u32 {
  let borrow: u64 = 0;
  for (let i = 0; i < k; i++) {
    const o = <usize>i << 2;
    const d = <u64>load<u32>(a + o) - <u64>load<u32>(b + o) - borrow;
    store<u32>(out + o, <u32>d);
    borrow = d >> 63;
  }
  return <u32>borrow;
}

/** out = a + b mod 2^(32k) (out may be a or b); returns the carry. */
export function add(out: usize, a: usize, b: usize, k: i32): u32 {
  let carry: u64 = 0;
  for (let i = 0; i < k; i++) {
    const o = <usize>i << 2;
    const s = <u64>load<u32>(a + o) + <u64>load<u32>(b + o) + carry;
    store<u32>(out + o, <u32>s);
    carry = s >> 32;
  }
  return <u32>carry;
}

/** R^2 mod n with R = 2^(32k), by doubling 1 modulo n 64k times. */
function rSquared(n: StaticArray<u32>, k: i32): StaticArray<u32> {
  const r = new StaticArray<u32>(k);
  const pr = changetype<usize>(r);
  const pn = changetype<usize>(n);
  r[0] = 1;
  for (let s = 0; s < 64 * k; s++) {
    if (add(pr, pr, pr, k) != 0 || compare(pr, pn, k) >= 0) subtract(pr, pr, pn, k);
  }
  return r;
}

// Montgomery multiplication's scratch: k + 2 limbs of the largest modulus.
const scratch = new StaticArray<u32>((MAX_BITS >> 5) + 2);

/**
 * out = a * b * R^-1 mod n (CIOS); out may be a or b. Needs a * b < n * R
 * (a < R and b < n will do). The limbs are read through raw pointers: this
 * loop is the whole cost of an RS256 or ES256 verification, and checked
 * StaticArray accessors made it ~20x slower.
 */
export function montMul(out: usize, pa: usize, pb: usize, m: Modulus): void {
  const k = m.k;
  const pn = changetype<usize>(m.n);
  const pt = changetype<usize>(scratch);
  const n0inv = m.n0inv;
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
    const mm = <u64>m32;
    s = <u64>load<u32>(pt) + mm * <u64>load<u32>(pn);
    c = s >> 32;
    for (let j = 1; j < k; j++) {
      const pj = pt + (<usize>j << 2);
      s = <u64>load<u32>(pj) + mm * <u64>load<u32>(pn + (<usize>j << 2)) + c;
      store<u32>(pj - 4, <u32>s);
      c = s >> 32;
    }
    s = <u64>load<u32>(pk) + c;
    store<u32>(pk - 4, <u32>s);
    store<u32>(pk, load<u32>(pk + 4) + <u32>(s >> 32));
  }
  // t < 2n: one subtraction of n at most.
  if (load<u32>(pt + (<usize>k << 2)) != 0 || compare(pt, pn, k) >= 0) subtract(pt, pt, pn, k);
  memory.copy(out, pt, <usize>k << 2);
}

/** out = a^e mod n, a and out in Montgomery form (out may be a); e is little-endian limbs. */
export function montPow(out: usize, a: usize, e: StaticArray<u32>, m: Modulus): void {
  const acc = new StaticArray<u32>(m.k);
  const pacc = changetype<usize>(acc);
  montMul(pacc, changetype<usize>(m.one), changetype<usize>(m.r2), m); // 1 in Montgomery form
  let started = false;
  for (let i = (e.length << 5) - 1; i >= 0; i--) {
    if (started) montMul(pacc, pacc, pacc, m);
    if ((e[i >> 5] >> <u32>(i & 31)) & 1) {
      montMul(pacc, pacc, a, m);
      started = true;
    }
  }
  memory.copy(out, pacc, <usize>m.k << 2);
}

// DER DigestInfo prefix for SHA-256 (RFC 8017 §9.2 note 1).
const DIGEST_INFO: StaticArray<u8> = [0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20];

export function verifyRs256(key: RsaKey, message: Uint8Array, signature: Uint8Array): bool {
  const m = key.m;
  const k = m.k;
  if (signature.length != key.byteLength) return false;
  const s = fromBigEndian(signature, k);
  const ps = changetype<usize>(s);
  if (compare(ps, changetype<usize>(m.n), k) >= 0) return false;
  // s^e mod n: into Montgomery form, exponentiate, and out again.
  montMul(ps, ps, changetype<usize>(m.r2), m);
  montPow(ps, ps, key.e, m);
  montMul(ps, ps, changetype<usize>(m.one), m);
  const em = new Uint8Array(key.byteLength);
  for (let i = 0; i < key.byteLength; i++) em[key.byteLength - 1 - i] = <u8>(s[i >> 2] >> (<u32>(i & 3) * 8));
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
