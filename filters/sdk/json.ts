// A small JSON parser for plugin configuration and JWT claims. Values are one
// class tagged by kind (AssemblyScript has no union types); objects keep
// insertion order. Errors carry the byte offset.

import { charString, decimal } from './ascii';

export enum JsonKind { Null, Bool, Number, String, Array, Object }

export class JsonValue {
  kind: JsonKind = JsonKind.Null;
  bool: bool = false;
  num: f64 = 0;
  str: string = '';
  items: JsonValue[] = [];
  keys: string[] = [];

  isString(): bool { return this.kind == JsonKind.String; }
  isNumber(): bool { return this.kind == JsonKind.Number; }
  isObject(): bool { return this.kind == JsonKind.Object; }
  isArray(): bool { return this.kind == JsonKind.Array; }

  /** Member of an object, or null. */
  get(key: string): JsonValue | null {
    if (this.kind != JsonKind.Object) return null;
    for (let i = 0; i < this.keys.length; i++) if (this.keys[i] == key) return this.items[i];
    return null;
  }
}

export class JsonResult {
  constructor(public value: JsonValue | null, public error: string) {}
}

export function kindName(kind: JsonKind): string {
  switch (kind) {
    case JsonKind.Null: return 'null';
    case JsonKind.Bool: return 'boolean';
    case JsonKind.Number: return 'number';
    case JsonKind.String: return 'string';
    case JsonKind.Array: return 'array';
    default: return 'object';
  }
}

export function parseJson(text: string): JsonResult {
  const p = new Parser(text);
  p.ws();
  const v = p.value(0);
  if (p.err.length == 0) {
    p.ws();
    if (p.pos < text.length) p.fail('unexpected trailing characters');
  }
  if (p.err.length > 0) return new JsonResult(null, p.err);
  return new JsonResult(v, '');
}

const MAX_DEPTH = 64;
// The one-character escapes (RFC 8259 §7) and what each stands for; \u apart.
const ESCAPED = '"\\/bfnrt';
const UNESCAPED = '"\\/\b\f\n\r\t';

class Parser {
  pos: i32 = 0;
  err: string = '';
  constructor(public s: string) {}

  fail(msg: string): void {
    if (this.err.length == 0) this.err = 'invalid JSON at offset ' + decimal(this.pos) + ': ' + msg;
  }

  ws(): void {
    while (this.pos < this.s.length) {
      const c = this.s.charCodeAt(this.pos);
      if (c == 32 || c == 9 || c == 10 || c == 13) this.pos++;
      else break;
    }
  }

  value(depth: i32): JsonValue {
    const v = new JsonValue();
    if (depth > MAX_DEPTH) { this.fail('nested too deeply'); return v; }
    if (this.pos >= this.s.length) { this.fail('unexpected end'); return v; }
    const c = this.s.charCodeAt(this.pos);
    if (c == 123) this.object(v, depth);
    else if (c == 91) this.array(v, depth);
    else if (c == 34) { v.kind = JsonKind.String; v.str = this.string(); }
    else if (c == 45 || (c >= 48 && c <= 57)) { v.kind = JsonKind.Number; v.num = this.number(); }
    else if (this.word('true')) { v.kind = JsonKind.Bool; v.bool = true; }
    else if (this.word('false')) { v.kind = JsonKind.Bool; }
    else if (!this.word('null')) this.fail('unexpected character');
    return v;
  }

  word(w: string): bool {
    if (this.s.substring(this.pos, this.pos + w.length) != w) return false;
    this.pos += w.length;
    return true;
  }

  object(v: JsonValue, depth: i32): void {
    v.kind = JsonKind.Object;
    this.pos++;
    this.ws();
    if (this.peek() == 125) { this.pos++; return; }
    while (this.err.length == 0) {
      this.ws();
      if (this.peek() != 34) { this.fail('expected string key'); return; }
      const key = this.string();
      // RFC 8259 leaves duplicate names to the parser, and readers disagree
      // (first or last wins): refused, as RFC 7519 §4 allows for JWT claims.
      if (v.keys.includes(key)) { this.fail('duplicate key'); return; }
      this.ws();
      if (this.peek() != 58) { this.fail("expected ':'"); return; }
      this.pos++;
      this.ws();
      const item = this.value(depth + 1);
      v.keys.push(key);
      v.items.push(item);
      this.ws();
      const c = this.peek();
      this.pos++;
      if (c == 125) return;
      if (c != 44) { this.pos--; this.fail("expected ',' or '}'"); return; }
    }
  }

  array(v: JsonValue, depth: i32): void {
    v.kind = JsonKind.Array;
    this.pos++;
    this.ws();
    if (this.peek() == 93) { this.pos++; return; }
    while (this.err.length == 0) {
      this.ws();
      v.items.push(this.value(depth + 1));
      this.ws();
      const c = this.peek();
      this.pos++;
      if (c == 93) return;
      if (c != 44) { this.pos--; this.fail("expected ',' or ']'"); return; }
    }
  }

  peek(): i32 {
    return this.pos < this.s.length ? this.s.charCodeAt(this.pos) : -1;
  }

  string(): string {
    this.pos++;
    let out = '';
    let start = this.pos;
    while (this.pos < this.s.length) {
      const c = this.s.charCodeAt(this.pos);
      if (c == 34) {
        out += this.s.substring(start, this.pos);
        this.pos++;
        return out;
      }
      if (c < 32) { this.fail('control character in string'); return out; }
      if (c == 92) {
        out += this.s.substring(start, this.pos);
        this.pos++;
        const e = this.peek();
        this.pos++;
        let k = 0;
        while (k < ESCAPED.length && ESCAPED.charCodeAt(k) != e) k++;
        if (k < ESCAPED.length) out += UNESCAPED.substring(k, k + 1);
        else if (e == 117) {
          let code = 0;
          for (let i = 0; i < 4; i++) {
            // -1 past the end
            const h = this.s.charCodeAt(this.pos + i);
            const l = h | 32;
            const v = h >= 48 && h <= 57 ? h - 48 : l >= 97 && l <= 102 ? l - 87 : -1;
            if (v < 0) { this.fail('bad \\u escape'); return out; }
            code = code * 16 + v;
          }
          out += charString(code);
          this.pos += 4;
        } else { this.fail('bad escape'); return out; }
        start = this.pos;
        continue;
      }
      this.pos++;
    }
    this.fail('unterminated string');
    return out;
  }

  /** The decimal digit at pos, or -1. */
  digit(): i32 {
    const d = this.peek() - 48;
    return <u32>d < 10 ? d : -1;
  }

  // Integers and decimals without strtod: configuration numbers are small,
  // and exact to 2^53.
  number(): f64 {
    let neg = false;
    if (this.peek() == 45) { neg = true; this.pos++; }
    let n: f64 = 0;
    let digits = 0;
    let d: i32;
    while ((d = this.digit()) >= 0) { n = n * 10 + <f64>d; this.pos++; digits++; }
    if (digits == 0) { this.fail('bad number'); return 0; }
    if (this.peek() == 46) {
      this.pos++;
      let scale: f64 = 1;
      let frac = 0;
      while ((d = this.digit()) >= 0) { scale /= 10; n += scale * <f64>d; this.pos++; frac++; }
      if (frac == 0) { this.fail('bad number'); return 0; }
    }
    if ((this.peek() | 32) == 101) {
      this.pos++;
      let eneg = false;
      if (this.peek() == 43 || this.peek() == 45) { eneg = this.peek() == 45; this.pos++; }
      let e = 0;
      let ed = 0;
      while ((d = this.digit()) >= 0 && e < 400) { e = e * 10 + d; this.pos++; ed++; }
      if (ed == 0) { this.fail('bad number'); return 0; }
      for (let i = 0; i < e; i++) n = eneg ? n / 10 : n * 10;
    }
    return neg ? -n : n;
  }
}

/** JSON string literal for `s` (quotes included), for access logs and error bodies. */
export function jsonString(s: string): string {
  let out = '"';
  let start = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c == 34 || c == 92 || c < 32) {
      out += s.substring(start, i) + '\\';
      if (c == 34 || c == 92) out += charString(c);
      else if (c == 10) out += 'n';
      else {
        const d = c & 15;
        out += 'u00' + charString(c < 16 ? 48 : 49) + charString(d < 10 ? 48 + d : 87 + d);
      }
      start = i + 1;
    }
  }
  return out + s.substring(start, s.length) + '"';
}
