// Operator tokens. Only SHA-256 hashes are kept (`<data-dir>/tokens.json`,
// mode 0600), so a leaked data-dir backup does not leak usable credentials;
// the one plaintext exception is `<data-dir>/admin.token`, written on first
// start so the operator can bootstrap (the contract in DESIGN.md).
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { mkdirDurable, parseJsonFile, removeLeftoverTemps, writeFileAtomic } from '../store/atomic-file.ts';

export type Role = 'admin' | 'viewer';

export interface TokenInfo {
  name: string;
  role: Role;
  createdAt: string;
}

interface TokenRecord extends TokenInfo {
  sha256: string;
}

export interface TokenStore {
  /** The token's identity, or undefined for an unknown token. */
  authenticate(token: string): TokenInfo | undefined;
  /** Creates a token; the plaintext is returned once and never stored. Rejects with TokenNameTakenError when a token has the name. */
  create(name: string, role: Role): Promise<{ token: string; info: TokenInfo }>;
  list(): TokenInfo[];
  /**
   * Revokes the token named `name` (every one, where an older build stored two; durably, before it resolves): 'revoked',
   * 'unknown', or 'last-admin' (refused: no admin token would be left to
   * manage the mesh with).
   */
  revoke(name: string): Promise<'revoked' | 'unknown' | 'last-admin'>;
}

export interface OpenedTokenStore {
  store: TokenStore;
  /** Set when this open created the first admin token (first start). */
  adminTokenPath?: string;
}

/** A token of that name exists: names are what revocation and the audit log go by, so two would make one unrevocable by name. */
export class TokenNameTakenError extends Error {
  override name = 'TokenNameTakenError';
}

export const ADMIN_TOKEN_FILE = 'admin.token';
const TOKENS_FILE = 'tokens.json';

function hashToken(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

export function generateToken(): string {
  return `weft_${randomBytes(24).toString('base64url')}`;
}

class HashedTokenStore implements TokenStore {
  /** Creates run one at a time: each writes the records the one before it left, or two at once lost one another's token. */
  #writes: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly records: TokenRecord[],
    private readonly persist: (records: TokenRecord[]) => Promise<void>,
    private readonly now: () => Date,
  ) {}

  authenticate(token: string): TokenInfo | undefined {
    if (!token) return undefined;
    const candidate = Buffer.from(hashToken(token), 'hex');
    for (const r of this.records) {
      const known = Buffer.from(r.sha256, 'hex');
      if (known.length === candidate.length && timingSafeEqual(known, candidate)) {
        return { name: r.name, role: r.role, createdAt: r.createdAt };
      }
    }
    return undefined;
  }

  /** `deliver`, when given, gets the plaintext durably to its reader before the hash is stored: if it fails, no token exists. */
  create(name: string, role: Role, deliver?: (token: string) => Promise<void>): Promise<{ token: string; info: TokenInfo }> {
    const run = this.#writes.then(async () => {
      // checked here, in the queue: two creates of one name sent together both passed a check made before it
      if (this.records.some((r) => r.name === name)) throw new TokenNameTakenError(`a token named "${name}" exists already`);
      const token = generateToken();
      const info: TokenInfo = { name, role, createdAt: this.now().toISOString() };
      const record = { ...info, sha256: hashToken(token) };
      await deliver?.(token);
      await this.persist([...this.records, record]);
      this.records.push(record);
      return { token, info };
    });
    this.#writes = run.catch(() => undefined);
    return run;
  }

  list(): TokenInfo[] {
    return this.records.map(({ name, role, createdAt }) => ({ name, role, createdAt }));
  }

  revoke(name: string): Promise<'revoked' | 'unknown' | 'last-admin'> {
    const run = this.#writes.then(async () => {
      if (!this.records.some((r) => r.name === name)) return 'unknown' as const;
      const next = this.records.filter((r) => r.name !== name);
      if (!next.some((r) => r.role === 'admin')) return 'last-admin' as const;
      await this.persist(next);
      this.records.splice(0, this.records.length, ...next);
      return 'revoked' as const;
    });
    this.#writes = run.catch(() => undefined);
    return run;
  }
}

/** Tokens held in memory only (tests, and embedding without a data dir). */
export function memoryTokenStore(now: () => Date = () => new Date()): TokenStore {
  return new HashedTokenStore([], async () => {}, now);
}

/**
 * Opens the token store in `dataDir`. When no admin token exists yet, creates
 * one named "admin" and writes its plaintext to `<dataDir>/admin.token` (0600).
 * Call it holding the data dir's lock (after openFileStore): it removes the
 * temp files a crash left of those two files.
 */
export async function openTokenStore(dataDir: string): Promise<OpenedTokenStore> {
  mkdirDurable(dataDir);
  removeLeftoverTemps(dataDir, (name) => name === TOKENS_FILE || name === ADMIN_TOKEN_FILE);
  const file = join(dataDir, TOKENS_FILE);
  let records: TokenRecord[] = [];
  try {
    const parsed = parseJsonFile(file, await readFile(file, 'utf8'), `restore it from a backup, or move it aside and start again with new tokens (a new admin token is written to ${join(dataDir, ADMIN_TOKEN_FILE)}; every other token must be created again)`);
    if (!Array.isArray(parsed)) throw new Error(`${file}: expected a JSON array`);
    records = parsed as TokenRecord[];
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const store = new HashedTokenStore(
    records,
    (next) => writeFileAtomic(file, JSON.stringify(next, null, 2) + '\n'),
    () => new Date(),
  );
  if (records.some((r) => r.role === 'admin')) return { store };
  const adminTokenPath = join(dataDir, ADMIN_TOKEN_FILE);
  // The plaintext is on disk (fsynced, renamed into place with mode 0600) before its hash is stored: a crash
  // between the two leaves no admin in tokens.json, so the next start makes one again. The other order could
  // store an admin whose only plaintext the crash lost, and lock the operator out for good.
  await store.create('admin', 'admin', (token) => writeFileAtomic(adminTokenPath, token + '\n', 0o600));
  return { store, adminTokenPath };
}
