// ASCII-only string helpers. Header names, methods and config keys are ASCII;
// String#toLowerCase and parseFloat would pull kilobytes of Unicode and
// strtod tables into every module.

export function asciiLower(s: string): string {
  let i = 0;
  for (; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 65 && c <= 90) break;
  }
  if (i == s.length) return s;
  let out = s.substring(0, i);
  for (; i < s.length; i++) {
    const c = s.charCodeAt(i);
    out += charString(c >= 65 && c <= 90 ? c + 32 : c);
  }
  return out;
}

/** Decimal integer (optional '-'), or i64.MIN_VALUE when `s` is not one. */
export function parseDecimal(s: string): i64 {
  if (s.length == 0 || s.length > 19) return i64.MIN_VALUE;
  let i = 0;
  let neg = false;
  if (s.charCodeAt(0) == 45) { neg = true; i = 1; if (s.length == 1) return i64.MIN_VALUE; }
  let n: i64 = 0;
  for (; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 48 || c > 57) return i64.MIN_VALUE;
    n = n * 10 + <i64>(c - 48);
  }
  return neg ? -n : n;
}

/** The string of one UTF-16 unit (String.fromCharCode's, without its optional-argument wrapper). */
export function charString(c: i32): string {
  const out = changetype<string>(__new(2, idof<string>()));
  store<u16>(changetype<usize>(out), <u16>c);
  return out;
}

/**
 * Decimal text of `n`, the same as i64#toString. The standard library's
 * number formatting would bring its radix handling (code, a digit table and
 * error messages that stay in the module's data) into every module.
 */
export function decimal(n: i64): string {
  let v = n < 0 ? <u64>-n : <u64>n;
  const sign = n < 0 ? 1 : 0;
  let len = sign + 1;
  for (let t = v; t >= 10; t /= 10) len++;
  const out = changetype<string>(__new(<usize>len << 1, idof<string>()));
  const p = changetype<usize>(out);
  if (sign) store<u16>(p, 45);
  for (let i = len - 1; i >= sign; i--) {
    store<u16>(p + (<usize>i << 1), <u16>(48 + v % 10));
    v /= 10;
  }
  return out;
}

/** Replaces every occurrence of one character. */
export function replaceChar(s: string, from: i32, to: i32): string {
  if (s.indexOf(charString(from)) < 0) return s;
  let out = '';
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    out += charString(c == from ? to : c);
  }
  return out;
}
