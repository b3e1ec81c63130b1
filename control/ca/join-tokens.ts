// Per-workload join tokens: the API issues one for a service identity; the
// proxy carries it in its xDS node metadata (WEFT_TOKEN) and may then act as
// that identity only. Only SHA-256 hashes are kept (in the data dir, mode
// 0600), so a leaked token file admits nobody.
//
// A token may carry a lifetime (expiresAt): from then on it admits no new
// xDS stream, and onExpire listeners hear of it so the streams it opened can
// end, as they do on revocation. An expired token stays listed (marked so)
// until revoked, so a proxy presenting it is told it expired, not that it is
// unknown.

import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { writeFileAtomicSync } from '../store/atomic-file.ts';
import type { IdentityKey } from './authority.ts';

export const JOIN_TOKENS_FILE = 'join-tokens.json';
const PREFIX = 'wjt_';
/** setTimeout's ceiling (about 24.8 days): a later expiry is reached by re-arming. */
const MAX_TIMER_MS = 2 ** 31 - 1;

export interface JoinTokenRecord extends IdentityKey {
  /** First 8 characters of the token hash: safe to show and log. */
  id: string;
  issuedAt: string;
  /** When the token stops admitting proxies; absent: until revoked. */
  expiresAt?: string;
}

export type JoinTokenCheck =
  | { ok: true; record: JoinTokenRecord }
  | { ok: false; reason: 'unknown' }
  | { ok: false; reason: 'expired'; record: JoinTokenRecord };

function hash(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

export function isExpired(record: JoinTokenRecord, now = new Date()): boolean {
  return record.expiresAt !== undefined && Date.parse(record.expiresAt) <= now.getTime();
}

export class JoinTokens {
  readonly #file: string | undefined;
  readonly #byHash = new Map<string, JoinTokenRecord>();
  readonly #expiryListeners = new Set<(record: JoinTokenRecord) => void>();
  /** Expiries already announced (by id), so each is announced once. */
  readonly #announced = new Set<string>();
  #timer: NodeJS.Timeout | undefined;
  readonly #clock: () => Date;

  /** `dataDir` undefined keeps tokens in memory only (tests). */
  constructor(dataDir?: string, clock: () => Date = () => new Date()) {
    this.#clock = clock;
    this.#file = dataDir ? join(dataDir, JOIN_TOKENS_FILE) : undefined;
    if (this.#file && existsSync(this.#file)) {
      const saved = JSON.parse(readFileSync(this.#file, 'utf8')) as Record<string, JoinTokenRecord>;
      for (const [h, r] of Object.entries(saved)) {
        this.#byHash.set(h, r);
        if (isExpired(r, clock())) this.#announced.add(r.id); // expired while we were down: no stream of it is open
      }
    }
  }

  /** A new token for the identity; the caller sees it once. `ttlMs` undefined: valid until revoked. */
  issue(identity: IdentityKey, options: { ttlMs?: number; now?: Date } = {}): { token: string; record: JoinTokenRecord } {
    const now = options.now ?? this.#clock();
    const token = PREFIX + randomBytes(32).toString('base64url');
    const h = hash(token);
    const record: JoinTokenRecord = { namespace: identity.namespace, service: identity.service, id: h.slice(0, 8), issuedAt: now.toISOString() };
    if (options.ttlMs !== undefined) record.expiresAt = new Date(now.getTime() + options.ttlMs).toISOString();
    this.#save(new Map(this.#byHash).set(h, record));
    this.#byHash.set(h, record);
    this.#arm();
    return { token, record };
  }

  /** Whether a token admits now: its record, or why not. */
  check(token: string, now = this.#clock()): JoinTokenCheck {
    const record = token.startsWith(PREFIX) ? this.#byHash.get(hash(token)) : undefined;
    if (!record) return { ok: false, reason: 'unknown' };
    if (isExpired(record, now)) return { ok: false, reason: 'expired', record };
    return { ok: true, record };
  }

  /** The identity a token admits now, or undefined (unknown, revoked or expired). */
  verify(token: string, now = this.#clock()): JoinTokenRecord | undefined {
    const checked = this.check(token, now);
    return checked.ok ? checked.record : undefined;
  }

  /** Revokes by token id (the hash prefix); true if one was removed. */
  revoke(id: string): boolean {
    for (const [h, r] of this.#byHash) {
      if (r.id === id) {
        const next = new Map(this.#byHash);
        next.delete(h);
        this.#save(next);
        this.#byHash.delete(h);
        this.#announced.delete(id);
        this.#arm();
        return true;
      }
    }
    return false;
  }

  list(): JoinTokenRecord[] {
    return [...this.#byHash.values()];
  }

  /** Calls `listener` once for each token as it expires (not for those expired before this process started). */
  onExpire(listener: (record: JoinTokenRecord) => void): () => void {
    this.#expiryListeners.add(listener);
    this.#arm();
    return () => this.#expiryListeners.delete(listener);
  }

  /** Stops the expiry timer. */
  close(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#expiryListeners.clear();
  }

  /** One timer, for the next expiry not yet announced. */
  #arm(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#expiryListeners.size === 0) return;
    let next = Infinity;
    for (const r of this.#byHash.values()) {
      if (r.expiresAt !== undefined && !this.#announced.has(r.id)) next = Math.min(next, Date.parse(r.expiresAt));
    }
    if (next === Infinity) return;
    const wait = Math.min(MAX_TIMER_MS, Math.max(0, next - this.#clock().getTime()));
    this.#timer = setTimeout(() => this.#announceExpired(), wait);
    this.#timer.unref();
  }

  #announceExpired(): void {
    const now = this.#clock();
    for (const r of this.#byHash.values()) {
      if (this.#announced.has(r.id) || !isExpired(r, now)) continue;
      this.#announced.add(r.id);
      for (const l of this.#expiryListeners) l(r);
    }
    this.#arm();
  }

  /**
   * Writes `next` as the tokens, before they are taken in memory: durable before issue() returns the
   * token, and a write that fails (a full disk) changes nothing, where a revocation taken in memory
   * first looked done (gone from the list) and came back valid at the next start.
   */
  #save(next: Map<string, JoinTokenRecord>): void {
    if (!this.#file) return;
    mkdirSync(dirname(this.#file), { recursive: true });
    writeFileAtomicSync(this.#file, JSON.stringify(Object.fromEntries(next), null, 2), 0o600);
  }
}
