// JWT (RFC 7519) verification for HS256, RS256 and ES256 against the configured
// JWKS, then the registered claims: exp, nbf (with clock skew), iss, aud.
// `alg: none` and any algorithm not configured are refused, and a key is
// only used with the algorithm of its type (no HS256-with-an-RSA-key).
// Envoy's jwt_authn does the same (google/jwt_verify_lib src/verify.cc:
// a JWK is skipped unless its kid and alg match the token's).

import { base64Decode, bytesEqual, decimal, fromUtf8, hmacSha256, JsonKind, JsonResult, JsonValue, parseJson, utf8 } from '../sdk/index';
import { AuthConfig, Jwk } from './config';
import { verifyEs256 } from './p256';
import { verifyRs256 } from './rsa';

/** The verified claims, or the reason the token is refused (the JSON parser's result type). */
function fail(reason: string): JsonResult {
  return new JsonResult(null, reason);
}

/** A string member's value; '' when it is absent or not a string. */
function stringMember(obj: JsonValue, key: string): string {
  const v = obj.get(key);
  return v !== null && v.kind == JsonKind.String ? v.str : '';
}

function decodeJsonObject(part: string): JsonValue | null {
  const bytes = base64Decode(part);
  if (bytes === null) return null;
  const parsed = parseJson(fromUtf8(bytes));
  if (parsed.value === null || parsed.value!.kind != JsonKind.Object) return null;
  return parsed.value;
}

// The caller pairs a token only with keys of its alg (Jwk.alg, config.ts).
function verifyWith(key: Jwk, signed: Uint8Array, signature: Uint8Array): bool {
  const secret = key.hmac;
  if (secret !== null) return bytesEqual(hmacSha256(secret, signed), signature);
  const rsa = key.rsa;
  if (rsa !== null) return verifyRs256(rsa, signed, signature);
  return verifyEs256(key.ec!, signed, signature);
}

// Tokens whose signature verified, so a client reusing its token costs one
// string compare instead of an RSA exponentiation or an ECDSA verification.
// Only the signature result is cached; the time and audience checks run on
// every request. Cleared when the configuration (and so the key set) changes.
const CACHE_SIZE = 32;
const MAX_CACHED_TOKEN = 4096;
const verifiedTokens = new Array<string>(CACHE_SIZE);
let verifiedNext = 0;
let verifiedFor: AuthConfig | null = null;

function signatureCached(token: string, config: AuthConfig): bool {
  if (verifiedFor !== config) {
    for (let i = 0; i < CACHE_SIZE; i++) verifiedTokens[i] = '';
    verifiedFor = config;
    return false;
  }
  return verifiedTokens.includes(token);
}

export function verifyJwt(token: string, config: AuthConfig, nowSeconds: i64): JsonResult {
  const dot1 = token.indexOf('.');
  const dot2 = dot1 < 0 ? -1 : token.indexOf('.', dot1 + 1);
  // JWS segments are base64url (RFC 7515 §2), as Envoy decodes them: a '+' or
  // '/' of plain base64 would let one token be written several ways.
  if (dot1 <= 0 || dot2 < 0 || token.indexOf('.', dot2 + 1) >= 0 || token.indexOf('+') >= 0 || token.indexOf('/') >= 0) return fail('malformed token');
  const header = decodeJsonObject(token.substring(0, dot1));
  if (header === null) return fail('malformed token header');
  const alg = stringMember(header, 'alg');
  // A client's alg or kid in an error is cut to 64 characters: the error goes back in a header.
  if (alg != 'HS256' && alg != 'RS256' && alg != 'ES256') return fail('unsupported alg "' + alg.substring(0, 64) + '"');
  const claims = decodeJsonObject(token.substring(dot1 + 1, dot2));
  if (claims === null) return fail('malformed token payload');
  const signature = base64Decode(token.substring(dot2 + 1, token.length));
  if (signature === null || signature.length == 0) return fail('malformed signature');

  const cached = signatureCached(token, config);
  const kid = stringMember(header, 'kid');
  const signed = utf8(token.substring(0, dot2));
  let candidates = 0;
  let verified = false;
  for (let i = 0; i < config.keys.length && !verified; i++) {
    const key = config.keys[i];
    if (kid.length > 0 && key.kid != kid) continue;
    if (key.alg != alg) continue;
    candidates++;
    verified = cached || verifyWith(key, signed, signature);
  }
  if (candidates == 0) return fail(kid.length > 0 ? 'unknown key id "' + kid.substring(0, 64) + '"' : 'no key for ' + alg);
  if (!verified) return fail('bad signature');
  if (!cached && token.length <= MAX_CACHED_TOKEN) {
    verifiedTokens[verifiedNext] = token;
    verifiedNext = (verifiedNext + 1) % CACHE_SIZE;
  }

  const skew = config.clockSkewSeconds;
  const exp = claims.get('exp');
  if (exp !== null) {
    if (exp.kind != JsonKind.Number) return fail('exp is not a number');
    if (<f64>nowSeconds > exp.num + <f64>skew) return fail('token expired');
  } else if (config.requireExpiry) {
    return fail('token has no exp');
  }
  const nbf = claims.get('nbf');
  if (nbf !== null) {
    if (nbf.kind != JsonKind.Number) return fail('nbf is not a number');
    if (<f64>nowSeconds + <f64>skew < nbf.num) return fail('token not yet valid');
  }
  if (config.issuer.length > 0 && stringMember(claims, 'iss') != config.issuer) return fail('issuer not accepted');
  if (config.audiences.length > 0 && !audienceMatches(claims.get('aud'), config.audiences)) return fail('audience not accepted');
  return new JsonResult(claims, '');
}

function audienceMatches(aud: JsonValue | null, accepted: string[]): bool {
  if (aud === null) return false;
  if (aud.kind == JsonKind.String) return accepted.includes(aud.str);
  if (aud.kind != JsonKind.Array) return false;
  for (let i = 0; i < aud.items.length; i++) {
    const a = aud.items[i];
    if (a.kind == JsonKind.String && accepted.includes(a.str)) return true;
  }
  return false;
}

/** A claim as a header value: strings as is, integers, booleans, arrays of those joined by ','. */
export function claimText(v: JsonValue): string | null {
  if (v.kind == JsonKind.String) return headerSafe(v.str) ? v.str : null;
  if (v.kind == JsonKind.Bool) return v.bool ? 'true' : 'false';
  if (v.kind == JsonKind.Number) {
    if (v.num != Math.floor(v.num) || Math.abs(v.num) > 9007199254740991) return null;
    return decimal(<i64>v.num);
  }
  if (v.kind == JsonKind.Array) {
    const parts = new Array<string>();
    for (let i = 0; i < v.items.length; i++) {
      const t = claimText(v.items[i]);
      if (t === null || v.items[i].kind == JsonKind.Array) return null;
      parts.push(t);
    }
    return parts.join(',');
  }
  return null;
}

// A claim must not smuggle a second header line into the request, and must
// be a field value at all (RFC 9110 §5.5: no controls but tab, no DEL): the
// upstream connection refuses anything else (nghttp2 does too, for Envoy).
function headerSafe(s: string): bool {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if ((c < 32 && c != 9) || c == 127) return false;
  }
  return true;
}
