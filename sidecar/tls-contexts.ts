// SDS secrets -> node:tls contexts. A context is rebuilt when a secret it
// uses changes, so a rotated certificate is presented (and a new trust
// bundle applied) on the next connection while open ones carry on, as Envoy
// does. Until both secrets a listener or cluster names have arrived, no TLS
// connection is possible (Envoy keeps such a listener or cluster warming).

import tls from 'node:tls';
import type { SecretConfig, TlsSecretRefs } from './config.ts';

export interface TlsMaterial {
  cert: string;
  key: string;
  ca: string;
}

export class TlsContexts {
  readonly #secrets = new Map<string, SecretConfig>();
  readonly #contexts = new Map<string, tls.SecureContext>();
  readonly #materials = new Map<string, TlsMaterial>();

  /** Replaces the secret set (SotW or Delta result); contexts using a changed secret are rebuilt lazily. */
  setSecrets(secrets: ReadonlyMap<string, SecretConfig>): void {
    const changed = new Set<string>();
    for (const [name, s] of secrets) if (JSON.stringify(this.#secrets.get(name)) !== JSON.stringify(s)) changed.add(name);
    for (const name of this.#secrets.keys()) if (!secrets.has(name)) changed.add(name);
    this.#secrets.clear();
    for (const [k, v] of secrets) this.#secrets.set(k, v);
    for (const key of [...this.#contexts.keys()]) {
      const [cert, ca] = key.split('\0');
      if (changed.has(cert!) || changed.has(ca!)) this.#contexts.delete(key);
    }
    for (const key of [...this.#materials.keys()]) {
      const [cert, ca] = key.split('\0');
      if (changed.has(cert!) || changed.has(ca!)) this.#materials.delete(key);
    }
  }

  /** A secret as received (admin /certs reads its certificates). */
  secret(name: string): SecretConfig | undefined {
    return this.#secrets.get(name);
  }

  has(refs: TlsSecretRefs): boolean {
    return this.#secrets.get(refs.certificate)?.tlsCertificate !== undefined && this.#secrets.get(refs.validation)?.trustedCa !== undefined;
  }

  /**
   * The PEMs for a server's setSecureContext; the same object until a secret
   * it uses changes, so a listener can tell when to swap its context.
   */
  material(refs: TlsSecretRefs): TlsMaterial | undefined {
    const key = `${refs.certificate}\0${refs.validation}`;
    const have = this.#materials.get(key);
    if (have) return have;
    const cert = this.#secrets.get(refs.certificate)?.tlsCertificate;
    const ca = this.#secrets.get(refs.validation)?.trustedCa;
    if (!cert || !ca) return undefined;
    const material = { cert: cert.certificateChain, key: cert.privateKey, ca };
    this.#materials.set(key, material);
    return material;
  }

  /** The context presenting `refs.certificate` and trusting `refs.validation`; undefined while either is missing. */
  context(refs: TlsSecretRefs): tls.SecureContext | undefined {
    const key = `${refs.certificate}\0${refs.validation}`;
    const have = this.#contexts.get(key);
    if (have) return have;
    const cert = this.#secrets.get(refs.certificate)?.tlsCertificate;
    const ca = this.#secrets.get(refs.validation)?.trustedCa;
    if (!cert || !ca) return undefined;
    const ctx = tls.createSecureContext({ cert: cert.certificateChain, key: cert.privateKey, ca, minVersion: 'TLSv1.2' });
    this.#contexts.set(key, ctx);
    return ctx;
  }
}
