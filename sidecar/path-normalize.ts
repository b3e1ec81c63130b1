// The connection manager's path normalization, as Envoy's normalize_path and
// merge_slashes (source/common/http/path_utility.cc): applied to :path before
// routing, RBAC and the filters see it, and forwarded upstream as normalized.
// Without it, a DENY on `/admin` is passed by `//admin`, `/./admin` or
// `/x/../admin`, which the app behind resolves to /admin.
//
// normalize_path follows the URL canonicalization Envoy uses (Chromium's):
// backslashes are slashes, %-escapes of unreserved characters (A-Z a-z 0-9
// - . _ ~) are decoded, other escapes are kept as sent (%2F stays, in its
// case), "." and ".." segments are resolved (a ".." past the root is
// dropped), and the path starts with "/". An escaped NUL (%00) makes the
// path invalid: the request gets 400. merge_slashes collapses runs of "/".
// The query string is never touched.

const HEX = /^[0-9a-fA-F]{2}$/;
/** What either transformation could change: a dot segment, a backslash, an escape, a run of slashes, a character to escape. */
const NEEDS_WORK = /\/\.|\\|%|\/\/|[\x00-\x20"<>`{}\x7f-\uffff]/;

function unreserved(c: number): boolean {
  return (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || c === 0x2d || c === 0x2e || c === 0x5f || c === 0x7e;
}

/** Characters a canonical path carries escaped (Chromium's path canonicalizer escapes them). */
function mustEscape(c: number): boolean {
  return c <= 0x20 || c === 0x22 || c === 0x3c || c === 0x3e || c === 0x60 || c === 0x7b || c === 0x7d || c >= 0x7f;
}

/** The path part decoded and escaped as canonical; undefined when it is invalid (an escaped NUL). */
function canonicalChars(p: string): string | undefined {
  let out = '';
  for (let i = 0; i < p.length; i++) {
    const ch = p.charCodeAt(i);
    if (ch === 0x5c /* \ */) {
      out += '/';
    } else if (ch === 0x25 /* % */ && HEX.test(p.slice(i + 1, i + 3))) {
      const v = parseInt(p.slice(i + 1, i + 3), 16);
      if (v === 0) return undefined;
      out += unreserved(v) ? String.fromCharCode(v) : p.slice(i, i + 3);
      i += 2;
    } else if (ch === 0) {
      return undefined;
    } else if (mustEscape(ch)) {
      out += `%${ch.toString(16).toUpperCase().padStart(2, '0')}`;
    } else {
      out += p[i];
    }
  }
  return out;
}

/** RFC 3986 5.2.4, over a path that starts with "/". */
function removeDotSegments(p: string): string {
  const segments = p.split('/');
  const out: string[] = [];
  // segments[0] is the empty string before the leading "/".
  for (let i = 1; i < segments.length; i++) {
    const s = segments[i]!;
    const last = i === segments.length - 1;
    if (s === '.') {
      if (last) out.push('');
    } else if (s === '..') {
      out.pop();
      if (last) out.push('');
    } else out.push(s);
  }
  return `/${out.join('/')}`;
}

function mergeSlashesOf(p: string): string {
  return p.replace(/\/{2,}/g, '/');
}

/**
 * `path` (with its query) as the connection manager forwards it; the same
 * string when nothing changes, undefined when normalization refuses it.
 */
export function normalizeRequestPath(path: string, normalize: boolean, mergeSlashes: boolean): string | undefined {
  const q = path.indexOf('?');
  // Most paths need nothing: one scan, no copy (this runs for every request).
  if (path.charCodeAt(0) === 0x2f && !NEEDS_WORK.test(q < 0 ? path : path.slice(0, q))) return path;
  let p = q < 0 ? path : path.slice(0, q);
  const query = q < 0 ? '' : path.slice(q);
  if (normalize) {
    const chars = canonicalChars(p);
    if (chars === undefined) return undefined;
    p = removeDotSegments(chars.charCodeAt(0) === 0x2f ? chars : `/${chars}`);
  }
  if (mergeSlashes) p = mergeSlashesOf(p);
  const next = p + query;
  return next === path ? path : next;
}
