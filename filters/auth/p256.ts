// ES256 (RFC 7518 §3.4): ECDSA over P-256 with SHA-256, verification only
// (SEC 1 v2 §4.1.4). Field elements and scalars are 8 little-endian u32 limbs
// and every multiplication is rsa.ts's Montgomery multiply, mod p for the
// curve and mod n for the scalars; inverses are a^(m-2) (Fermat). Points are
// Jacobian (X, Y, Z) in Montgomery form, Z = 0 the point at infinity.
// Nothing here is secret (public key, signature, message), so the code is
// not constant-time.

import { sha256 } from '../sdk/index';
import { add, compare, fromBigEndian, Modulus, montMul, montPow, subtract } from './rsa';

// Curve constants (SEC 2 v2 §2.4.2), least significant limb first.
const P: StaticArray<u32> = [0xffffffff, 0xffffffff, 0xffffffff, 0, 0, 0, 1, 0xffffffff];
const N: StaticArray<u32> = [0xfc632551, 0xf3b9cac2, 0xa7179e84, 0xbce6faad, 0xffffffff, 0xffffffff, 0, 0xffffffff];
const B: StaticArray<u32> = [0x27d2604b, 0x3bce3c3e, 0xcc53b0f6, 0x651d06b0, 0x769886bc, 0xb3ebbd55, 0xaa3a93e7, 0x5ac635d8];
const GX: StaticArray<u32> = [0xd898c296, 0xf4a13945, 0x2deb33a0, 0x77037d81, 0x63a440f2, 0xf8bce6e5, 0xe12c4247, 0x6b17d1f2];
const GY: StaticArray<u32> = [0x37bf51f5, 0xcbb64068, 0x6b315ece, 0x2bce3357, 0x7c0f9e16, 0x8ee7eb4a, 0xfe1a7f9b, 0x4fe342e2];

const FP = new Modulus(P);
const FN = new Modulus(N);
const pp = changetype<usize>(P);
const pn = changetype<usize>(N);

/** m - 2, the exponent of an inverse (both moduli end in a limb > 2). */
function minusTwo(m: StaticArray<u32>): StaticArray<u32> {
  const e = new StaticArray<u32>(8);
  memory.copy(changetype<usize>(e), changetype<usize>(m), 32);
  e[0] -= 2;
  return e;
}
const P_2 = minusTwo(P);
const N_2 = minusTwo(N);

// Scratch field elements, 32 bytes each: T0-T5 are the point formulas'
// temporaries, T8-T10 a result (X, Y, Z) before it is copied out, then the
// constants in Montgomery form and the points of one verification.
const work = new StaticArray<u32>(8 * 24);
const w = changetype<usize>(work);
const T0 = w;
const T1 = w + 32;
const T2 = w + 64;
const T3 = w + 96;
const T4 = w + 128;
const T5 = w + 160;
const T8 = w + 256;
const T9 = w + 288;
const T10 = w + 320;
const ONE = w + 352; // R mod p
const BM = w + 384; // b
const G = w + 416; // generator, X Y Z
const GQ = w + 512; // G + Q
const ACC = w + 608; // u1 G + u2 Q as it is summed
const U2 = w + 704; // the scalar u2 (u1 stays in the digest's array)

function fmul(out: usize, a: usize, b: usize): void {
  montMul(out, a, b, FP);
}

function fadd(out: usize, a: usize, b: usize): void {
  if (add(out, a, b, 8) != 0 || compare(out, pp, 8) >= 0) subtract(out, out, pp, 8);
}

function fsub(out: usize, a: usize, b: usize): void {
  if (subtract(out, a, b, 8) != 0) add(out, out, pp, 8);
}

function isZero(a: usize): bool {
  let x: u32 = 0;
  for (let i = 0; i < 32; i += 4) x |= load<u32>(a + i);
  return x == 0;
}

fmul(ONE, changetype<usize>(FP.one), changetype<usize>(FP.r2));
fmul(BM, changetype<usize>(B), changetype<usize>(FP.r2));
fmul(G, changetype<usize>(GX), changetype<usize>(FP.r2));
fmul(G + 32, changetype<usize>(GY), changetype<usize>(FP.r2));
memory.copy(G + 64, ONE, 32);

/** out = 2a (dbl-2001-b, a = -3); out may be a. */
function double(out: usize, a: usize): void {
  fmul(T0, a + 64, a + 64); // delta = Z^2
  fmul(T1, a + 32, a + 32); // gamma = Y^2
  fmul(T2, a, T1); // beta = X gamma
  fsub(T3, a, T0);
  fadd(T4, a, T0);
  fmul(T3, T3, T4);
  fadd(T4, T3, T3);
  fadd(T3, T4, T3); // alpha = 3 (X - delta)(X + delta)
  fadd(T10, a + 32, a + 64);
  fmul(T10, T10, T10);
  fsub(T10, T10, T1);
  fsub(T10, T10, T0); // Z3 = (Y + Z)^2 - gamma - delta
  fadd(T2, T2, T2);
  fadd(T2, T2, T2); // 4 beta
  fmul(T8, T3, T3);
  fsub(T8, T8, T2);
  fsub(T8, T8, T2); // X3 = alpha^2 - 8 beta
  fsub(T9, T2, T8);
  fmul(T9, T9, T3);
  fmul(T1, T1, T1);
  fadd(T1, T1, T1);
  fadd(T1, T1, T1);
  fadd(T1, T1, T1);
  fsub(T9, T9, T1); // Y3 = alpha (4 beta - X3) - 8 gamma^2
  memory.copy(out, T8, 96);
}

/** out = a + b (add-1998-cmo-2), also when a or b is infinity, a = b or a = -b; out may be a. */
function addPoints(out: usize, a: usize, b: usize): void {
  if (isZero(a + 64)) {
    memory.copy(out, b, 96);
    return;
  }
  if (isZero(b + 64)) {
    memory.copy(out, a, 96);
    return;
  }
  fmul(T0, a + 64, a + 64); // Z1Z1
  fmul(T1, b + 64, b + 64); // Z2Z2
  fmul(T2, a, T1); // U1
  fmul(T3, b, T0); // U2
  fmul(T4, a + 32, b + 64);
  fmul(T4, T4, T1); // S1 = Y1 Z2 Z2Z2
  fmul(T5, b + 32, a + 64);
  fmul(T5, T5, T0); // S2 = Y2 Z1 Z1Z1
  fsub(T3, T3, T2); // H = U2 - U1
  fsub(T5, T5, T4); // r = S2 - S1
  if (isZero(T3)) {
    // Same x: the same point (double it) or its negation (infinity).
    if (isZero(T5)) double(out, a);
    else memory.fill(out + 64, 0, 32);
    return;
  }
  fmul(T10, a + 64, b + 64);
  fmul(T10, T10, T3); // Z3 = Z1 Z2 H
  fmul(T0, T3, T3); // HH
  fmul(T1, T3, T0); // HHH
  fmul(T2, T2, T0); // V = U1 HH
  fmul(T8, T5, T5);
  fsub(T8, T8, T1);
  fsub(T8, T8, T2);
  fsub(T8, T8, T2); // X3 = r^2 - HHH - 2V
  fsub(T9, T2, T8);
  fmul(T9, T9, T5);
  fmul(T4, T4, T1);
  fsub(T9, T9, T4); // Y3 = r (V - X3) - S1 HHH
  memory.copy(out, T8, 96);
}

/**
 * The public key (x, y) as the Jacobian point the verifier uses, or null when
 * a coordinate is not below p or the point is not on the curve
 * y^2 = x^3 - 3x + b (an invalid-curve key). The curve's order is prime, so a
 * point on it is in the group that G generates.
 */
export function p256PublicKey(x: Uint8Array, y: Uint8Array): StaticArray<u32> | null {
  const q = new StaticArray<u32>(24);
  const pq = changetype<usize>(q);
  const xs = fromBigEndian(x, 8);
  const ys = fromBigEndian(y, 8);
  const px = changetype<usize>(xs);
  const py = changetype<usize>(ys);
  if (compare(px, pp, 8) >= 0 || compare(py, pp, 8) >= 0) return null;
  const r2 = changetype<usize>(FP.r2);
  fmul(pq, px, r2);
  fmul(pq + 32, py, r2);
  memory.copy(pq + 64, ONE, 32);
  fmul(T0, pq, pq);
  fmul(T0, T0, pq);
  fsub(T0, T0, pq);
  fsub(T0, T0, pq);
  fsub(T0, T0, pq);
  fadd(T0, T0, BM); // x^3 - 3x + b
  fmul(T1, pq + 32, pq + 32);
  return compare(T0, T1, 8) == 0 ? q : null;
}

function bit(a: usize, i: i32): u32 {
  return (load<u32>(a + (<usize>(i >> 5) << 2)) >> <u32>(i & 31)) & 1;
}

/** ECDSA verification of a JWS signature R || S (32 bytes each, RFC 7518 §3.4) with the key p256PublicKey made. */
export function verifyEs256(q: StaticArray<u32>, message: Uint8Array, signature: Uint8Array): bool {
  if (signature.length != 64) return false;
  const pq = changetype<usize>(q);
  const rs = fromBigEndian(signature.subarray(0, 32), 8);
  const ss = fromBigEndian(signature.subarray(32, 64), 8);
  const r = changetype<usize>(rs);
  const s = changetype<usize>(ss);
  // r and s in [1, n - 1]
  if (isZero(r) || isZero(s) || compare(r, pn, 8) >= 0 || compare(s, pn, 8) >= 0) return false;
  // SHA-256 is as long as n: the digest is e without truncation. e may
  // exceed n; Montgomery multiplication by a factor below n reduces it.
  const es = fromBigEndian(sha256(message), 8);
  const e = changetype<usize>(es);
  // w = s^-1 (in Montgomery form), u1 = e w, u2 = r w (plain).
  montMul(s, s, changetype<usize>(FN.r2), FN);
  montPow(s, s, N_2, FN);
  montMul(e, e, s, FN);
  montMul(U2, r, s, FN);
  // u1 G + u2 Q, both at once (Shamir's trick): one doubling per bit.
  memory.copy(GQ, G, 96);
  addPoints(GQ, GQ, pq);
  memory.fill(ACC, 0, 96);
  for (let i = 255; i >= 0; i--) {
    double(ACC, ACC);
    const b1 = bit(e, i);
    const b2 = bit(U2, i);
    if ((b1 | b2) != 0) addPoints(ACC, ACC, b2 == 0 ? G : b1 == 0 ? pq : GQ);
  }
  if (isZero(ACC + 64)) return false;
  // The affine x = X / Z^2, reduced mod n, must be r.
  montPow(T5, ACC + 64, P_2, FP);
  fmul(T5, T5, T5);
  fmul(T5, T5, ACC);
  fmul(T5, T5, changetype<usize>(FP.one));
  if (compare(T5, pn, 8) >= 0) subtract(T5, T5, pn, 8);
  return compare(T5, r, 8) == 0;
}
