// Per-workload join tokens: the API issues one for a service identity; the
// proxy carries it in its xDS node metadata (WEFT_TOKEN) and may then act as
// that identity only. Only SHA-256 hashes are kept (in the data dir, mode
// 0600), so a leaked token file admits nobody.

import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { writeFileAtomicSync } from '../store/atomic-file.ts';
import type { IdentityKey } from './authority.ts';

export const JOIN_TOKENS_FILE = 'join-tokens.json';
const PREFIX = 'wjt_';

export interface JoinTokenRecord extends IdentityKey {
  /** First 8 characters of the token hash: safe to show and log. */
  id: string;
  issuedAt: string;
}

function hash(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

export class JoinTokens {
  readonly #file: string | undefined;
  readonly #byHash = new Map<string, JoinTokenRecord>();

  /** `dataDir` undefined keeps tokens in memory only (tests). */
  constructor(dataDir?: string) {
    this.#file = dataDir ? join(dataDir, JOIN_TOKENS_FILE) : undefined;
    if (this.#file && existsSync(this.#file)) {
      const saved = JSON.parse(readFileSync(this.#file, 'utf8')) as Record<string, JoinTokenRecord>;
      for (const [h, r] of Object.entries(saved)) this.#byHash.set(h, r);
    }
  }

  /** A new token for the identity; the caller sees it once. */
  issue(identity: IdentityKey, now = new Date()): { token: string; record: JoinTokenRecord } {
    const token = PREFIX + randomBytes(32).toString('base64url');
    const h = hash(token);
    const record: JoinTokenRecord = { namespace: identity.namespace, service: identity.service, id: h.slice(0, 8), issuedAt: now.toISOString() };
    this.#byHash.set(h, record);
    this.#save();
    return { token, record };
  }

  /** The identity a token was issued for, or undefined. */
  verify(token: string): JoinTokenRecord | undefined {
    if (!token.startsWith(PREFIX)) return undefined;
    return this.#byHash.get(hash(token));
  }

  /** Revokes by token id (the hash prefix); true if one was removed. */
  revoke(id: string): boolean {
    for (const [h, r] of this.#byHash) {
      if (r.id === id) {
        this.#byHash.delete(h);
        this.#save();
        return true;
      }
    }
    return false;
  }

  list(): JoinTokenRecord[] {
    return [...this.#byHash.values()];
  }

  #save(): void {
    if (!this.#file) return;
    mkdirSync(dirname(this.#file), { recursive: true });
    // durable before issue() returns the token: an acknowledged join token survives a crash
    writeFileAtomicSync(this.#file, JSON.stringify(Object.fromEntries(this.#byHash), null, 2), 0o600);
  }
}
