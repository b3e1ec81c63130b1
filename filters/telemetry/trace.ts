// W3C Trace Context (https://www.w3.org/TR/trace-context/) `traceparent`:
// version "00", 32-hex trace id, 16-hex parent id, 2-hex flags.

import { randomHex } from '../sdk/index';

export class TraceParent {
  constructor(public traceId: string, public parentId: string, public flags: string) {}
  /** `00-<trace id>-<parent id>-<flags>`, written in one allocation (once per request). */
  toString(): string {
    const t = this.traceId, p = this.parentId, f = this.flags;
    const out = changetype<string>(__new(<usize>(5 + t.length + p.length + f.length) << 1, idof<string>()));
    let o = changetype<usize>(out);
    store<u32>(o, 0x00300030); // "00"
    store<u16>(o, 45, 4);
    o = append(o + 6, t);
    store<u16>(o, 45);
    o = append(o + 2, p);
    store<u16>(o, 45);
    append(o + 2, f);
    return out;
  }
}

function append(dest: usize, s: string): usize {
  const n = <usize>s.length << 1;
  memory.copy(dest, changetype<usize>(s), n);
  return dest + n;
}

function isLowerHex(s: string): bool {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (!((c >= 48 && c <= 57) || (c >= 97 && c <= 102))) return false;
  }
  return true;
}

function allZero(s: string): bool {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) != 48) return false;
  return true;
}

/** Parses a traceparent; null when malformed, so the caller starts a new trace. */
export function parseTraceParent(v: string): TraceParent | null {
  if (v.length < 55) return null;
  const version = v.substr(0, 2);
  if (!isLowerHex(version) || version == 'ff') return null;
  if (version == '00' && v.length != 55) return null;
  // A later version may add fields after the flags, each behind a '-'.
  if (v.length > 55 && v.charCodeAt(55) != 45) return null;
  if (v.charCodeAt(2) != 45 || v.charCodeAt(35) != 45 || v.charCodeAt(52) != 45) return null;
  const traceId = v.substr(3, 32);
  const parentId = v.substr(36, 16);
  const flags = v.substr(53, 2);
  if (!isLowerHex(traceId) || !isLowerHex(parentId) || !isLowerHex(flags)) return null;
  if (allZero(traceId) || allZero(parentId)) return null;
  // Version 00 defines only the sampled bit (0x01); the others must be sent as zero.
  const low = flags.charCodeAt(1);
  const sampled = ((low <= 57 ? low - 48 : low - 87) & 1) != 0;
  return new TraceParent(traceId, parentId, sampled ? '01' : '00');
}

/**
 * The traceparent this hop forwards: the caller's trace id and flags with a
 * new span id for this proxy, or a fresh sampled trace when none came in.
 */
export function nextTraceParent(incoming: TraceParent | null): TraceParent {
  if (incoming === null) return new TraceParent(randomHex(16), randomHex(8), '01');
  return new TraceParent(incoming.traceId, randomHex(8), incoming.flags);
}
