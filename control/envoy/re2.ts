// What RE2 (Envoy's safe_regex) refuses or reads differently from
// JavaScript's RegExp in unicode mode, which the weft sidecar matches with
// and the control plane compiles to check a pattern. A pattern both accept
// alike runs the same on both data planes; anything else is refused by the
// API (naming the field) and NACKed by the weft sidecar, as Envoy NACKs it.
// Found by walking the pattern outside escapes; JavaScript has compiled it.

/** RE2's largest repetition count ("bad repetition operator" past it). */
export const RE2_MAX_REPEAT = 1000;

/** Why RE2 would refuse or misread `pattern` (one JavaScript compiles in unicode mode), or undefined. */
export function re2Error(pattern: string): string | undefined {
  if (/\(\?<?[=!]/.test(pattern)) return 'uses lookaround, which RE2 (Envoy) does not support';
  if (/\\[1-9]|\\k</.test(pattern)) return 'uses a backreference, which RE2 (Envoy) does not support';
  let inClass = false;
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === '\\') {
      const next = pattern[i + 1] ?? '';
      if (next === 'u' || next === 'c') return `uses the escape \\${next}, which RE2 (Envoy) does not support (write \\x{...} for a code point)`;
      i++;
      continue;
    }
    if (inClass) {
      if (c === ']') inClass = false;
      continue;
    }
    if (c === '[') {
      // JavaScript's [] matches nothing and [^] anything; RE2 reads a ']' first in a class as a literal, so it
      // finds no end to the class ("missing ]") or a different one.
      const empty = /^\[\^?\]/.exec(pattern.slice(i));
      if (empty) return `has the empty class ${empty[0]}, which RE2 (Envoy) does not read as JavaScript does (a ']' first in a class is a literal there): write [\\s\\S] for any character`;
      inClass = true;
    } else if (c === '{') {
      const m = /^\{(\d+)(?:,(\d*))?\}/.exec(pattern.slice(i));
      if (m && (Number(m[1]) > RE2_MAX_REPEAT || (m[2] !== undefined && m[2] !== '' && Number(m[2]) > RE2_MAX_REPEAT))) {
        return `repeats more than ${RE2_MAX_REPEAT} times ("${m[0]}"), which RE2 (Envoy) refuses`;
      }
    }
  }
  return undefined;
}
