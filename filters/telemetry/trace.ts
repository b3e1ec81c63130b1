// W3C Trace Context (https://www.w3.org/TR/trace-context/) `traceparent`:
// version "00", 32-hex trace id, 16-hex parent id, 2-hex flags.

import { randomHex } from '../sdk/index';

export class TraceParent {
  constructor(public traceId: string, public parentId: string, public flags: string) {}
  toString(): string { return '00-' + this.traceId + '-' + this.parentId + '-' + this.flags; }
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
  if (v.charCodeAt(2) != 45 || v.charCodeAt(35) != 45 || v.charCodeAt(52) != 45) return null;
  const traceId = v.substr(3, 32);
  const parentId = v.substr(36, 16);
  const flags = v.substr(53, 2);
  if (!isLowerHex(traceId) || !isLowerHex(parentId) || !isLowerHex(flags)) return null;
  if (allZero(traceId) || allZero(parentId)) return null;
  return new TraceParent(traceId, parentId, flags);
}

/**
 * The traceparent this hop forwards: the caller's trace id and flags with a
 * new span id for this proxy, or a fresh sampled trace when none came in.
 */
export function nextTraceParent(incoming: TraceParent | null): TraceParent {
  if (incoming === null) return new TraceParent(randomHex(16), randomHex(8), '01');
  return new TraceParent(incoming.traceId, randomHex(8), incoming.flags);
}
