// `--cert-ttl 24h | 30m | 5s | 1500ms` -> milliseconds, or an error message.

import { MIN_CERT_TTL_MS } from './authority.ts';

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** `24h`, `30m`, `5s`, `1500ms`, `1d` (a number, fractions allowed, and a unit) -> milliseconds; undefined for anything else. */
export function parseDuration(text: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/.exec(text.trim());
  return m ? Math.round(Number(m[1]) * UNITS[m[2]!]!) : undefined;
}

export function parseTtl(text: string): number | string {
  const ms = parseDuration(text);
  if (ms === undefined) return `"${text}" is not a duration like 24h, 30m, 5s or 1500ms`;
  if (ms < MIN_CERT_TTL_MS) return `must be at least ${MIN_CERT_TTL_MS} ms`;
  return ms;
}
