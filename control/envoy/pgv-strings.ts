// String and bytes rules of protoc-gen-validate, including the well-known formats
// (hostname, ip, header name/value, ...), checked the way PGV's Go validators do.
import { isIP } from 'node:net';
import type { FieldError } from './errors.ts';
import type { Check, RuleSet } from './pgv-types.ts';

// RE2 syntax and JS RegExp agree on the patterns Envoy's protos use; a pattern JS
// cannot compile is not enforced rather than enforced wrongly.
const compiled = new Map<string, RegExp | null>();
export function re2(pattern: string): RegExp | null {
  let re = compiled.get(pattern);
  if (re !== undefined) return re;
  try {
    re = new RegExp(pattern, 'u');
  } catch {
    try {
      re = new RegExp(pattern);
    } catch {
      re = null;
    }
  }
  compiled.set(pattern, re);
  return re;
}

// PGV's KnownRegex values (validate.proto), strict and non-strict variants.
// PGV writes '+-.' unescaped, a range that also admits ','; kept identical on purpose.
const HEADER_NAME_STRICT = /^:?[0-9a-zA-Z!#$%&'*+-.^_|~`]+$/;
const HEADER_VALUE_STRICT = /^[^\u0000-\u0008\u000A-\u001F\u007F]*$/;
const HEADER_LOOSE = /^[^\u0000\u000A\u000D]*$/;
const UUID = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;
const HOST_LABEL = /^[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?$/;

export function isHostname(s: string): boolean {
  const host = s.endsWith('.') ? s.slice(0, -1) : s;
  if (host.length === 0 || host.length > 253) return false;
  return host.split('.').every((label) => label.length <= 63 && HOST_LABEL.test(label));
}

function isEmail(s: string): boolean {
  const at = s.lastIndexOf('@');
  if (at <= 0 || at > 64 || s.length > 254) return false;
  return isHostname(s.slice(at + 1));
}

function isUri(s: string, absolute: boolean): boolean {
  try {
    new URL(s, absolute ? undefined : 'http://relative.invalid/');
    return true;
  } catch {
    return false;
  }
}

function codePoints(s: string): number {
  let n = 0;
  for (const _ of s) n++;
  return n;
}

function push(errors: FieldError[], path: string, message: string): void {
  errors.push({ path, message });
}

export function compileStringRules(r: RuleSet): Check | undefined {
  const checks: Check[] = [];
  const num = (v: unknown): number => Number(v);
  if (r.const !== undefined) {
    const c = String(r.const);
    checks.push((v, p, e) => v !== c && push(e, p, `value must equal ${JSON.stringify(c)}`));
  }
  if (r.len !== undefined) {
    const n = num(r.len);
    checks.push((v, p, e) => codePoints(v as string) !== n && push(e, p, `value length must be ${n} characters`));
  }
  if (r.min_len !== undefined) {
    const n = num(r.min_len);
    checks.push((v, p, e) => {
      const s = v as string;
      if (s.length < n || (s.length < 2 * n && codePoints(s) < n)) push(e, p, `value length must be at least ${n} characters`);
    });
  }
  if (r.max_len !== undefined) {
    const n = num(r.max_len);
    checks.push((v, p, e) => {
      const s = v as string;
      if (s.length > n && codePoints(s) > n) push(e, p, `value length must be at most ${n} characters`);
    });
  }
  if (r.len_bytes !== undefined) {
    const n = num(r.len_bytes);
    checks.push((v, p, e) => Buffer.byteLength(v as string) !== n && push(e, p, `value length must be ${n} bytes`));
  }
  if (r.min_bytes !== undefined) {
    const n = num(r.min_bytes);
    checks.push((v, p, e) => Buffer.byteLength(v as string) < n && push(e, p, `value length must be at least ${n} bytes`));
  }
  if (r.max_bytes !== undefined) {
    const n = num(r.max_bytes);
    checks.push((v, p, e) => {
      const s = v as string;
      if (s.length * 3 > n && Buffer.byteLength(s) > n) push(e, p, `value length must be at most ${n} bytes`);
    });
  }
  if (r.pattern !== undefined) {
    const source = String(r.pattern);
    const re = re2(source);
    if (re) checks.push((v, p, e) => !re.test(v as string) && push(e, p, `value does not match regex pattern ${JSON.stringify(source)}`));
  }
  if (r.prefix !== undefined) {
    const x = String(r.prefix);
    checks.push((v, p, e) => !(v as string).startsWith(x) && push(e, p, `value does not have prefix ${JSON.stringify(x)}`));
  }
  if (r.suffix !== undefined) {
    const x = String(r.suffix);
    checks.push((v, p, e) => !(v as string).endsWith(x) && push(e, p, `value does not have suffix ${JSON.stringify(x)}`));
  }
  if (r.contains !== undefined) {
    const x = String(r.contains);
    checks.push((v, p, e) => !(v as string).includes(x) && push(e, p, `value does not contain substring ${JSON.stringify(x)}`));
  }
  if (r.not_contains !== undefined) {
    const x = String(r.not_contains);
    checks.push((v, p, e) => (v as string).includes(x) && push(e, p, `value contains substring ${JSON.stringify(x)}`));
  }
  if (r.in !== undefined) {
    const set = new Set((r.in as unknown[]).map(String));
    checks.push((v, p, e) => !set.has(v as string) && push(e, p, `value must be in list [${[...set].join(', ')}]`));
  }
  if (r.not_in !== undefined) {
    const set = new Set((r.not_in as unknown[]).map(String));
    checks.push((v, p, e) => set.has(v as string) && push(e, p, `value must not be in list [${[...set].join(', ')}]`));
  }
  const wellKnown = wellKnownStringCheck(r);
  if (wellKnown) checks.push(wellKnown);
  return combine(checks);
}

function wellKnownStringCheck(r: RuleSet): Check | undefined {
  const fmt = (test: (s: string) => boolean, what: string): Check =>
    (v, p, e) => !test(v as string) && push(e, p, `value must be ${what}`);
  if (r.email) return fmt(isEmail, 'a valid email address');
  if (r.hostname) return fmt(isHostname, 'a valid hostname');
  if (r.ip) return fmt((s) => isIP(s) !== 0, 'a valid IP address');
  if (r.ipv4) return fmt((s) => isIP(s) === 4, 'a valid IPv4 address');
  if (r.ipv6) return fmt((s) => isIP(s) === 6, 'a valid IPv6 address');
  if (r.uri) return fmt((s) => isUri(s, true), 'a valid absolute URI');
  if (r.uri_ref) return fmt((s) => isUri(s, false), 'a valid URI reference');
  if (r.address) return fmt((s) => isIP(s) !== 0 || isHostname(s), 'a valid hostname or IP address');
  if (r.uuid) return fmt((s) => UUID.test(s), 'a valid UUID');
  const known = r.well_known_regex;
  if (known === 'HTTP_HEADER_NAME' || known === 1) {
    const re = r.strict === false ? HEADER_LOOSE : HEADER_NAME_STRICT;
    return fmt((s) => re.test(s), 'a valid HTTP header name');
  }
  if (known === 'HTTP_HEADER_VALUE' || known === 2) {
    const re = r.strict === false ? HEADER_LOOSE : HEADER_VALUE_STRICT;
    return fmt((s) => re.test(s), 'a valid HTTP header value');
  }
  return undefined;
}

export function compileBytesRules(r: RuleSet): Check | undefined {
  const checks: Check[] = [];
  const len = (v: unknown): number => (v as Uint8Array).length;
  if (r.len !== undefined) {
    const n = Number(r.len);
    checks.push((v, p, e) => len(v) !== n && push(e, p, `value length must be ${n} bytes`));
  }
  if (r.min_len !== undefined) {
    const n = Number(r.min_len);
    checks.push((v, p, e) => len(v) < n && push(e, p, `value length must be at least ${n} bytes`));
  }
  if (r.max_len !== undefined) {
    const n = Number(r.max_len);
    checks.push((v, p, e) => len(v) > n && push(e, p, `value length must be at most ${n} bytes`));
  }
  if (r.pattern !== undefined) {
    const re = re2(String(r.pattern));
    if (re) checks.push((v, p, e) => !re.test(Buffer.from(v as Uint8Array).toString('utf8')) && push(e, p, `value does not match regex pattern ${JSON.stringify(r.pattern)}`));
  }
  if (r.ip) checks.push((v, p, e) => len(v) !== 4 && len(v) !== 16 && push(e, p, 'value must be a valid IP address'));
  if (r.ipv4) checks.push((v, p, e) => len(v) !== 4 && push(e, p, 'value must be a valid IPv4 address'));
  if (r.ipv6) checks.push((v, p, e) => len(v) !== 16 && push(e, p, 'value must be a valid IPv6 address'));
  return combine(checks);
}

export function combine(checks: Check[]): Check | undefined {
  if (checks.length === 0) return undefined;
  if (checks.length === 1) return checks[0];
  return (v, p, e) => {
    for (const c of checks) c(v, p, e);
  };
}
