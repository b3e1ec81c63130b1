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
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { mkdirDurable, parseJsonFile, removeLeftoverTemps, writeFileAtomicSync } from '../store/atomic-file.ts';
import type { IdentityKey } from './authority.ts';

export const JOIN_TOKENS_FILE = 'join-tokens.json';
const PREFIX = 'wjt_';
/**
 * Hex digits of a token's hash that make its id: 16 (64 bits). Ids were 8 (32 bits) until
 * 2026-11-27, and two of some tens of thousands of tokens shared one by the birthday bound, so
 * `weft token revoke --join ID` named two tokens. Tokens issued before keep their 8-digit ids.
 */
const ID_HEX = 16;
/** Draws of a new token before issue() gives up on finding an unused id (one redraw in 2^64 is expected). */
const MAX_DRAWS = 8;
/** setTimeout's ceiling (about 24.8 days): a later expiry is reached by re-arming. */
const MAX_TIMER_MS = 2 ** 31 - 1;

export interface JoinTokenRecord extends IdentityKey {
  /** The start of the token's hash (16 hex digits; 8 for tokens issued before 2026-11-27), unique among the tokens: safe to show and log. */
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

  readonly #random: (size: number) => Buffer;

  /**
   * `dataDir` undefined keeps tokens in memory only (tests). Call it holding the data dir's lock: it
   * removes the temp files a crash left of the tokens file. `random` draws new tokens (tests).
   */
  constructor(dataDir?: string, clock: () => Date = () => new Date(), random: (size: number) => Buffer = randomBytes) {
    this.#clock = clock;
    this.#random = random;
    this.#file = dataDir ? join(dataDir, JOIN_TOKENS_FILE) : undefined;
    if (dataDir) removeLeftoverTemps(dataDir, (name) => name === JOIN_TOKENS_FILE);
    if (this.#file && existsSync(this.#file)) {
      const remedy = 'restore it from a backup, or move it aside and start again: every join token is then unknown, and each proxy needs a new one (weft token create --join --service NAME)';
      const saved = parseJsonFile(this.#file, readFileSync(this.#file, 'utf8'), remedy) as Record<string, JoinTokenRecord>;
      for (const [h, r] of Object.entries(saved)) this.#byHash.set(h, r);
      this.#separateSharedIds();
      for (const r of this.#byHash.values()) {
        if (isExpired(r, clock())) this.#announced.add(r.id); // expired while we were down: no stream of it is open
      }
    }
  }

  /**
   * Tokens issued with 8-digit ids may share one. Each of those is known by a longer id from then
   * on (16 digits of its hash, all 64 should those meet too), so every token can be revoked alone,
   * where revoking the shared id would have revoked whichever came first.
   */
  #separateSharedIds(): void {
    const byId = new Map<string, string[]>();
    for (const [h, r] of this.#byHash) byId.set(r.id, [...(byId.get(r.id) ?? []), h]);
    const shared = [...byId.values()].filter((hashes) => hashes.length > 1).flat();
    if (shared.length === 0) return;
    for (const h of shared) this.#byHash.get(h)!.id = h.slice(0, ID_HEX);
    const ids = new Map<string, number>();
    for (const r of this.#byHash.values()) ids.set(r.id, (ids.get(r.id) ?? 0) + 1);
    for (const h of shared) if (ids.get(h.slice(0, ID_HEX))! > 1) this.#byHash.get(h)!.id = h;
  }

  /** A new token for the identity; the caller sees it once. `ttlMs` undefined: valid until revoked. */
  issue(identity: IdentityKey, options: { ttlMs?: number; now?: Date } = {}): { token: string; record: JoinTokenRecord } {
    const now = options.now ?? this.#clock();
    const ids = new Set([...this.#byHash.values()].map((r) => r.id));
    let token = '';
    let h = '';
    // An id already in use is drawn again: revoking by it must name one token.
    for (let draw = 0; ; draw++) {
      if (draw === MAX_DRAWS) throw new Error(`join token: ${MAX_DRAWS} new tokens in a row had an id already in use; the random source is broken`);
      token = PREFIX + this.#random(32).toString('base64url');
      h = hash(token);
      if (!this.#byHash.has(h) && !ids.has(h.slice(0, ID_HEX))) break;
    }
    const record: JoinTokenRecord = { namespace: identity.namespace, service: identity.service, id: h.slice(0, ID_HEX), issuedAt: now.toISOString() };
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
    mkdirDurable(dirname(this.#file));
    writeFileAtomicSync(this.#file, JSON.stringify(Object.fromEntries(next), null, 2), 0o600);
  }
}
