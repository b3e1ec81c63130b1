// Request bodies as the API reads them. JSON.parse keeps the last of two
// equal keys and decoding replaces bytes that are not UTF-8 with U+FFFD, so
// `{"weight": 90, "weight": 10}` or a Latin-1 header value would be stored as
// something the operator never wrote, with nothing said. Both are refused
// naming where (as the Kubernetes API server refuses duplicate fields under
// its default strict field validation), and so is a `__proto__` key, as
// fastify's own JSON parser refuses it, and a string with half a surrogate
// pair, which has no UTF-8 form to send to a proxy.

import { joinPath } from '../model/result.ts';
import { validationFailed, type FieldError } from './errors.ts';

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** The body as text; a byte sequence that is not UTF-8 is a 400 naming its offset. */
export function decodeUtf8Body(bytes: Buffer): string {
  try {
    return utf8.decode(bytes);
  } catch {
    throw validationFailed([{ path: '', message: `is not valid UTF-8 (first bad byte at offset ${firstInvalidUtf8(bytes)})` }], 'body');
  }
}

/** Offset of the first byte sequence that is not UTF-8 (RFC 3629: no overlongs, no surrogates, nothing past U+10FFFF). */
export function firstInvalidUtf8(bytes: Uint8Array): number {
  for (let i = 0; i < bytes.length; ) {
    const lead = bytes[i]!;
    if (lead < 0x80) {
      i++;
      continue;
    }
    const more = lead >= 0xc2 && lead <= 0xdf ? 1 : lead >= 0xe0 && lead <= 0xef ? 2 : lead >= 0xf0 && lead <= 0xf4 ? 3 : 0;
    if (more === 0) return i;
    for (let k = 1; k <= more; k++) {
      const next = bytes[i + k];
      const lo = k > 1 ? 0x80 : lead === 0xe0 ? 0xa0 : lead === 0xf0 ? 0x90 : 0x80;
      const hi = k > 1 ? 0xbf : lead === 0xed ? 0x9f : lead === 0xf4 ? 0x8f : 0xbf;
      if (next === undefined || next < lo || next > hi) return i;
    }
    i += more + 1;
  }
  return -1;
}

/** Parses a JSON body: invalid UTF-8, invalid JSON, a duplicate key or a `__proto__` key is a 400 naming the field. */
export function parseJsonBody(bytes: Buffer): unknown {
  const text = decodeUtf8Body(bytes);
  if (text.trim() === '') throw validationFailed([{ path: '', message: 'is empty: send a JSON document' }], 'body');
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw validationFailed([{ path: '', message: `is not valid JSON: ${(e as Error).message}` }], 'body');
  }
  const errors = [...keyErrors(text), ...loneSurrogates(value, '')];
  if (errors.length > 0) throw validationFailed(errors, 'body');
  return value;
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/**
 * Strings (and keys) holding half a UTF-16 surrogate pair (`"\ud800"` in JSON or double-quoted YAML),
 * with their paths. Such a string has no UTF-8 form: pushed to Envoy it is invalid UTF-8 in a
 * protobuf string, and the whole resource holding it (every route of a route configuration) is
 * NACKed. Iterative, as bodies may nest deep.
 */
export function loneSurrogates(value: unknown, root: string): FieldError[] {
  const errors: FieldError[] = [];
  const stack: { value: unknown; path: string }[] = [{ value, path: root }];
  while (stack.length > 0) {
    const { value: v, path } = stack.pop()!;
    if (typeof v === 'string') {
      if (LONE_SURROGATE.test(v)) errors.push({ path, message: 'holds half of a UTF-16 surrogate pair (\\ud800-\\udfff alone): not text that can be sent as UTF-8' });
    } else if (Array.isArray(v)) {
      v.forEach((item, i) => stack.push({ value: item, path: joinPath(path, i) }));
    } else if (v !== null && typeof v === 'object') {
      for (const [k, item] of Object.entries(v)) {
        if (LONE_SURROGATE.test(k)) errors.push({ path: joinPath(path, k), message: 'is a key holding half of a UTF-16 surrogate pair: not text that can be sent as UTF-8' });
        // as fastify's own parser (secure-json-parse) refuses it: constructor.prototype reaches Object.prototype in a naive merge
        if (k === 'constructor' && item !== null && typeof item === 'object' && Object.hasOwn(item, 'prototype')) errors.push({ path: joinPath(joinPath(path, k), 'prototype'), message: 'is not an accepted key' });
        stack.push({ value: item, path: joinPath(path, k) });
      }
    }
  }
  return errors.reverse();
}

interface Frame {
  path: string;
  /** The keys seen so far in an object; undefined in an array. */
  keys?: Set<string>;
  /** The next element's index in an array. */
  index: number;
  /** The path of the value being read (the key just read, or the array index). */
  child?: string;
}

/** The index of the quote that closes the string opening at `start`. */
function stringEnd(text: string, start: number): number {
  for (let from = start + 1; ; ) {
    const quote = text.indexOf('"', from);
    let backslashes = 0;
    while (text[quote - 1 - backslashes] === '\\') backslashes++;
    if (backslashes % 2 === 0) return quote;
    from = quote + 1;
  }
}

/** Every duplicate or forbidden key in a text JSON.parse accepted, with its path. One pass, no recursion. */
function keyErrors(text: string): FieldError[] {
  const errors: FieldError[] = [];
  const stack: Frame[] = [];
  let expectKey = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    const top = stack[stack.length - 1];
    if (c === '"') {
      const end = stringEnd(text, i);
      const start = i;
      i = end;
      if (expectKey && top?.keys) {
        const raw = text.slice(start + 1, end);
        const key = raw.includes('\\') ? (JSON.parse(`"${raw}"`) as string) : raw;
        const path = joinPath(top.path, key);
        if (key === '__proto__') errors.push({ path, message: 'is not an accepted key' });
        else if (top.keys.has(key)) errors.push({ path, message: 'duplicate key: the object names it twice' });
        top.keys.add(key);
        top.child = path;
        expectKey = false;
      }
    } else if (c === '{' || c === '[') {
      const path = top === undefined ? '' : top.keys ? top.child! : joinPath(top.path, top.index);
      stack.push(c === '{' ? { path, keys: new Set(), index: 0 } : { path, index: 0 });
      expectKey = c === '{';
    } else if (c === '}' || c === ']') {
      stack.pop();
    } else if (c === ',') {
      if (top?.keys) expectKey = true;
      else if (top) top.index++;
    }
  }
  return errors;
}
