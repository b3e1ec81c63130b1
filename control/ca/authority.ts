// The mesh CA at run time: one current SVID per workload identity
// (namespace/service), issued on first need and reissued at a fraction of its
// lifetime (half by default) so a proxy always holds a certificate with at
// least half its life left. Listeners hear about every reissue (the xDS
// controller pushes the new Secret over SDS).

import { BACKDATE_MS, issueSvid, type Svid } from './svid.ts';
import { loadOrCreateCa, type CaFiles, type SigningCa } from './root.ts';
import { DEFAULT_TRUST_DOMAIN, trustDomainError } from './spiffe.ts';
import { issueServingCert, type ServingCert } from './serving-cert.ts';

export const DEFAULT_CERT_TTL_MS = 24 * 3600 * 1000;
/** Below this, a certificate could expire between issue and first use. */
export const MIN_CERT_TTL_MS = 1000;
/** Istio's default maximum workload certificate lifetime (MAX_WORKLOAD_CERT_TTL, 90 days); also far inside the root's 10 years and what X.509 dates can hold. */
export const MAX_CERT_TTL_MS = 90 * 86_400_000;
/** The longest delay setTimeout keeps (a longer one fires after 1 ms). */
const MAX_TIMER_MS = 2 ** 31 - 1;

export interface MeshCaOptions {
  dataDir: string;
  trustDomain?: string;
  /** Workload certificate lifetime (default 24 h, at least 1 s). */
  certTtlMs?: number;
  /** Reissue when this fraction of the lifetime has passed (default 0.5). */
  rotateAt?: number;
  /** Operator-supplied CA instead of the data dir's root. */
  files?: CaFiles;
  now?: () => number;
}

export interface IdentityKey {
  namespace: string;
  service: string;
}

export type RotationListener = (identity: IdentityKey, svid: Svid) => void;

export class MeshCa {
  readonly trustDomain: string;
  readonly certTtlMs: number;
  readonly #signer: SigningCa;
  readonly #rotateAt: number;
  readonly #now: () => number;
  readonly #current = new Map<string, Svid>();
  readonly #pending = new Map<string, Promise<Svid>>();
  readonly #timers = new Map<string, NodeJS.Timeout>();
  readonly #listeners = new Set<RotationListener>();
  readonly #servingTimers = new Set<NodeJS.Timeout>();
  #closed = false;
  /** Certificates issued since start, for metrics and tests. */
  issued = 0;

  private constructor(signer: SigningCa, trustDomain: string, certTtlMs: number, rotateAt: number, now: () => number) {
    this.#signer = signer;
    this.trustDomain = trustDomain;
    this.certTtlMs = certTtlMs;
    this.#rotateAt = rotateAt;
    this.#now = now;
  }

  static async open(options: MeshCaOptions): Promise<MeshCa> {
    const trustDomain = options.trustDomain ?? DEFAULT_TRUST_DOMAIN;
    const tdError = trustDomainError(trustDomain);
    if (tdError) throw new Error(tdError);
    const ttl = options.certTtlMs ?? DEFAULT_CERT_TTL_MS;
    if (!Number.isFinite(ttl) || ttl < MIN_CERT_TTL_MS) throw new Error(`certificate lifetime must be at least ${MIN_CERT_TTL_MS} ms, got ${ttl}`);
    if (ttl > MAX_CERT_TTL_MS) throw new Error(`certificate lifetime must be at most 90d (Istio's default maximum workload certificate lifetime), got ${ttl} ms`);
    const rotateAt = options.rotateAt ?? 0.5;
    if (!(rotateAt > 0 && rotateAt < 1)) throw new Error(`rotateAt must be a fraction in (0, 1), got ${rotateAt}`);
    const signer = await loadOrCreateCa(options.dataDir, trustDomain, options.files);
    return new MeshCa(signer, trustDomain, ttl, rotateAt, options.now ?? Date.now);
  }

  get source(): SigningCa['source'] {
    return this.#signer.source;
  }

  /** When the signing CA certificate expires: no workload certificate outlives it. */
  get caExpiresAt(): Date {
    return this.#signer.cert.notAfter;
  }

  trustBundlePem(): string {
    return this.#signer.trustBundlePem;
  }

  /** The current SVID of an identity if one was issued (synchronous, for translation). */
  current(namespace: string, service: string): Svid | undefined {
    return this.#current.get(`${namespace}/${service}`);
  }

  /** The current SVID, issuing the first one if needed; concurrent callers share one issue. */
  async svid(namespace: string, service: string): Promise<Svid> {
    const key = `${namespace}/${service}`;
    const have = this.#current.get(key);
    if (have) return have;
    return this.#issue(key, { namespace, service });
  }

  onRotate(listener: RotationListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /**
   * The control plane's xDS server certificate (serving-cert.ts): issued now
   * with the workload lifetime (--cert-ttl, capped at the CA's own expiry),
   * then reissued at the same fraction of its life as workload certificates,
   * each reissue handed to `onReissue` (which swaps it into the running
   * server). Resolves with the first certificate.
   */
  async servingCert(names: { dnsNames: string[]; ipAddresses: string[] }, onReissue: (cert: ServingCert) => void): Promise<ServingCert> {
    const issue = () => issueServingCert(this.#signer, { trustDomain: this.trustDomain, ...names, ttlMs: this.certTtlMs, now: new Date(this.#now()) });
    const schedule = (cert: ServingCert, delayMs?: number) => {
      if (this.#closed) return;
      const issuedAt = cert.notBefore.getTime() + BACKDATE_MS;
      const delay = delayMs ?? Math.max(0, issuedAt + (cert.notAfter.getTime() - issuedAt) * this.#rotateAt - this.#now());
      const timer = setTimeout(() => {
        this.#servingTimers.delete(timer);
        issue().then(
          (next) => {
            if (this.#closed) return;
            onReissue(next);
            schedule(next);
          },
          // Keep serving the one it has (it has life left) and try again in a second.
          () => schedule(cert, 1000),
        );
      }, delay);
      timer.unref();
      this.#servingTimers.add(timer);
    };
    const first = await issue();
    schedule(first);
    return first;
  }

  /** Stops rotation timers. */
  close(): void {
    this.#closed = true;
    for (const t of this.#timers.values()) clearTimeout(t);
    this.#timers.clear();
    for (const t of this.#servingTimers) clearTimeout(t);
    this.#servingTimers.clear();
  }

  #issue(key: string, identity: IdentityKey): Promise<Svid> {
    const pending = this.#pending.get(key);
    if (pending) return pending;
    const p = issueSvid(this.#signer, { trustDomain: this.trustDomain, ...identity, ttlMs: this.certTtlMs, now: new Date(this.#now()) })
      .then((svid) => {
        this.issued++;
        this.#current.set(key, svid);
        this.#schedule(key, identity, svid);
        return svid;
      })
      .finally(() => this.#pending.delete(key));
    this.#pending.set(key, p);
    return p;
  }

  #schedule(key: string, identity: IdentityKey, svid: Svid): void {
    if (this.#closed) return;
    clearTimeout(this.#timers.get(key));
    const issuedAt = svid.notBefore.getTime() + BACKDATE_MS;
    const lifetime = svid.notAfter.getTime() - issuedAt;
    const due = issuedAt + lifetime * this.#rotateAt;
    const delay = Math.max(0, due - this.#now());
    // setTimeout fires at once for a delay past 2^31-1 ms (24.8 days, a certificate lifetime over 49.7 days at
    // half-life): Node sets it to 1 ms, and the CA reissued every identity in a loop. Wake at the limit and look again.
    if (delay > MAX_TIMER_MS) {
      const wait = setTimeout(() => { this.#timers.delete(key); this.#schedule(key, identity, svid); }, MAX_TIMER_MS);
      wait.unref();
      this.#timers.set(key, wait);
      return;
    }
    const timer = setTimeout(() => {
      this.#timers.delete(key);
      // The old certificate stays current until its successor exists.
      this.#issue(key, identity).then(
        (next) => { for (const l of this.#listeners) l(identity, next); },
        // Keep serving the old certificate (it has life left) and try again in a second.
        () => { if (!this.#closed) this.#timers.set(key, setTimeout(() => this.#schedule(key, identity, svid), 1000).unref()); },
      );
    }, delay);
    timer.unref();
    this.#timers.set(key, timer);
  }
}
