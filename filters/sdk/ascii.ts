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
    out += String.fromCharCode(c >= 65 && c <= 90 ? c + 32 : c);
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

/** Replaces every occurrence of one character. */
export function replaceChar(s: string, from: i32, to: i32): string {
  if (s.indexOf(String.fromCharCode(from)) < 0) return s;
  let out = '';
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    out += String.fromCharCode(c == from ? to : c);
  }
  return out;
}
